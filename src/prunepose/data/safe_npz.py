"""Read ``.npz`` files whose entries are pickled Python containers, without executing arbitrary code.

Why: the VideoPose3D files (``data_3d_h36m.npz``, ``data_2d_h36m_*.npz``) store dicts of arrays as
0-d object arrays, which ``np.load`` only opens with ``allow_pickle=True`` -- i.e. by running whatever
the pickle says. Those containers need nothing but dicts, lists, strings, numbers and numpy arrays, so
this reader unpickles them with a whitelist (array reconstruction and dtypes only) and refuses any other
global with a `DataError`. Plain (non-object) entries are read with ``allow_pickle=False``.
"""
from __future__ import annotations

import importlib
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import DataError

# (module, name) pairs a numpy object array pickle may reference. numpy 1.x writes "numpy.core.*",
# numpy 2.x "numpy._core.*"; "_codecs.encode" appears in protocol-2 pickles of byte strings.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


def _numpy_attr(module: str, name: str) -> Any:
    """Resolve a whitelisted numpy global under either numpy major version."""
    candidates = [module]
    if module.startswith("numpy.core"):
        candidates.append(module.replace("numpy.core", "numpy._core", 1))
    elif module.startswith("numpy._core"):
        candidates.append(module.replace("numpy._core", "numpy.core", 1))
    for cand in candidates:
        try:
            return getattr(importlib.import_module(cand), name)
        except (ImportError, AttributeError):
            continue
    raise AttributeError(f"{module}.{name}")


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data container")
        return _numpy_attr(module, name)


def _read_entry(raw: bytes, path: Path, key: str) -> Any:
    fp = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    except ValueError as exc:
        raise DataError(f"{path}: entry {key!r} is not a .npy array ({exc})") from exc
    if not dtype.hasobject:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    try:
        value = _RestrictedUnpickler(fp).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: entry {key!r} could not be read safely ({exc})") from exc
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype == object:
        return value.item()  # np.savez(key=dict) stores the dict as a 0-d object array
    return value


def load_npz_containers(path: str | os.PathLike[str], keys: list[str] | None = None) -> dict[str, Any]:
    """Entries of the ``.npz`` at ``path`` (all, or only ``keys``): arrays, or the dict/list stored in a
    0-d object array. Raises `DataError` naming the file and entry when it is missing or unsafe."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot open as .npz ({exc})") from exc
    with archive:
        names = {n[:-4]: n for n in archive.namelist() if n.endswith(".npy")}
        wanted = list(names) if keys is None else keys
        missing = [k for k in wanted if k not in names]
        if missing:
            raise DataError(f"{path}: missing field(s) {missing}; present: {sorted(names)}")
        return {k: _read_entry(archive.read(names[k]), path, k) for k in wanted}
