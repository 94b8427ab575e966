"""MPII Human Pose in the JSON layout of HRNet/MMPose (``train.json`` / ``valid.json`` / ``test.json``).

Each record is one person: ``image`` (file name), ``center`` (2,) and ``scale`` (person height / 200 px),
``joints`` (16, 2) and ``joints_vis`` (16,), in 1-based MATLAB pixel coordinates. HRNet/MMPose convert a
record to a crop as follows, and so do we (then expressed in this project's px convention)::

    center_y += 15 * scale          # move down a little so the legs are not cut (raw scale units)
    scale    *= 1.25                # context
    center   -= 1; joints -= 1      # 1-based -> 0-based pixels

so the crop is a square of ``scale * 200 * 1.25`` px; here it is then padded to the input's aspect ratio
(a no-op for the usual 256x256 MPII input; for other aspects HRNet would stretch instead).

PCKh needs each person's head size, which the JSON does not hold: it lives in the official
``gt_valid.mat`` as ``headboxes_src`` (2, 2, N) (same order as ``valid.json``). Pass those boxes as
``headboxes`` (``.npy`` / ``.json`` of shape (N, 2, 2) ``[[x1, y1], [x2, y2]]`` or (2, 2, N), or ``.mat``
when SciPy is installed); `MpiiDataset.head_sizes` raises `DataError` without them.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.data.coco import SkeletonLike, TopDownDataset, _load_json
from prunepose.data.transforms import AugmentConfig, pad_to_aspect
from prunepose.errors import DataError

#: HRNet/MMPose PCKh normalisation: head size = 0.6 * diagonal of the head box.
PCKH_HEAD_SCALE = 0.6
MPII_PIXEL_STD = 200.0


class MpiiDataset(TopDownDataset):
    """MPII records -> top-down samples with the same dict as `prunepose.data.coco.CocoTopDownDataset`.

    ``meta["image_id"]`` is the numeric file stem (``005808361.jpg`` -> 5808361), ``meta["ann_id"]`` the
    record's index in the JSON (the order of ``gt_valid.mat``), ``score`` 1, ``area`` = scale w*h.
    Evaluation arrays (record order): ``joints`` (N, 16, 2) float64 0-based image px, ``joints_vis``
    (N, 16) float32, ``centers`` / ``scales`` (N, 2) float64 image px (this project's convention),
    ``image_names`` list of N file names.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike[str],
        image_root: str | os.PathLike[str],
        input_size: Sequence[int] = (256, 256),
        heatmap_size: Sequence[int] = (64, 64),
        sigma: float = 2.0,
        skeleton: str | SkeletonLike = "mpii",
        train: bool = True,
        seed: int = 0,
        aug: AugmentConfig | None = None,
        headboxes: str | os.PathLike[str] | np.ndarray | None = None,
        skip_missing_images: bool = False,
        use_udp: bool = True,
    ) -> None:
        super().__init__(
            input_size=input_size,
            heatmap_size=heatmap_size,
            sigma=sigma,
            skeleton=skeleton,
            train=train,
            seed=seed,
            aug=aug,
            use_udp=use_udp,
        )
        self.ann_file = Path(ann_file)
        self.source = self.ann_file
        self.image_root = Path(image_root)
        raw = _load_json(self.ann_file, "annotation file")
        if not isinstance(raw, list):
            raise DataError(f"{self.ann_file}: top level must be a JSON list of person records")
        parsed = [self._parse(n, rec) for n, rec in enumerate(raw)]
        if skip_missing_images:
            missing = sorted({p["image_name"] for p in parsed if not p["image_path"].is_file()})
            if missing:
                warnings.warn(
                    f"{self.ann_file}: {len(missing)} images listed in the file are not in "
                    f"{self.image_root}; their records were skipped (e.g. {', '.join(missing[:5])})",
                    stacklevel=2,
                )
                gone = set(missing)
                parsed = [p for p in parsed if p["image_name"] not in gone]
        self._records = parsed
        k = self.num_keypoints
        self.image_names: list[str] = [p["image_name"] for p in parsed]
        self.joints = np.array([p["keypoints"] for p in parsed], dtype=np.float64).reshape(-1, k, 2)
        self.joints_vis = np.array([p["visible"] for p in parsed], dtype=np.float32).reshape(-1, k)
        self.centers = np.array([p["center"] for p in parsed], dtype=np.float64).reshape(-1, 2)
        self.scales = np.array([p["scale"] for p in parsed], dtype=np.float64).reshape(-1, 2)
        self.image_ids: list[int] = sorted({int(p["image_id"]) for p in parsed})
        self.headboxes = None if headboxes is None else self._load_headboxes(headboxes, len(raw))
        if self.headboxes is not None and len(parsed) != len(raw):
            self.headboxes = self.headboxes[[p["ann_id"] for p in parsed]]

    def _parse(self, n: int, rec: Any) -> dict[str, Any]:
        k = self.num_keypoints
        where = f"{self.ann_file}: field '[{n}]"
        if not isinstance(rec, dict):
            raise DataError(f"{where}' must be an object")
        for key in ("image", "center", "scale"):
            if key not in rec:
                raise DataError(f"{where}.{key}' missing")
        center = np.asarray(rec["center"], dtype=np.float64)
        if center.shape != (2,):
            raise DataError(f"{where}.center' must be [x, y], got {rec['center']!r}")
        try:
            raw_scale = float(rec["scale"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}.scale' must be a number, got {rec['scale']!r}") from exc
        if raw_scale <= 0:
            raise DataError(f"{where}.scale' must be positive, got {raw_scale}")
        if "joints" in rec:
            joints = np.asarray(rec["joints"], dtype=np.float64)
            vis = np.asarray(rec.get("joints_vis", np.ones(k)), dtype=np.float32)
            if joints.shape != (k, 2):
                raise DataError(f"{where}.joints' must be ({k}, 2) for skeleton with {k} keypoints, "
                                f"got shape {joints.shape}")
            if vis.shape != (k,):
                raise DataError(f"{where}.joints_vis' must have {k} entries, got shape {vis.shape}")
        else:  # MPII test split: no ground truth
            joints, vis = np.zeros((k, 2)), np.zeros((k,), dtype=np.float32)
        if center[0] != -1:
            center[1] += 15.0 * raw_scale
            raw_scale *= 1.25
        center = center - 1.0
        side = raw_scale * MPII_PIXEL_STD
        scale = pad_to_aspect((side, side), self.aspect_ratio)
        name = str(rec["image"])
        stem = Path(name).stem
        return {
            "image_path": self.image_root / name,
            "image_name": name,
            "image_id": int(stem) if stem.isdigit() else n,
            "ann_id": n,
            "keypoints": joints - 1.0,
            "visible": (vis > 0).astype(np.float32),
            "center": center,
            "scale": scale,
            "score": 1.0,
            "area": float(scale[0] * scale[1]),
        }

    def _load_headboxes(self, src: str | os.PathLike[str] | np.ndarray, count: int) -> np.ndarray:
        name = "headboxes array" if isinstance(src, np.ndarray) else str(src)
        if isinstance(src, np.ndarray):
            arr = src
        else:
            path = Path(src)
            if not path.is_file():
                raise DataError(f"{path}: headboxes file not found")
            if path.suffix == ".npy":
                arr = np.load(path)
            elif path.suffix == ".json":
                arr = np.asarray(_load_json(path, "headboxes file"), dtype=np.float64)
            elif path.suffix == ".mat":
                try:
                    from scipy.io import loadmat
                except ImportError as exc:
                    msg = f"{path}: reading .mat needs SciPy; save 'headboxes_src' as .npy instead"
                    raise DataError(msg) from exc
                mat = loadmat(path)
                if "headboxes_src" not in mat:
                    raise DataError(f"{path}: field 'headboxes_src' missing")
                arr = mat["headboxes_src"]
            else:
                raise DataError(f"{path}: headboxes must be .npy, .json or .mat")
        arr = np.asarray(arr, dtype=np.float64)
        if arr.shape == (count, 2, 2):
            return arr
        if arr.shape == (2, 2, count):
            return arr.transpose(2, 0, 1).copy()
        raise DataError(f"{name}: field 'headboxes' must have shape ({count}, 2, 2) or (2, 2, {count}) "
                        f"to match the {count} records of {self.ann_file}, got {arr.shape}")

    def head_sizes(self) -> np.ndarray:
        """PCKh normalisers (N,) px: ``0.6 * ||head_box_br - head_box_tl||`` per record (HRNet/MMPose)."""
        if self.headboxes is None:
            raise DataError(
                f"{self.ann_file}: field 'headboxes' missing: PCKh needs MPII head boxes, which the JSON "
                "does not hold; pass headboxes= ('headboxes_src' of gt_valid.mat as .npy/.json, (N, 2, 2))"
            )
        diff = self.headboxes[:, 1, :] - self.headboxes[:, 0, :]
        return PCKH_HEAD_SCALE * np.linalg.norm(diff, axis=1)
