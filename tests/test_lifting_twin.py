"""HoT from its trained unpruned twin: every twin weight lands, only TPC/TRA start fresh, and a checkpoint
of another architecture is refused with the file named. Also: `prunepose train` honours ``--init`` for
lifters (it used to build the model and ignore it)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import prunepose
from prunepose.errors import PrunePoseError
from prunepose.models.lifting.twin import HOT_MODULE_PREFIXES, is_hot, load_twin_into_hot

TINY = {"num_frames": 9, "dim": 16, "depth": 2, "heads": 2, "drop_path": 0.0}
HOT = {"token_num": 3, "layer_index": 1, "recovery": "tra_linear"}


@pytest.mark.parametrize(("base", "hot"), [("mixste_243", "hot_mixste_243"),
                                           ("motionbert_lite_243", "hot_motionbert_243")])
def test_hot_starts_from_its_twin(tmp_path: Path, base: str, hot: str) -> None:
    torch.manual_seed(0)
    overrides = dict(TINY)
    twin = prunepose.create_model(base, **overrides)
    path = tmp_path / "twin.pt"
    torch.save({"model": twin.state_dict()}, path)
    model = prunepose.create_model(hot, **overrides, **HOT)
    assert is_hot(model) and not is_hot(twin)
    fresh = load_twin_into_hot(model, path)
    assert fresh and all(k.startswith(HOT_MODULE_PREFIXES) for k in fresh)
    own = model.state_dict()
    for key, value in twin.state_dict().items():
        assert torch.equal(own[key], value), key


def test_wrong_architecture_is_refused_with_the_file_named(tmp_path: Path) -> None:
    other = prunepose.create_model("mixste_243", **{**TINY, "dim": 32})
    path = tmp_path / "other.pt"
    torch.save({"model": other.state_dict()}, path)
    model = prunepose.create_model("hot_mixste_243", **TINY, **HOT)
    with pytest.raises(PrunePoseError, match="other.pt is not the unpruned twin"):
        load_twin_into_hot(model, path)


def test_train_init_is_applied_to_lifters(tmp_path: Path) -> None:
    from prunepose.cli import _init_lifter

    torch.manual_seed(1)
    twin = prunepose.create_model("mixste_243", **TINY)
    path = tmp_path / "twin.pt"
    torch.save({"model": twin.state_dict()}, path)
    same = prunepose.create_model("mixste_243", **TINY)
    _init_lifter(same, str(path), {})
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), twin.state_dict().values()))
    hot = prunepose.create_model("hot_mixste_243", **TINY, **HOT)
    _init_lifter(hot, None, {"checkpoint": str(path)})  # the config's init: the twin is recognised
    own = hot.state_dict()
    assert all(torch.equal(own[k], v) for k, v in twin.state_dict().items())
