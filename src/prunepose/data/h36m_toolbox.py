"""Human3.6M multi-view annotations in the H36M-Toolbox layout (``h36m_train.pkl`` / ``h36m_validation.pkl``).

Why opt-in only: the files are plain Python pickles, and unpickling runs whatever code the file names.
`read_h36m_toolbox` therefore refuses unless called with ``allow_pickle=True`` and then warns; only open
files you trust (the pattern of :mod:`prunepose.data.motionbert`).

Layout (``CHUNYUWANG/H36M-Toolbox/generate_labels.py``, read by cross-view fusion, epipolar transformer and
multi-view PPT): a list with one dict per image::

    image             's_09_act_02_subact_01_ca_01/s_09_act_02_subact_01_ca_01_000001.jpg'
    joints_2d         (17, 2) pixels of the original (1000 x 1000) image
    joints_3d_camera  (17, 3) camera frame, millimetres
    joints_vis        (17, 3) or (17,), 1 = labelled
    center, scale     box centre (px) and size / 200 (HRNet convention)
    camera            {R (3, 3) world-to-camera, T (3, 1) camera centre in world mm, fx, fy, cx, cy,
                       k (3, 1) radial, p (2, 1) tangential}
    subject, action, subaction, image_id, camera_id (0-based)

Projection (``multiviews/cameras.py``): ``x_cam = R (X_world - T)``, Human3.6M distortion, ``u = f x + c``.
The world pose is ``R^T x_cam + T`` -- what multi-view PPT's ``estimate_tri.py`` measures MPJPE against
(the record's ``joints_3d`` field is not used there and not required here). The cameras are the ones of
:mod:`prunepose.geometry.camera` with ``R_world_to_cam = R`` and ``center_world_mm = T``.

Views of one instant are grouped by ``(subject, action, subaction, image_id)``; a group is kept only when
every camera is present. The damaged S9 sequences (Greeting-2, SittingDown-2, Waiting-1) that the multi-view
papers leave out are dropped unless ``keep_damaged=True``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.data.pickles import load_trusted_pickle
from prunepose.errors import DataError
from prunepose.geometry.camera import Camera

REQUIRED_FIELDS = ("image", "joints_2d", "joints_3d_camera", "joints_vis", "center", "scale", "camera", "subject",
                   "action", "subaction", "image_id", "camera_id")
CAMERA_FIELDS = ("R", "T", "fx", "fy", "cx", "cy", "k", "p")
#: (subject, action, subaction) of the S9 sequences with damaged 3D annotations.
DAMAGED_SEQUENCES = ((9, 5, 2), (9, 10, 2), (9, 13, 1))
#: HRNet's box-scale unit: ``scale`` fields hold the box size divided by 200.
PIXEL_STD = 200.0


def _array(value: Any, size: int, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where} is not numeric") from exc
    if arr.size != size:
        raise DataError(f"{where} must have {size} values, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{where} contains non-finite values")
    return arr


@dataclass(frozen=True, eq=False)
class ToolboxCamera:
    """The per-record camera dict: ``R`` world-to-camera (3, 3), ``T`` camera centre in world mm (3,),
    intrinsics and distortion."""

    R: np.ndarray
    T: np.ndarray
    fx: float
    fy: float
    cx: float
    cy: float
    k: np.ndarray
    p: np.ndarray

    @classmethod
    def from_dict(cls, cam: Any, where: str) -> ToolboxCamera:
        if not isinstance(cam, dict):
            raise DataError(f"{where}: field 'camera' must be a dict with {list(CAMERA_FIELDS)}")
        missing = [k for k in CAMERA_FIELDS if k not in cam]
        if missing:
            raise DataError(f"{where}: field 'camera' lacks {missing}")
        R = _array(cam["R"], 9, f"{where}: field 'camera.R'").reshape(3, 3)
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
            raise DataError(f"{where}: field 'camera.R' is not a rotation matrix")
        scalars = {k: float(_array(cam[k], 1, f"{where}: field 'camera.{k}'")[0]) for k in ("fx", "fy", "cx", "cy")}
        if scalars["fx"] <= 0 or scalars["fy"] <= 0:
            raise DataError(f"{where}: field 'camera.fx/fy' must be positive")
        return cls(R=R, T=_array(cam["T"], 3, f"{where}: field 'camera.T'"), **scalars,
                   k=_array(cam["k"], 3, f"{where}: field 'camera.k'"),
                   p=_array(cam["p"], 2, f"{where}: field 'camera.p'"))

    @property
    def intrinsics(self) -> np.ndarray:
        """(3, 3) pinhole matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_camera(self, width: int = 1000, height: int = 1000, name: str = "") -> Camera:
        """The same camera as a :class:`prunepose.geometry.Camera` (for projection and triangulation)."""
        return Camera(R_world_to_cam=self.R, center_world_mm=self.T, f=np.array([self.fx, self.fy]),
                      c=np.array([self.cx, self.cy]), k=self.k, p=self.p, width=width, height=height, name=name)


@dataclass(frozen=True, eq=False)
class ToolboxRecord:
    """One image of the annotation list, validated. Arrays float64; ids ints."""

    image: str
    joints_2d: np.ndarray  # (J, 2) original-image px
    joints_3d_camera: np.ndarray  # (J, 3) camera frame, mm
    joints_vis: np.ndarray  # (J,) bool
    center: np.ndarray  # (2,) px
    scale: np.ndarray  # (2,) box size / 200 (as stored)
    camera: ToolboxCamera
    subject: int
    action: int
    subaction: int
    image_id: int
    camera_id: int

    def joints_world(self) -> np.ndarray:
        """(J, 3) world frame, mm: ``R^T x_cam + T`` (the ground truth multi-view PPT evaluates against)."""
        return self.joints_3d_camera @ self.camera.R + self.camera.T

    def center_scale_px(self) -> tuple[np.ndarray, np.ndarray]:
        """Box ``center`` and ``scale`` in this project's convention (scale = box size in px, no /200)."""
        return self.center.copy(), self.scale * PIXEL_STD

    @property
    def group_key(self) -> tuple[int, int, int, int]:
        return (self.subject, self.action, self.subaction, self.image_id)


