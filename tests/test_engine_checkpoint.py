"""Checkpoint files survive crashes mid-write and fail loudly (naming the file) when unusable."""
from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import pytest
import torch

from prunepose.engine.checkpoint import load_checkpoint, save_checkpoint
from prunepose.errors import PrunePoseError


def _state(value: float) -> dict:
    return {"w": torch.full((3, 4), value), "epoch": 2, "rng": torch.get_rng_state(), "names": ["a", "b"]}


def test_roundtrip(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "sub" / "last.pt", _state(1.5))
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], torch.full((3, 4), 1.5))
    assert loaded["epoch"] == 2 and loaded["names"] == ["a", "b"]
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_failed_save_keeps_previous_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1.0))
    real_save = torch.save

    def broken_save(obj: object, f: BinaryIO, *args: Any, **kwargs: Any) -> None:
        real_save(obj, f, *args, **kwargs)  # write real bytes first, as a crash mid-write would
        f.write(b"partial")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, _state(2.0))
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["w"], torch.full((3, 4), 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_missing_file_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pt"
    with pytest.raises(PrunePoseError, match="not found") as info:
        load_checkpoint(missing)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
def test_corrupt_file_names_path(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "last.pt"
    if kind == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    else:
        save_checkpoint(path, _state(1.0))
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(PrunePoseError, match="corrupt") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


class _Arbitrary:
    """Not allowed by weights_only loading: unpickling it could run code."""


def test_unsafe_pickle_rejected(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"obj": _Arbitrary()}, path)
    with pytest.raises(PrunePoseError, match="pickled Python objects") as info:
        load_checkpoint(path)
    message = str(info.value)  # one line, no escape codes, no advice to unpickle (weights_only=False)
    assert "\n" not in message and "\x1b" not in message and "weights_only=False" not in message
    assert "_Arbitrary" in message and str(path) in message


def test_non_dict_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(2), path)
    with pytest.raises(PrunePoseError, match="expected a dict"):
        load_checkpoint(path)
