"""Crash-safe checkpoint files.

Why atomic writes: a training job can be killed at any moment (pre-emption, OOM killer, Ctrl-C). If the
kill lands while ``last.pt`` is being written, a plain ``torch.save(state, "last.pt")`` leaves a truncated
file and the run cannot resume at all. Writing to a temporary file in the same folder, syncing it to disk
and then ``os.replace``-ing it over the old file means readers only ever see the old or the new file.

Why ``weights_only=True`` on load: it refuses to run arbitrary pickled code, so a checkpoint from
elsewhere cannot execute anything. The price is that a state may only hold tensors, primitives, and
lists/tuples/dicts of them; the trainer stores RNG states accordingly.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from prunepose.atomic import atomic_write
from prunepose.errors import PrunePoseError

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (see :mod:`prunepose.atomic`) and return the path.

    On any error the temporary file is removed and the previous checkpoint stays untouched.
    """
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (or any plain ``torch.save`` of a dict).

    Raises :class:`PrunePoseError` naming the file when it is missing, unreadable, or not a dict, so the
    CLI can print one clear line instead of a pickle traceback.
    """
    source = Path(path)
    if not source.is_file():
        raise PrunePoseError(f"checkpoint not found: {source}")
    try:
        state = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        from prunepose.weights import torch_load_error  # local: weights imports nothing from the engine

        raise torch_load_error(source, exc) from None
    if not isinstance(state, dict):
        raise PrunePoseError(f"checkpoint {source} holds a {type(state).__name__}, expected a dict")
    return state
