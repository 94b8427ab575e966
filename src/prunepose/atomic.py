"""Atomic file writes: readers only ever see the old file or the complete new one.

Why one helper: checkpoints, results JSON and other outputs must never be left half-written by a crash or
a full disk. The temporary file lives in the target folder because ``os.replace`` is only atomic within
one filesystem; it is fsync-ed before the rename and the folder after it.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(folder: Path) -> None:
    """Persist a rename; without it a power loss may forget the new directory entry."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms/filesystems cannot open directories; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a binary temp file beside ``path``, then rename it over ``path``.

    On any error (``BaseException``: an interrupt mid-write too) the temp file is removed and a previous
    file at ``path`` stays untouched. Returns the path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(target.parent)
    return target
