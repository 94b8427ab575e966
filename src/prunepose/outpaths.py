"""Checks of output paths given on the command line, before any work is done.

Why up front: a wrong ``--out`` (a file where a folder is expected, a folder where a file is expected, a
read-only place) otherwise surfaces as an OSError traceback after minutes of inference, or halfway through
writing. Each check names the option and the path and says what is wrong in one line.
"""
from __future__ import annotations

import os
from pathlib import Path

from prunepose.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing parent (where a new folder or file would be created)."""
    for cand in [path, *path.parents]:
        if cand.exists():
            return cand
    return Path(".")


def _check_writable_parent(path: Path, option: str, shown: Path) -> None:
    base = _nearest_existing(path)
    if not base.is_dir():
        raise ConfigError(f"{option} {shown}: {base} is a file, so no folder can be made inside it")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {shown}: cannot write into {base} (permission denied)")


def _probe(folder: Path, option: str, shown: Path) -> None:
    """Create and delete a file in ``folder``: catches read-only file systems, which os.access misses."""
    probe = folder / f".prunepose-write-test-{os.getpid()}"
    try:
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{option} {shown}: cannot write into {folder} ({exc.strerror})") from None


def output_dir(path: str | os.PathLike, option: str = "--out") -> Path:
    """Create the output folder ``path`` (with parents) and check that files can be written in it."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out}: is a file; {option} names a folder")
    _check_writable_parent(out, option, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {out}: cannot create the folder ({exc.strerror})") from None
    _probe(out, option, out)
    return out


def output_file(path: str | os.PathLike, option: str = "--out", suffix: str | None = None) -> Path:
    """Check that the output file ``path`` can be written (its folder is created); ``suffix`` (e.g. ``.onnx``)
    is only used to suggest a file name when ``path`` is an existing folder."""
    out = Path(path)
    if out.is_dir():
        hint = f" such as {out / ('model' + suffix)}" if suffix else ""
        raise ConfigError(f"{option} {out}: is a folder; {option} names a file{hint}")
    if out.exists() and not os.access(out, os.W_OK):
        raise ConfigError(f"{option} {out}: the file exists and is read-only")
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {out}: {folder} is a file, not a folder")
    _check_writable_parent(folder, option, out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {out}: cannot create the folder {folder} ({exc.strerror})") from None
    _probe(folder, option, out)
    return out
