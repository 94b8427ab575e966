"""A small read-only reader for MATLAB v5 ``.mat`` files: numeric and cell arrays (enough for the Campus/Shelf
``actorsGT.mat`` ground truth), without scipy.

Why not scipy.io.loadmat: scipy would be the project's heaviest dependency for one 5 kB fixture format. The
format (MathWorks "MAT-File Format", level 5) is a 128-byte header then tagged data elements; compressed
elements (miCOMPRESSED) hold zlib-compressed elements. Only what the fixtures use is supported: numeric
classes, logical, char and cell arrays; structs, sparse and objects raise `DataError` naming the variable.
Arrays come back in MATLAB (column-major) element order with their MATLAB shape.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import DataError

_MI_DTYPES = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 9: "<f8", 12: "<i8", 13: "<u8",
              16: "<u1", 17: "<u2", 18: "<u4"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_CLASS_CELL, _CLASS_STRUCT, _CLASS_OBJECT, _CLASS_CHAR, _CLASS_SPARSE = 1, 2, 3, 4, 5


def _element(buf: bytes, off: int, where: str) -> tuple[int, bytes, int]:
    """-> (data type, payload, offset of the next element)."""
    if off + 8 > len(buf):
        raise DataError(f"{where}: truncated data element")
    dtype, nbytes = struct.unpack_from("<II", buf, off)
    if dtype >> 16:  # small data element: 2-byte size, 2-byte type, 4 bytes of data
        return dtype & 0xFFFF, buf[off + 4: off + 4 + (dtype >> 16)], off + 8
    end = off + 8 + nbytes
    if end > len(buf):
        raise DataError(f"{where}: truncated data element")
    nxt = end if dtype == _MI_COMPRESSED else off + 8 + ((nbytes + 7) // 8) * 8
    return dtype, buf[off + 8: end], nxt


def _numeric(dtype: int, payload: bytes, where: str) -> np.ndarray:
    if dtype not in _MI_DTYPES:
        raise DataError(f"{where}: unsupported data type {dtype}")
    return np.frombuffer(payload, dtype=_MI_DTYPES[dtype])


def _matrix(payload: bytes, where: str) -> tuple[str, Any]:
    """Parse the sub-elements of one miMATRIX -> (name, value)."""
    if not payload:
        return "", np.zeros((0, 0))
    off = 0
    _, flags, off = _element(payload, off, where)
    cls = int(np.frombuffer(flags[:4], "<u4")[0]) & 0xFF
    dt, dims_raw, off = _element(payload, off, where)
    dims = tuple(int(d) for d in _numeric(dt, dims_raw, where))
    dt, name_raw, off = _element(payload, off, where)
    name = name_raw.decode("latin-1")
    where = f"{where}: variable {name!r}" if name else where
    if cls == _CLASS_CELL:
        cells = np.empty(int(np.prod(dims)), dtype=object)
        for i in range(cells.size):
            dt, sub, off = _element(payload, off, where)
            if dt != _MI_MATRIX:
                raise DataError(f"{where}: cell {i} is not a matrix element")
            cells[i] = _matrix(sub, where)[1]
        return name, cells.reshape(dims, order="F")
    if cls in (_CLASS_STRUCT, _CLASS_OBJECT, _CLASS_SPARSE):
        raise DataError(f"{where}: MATLAB class {cls} (struct/object/sparse) is not supported")
    dt, real, off = _element(payload, off, where)
    arr = _numeric(dt, real, where)
    if cls == _CLASS_CHAR:
        return name, "".join(map(chr, arr))
    return name, arr.astype(np.float64 if arr.dtype.kind == "f" else arr.dtype).reshape(dims, order="F")


def read_mat_v5(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``.mat`` (level 5, little endian) -> ``{variable: ndarray | object ndarray of cells | str}``."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc
    if len(buf) < 128 or not buf.startswith(b"MATLAB 5.0 MAT-file") or buf[126:128] != b"IM":
        raise DataError(f"{path}: not a little-endian MATLAB v5 .mat file (v7.3/HDF5 files are not supported)")
    out: dict[str, Any] = {}
    off = 128
    while off + 8 <= len(buf):
        dtype, payload, off = _element(buf, off, str(path))
        if dtype == _MI_COMPRESSED:
            try:
                payload = zlib.decompress(payload)
            except zlib.error as exc:
                raise DataError(f"{path}: corrupt compressed element ({exc})") from exc
            dtype, payload, _ = _element(payload, 0, str(path))
        if dtype != _MI_MATRIX:
            continue
        name, value = _matrix(payload, str(path))
        out[name] = value
    return out


def load_actors_gt(path: str | os.PathLike[str], num_joints: int = 14) -> np.ndarray:
    """Campus/Shelf ``actorsGT.mat`` -> (actors, frames, ``num_joints``, 3) world **mm**, NaN where an actor
    is absent. The file holds ``actor3D``: a cell of actors, each a cell over frames of (14, 3) metres or
    an empty matrix (VoxelPose reads it the same way and multiplies by 1000)."""
    path = Path(path)
    data = read_mat_v5(path)
    if "actor3D" not in data:
        raise DataError(f"{path}: no variable 'actor3D'")
    actors = [a for a in np.asarray(data["actor3D"], dtype=object).ravel()]
    if len(actors) == 1 and isinstance(actors[0], np.ndarray) and actors[0].dtype == object:
        actors = list(actors[0].ravel())  # actor3D wrapped in a 1x1 cell
    frames = [np.asarray(a, dtype=object).ravel() for a in actors]
    n_frames = max((len(f) for f in frames), default=0)
    out = np.full((len(frames), n_frames, num_joints, 3), np.nan)
    for i, fr in enumerate(frames):
        for t, pose in enumerate(fr):
            pose = np.asarray(pose, dtype=np.float64)
            if pose.size == 0:
                continue
            if pose.shape != (num_joints, 3):
                raise DataError(f"{path}: actor {i} frame {t} has shape {pose.shape}, expected ({num_joints}, 3)")
            out[i, t] = pose * 1000.0
    return out


__all__ = ["load_actors_gt", "read_mat_v5"]