def _record(raw: Any, index: int, path: Path) -> ToolboxRecord:
    where = f"{path}: record {index}"
    if not isinstance(raw, dict):
        raise DataError(f"{where} must be a dict, got {type(raw).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in raw]
    if missing:
        raise DataError(f"{where} lacks field(s) {missing}")
    j2 = np.asarray(raw["joints_2d"], dtype=np.float64)
    if j2.ndim != 2 or j2.shape[1] < 2:
        raise DataError(f"{where}: field 'joints_2d' must be (J, 2), got {j2.shape}")
    num = j2.shape[0]
    j3 = np.asarray(raw["joints_3d_camera"], dtype=np.float64)
    if j3.shape != (num, 3):
        raise DataError(f"{where}: field 'joints_3d_camera' must be ({num}, 3), got {j3.shape}")
    vis = np.asarray(raw["joints_vis"], dtype=np.float64)
    if vis.shape not in ((num,), (num, 1), (num, 2), (num, 3)):
        raise DataError(f"{where}: field 'joints_vis' must be ({num},) or ({num}, 3), got {vis.shape}")
    vis = vis.reshape(num, -1)[:, 0] > 0
    if not np.all(np.isfinite(j2[vis, :2])) or not np.all(np.isfinite(j3[vis])):
        raise DataError(f"{where}: visible joints have non-finite coordinates")
    ints = {}
    for key in ("subject", "action", "subaction", "image_id", "camera_id"):
        try:
            ints[key] = int(raw[key])
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: field {key!r} must be an integer, got {raw[key]!r}") from exc
    return ToolboxRecord(image=str(raw["image"]), joints_2d=j2[:, :2].copy(), joints_3d_camera=j3, joints_vis=vis,
                         center=_array(raw["center"], 2, f"{where}: field 'center'"),
                         scale=_array(raw["scale"], 2, f"{where}: field 'scale'"),
                         camera=ToolboxCamera.from_dict(raw["camera"], where), **ints)


def read_h36m_toolbox(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> list[ToolboxRecord]:
    """Read and validate an H36M-Toolbox annotation pickle -> one :class:`ToolboxRecord` per image.

    Raises :class:`DataError` unless ``allow_pickle=True`` (unpickling can execute code), on an unreadable
    file, and on any malformed record (naming the record index and field).
    """
    path = Path(path)
    raw = load_trusted_pickle(path, "an H36M-Toolbox annotation file", allow_pickle)
    if not isinstance(raw, (list, tuple)):
        raise DataError(f"{path}: top level must be a list of per-image dicts, got {type(raw).__name__}")
    return [_record(r, i, path) for i, r in enumerate(raw)]


@dataclass(frozen=True)
class ViewGroup:
    """The synchronised views of one instant, ordered by camera id."""

    key: tuple[int, int, int, int]  # (subject, action, subaction, image_id)
    records: tuple[ToolboxRecord, ...]

    @property
    def name(self) -> str:
        """The official key string ``s_09_act_02_subact_01_imgid_000001``."""
        s, a, sa, i = self.key
        return f"s_{s:02d}_act_{a:02d}_subact_{sa:02d}_imgid_{i:06d}"

    def joints_world(self) -> np.ndarray:
        """(J, 3) world pose in mm (from the first view; every view holds the same pose)."""
        return self.records[0].joints_world()


def group_views(records: Sequence[ToolboxRecord], camera_ids: Sequence[int] = (0, 1, 2, 3), every: int = 1,
                keep_damaged: bool = False) -> list[ViewGroup]:
    """Group records into synchronised view tuples with exactly ``camera_ids`` (in that order).

    ``every`` keeps every n-th complete group in file order (the official code: 5 for training, 64 for
    validation). Incomplete groups are dropped and counted in one warning; a camera id appearing twice for
    the same instant raises :class:`DataError`.
    """
    if every < 1:
        raise DataError(f"every must be >= 1, got {every}")
    if len(camera_ids) < 2 or len(set(camera_ids)) != len(camera_ids):
        raise DataError(f"camera_ids must list at least 2 distinct cameras, got {tuple(camera_ids)}")
    slots: dict[tuple[int, int, int, int], dict[int, ToolboxRecord]] = {}
    for rec in records:
        if not keep_damaged and (rec.subject, rec.action, rec.subaction) in DAMAGED_SEQUENCES:
            continue
        views = slots.setdefault(rec.group_key, {})
        if rec.camera_id in views:
            raise DataError(f"camera_id {rec.camera_id} appears twice for {rec.group_key} "
                            f"({views[rec.camera_id].image!r} and {rec.image!r})")
        views[rec.camera_id] = rec
    complete = [ViewGroup(key, tuple(v[c] for c in camera_ids)) for key, v in slots.items()
                if all(c in v for c in camera_ids)]
    dropped = len(slots) - len(complete)
    if dropped:
        warnings.warn(f"{dropped} of {len(slots)} instants lack one of cameras {tuple(camera_ids)} and were dropped",
                      UserWarning, stacklevel=2)
    return complete[::every]


__all__ = ["DAMAGED_SEQUENCES", "ToolboxCamera", "ToolboxRecord", "ViewGroup", "group_views", "read_h36m_toolbox"]
