"""Pinhole camera with the Human3.6M (3d-pose-baseline) distortion model.

Frames and units
----------------
* **World frame**: the Human3.6M mocap frame (z up). Points in millimetres or metres -- every function
  that touches a translation takes ``units`` ("mm" or "m") so the camera centre, stored in mm as in
  ``cameras.json``, is scaled to match. Nothing else depends on the unit.
* **Camera frame**: ``x_cam = R_world_to_cam @ (X_world - center_world)``; x right, y down, z forward
  (depth), same unit as the input.
* **Pixels**: ``u = f * distort(x/z, y/z) + c``, origin at the top-left pixel of the ``width x height``
  image.
* **Normalised screen**: VideoPose3D's ``px / w * 2 - [1, h / w]``: x in [-1, 1], y scaled by the same
  factor (aspect kept), so the image centre is ~0 and a horizontal flip is ``x -> -x``.

``R_world_to_cam`` is the *world-to-camera* rotation. The raw ``cameras.h5`` of 3d-pose-baseline stores
its transpose (MATLAB order); ``cameras.json`` in the shared data already holds the transposed matrix.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from prunepose.errors import DataError
from prunepose.geometry.distortion import DISTORTION_MODELS, distort_normalized

Units = Literal["mm", "m"]
_UNIT_FROM_MM = {"mm": 1.0, "m": 1e-3}


@dataclass(frozen=True, eq=False)
class Camera:
    """Intrinsics, extrinsics and distortion of one calibrated camera.

    Attributes:
        R_world_to_cam: (3, 3) rotation taking world directions into the camera frame.
        center_world_mm: (3,) camera centre in world coordinates, millimetres.
        f: (2,) focal lengths (fx, fy) in pixels.
        c: (2,) principal point (cx, cy) in pixels.
        k: (3,) radial distortion (k1, k2, k3).
        p: (2,) tangential distortion (p1, p2).
        width, height: image size in pixels.
        name: camera id (e.g. ``"54138969"``), for messages only.
        distortion_model: ``"h36m"`` (3d-pose-baseline's formula, the default, also Campus/Shelf) or
            ``"opencv"`` (Brown-Conrady, CMU Panoptic); see `prunepose.geometry.distortion`.

    Arrays are stored as float64 copies; a non-finite value or a wrong shape raises `DataError`
    naming the field (and ``source`` when the camera came from a file).
    """

    R_world_to_cam: np.ndarray
    center_world_mm: np.ndarray
    f: np.ndarray
    c: np.ndarray
    k: np.ndarray
    p: np.ndarray
    width: int
    height: int
    name: str = ""
    source: str = ""
    distortion_model: str = "h36m"

    def __post_init__(self) -> None:
        where = f"{self.source}: camera {self.name!r}" if self.source else f"camera {self.name!r}"
        shapes = {"R_world_to_cam": (3, 3), "center_world_mm": (3,), "f": (2,), "c": (2,), "k": (3,), "p": (2,)}
        for field_name, shape in shapes.items():
            try:
                value = np.array(getattr(self, field_name), dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DataError(f"{where}: field {field_name!r} is not numeric") from exc
            if value.shape != shape:
                raise DataError(f"{where}: field {field_name!r} must have shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise DataError(f"{where}: field {field_name!r} contains non-finite values")
            value.setflags(write=False)
            object.__setattr__(self, field_name, value)
        for field_name in ("width", "height"):
            value = getattr(self, field_name)
            if not isinstance(value, (int, np.integer)) and not (isinstance(value, float) and value.is_integer()):
                raise DataError(f"{where}: field {field_name!r} must be an integer, got {value!r}")
            if not math.isfinite(value) or int(value) <= 0:
                raise DataError(f"{where}: field {field_name!r} must be a positive integer, got {value!r}")
            object.__setattr__(self, field_name, int(value))
        if self.distortion_model not in DISTORTION_MODELS:
            raise DataError(f"{where}: field 'distortion_model' must be one of {DISTORTION_MODELS}, "
                            f"got {self.distortion_model!r}")

    def center(self, units: Units = "mm") -> np.ndarray:
        """Camera centre in world coordinates, in ``units``."""
        return self.center_world_mm * _unit_scale(units)


def _unit_scale(units: str) -> float:
    if units not in _UNIT_FROM_MM:
        raise ValueError(f"units must be 'mm' or 'm', got {units!r}")
    return _UNIT_FROM_MM[units]


def world_to_camera(points_world: np.ndarray, camera: Camera, units: Units = "mm") -> np.ndarray:
    """World points (..., 3) -> camera frame (..., 3), both in ``units``."""
    pts = np.asarray(points_world, dtype=np.float64)
    return (pts - camera.center(units)) @ camera.R_world_to_cam.T


def camera_to_world(points_cam: np.ndarray, camera: Camera, units: Units = "mm") -> np.ndarray:
    """Camera-frame points (..., 3) -> world frame (..., 3), both in ``units`` (inverse of world_to_camera)."""
    pts = np.asarray(points_cam, dtype=np.float64)
    return pts @ camera.R_world_to_cam + camera.center(units)


def project(points_cam: np.ndarray, camera: Camera) -> np.ndarray:
    """Camera-frame points (..., 3) (any unit, z > 0) -> distorted pixels (..., 2).

    3d-pose-baseline's ``project_point_radial`` exactly (what the shared data's 8-10 px check used)::

        x = X / Z, r2 = |x|^2
        radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3
        tan    = p1 * y + p2 * x
        x_d    = x * (radial + tan) + [p2, p1] * r2
        u      = f * x_d + c

    Note the tangential term differs from the textbook Brown-Conrady form; it is kept as published
    because the released projections (and VideoPose3D's GT 2D) were made with it. Cameras with
    ``distortion_model="opencv"`` use the Brown-Conrady form instead (`prunepose.geometry.distortion`).
    """
    pts = np.asarray(points_cam, dtype=np.float64)
    xy = pts[..., :2] / pts[..., 2:3]
    return camera.f * distort_normalized(xy, camera.k, camera.p, camera.distortion_model) + camera.c


def _check_screen(width: float, height: float) -> None:
    """A NaN/inf/zero image size would silently turn every coordinate into NaN/inf; name it instead."""
    try:
        ok = math.isfinite(width) and math.isfinite(height) and width > 0 and height > 0
    except TypeError:
        ok = False
    if not ok:
        raise DataError(f"image size (width, height) must be finite and positive, got ({width!r}, {height!r})")


def normalize_screen(px: np.ndarray, width: float, height: float) -> np.ndarray:
    """Pixels (..., 2) -> VideoPose3D normalised screen coordinates ``px / w * 2 - [1, h / w]``."""
    _check_screen(width, height)
    return np.asarray(px) / width * 2 - np.array([1.0, height / width])


def denormalize_screen(xy: np.ndarray, width: float, height: float) -> np.ndarray:
    """Inverse of `normalize_screen`: normalised (..., 2) -> pixels (..., 2)."""
    _check_screen(width, height)
    return (np.asarray(xy) + np.array([1.0, height / width])) * width / 2


def load_cameras(path: str | os.PathLike[str]) -> dict[str, dict[str, Camera]]:
    """Read ``cameras.json`` (shared Human3.6M layout) -> ``{subject: {camera_id: Camera}}``.

    Expected per camera: ``R_world_to_cam``, ``cam_center_world_mm``, ``f``, ``c``, ``k_radial``,
    ``p_tangential``, ``width``, ``height``. Missing or malformed fields raise `DataError` naming the
    file, subject, camera and field.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read camera file ({exc})") from exc
    if not isinstance(raw, dict):
        raise DataError(f"{path}: top level must be an object {{subject: {{camera_id: calibration}}}}")
    keys = {"R_world_to_cam": "R_world_to_cam", "center_world_mm": "cam_center_world_mm", "f": "f", "c": "c",
            "k": "k_radial", "p": "p_tangential", "width": "width", "height": "height"}
    out: dict[str, dict[str, Camera]] = {}
    for subject, cams in raw.items():
        if not isinstance(cams, dict):
            raise DataError(f"{path}: field {subject!r} must be an object of cameras")
        out[subject] = {}
        for cam_id, rec in cams.items():
            missing = [v for v in keys.values() if not isinstance(rec, dict) or v not in rec]
            if missing:
                raise DataError(f"{path}: field '{subject}.{cam_id}' lacks {missing}")
            out[subject][cam_id] = Camera(**{k: rec[v] for k, v in keys.items()}, name=f"{subject}/{cam_id}",
                                          source=str(path))
    return out
