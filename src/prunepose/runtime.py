"""Process-level CPU tuning used by the CLI, the demo and the benchmarks.

Why: with glibc's default malloc, every buffer above the mmap threshold (128 KiB, adapting up to 32 MiB)
is mapped fresh from the kernel and unmapped on free, so a CNN layer writing a 100 MB activation pays a page
fault per 4 KiB page on *every* forward pass. On the 2-core development machine this halves the speed of
the backbone convolutions (measured: 1x1 conv 64->256 on 32x64x48 maps, 55 ms -> 23 ms). Raising the mmap
and trim thresholds lets the allocator reuse those buffers. The cost: freed memory stays with the process
(its RSS stays at the peak). It is a process-wide setting, so the library never does it on import; the
command-line entry points call :func:`tune_cpu_allocator`, and ``PRUNEPOSE_NO_MALLOC_TUNING=1`` turns it off.
"""
from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_state = {"done": False, "active": False}


def tune_cpu_allocator(mmap_threshold: int = 1 << 30, trim_threshold: int = (1 << 31) - 1) -> bool:
    """Raise glibc's mmap/trim thresholds once per process; returns whether the tuning is active.

    A no-op (returning False) off Linux/glibc or when ``PRUNEPOSE_NO_MALLOC_TUNING`` is set.
    """
    if _state["done"]:
        return _state["active"]
    _state["done"] = True
    if os.environ.get("PRUNEPOSE_NO_MALLOC_TUNING") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)) == 1 and ok
    except (OSError, AttributeError):  # not glibc (e.g. musl) or no mallopt
        return False
    _state["active"] = ok
    return ok
