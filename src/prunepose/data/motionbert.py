"""MotionBERT's Human3.6M pickle (``h36m_sh_conf_cam_source_final.pkl`` / ``h36m_cpn_cam_source.pkl``).

Why opt-in only: the file is a plain Python pickle, and unpickling runs whatever code the file names.
`read_motionbert_h36m` therefore refuses unless called with ``allow_pickle=True`` and then warns; only
open files you trust.

Layout (MotionBERT ``lib/data/datareader_h36m.py``): ``{'train': split, 'test': split}``, each split a
dict of per-frame arrays (frames of all videos concatenated, N frames):

* ``joint_2d`` (N, 17, 2) detected 2D, camera **pixels**; ``confidence`` (N, 17) or (N, 17, 1);
* ``joint3d_image`` (N, 17, 3): x, y in pixels, z depth scaled to pixel units;
* ``camera_name`` (N,) camera ids; ``source`` (N,) video ids such as ``s_09_act_02_subact_01_ca_01``;
* optional: ``action`` (N,), ``2.5d_factor`` (N,) (pixels -> mm), ``joints_2.5d_image`` (N, 17, 3) mm.

Normalisation (MotionBERT): x, y (and z) divided by ``w / 2`` after shifting x, y by ``[w, h] / 2``, i.e.
``px / w * 2 - [1, h / w]``; resolution 1000 x 1002 for cameras 54138969 and 60457274, else 1000 x 1000.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.data.pickles import load_trusted_pickle
from prunepose.errors import DataError

REQUIRED_FIELDS = ("joint_2d", "confidence", "joint3d_image", "camera_name", "source")
OPTIONAL_FIELDS = ("action", "2.5d_factor", "joints_2.5d_image")
#: Image size (width, height) per camera id, as MotionBERT hard-codes it.
CAMERA_RESOLUTION = {"54138969": (1000, 1002), "55011271": (1000, 1000), "58860488": (1000, 1000),
                     "60457274": (1000, 1002)}
#: Sequences MotionBERT leaves out of its H36M-SH evaluation (corrupted S9 videos).
BLOCKED_SOURCES = ("s_09_act_05_subact_02", "s_09_act_10_subact_02", "s_09_act_13_subact_01")


@dataclass
class MotionBERTSplit:
    """One split (``train`` or ``test``): the validated per-frame arrays, keyed as in the pickle."""

    arrays: dict[str, np.ndarray]

    @property
    def num_frames(self) -> int:
        return int(self.arrays["joint_2d"].shape[0])

    def resolution(self) -> np.ndarray:
        """(N, 2) image (width, height) of each frame, from its camera."""
        names = self.arrays["camera_name"]
        try:
            return np.array([CAMERA_RESOLUTION[str(n)] for n in names], dtype=np.float64)
        except KeyError as exc:
            raise DataError(f"unknown camera_name {exc.args[0]!r}; known: {sorted(CAMERA_RESOLUTION)}") from None

    def model_input(self) -> np.ndarray:
        """(N, 17, 3) float32: normalised x, y (``px / w * 2 - [1, h / w]``) and the confidence."""
        res = self.resolution()
        xy = self.arrays["joint_2d"] / res[:, None, :1] * 2 - np.stack([np.ones(len(res)), res[:, 1] / res[:, 0]],
                                                                       -1)[:, None, :]
        conf = self.arrays["confidence"].reshape(self.num_frames, 17, 1)
        return np.concatenate([xy, conf], axis=-1).astype(np.float32)

    def videos(self) -> list[tuple[str, slice]]:
        """Consecutive runs of equal ``source``: ``[(source, slice_of_frames), ...]`` in file order."""
        src = np.asarray(self.arrays["source"]).astype(str)
        if len(src) == 0:
            return []
        cuts = np.flatnonzero(src[1:] != src[:-1]) + 1
        starts = np.concatenate([[0], cuts])
        ends = np.concatenate([cuts, [len(src)]])
        return [(src[s], slice(int(s), int(e))) for s, e in zip(starts, ends)]


def _validate_split(split: Any, path: Path, name: str) -> MotionBERTSplit:
    if not isinstance(split, dict):
        raise DataError(f"{path}: field {name!r} must be a dict of per-frame arrays")
    missing = [k for k in REQUIRED_FIELDS if k not in split]
    if missing:
        raise DataError(f"{path}: field {name!r} lacks {missing}")
    arrays = {k: np.asarray(split[k]) for k in REQUIRED_FIELDS + OPTIONAL_FIELDS if k in split}
    n = arrays["joint_2d"].shape[0]
    shapes = {"joint_2d": (n, 17, 2), "joint3d_image": (n, 17, 3), "joints_2.5d_image": (n, 17, 3)}
    for key, shape in shapes.items():
        if key in arrays and arrays[key].shape != shape:
            raise DataError(f"{path}: field '{name}.{key}' must be {shape}, got {arrays[key].shape}")
    if arrays["confidence"].shape not in ((n, 17), (n, 17, 1)):
        raise DataError(f"{path}: field '{name}.confidence' must be (N, 17[, 1]), got {arrays['confidence'].shape}")
    for key in ("camera_name", "source", "action", "2.5d_factor"):
        if key in arrays and arrays[key].shape[:1] != (n,):
            raise DataError(f"{path}: field '{name}.{key}' must have {n} entries, got {arrays[key].shape}")
    return MotionBERTSplit(arrays)


def read_motionbert_h36m(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> dict[str, MotionBERTSplit]:
    """Read MotionBERT's H36M pickle -> ``{'train': MotionBERTSplit, 'test': MotionBERTSplit}``.

    Args:
        allow_pickle: must be ``True``: the file is unpickled, which can execute arbitrary code. Without it
            a `DataError` explains why; with it a ``UserWarning`` is emitted on every call.
    """
    path = Path(path)
    raw = load_trusted_pickle(path, "MotionBERT data", allow_pickle)
    if not isinstance(raw, dict) or not {"train", "test"} <= set(raw):
        raise DataError(f"{path}: top level must be a dict with 'train' and 'test'")
    return {name: _validate_split(raw[name], path, name) for name in ("train", "test")}


__all__ = ["BLOCKED_SOURCES", "CAMERA_RESOLUTION", "MotionBERTSplit", "read_motionbert_h36m"]
