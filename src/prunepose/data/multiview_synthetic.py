"""A SYNTHETIC multi-view pose set rendered from REAL Human3.6M poses and cameras.

Why it exists: multi-view PPT needs synchronised images from calibrated cameras; the shared data has the real
Human3.6M mocap and calibration but no video frames. This set keeps everything geometric real -- the 3D
poses (world frame), the 4 cameras per subject (intrinsics, extrinsics, distortion), the crops around the
projected person -- and replaces only the pixels: the skeleton is drawn as thick limb strokes over real
photos (the project's COCO-mini images), farthest limb first so the body occludes itself, and random
occluders (rectangles / ellipses, flat or cut from another photo) hide parts of the body in some views. That
is enough to test what fusion is for -- recovering joints a view cannot see from the views that can -- but
it is NOT Human3.6M images: numbers measured on it say nothing about accuracy on real images.

Nothing is copied: poses and cameras are read from the shared data folder at run time (research-only data).

Per sample (one mocap frame seen by V cameras) ``__getitem__`` returns float tensors:

* ``images`` (V, 3, H, W) normalised RGB crops; ``heatmaps`` (V, J, h, w) UDP targets; ``weights`` (V, J);
* ``crop_to_image`` (V, 2, 3), ``intrinsics`` (V, 3, 3), ``rotation`` (V, 3, 3) (world-to-camera) -- what
  multi-view PPT's 3D positional encoding needs;
* ``joints_2d`` (V, J, 2) distorted original-image px (1000 x 1000/1002, the JDR ground truth);
  ``occluded`` (V, J) bool (joint centre under an occluder); ``joints_3d`` (J, 3) world mm; ``subject`` index.

Randomness comes from ``np.random.default_rng((seed, epoch, index))`` (the project's dataset convention).
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from prunepose.codecs.heatmap import HeatmapCodec
from prunepose.data.h36m import CAMERA_IDS, TEST_SUBJECTS, TRAIN_SUBJECTS
from prunepose.data.safe_npz import load_npz_containers
from prunepose.data.transforms import affine_points, get_affine_transform, invert_affine, normalize_image
from prunepose.errors import DataError
from prunepose.geometry.camera import Camera, load_cameras, project, world_to_camera
from prunepose.paths import shared_data_dir
from prunepose.skeletons import H36M17

SUPERSAMPLE = 4  # strokes are drawn at 4x the crop size and area-downsampled (anti-aliasing)
_LEFT = {4, 5, 6, 11, 12, 13}
_RIGHT = {1, 2, 3, 14, 15, 16}


@dataclass(frozen=True)
class SyntheticConfig:
    """How the views are rendered. Sizes are (width, height)."""

    input_size: tuple[int, int] = (64, 64)
    heatmap_size: tuple[int, int] = (16, 16)
    sigma: float = 1.5
    occlusion_prob: float = 0.0  # per view: probability of 1-2 occluders over the body
    box_padding: float = 1.25  # crop side = padding x the longer side of the projected joints' box
    jitter: float = 0.0  # random crop shift/scale, as a fraction of the crop side (training augmentation)
    limb_width: float = 0.035  # stroke width as a fraction of the crop side


def _load_backgrounds(paths: Sequence[Path], max_side: int = 320) -> list[np.ndarray]:
    images = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise DataError(f"{p}: cannot read background image")
        scale = max_side / max(img.shape[:2])
        if scale < 1:
            img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA)
        images.append(img)
    if not images:
        raise DataError("no background images given")
    return images


def default_backgrounds(split: str) -> list[Path]:
    """Real photos from the shared COCO-mini folder: the first 22 for ``train``, the other 6 for ``test``."""
    base = shared_data_dir()
    if base is None:
        raise DataError("shared data folder not found: set PRUNEPOSE_DATA")
    files = sorted((base / "coco-mini" / "train2017").glob("*.jpg"))
    if len(files) < 8:
        raise DataError(f"{base / 'coco-mini' / 'train2017'}: expected the 28 COCO-mini photos, found {len(files)}")
    return files[:22] if split == "train" else files[22:]


def load_h36m_frames(root: str | os.PathLike[str] | None, subjects: Sequence[str], stride: int,
                     ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """World poses (N, 17, 3) in mm of every ``stride``-th frame of ``subjects``, their subject index (N,)
    into the returned subject list, and the action name of each frame (for per-action tables)."""
    base = Path(root) if root is not None else (shared_data_dir() or Path("missing")) / "h36m"
    path = base / "h36m_positions3d_17j_world_m.npz"
    if not path.is_file():
        raise DataError(f"{path}: Human3.6M poses not found (set PRUNEPOSE_DATA to the shared data folder)")
    try:
        with zipfile.ZipFile(path) as archive:  # read only the wanted subjects' entries (the file is ~90 MB)
            keys = [n[:-4] for n in archive.namelist() if n.endswith(".npy") and n.split("/", 1)[0] in subjects]
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot open as .npz ({exc})") from exc
    data = load_npz_containers(path, keys)
    poses, subj, actions = [], [], []
    for key in sorted(data):
        subject, action = key.split("/", 1)
        seq = np.asarray(data[key], dtype=np.float64)[::stride] * 1000.0
        poses.append(seq)
        subj.append(np.full(len(seq), list(subjects).index(subject)))
        actions += [action.split(" ")[0]] * len(seq)
    if not poses:
        raise DataError(f"{path}: no sequence of subjects {list(subjects)}")
    return np.concatenate(poses), np.concatenate(subj), actions


def _draw_person(canvas: np.ndarray, joints: np.ndarray, depth: np.ndarray, width: float,
                 colors: dict[int, tuple[int, int, int]]) -> None:
    """Thick limb strokes (farthest first) and a head disc on ``canvas`` (supersampled crop px)."""
    limbs = sorted(H36M17.limbs, key=lambda ab: -(depth[ab[0]] + depth[ab[1]]))
    s = SUPERSAMPLE
    pts = np.round((joints + 0.5) * s - 0.5).astype(np.int64)
    thick = max(1, round(width * s))
    for a, b in limbs:
        cv2.line(canvas, tuple(int(v) for v in pts[a]), tuple(int(v) for v in pts[b]), colors[b], thick, cv2.LINE_AA)
        cv2.circle(canvas, tuple(int(v) for v in pts[b]), thick // 2 + 1, colors[b], -1, cv2.LINE_AA)
    cv2.circle(canvas, tuple(int(v) for v in pts[10]), round(1.6 * thick), colors[10], -1, cv2.LINE_AA)


def _limb_colors(rng: np.random.Generator) -> dict[int, tuple[int, int, int]]:
    """Left limbs bluish, right limbs reddish, torso/head greenish (BGR), with random shades per sample."""
    def shade(base: np.ndarray) -> tuple[int, int, int]:
        c = np.clip(base + rng.integers(-40, 41, 3), 0, 255)
        return (int(c[0]), int(c[1]), int(c[2]))
    left, right, mid = shade(np.array([220, 90, 40])), shade(np.array([40, 70, 220])), shade(np.array([60, 200, 60]))
    return {j: left if j in _LEFT else right if j in _RIGHT else mid for j in range(17)}


class SyntheticMultiViewH36M(Dataset):
    """Synthetic multi-view crops of real Human3.6M poses seen by the real cameras (see the module doc)."""

    def __init__(self, split: str = "train", config: SyntheticConfig = SyntheticConfig(), stride: int = 64,
                 root: str | os.PathLike[str] | None = None, camera_ids: Sequence[str] = CAMERA_IDS,
                 backgrounds: Sequence[str | os.PathLike[str]] | None = None, seed: int = 0,
                 max_samples: int | None = None) -> None:
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train' or 'test', got {split!r}")
        if len(camera_ids) < 2:
            raise DataError(f"need at least 2 cameras, got {list(camera_ids)}")
        self.config = config
        self.split = split
        self.seed = seed
        self.epoch = 0
        self.subjects = list(TRAIN_SUBJECTS if split == "train" else TEST_SUBJECTS)
        self.poses, self.subject_index, self.actions = load_h36m_frames(root, self.subjects, stride)
        if max_samples is not None:
            self.poses, self.subject_index = self.poses[:max_samples], self.subject_index[:max_samples]
            self.actions = self.actions[:max_samples]
        base = Path(root) if root is not None else (shared_data_dir() or Path("missing")) / "h36m"
        all_cams = load_cameras(base / "cameras.json")
        try:
            self.cameras = [[all_cams[s][c] for c in camera_ids] for s in self.subjects]
        except KeyError as exc:
            raise DataError(f"{base / 'cameras.json'}: no camera {exc.args[0]!r}") from None
        self.backgrounds = _load_backgrounds([Path(p) for p in (backgrounds or default_backgrounds(split))])
        self.codec = HeatmapCodec(config.input_size, config.heatmap_size, config.sigma)

    def __len__(self) -> int:
        return len(self.poses)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def cameras_of(self, index: int) -> list[Camera]:
        """The cameras of sample ``index`` (for triangulation)."""
        return self.cameras[int(self.subject_index[index])]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch if self.split == "train" else 0, int(index)))
        pose = self.poses[index]
        views = [self._render(pose, cam, rng, index) for cam in self.cameras_of(index)]
        out = {k: torch.from_numpy(np.stack([v[k] for v in views])) for k in views[0]}
        out["joints_3d"] = torch.from_numpy(pose)
        out["subject"] = torch.tensor(int(self.subject_index[index]))
        out["index"] = torch.tensor(int(index))
        return out

    def _render(self, pose_mm: np.ndarray, cam: Camera, rng: np.random.Generator, index: int) -> dict[str, np.ndarray]:
        cfg = self.config
        cam_pts = world_to_camera(pose_mm, cam)
        if np.any(cam_pts[:, 2] <= 0):
            raise DataError(f"sample {index}: camera {cam.name} has the subject behind it (depth <= 0); "
                            "check the extrinsics convention (R must be world-to-camera)")
        joints_px = project(cam_pts, cam)
        lo, hi = joints_px.min(0), joints_px.max(0)
        side = max(hi - lo) * cfg.box_padding
        center = (lo + hi) / 2
        if cfg.jitter > 0:
            center = center + rng.uniform(-cfg.jitter, cfg.jitter, 2) * side
            side = side * (1 + rng.uniform(-cfg.jitter, cfg.jitter))
        w, h = cfg.input_size
        scale = np.array([side, side * h / w])
        affine = get_affine_transform(center, scale, 0.0, cfg.input_size)
        joints_crop = affine_points(joints_px, affine)
        image = self._background(rng)
        big = cv2.resize(image, (w * SUPERSAMPLE, h * SUPERSAMPLE), interpolation=cv2.INTER_LINEAR)
        _draw_person(big, joints_crop, cam_pts[:, 2], cfg.limb_width * w, _limb_colors(rng))
        image = cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA)
        occluded = np.zeros(len(pose_mm), dtype=bool)
        if rng.random() < cfg.occlusion_prob:
            image, occluded = self._occlude(image, joints_crop, rng)
        heatmaps, weight = self.codec.encode(joints_crop, np.ones(len(joints_crop)))
        return {
            "images": normalize_image(image),
            "heatmaps": heatmaps,
            "weights": weight,
            "crop_to_image": invert_affine(affine),
            "intrinsics": np.array([[cam.f[0], 0, cam.c[0]], [0, cam.f[1], cam.c[1]], [0, 0, 1.0]]),
            "rotation": np.array(cam.R_world_to_cam),
            "joints_2d": joints_px,
            "occluded": occluded,
        }

    def _background(self, rng: np.random.Generator) -> np.ndarray:
        w, h = self.config.input_size
        bg = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        side = int(rng.integers(min(bg.shape[:2]) // 3, min(bg.shape[:2]) + 1))
        y = int(rng.integers(0, bg.shape[0] - side + 1))
        x = int(rng.integers(0, bg.shape[1] - side + 1))
        crop = cv2.resize(bg[y:y + side, x:x + side], (w, h), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)

    def _occlude(self, image: np.ndarray, joints: np.ndarray, rng: np.random.Generator,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """1-2 occluders (rectangle or ellipse; flat colour or a patch of another photo) centred near a
        random joint, 25-45 % of the crop side; returns the image and which joint centres they cover."""
        h, w = image.shape[:2]
        mask = np.zeros((h, w), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 3))):
            cx, cy = joints[int(rng.integers(len(joints)))] + rng.normal(0, 0.05 * w, 2)
            ax, ay = rng.uniform(0.125, 0.225, 2) * np.array([w, h])
            if rng.random() < 0.5:
                cv2.rectangle(mask, (int(cx - ax), int(cy - ay)), (int(cx + ax), int(cy + ay)), 255, -1)
            else:
                cv2.ellipse(mask, (int(cx), int(cy)), (int(ax), int(ay)), float(rng.uniform(0, 180)), 0, 360, 255, -1)
        fill = self._background(rng) if rng.random() < 0.5 else np.full_like(image, rng.integers(0, 256, 3))
        out = np.where(mask[..., None] > 0, fill, image)
        ij = np.round(joints).astype(np.int64)
        inside = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
        occluded = np.zeros(len(joints), dtype=bool)
        occluded[inside] = mask[ij[inside, 1], ij[inside, 0]] > 0
        return out, occluded


__all__ = ["SyntheticConfig", "SyntheticMultiViewH36M", "default_backgrounds", "load_h36m_frames"]
