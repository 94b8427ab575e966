"""Readers for multi-view calibration files into `prunepose.geometry.Camera` (world unit: millimetres).

Why: triangulation and the multi-view model take `Camera` objects only; each dataset stores calibration its
own way, and getting one convention wrong (R transposed, centre vs translation, cm vs mm) produces plausible
but wrong 3D. Each reader states the convention it assumes and tests check it against 2D/3D data.

* **Campus / Shelf** (VoxelPose / mmpose ``calibration_{campus,shelf}.json``): ``{cam_id: {R, T, fx, fy, cx,
  cy, k, p}}`` with ``R`` world-to-camera, ``T`` the camera **centre** in world millimetres
  (VoxelPose ``project_point_radial``: ``x_cam = R (X - T)``), 3d-pose-baseline distortion (all zero in
  these files). The image size is not in the file: Campus 360x288, Shelf 1032x776 (VoxelPose configs
  ``ORI_IMAGE_SIZE``).
* **CMU Panoptic** (``calibration_<seq>.json``): ``{"cameras": [{name, type, resolution [w, h], K, distCoef,
  R, t}]}`` with ``x_cam = R X + t`` in **centimetres** and OpenCV distortion ``[k1, k2, p1, p2, k3]``. The
  centre is ``-R^T t`` (converted to mm); the Panoptic world frame is kept (y points down, not z up).
  3D body files (``hdPose3d_stage1_coco19/body3DScene_*.json``) are read by `load_panoptic_bodies`.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import DataError
from prunepose.geometry.camera import Camera

#: Original image sizes (width, height) of the VoxelPose multi-view datasets (not stored in their calibration).
VOXELPOSE_IMAGE_SIZES = {"campus": (360, 288), "shelf": (1032, 776)}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read calibration ({exc})") from exc


def _array(rec: dict[str, Any], key: str, shape: tuple[int, ...], where: str) -> np.ndarray:
    if key not in rec:
        raise DataError(f"{where}: missing field {key!r}")
    try:
        arr = np.asarray(rec[key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: field {key!r} is not numeric") from exc
    if arr.size != int(np.prod(shape)):
        raise DataError(f"{where}: field {key!r} must have {int(np.prod(shape))} values {shape}, got {arr.shape}")
    return arr.reshape(shape)


def _check_rotation(R: np.ndarray, where: str) -> None:
    """A non-orthonormal R (or a reflection) means the file is not in the assumed convention."""
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0:
        raise DataError(f"{where}: field 'R' is not a rotation matrix (R R^T != I or det < 0)")


def load_voxelpose_calibration(path: str | os.PathLike[str], image_size: tuple[int, int]) -> dict[str, Camera]:
    """Campus/Shelf-style calibration -> ``{cam_id: Camera}`` (ids as in the file, sorted numerically)."""
    path = Path(path)
    raw = _read_json(path)
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: top level must be a non-empty object {{camera_id: calibration}}")
    width, height = image_size
    out: dict[str, Camera] = {}
    for cam_id in sorted(raw, key=lambda s: (len(s), s)):
        rec, where = raw[cam_id], f"{path}: camera {cam_id!r}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: must be an object")
        R = _array(rec, "R", (3, 3), where)
        _check_rotation(R, where)
        f = np.array([_array(rec, "fx", (1,), where)[0], _array(rec, "fy", (1,), where)[0]])
        c = np.array([_array(rec, "cx", (1,), where)[0], _array(rec, "cy", (1,), where)[0]])
        out[cam_id] = Camera(R_world_to_cam=R, center_world_mm=_array(rec, "T", (3,), where), f=f, c=c,
                             k=_array(rec, "k", (3,), where), p=_array(rec, "p", (2,), where), width=width,
                             height=height, name=str(cam_id), source=str(path))
    return out


def load_campus_calibration(path: str | os.PathLike[str]) -> dict[str, Camera]:
    """``calibration_campus.json`` (3 cameras, 360x288)."""
    return load_voxelpose_calibration(path, VOXELPOSE_IMAGE_SIZES["campus"])


def load_shelf_calibration(path: str | os.PathLike[str]) -> dict[str, Camera]:
    """``calibration_shelf.json`` (5 cameras, 1032x776)."""
    return load_voxelpose_calibration(path, VOXELPOSE_IMAGE_SIZES["shelf"])


def load_panoptic_calibration(path: str | os.PathLike[str], kinds: Iterable[str] = ("hd",),
                              names: Iterable[str] | None = None) -> dict[str, Camera]:
    """CMU Panoptic calibration -> ``{name: Camera}`` for the camera ``kinds`` ("hd", "vga", "kinect-color")
    and, optionally, only the given ``names`` (e.g. ``["00_03", "00_06"]``). World unit mm, Panoptic frame."""
    path = Path(path)
    raw = _read_json(path)
    cams = raw.get("cameras") if isinstance(raw, dict) else None
    if not isinstance(cams, list):
        raise DataError(f"{path}: field 'cameras' must be a list")
    kinds = set(kinds)
    wanted = None if names is None else set(names)
    out: dict[str, Camera] = {}
    for i, rec in enumerate(cams):
        where = f"{path}: cameras[{i}]"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: must be an object")
        name = str(rec.get("name", i))
        if rec.get("type") not in kinds or (wanted is not None and name not in wanted):
            continue
        where = f"{path}: camera {name!r}"
        K = _array(rec, "K", (3, 3), where)
        if abs(K[0, 1]) > 1e-9 or not np.allclose(K[2], [0.0, 0.0, 1.0]):
            raise DataError(f"{where}: field 'K' has skew or a non-canonical last row; Camera cannot represent it")
        R = _array(rec, "R", (3, 3), where)
        _check_rotation(R, where)
        t_cm = _array(rec, "t", (3,), where)
        dist = _array(rec, "distCoef", (5,), where)
        res = _array(rec, "resolution", (2,), where)
        out[name] = Camera(R_world_to_cam=R, center_world_mm=-R.T @ t_cm * 10.0, f=K[[0, 1], [0, 1]],
                           c=K[[0, 1], [2, 2]], k=dist[[0, 1, 4]], p=dist[[2, 3]], width=int(res[0]),
                           height=int(res[1]), name=name, source=str(path), distortion_model="opencv")
    if wanted is not None and set(out) != wanted:
        raise DataError(f"{path}: cameras {sorted(wanted - set(out))} not found among types {sorted(kinds)}")
    if not out:
        raise DataError(f"{path}: no camera of type {sorted(kinds)}")
    return out


def load_panoptic_bodies(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """``body3DScene_*.json`` -> joints (N, 19, 3) in world **mm** and confidences (N, 19) (-1 = not seen).

    Panoptic stores ``joints19`` flat as ``x, y, z, confidence`` per joint, in centimetres.
    """
    path = Path(path)
    raw = _read_json(path)
    bodies = raw.get("bodies") if isinstance(raw, dict) else None
    if not isinstance(bodies, list):
        raise DataError(f"{path}: field 'bodies' must be a list")
    joints = []
    for i, body in enumerate(bodies):
        arr = _array(body if isinstance(body, dict) else {}, "joints19", (19, 4), f"{path}: bodies[{i}]")
        joints.append(arr)
    if not joints:
        return np.zeros((0, 19, 3)), np.zeros((0, 19))
    stacked = np.stack(joints)
    return stacked[..., :3] * 10.0, stacked[..., 3]


__all__ = [
    "VOXELPOSE_IMAGE_SIZES",
    "load_campus_calibration",
    "load_panoptic_bodies",
    "load_panoptic_calibration",
    "load_shelf_calibration",
    "load_voxelpose_calibration",
]
