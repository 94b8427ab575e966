"""Human3.6M for 2D-to-3D lifting: sequences with cameras, 3D mocap and 2D keypoints.

Two on-disk layouts are read into the same in-memory form (a list of `H36MSequence`, one per
subject x sequence x camera):

* the **shared layout** (``$PRUNEPOSE_DATA/h36m``): ``h36m_positions3d_17j_world_m.npz`` (key
  ``"S9/Walking 1"``, (T, 17, 3) world metres), ``cameras.json`` (see `prunepose.geometry.load_cameras`),
  ``h36m_sh2d_16j_px_S9_S11.npz`` (Stacked-Hourglass detections of S9/S11, key
  ``"S9/Walking_1.54138969"``, (T, 16, 2) px in the MPII joint layout) and ``metadata.json``;
* the **VideoPose3D layout**: ``data_3d_h36m.npz`` (``positions_3d[subject][action]`` = (T, 32 or 17, 3)
  world metres) and ``data_2d_h36m_<name>.npz`` (``positions_2d[subject][action]`` = list of 4 (T, 17, 2)
  px arrays in the camera order `CAMERA_IDS`, ``metadata`` with ``keypoints_symmetry``). VideoPose3D
  hard-codes the calibration in its code; here it comes from a ``cameras.json``.

Frames and units (what a lifter consumes and produces)
------------------------------------------------------
* 3D targets: **camera frame, metres**, VideoPose3D convention ``pos[:, 1:] -= pos[:, :1]``: joint 0
  (pelvis) keeps its absolute camera-frame position (the trajectory), joints 1..16 are relative to it.
  Losses and metrics zero the root (HoT/MixSTE set ``target[..., 0, :] = 0``).
* 2D inputs: pixels of the camera image, normalised with ``px / w * 2 - [1, h / w]``; either the
  projection of the 3D ground truth through the real calibration with distortion ("gt") or the SH
  detections mapped to the 17 H36M joints ("sh"; every subject since the training subjects' file was added).
* Joint order: H36M-17 (`prunepose.skeletons.H36M17`), left joints `JOINTS_LEFT`, right `JOINTS_RIGHT`.

Missing data (the shared snapshot lacks 5 mocap sequences, one S11 video has no detections) is
collected in ``H36MLifting.missing`` and reported with one warning, never raised.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.data.safe_npz import load_npz_containers
from prunepose.errors import DataError
from prunepose.geometry.camera import Camera, load_cameras, normalize_screen, project, world_to_camera
from prunepose.paths import shared_data_dir

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")
#: Stacked-Hourglass 2D detection files of the shared layout, per split (16-joint MPII order, pixels)
SH_FILES = {"test": "h36m_sh2d_16j_px_S9_S11.npz", "train": "h36m_sh2d_16j_px_S1_S5_S6_S7_S8.npz"}
#: Camera order of VideoPose3D's ``positions_2d`` lists (and of its hard-coded calibration).
CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
#: Left / right joints of H36M-17 (VideoPose3D ``keypoints_symmetry``), paired index by index.
JOINTS_LEFT = (4, 5, 6, 11, 12, 13)
JOINTS_RIGHT = (1, 2, 3, 14, 15, 16)
#: The 17 joints kept from the 32 of the raw mocap (VideoPose3D ``remove_joints`` complement).
H36M32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
#: The 15 actions under their Human3.6M file names (the names VideoPose3D/MixSTE/HoT report).
ACTIONS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)  # fmt: skip
#: Official Human3.6M action ids (``act_02`` ... ``act_16`` in MotionBERT's ``source`` strings).
H36M_ACTION_IDS = {
    2: "Directions", 3: "Discussion", 4: "Eating", 5: "Greeting", 6: "Phoning", 7: "Posing",
    8: "Purchases", 9: "Sitting", 10: "SittingDown", 11: "Smoking", 12: "Photo", 13: "Waiting",
    14: "Walking", 15: "WalkDog", 16: "WalkTogether",
}  # fmt: skip
_ACTION_ALIASES = {a.lower(): a for a in ACTIONS} | {
    "takingphoto": "Photo", "walkingdog": "WalkDog", "walkingtogether": "WalkTogether",
    "walktogether": "WalkTogether", "phone": "Phoning", "discuss": "Discussion",
}  # fmt: skip

# ----------------------------------------------------------------------------------------------- names


def normalize_action(name: str) -> str:
    """Canonical action of a sequence name: ``"Walking 1"``, ``"Walking_1"``, ``"walking"`` -> ``"Walking"``;
    ``"TakingPhoto 1"`` -> ``"Photo"``; ``"WalkingDog"`` -> ``"WalkDog"``.

    The trailing take number (after a space, underscore or dot) is dropped, as VideoPose3D does with
    ``action.split(' ')[0]``. Names that match no Human3.6M action are returned with only the take number
    stripped, so custom datasets still group by their own action names.
    """
    base = re.split(r"[ _.]", str(name).strip(), maxsplit=1)[0]
    key = re.sub(r"[^a-z]", "", base.lower())
    return _ACTION_ALIASES.get(key, base)


# ------------------------------------------------------------------------------------- SH 16 -> H36M 17

#: SH detections as released by 3d-pose-baseline: the 16 MPII joints under H36M-style names. Measured
#: against projected mocap, their "Spine", "Thorax", "Head" are MPII's thorax, upper neck and head top.
SH16_NAMES = (
    "RFoot", "RKnee", "RHip", "LHip", "LKnee", "LFoot", "Hip", "Spine", "Thorax", "Head",
    "RWrist", "RElbow", "RShoulder", "LShoulder", "LElbow", "LWrist",
)  # fmt: skip
#: H36M-17 joint <- SH joint index, for the 14 joints taken from the detector directly.
SH16_DIRECT = {0: 6, 1: 2, 2: 1, 3: 0, 4: 3, 5: 4, 6: 5, 8: 8, 11: 13, 12: 14, 13: 15, 14: 12, 15: 11, 16: 10}
#: Positions of the synthesised joints along thorax (SH "Thorax") -> head top (SH "Head").
SH_NECK_T = 0.25
SH_HEAD_T = 0.6


def sh16_to_h36m17(sh: np.ndarray) -> np.ndarray:
    """Stacked-Hourglass 16-joint detections (..., 16, 2) -> H36M-17 (..., 17, 2), same pixel frame.

    Mapping (H36M joint <- SH joint):

    * detected directly (14): pelvis <- "Hip" (MPII pelvis), hips/knees/ankles, shoulders/elbows/wrists,
      thorax <- SH "Thorax" (MPII *upper neck*, which sits where the H36M thorax marker projects;
      median 7.7 px vs 9.5 px for SH "Spine" = MPII thorax).
    * synthesised (3):
        - spine (7) = midpoint of pelvis and thorax (H36M's spine marker is mid-torso),
        - neck/nose (9) = thorax + 0.25 * (head_top - thorax),
        - head (10) = thorax + 0.6 * (head_top - thorax) (H36M's head joint is the head centre, well below
          MPII's head top, so SH "Head" is *not* used as the head joint).
      SH "Spine" (MPII thorax) is not used.

    Why not the 3d-pose-baseline name-for-name mapping: matching names puts H36M spine on MPII thorax
    (46 px median error vs projected mocap) and the head joint on the head top (23 px). With the mapping
    above every joint lands within 4.5-15 px (median over all S9/S11 frames and cameras): the spine
    7.2 px, neck/nose 7.7 px, head 4.5 px. The two fractions were read off that comparison (the only
    subjects with detections are the test subjects), rounded to 0.25/0.6; they are module constants
    `SH_NECK_T`/`SH_HEAD_T` so the choice is visible and changeable.
    """
    sh = np.asarray(sh)
    if sh.shape[-2:] != (16, 2):
        raise ValueError(f"SH detections must be (..., 16, 2), got {sh.shape}")
    out = np.empty(sh.shape[:-2] + (17, 2), dtype=sh.dtype)
    for dst, src in SH16_DIRECT.items():
        out[..., dst, :] = sh[..., src, :]
    thorax, head_top = sh[..., 8, :], sh[..., 9, :]
    out[..., 7, :] = 0.5 * (out[..., 0, :] + thorax)
    out[..., 9, :] = thorax + SH_NECK_T * (head_top - thorax)
    out[..., 10, :] = thorax + SH_HEAD_T * (head_top - thorax)
    return out


# ------------------------------------------------------------------------------------------- sequences


@dataclass(frozen=True, eq=False)
class H36MSequence:
    """One subject x sequence x camera.

    ``pose3d_world`` (T, 17, 3) float32 is the world-frame mocap in metres (shared, not copied, between the
    four cameras of a sequence); ``keypoints_px`` (T, 17, 2) holds 2D detections in camera pixels, or
    ``None`` to use the projection of the mocap ("GT 2D"), computed on demand per clip.
    """

    subject: str
    sequence: str
    camera_id: str
    camera: Camera
    pose3d_world: np.ndarray
    keypoints_px: np.ndarray | None = None

    @property
    def action(self) -> str:
        """Canonical action name (see `normalize_action`)."""
        return normalize_action(self.sequence)

    @property
    def num_frames(self) -> int:
        return int(self.pose3d_world.shape[0])

    def _frames(self, frames: Sequence[int] | np.ndarray | None) -> np.ndarray | slice:
        return slice(None) if frames is None else np.asarray(frames, dtype=np.int64)

    def pose3d_camera(self, frames: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(n, 17, 3) float32, camera frame, metres; joint 0 absolute, joints 1..16 relative to joint 0."""
        pos = world_to_camera(self.pose3d_world[self._frames(frames)], self.camera, units="m")
        pos[:, 1:] -= pos[:, :1]
        return pos.astype(np.float32)

    def pose2d_px(self, frames: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(n, 17, 2) float32 camera pixels: the detections, or the distorted projection of the mocap."""
        sel = self._frames(frames)
        if self.keypoints_px is not None:
            return np.asarray(self.keypoints_px[sel], dtype=np.float32)
        return self.projected_px(frames)

    def projected_px(self, frames: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(n, 17, 2) float32 camera pixels: the distorted projection of the mocap ("gt" 2D), whether or not
        the sequence also carries detections (training may mix both sources)."""
        cam = world_to_camera(self.pose3d_world[self._frames(frames)], self.camera, units="m")
        return project(cam, self.camera).astype(np.float32)

    def pose2d(self, frames: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(n, 17, 2) float32 normalised screen coordinates (``px / w * 2 - [1, h / w]``)."""
        return normalize_screen(self.pose2d_px(frames), self.camera.width, self.camera.height).astype(np.float32)


@dataclass
class H36MLifting:
    """A loaded split: its sequences, what could not be loaded, and where the 2D came from."""

    sequences: list[H36MSequence]
    keypoints: str
    missing: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return sum(s.num_frames for s in self.sequences)

    @property
    def actions(self) -> list[str]:
        return sorted({s.action for s in self.sequences})


def _warn_missing(missing: list[str], where: str) -> None:
    if missing:
        shown = "; ".join(missing[:6]) + (f"; ... ({len(missing)} in all)" if len(missing) > 6 else "")
        warnings.warn(f"{where}: skipped missing data: {shown}", stacklevel=3)


def _check_subjects(subjects: Iterable[str]) -> tuple[str, ...]:
    subjects = tuple(subjects)
    if not subjects:
        raise DataError("no subjects requested")
    return subjects


def _filter_action(name: str, actions: Iterable[str] | None) -> bool:
    return actions is None or normalize_action(name) in {normalize_action(a) for a in actions}


def _as_cameras(cameras: str | os.PathLike[str] | Mapping[str, Mapping[str, Camera]] | None, root: Path | None
                ) -> Mapping[str, Mapping[str, Camera]]:
    if cameras is None:
        if root is None:
            raise DataError("no cameras.json given and the shared data folder (PRUNEPOSE_DATA) is not available")
        cameras = root / "cameras.json"
    if isinstance(cameras, Mapping):
        return cameras
    return load_cameras(cameras)


def _shared_root(root: str | os.PathLike[str] | None) -> Path:
    if root is not None:
        return Path(root)
    base = shared_data_dir()
    if base is None:
        raise DataError("shared data folder not found: set PRUNEPOSE_DATA or pass root=")
    return base / "h36m"


def load_h36m_shared(
    root: str | os.PathLike[str] | None = None,
    subjects: Iterable[str] = TEST_SUBJECTS,
    keypoints: str = "gt",
    camera_ids: Iterable[str] = CAMERA_IDS,
    actions: Iterable[str] | None = None,
    warn: bool = True,
) -> H36MLifting:
    """Load the shared Human3.6M folder (default ``$PRUNEPOSE_DATA/h36m``).

    Args:
        subjects: e.g. `TRAIN_SUBJECTS` or `TEST_SUBJECTS`.
        keypoints: ``"gt"`` (projected mocap, every subject) or ``"sh"`` (Stacked-Hourglass detections
            mapped by `sh16_to_h36m17`: S9/S11 from `SH_FILES` ``"test"``, the training subjects from
            ``"train"``, so a lifter can be trained on real detector 2D as the standard protocol does).
        camera_ids, actions: optional filters (actions by canonical name).
        warn: emit one warning listing what is missing (it is in ``.missing`` either way).
    """
    root = _shared_root(root)
    subjects = _check_subjects(subjects)
    if keypoints not in ("gt", "sh"):
        raise DataError(f"keypoints must be 'gt' or 'sh' for the shared layout, got {keypoints!r}")
    cams = _as_cameras(None, root)
    path3d = root / "h36m_positions3d_17j_world_m.npz"
    try:
        npz3d = np.load(path3d, allow_pickle=False)
    except OSError as exc:
        raise DataError(f"{path3d}: cannot open ({exc})") from exc
    missing: list[str] = []
    meta_path = root / "metadata.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        absent = meta.get("positions3d", {}).get("missing_sequences_absent_in_snapshot", [])
        missing += [f"{k} (3D mocap absent)" for k in absent if k.split("/")[0] in subjects and _filter_action(
            k.split("/", 1)[1], actions)]
    sh: dict[tuple[str, str, str], str] = {}
    sh_files: dict[str, Any] = {}  # npz key -> the open file that holds it
    if keypoints == "sh":
        for split, names in (("test", TEST_SUBJECTS), ("train", TRAIN_SUBJECTS)):
            if not any(s in names for s in subjects):
                continue
            path2d = root / SH_FILES[split]
            try:
                npz2d = np.load(path2d, allow_pickle=False)
            except OSError as exc:
                raise DataError(f"{path2d}: cannot open the SH detections of {split} subjects ({exc})") from exc
            for key in npz2d.files:
                subject, rest = key.split("/", 1)
                seq, cam_id = rest.rsplit(".", 1)
                sh[(subject, seq.replace("_", " "), cam_id)] = key
                sh_files[key] = (npz2d, path2d)
        for subject, seq in sorted({(s, q) for s, q, _ in sh}):
            if subject in subjects and f"{subject}/{seq}" not in npz3d.files and _filter_action(seq, actions):
                label = f"{subject}/{seq} (3D mocap absent)"
                if label not in missing:
                    missing.append(label)
    sequences: list[H36MSequence] = []
    camera_ids = tuple(camera_ids)
    for key in sorted(npz3d.files):
        subject, seq = key.split("/", 1)
        if subject not in subjects or not _filter_action(seq, actions):
            continue
        world = np.asarray(npz3d[key], dtype=np.float32)
        if world.ndim != 3 or world.shape[1:] != (17, 3):
            raise DataError(f"{path3d}: field {key!r} must be (T, 17, 3), got {world.shape}")
        for cam_id in camera_ids:
            if cam_id not in cams.get(subject, {}):
                raise DataError(f"{root / 'cameras.json'}: no camera {cam_id!r} for subject {subject!r}")
            kpts = None
            if keypoints == "sh":
                sh_key = sh.get((subject, seq, cam_id))
                if sh_key is None:
                    missing.append(f"{subject}/{seq} camera {cam_id} (no SH detections)")
                    continue
                src, src_path = sh_files[sh_key]
                kpts = _align_2d(sh16_to_h36m17(np.asarray(src[sh_key], dtype=np.float32)), world, src_path, sh_key)
            sequences.append(H36MSequence(subject, seq, cam_id, cams[subject][cam_id], world, kpts))
    if warn:
        _warn_missing(missing, str(root))
    return H36MLifting(sequences=sequences, keypoints=keypoints, missing=missing)


def _align_2d(kpts: np.ndarray, world: np.ndarray, path: Path, key: str) -> np.ndarray:
    """2D longer than the mocap is truncated (VideoPose3D does the same); shorter is an error."""
    if kpts.shape[0] < world.shape[0]:
        raise DataError(f"{path}: field {key!r} has {kpts.shape[0]} frames, fewer than the {world.shape[0]} "
                        "of the mocap")
    return kpts[: world.shape[0]]


# ------------------------------------------------------------------------------------ VideoPose3D layout


def read_videopose3d_3d(path: str | os.PathLike[str]) -> dict[str, dict[str, np.ndarray]]:
    """``data_3d_h36m.npz`` -> ``{subject: {action: (T, 17, 3) float32 world metres}}``.

    32-joint mocap is reduced to the 17 joints `H36M32_TO_17`; 17-joint arrays are kept. The container is
    unpickled with a whitelist (no code execution; see `prunepose.data.safe_npz`).
    """
    path = Path(path)
    raw = load_npz_containers(path, ["positions_3d"])["positions_3d"]
    if not isinstance(raw, dict):
        raise DataError(f"{path}: field 'positions_3d' must be a dict {{subject: {{action: array}}}}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, acts in raw.items():
        if not isinstance(acts, dict):
            raise DataError(f"{path}: field 'positions_3d[{subject!r}]' must be a dict of actions")
        out[subject] = {}
        for action, arr in acts.items():
            arr = np.asarray(arr, dtype=np.float32)
            if arr.ndim != 3 or arr.shape[-1] != 3 or arr.shape[1] not in (17, 32):
                raise DataError(f"{path}: field 'positions_3d[{subject!r}][{action!r}]' must be (T, 32|17, 3), "
                                f"got {arr.shape}")
            out[subject][action] = arr[:, list(H36M32_TO_17)] if arr.shape[1] == 32 else arr
    return out


def read_videopose3d_2d(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict[str, Any]]:
    """``data_2d_h36m_<name>.npz`` -> (``{subject: {action: [4 x (T, 17, 2) px]}}``, ``metadata``).

    The list order is `CAMERA_IDS`. ``metadata['keypoints_symmetry']`` must be the H36M-17 left/right
    lists (else the flip augmentation would be wrong) -> `DataError` otherwise.
    """
    path = Path(path)
    entries = load_npz_containers(path, ["positions_2d", "metadata"])
    raw, meta = entries["positions_2d"], entries["metadata"]
    if not isinstance(raw, dict) or not isinstance(meta, dict):
        raise DataError(f"{path}: fields 'positions_2d' and 'metadata' must be dicts")
    sym = meta.get("keypoints_symmetry")
    if sym is None or [list(map(int, s)) for s in sym] != [list(JOINTS_LEFT), list(JOINTS_RIGHT)]:
        expected = [list(JOINTS_LEFT), list(JOINTS_RIGHT)]
        raise DataError(f"{path}: field 'metadata.keypoints_symmetry' must be {expected}, got {sym!r}")
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, acts in raw.items():
        out[subject] = {}
        for action, views in acts.items():
            where = f"{path}: field 'positions_2d[{subject!r}][{action!r}]'"
            if not isinstance(views, (list, tuple)) or len(views) != len(CAMERA_IDS):
                raise DataError(f"{where} must be a list of {len(CAMERA_IDS)} camera arrays")
            arrs = [np.asarray(v, dtype=np.float32) for v in views]
            for arr in arrs:
                if arr.ndim != 3 or arr.shape[1:] != (17, 2):
                    raise DataError(f"{where} arrays must be (T, 17, 2), got {arr.shape}")
            out[subject][action] = arrs
    return out, meta


def load_h36m_videopose3d(
    path_3d: str | os.PathLike[str],
    path_2d: str | os.PathLike[str] | None = None,
    cameras: str | os.PathLike[str] | Mapping[str, Mapping[str, Camera]] | None = None,
    subjects: Iterable[str] = TEST_SUBJECTS,
    camera_ids: Iterable[str] = CAMERA_IDS,
    actions: Iterable[str] | None = None,
    keypoints: str | None = None,
    warn: bool = True,
) -> H36MLifting:
    """Load the VideoPose3D layout.

    Args:
        path_3d: ``data_3d_h36m.npz``.
        path_2d: ``data_2d_h36m_<name>.npz`` (CPN, SH, GT, ...); ``None`` projects the mocap ("gt").
        cameras: ``cameras.json`` path or loaded cameras (default: the shared data's ``cameras.json``).
        keypoints: label stored in the result (default: the 2D file's stem, or ``"gt"``).

    Sequences with 3D but no 2D (or the reverse) are listed in ``.missing``, not raised.
    """
    subjects = _check_subjects(subjects)
    root = shared_data_dir()
    cams = _as_cameras(cameras, None if root is None else root / "h36m")
    poses = read_videopose3d_3d(path_3d)
    kp2d: dict[str, dict[str, list[np.ndarray]]] | None = None
    if path_2d is not None:
        kp2d, _ = read_videopose3d_2d(path_2d)
    label = keypoints or (Path(path_2d).stem if path_2d is not None else "gt")
    missing: list[str] = []
    sequences: list[H36MSequence] = []
    camera_ids = tuple(camera_ids)
    for subject in subjects:
        if subject not in poses:
            missing.append(f"{subject} (no 3D mocap in {Path(path_3d).name})")
            continue
        if kp2d is not None:
            for action in sorted(set(kp2d.get(subject, {})) - set(poses[subject])):
                if _filter_action(action, actions):
                    missing.append(f"{subject}/{action} (3D mocap absent)")
        for action in sorted(poses[subject]):
            if not _filter_action(action, actions):
                continue
            world = poses[subject][action]
            views = None
            if kp2d is not None:
                views = kp2d.get(subject, {}).get(action)
                if views is None:
                    missing.append(f"{subject}/{action} (no 2D keypoints)")
                    continue
            for cam_id in camera_ids:
                if cam_id not in cams.get(subject, {}):
                    raise DataError(f"cameras: no camera {cam_id!r} for subject {subject!r}")
                kpts = None
                if views is not None:
                    kpts = _align_2d(views[CAMERA_IDS.index(cam_id)], world, Path(str(path_2d)),
                                     f"positions_2d[{subject!r}][{action!r}][{CAMERA_IDS.index(cam_id)}]")
                sequences.append(H36MSequence(subject, action, cam_id, cams[subject][cam_id], world, kpts))
    if warn:
        _warn_missing(missing, str(path_3d))
    return H36MLifting(sequences=sequences, keypoints=label, missing=missing)


__all__ = [
    "ACTIONS",
    "CAMERA_IDS",
    "H36M32_TO_17",
    "H36M_ACTION_IDS",
    "JOINTS_LEFT",
    "JOINTS_RIGHT",
    "SH16_NAMES",
    "TEST_SUBJECTS",
    "TRAIN_SUBJECTS",
    "H36MLifting",
    "H36MSequence",
    "load_h36m_shared",
    "load_h36m_videopose3d",
    "normalize_action",
    "read_videopose3d_2d",
    "read_videopose3d_3d",
    "sh16_to_h36m17",
]
