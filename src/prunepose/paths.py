"""Where prunepose finds the shared real data.

Tests and examples read real data through one setting: the environment variable ``PRUNEPOSE_DATA``,
defaulting to ``../shared/data`` next to the repository when that folder exists. Nothing is ever
downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """Return the shared data folder, or ``None`` when it is not available on this machine."""
    env = os.environ.get("PRUNEPOSE_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for cand in candidates:
        if cand.is_dir():
            return cand.resolve()
    return None


def assets_dir() -> Path:
    """The package's bundled assets (demo image, default weights); shipped inside the wheel."""
    return Path(__file__).resolve().parent / "assets"


def bundled_weights(name: str) -> Path:
    """Path of a bundled weights file: ``bundled_weights("lifter3d_default")`` -> ``.../lifter3d_default.safetensors``.

    The file may be absent in a source checkout that has not exported it yet; callers report that.
    """
    return assets_dir() / "weights" / f"{name}.safetensors"
