"""The one place that unpickles: only on explicit opt-in, with a warning.

Why one helper: some layouts users already have (MotionBERT's H36M data, H36M-Toolbox annotations) are
pickles, and unpickling can execute code named in the file. Every reader goes through the same refusal
message, warning and error wrapping instead of repeating them.
"""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

from prunepose.errors import DataError


def load_trusted_pickle(path: str | os.PathLike[str], what: str, allow_pickle: bool) -> Any:
    """Unpickle ``path`` (``what`` names the format in messages) if ``allow_pickle``; else a DataError saying why."""
    path = Path(path)
    if not allow_pickle:
        raise DataError(f"{path}: {what} is a Python pickle, which can execute code when loaded; pass "
                        "allow_pickle=True only for files you trust")
    warnings.warn(f"unpickling {path} ({what}): pickle can execute arbitrary code; only load trusted files",
                  UserWarning, stacklevel=3)
    try:
        with open(path, "rb") as f:
            return pickle.load(f)  # noqa: S301  (explicit opt-in above)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError) as exc:
        raise DataError(f"{path}: cannot unpickle ({exc})") from exc
