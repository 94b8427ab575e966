"""Self-describing weight files: save_weights + model_from_weights round-trip, and clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunepose import create_model
from prunepose.errors import PrunePoseError
from prunepose.weights import model_from_weights, read_weights_info, save_weights


def test_round_trip_keeps_overrides_and_metadata(tmp_path: Path) -> None:
    model = create_model("hot_mixste_243", num_frames=27, dim=32, depth=2, heads=4, token_num=9, layer_index=1)
    path = save_weights(model, tmp_path / "lifter.safetensors", metadata={"trained_on": "unit test"})
    info = read_weights_info(path)
    assert info["trained_on"] == "unit test" and info["dim"] == 32
    rebuilt = model_from_weights(path)
    assert rebuilt.config == model.config
    for (k, a), b in zip(model.state_dict().items(), rebuilt.state_dict().values()):
        assert torch.equal(a, b), k


def test_metadata_cannot_shadow_config(tmp_path: Path) -> None:
    with pytest.raises(PrunePoseError, match="collide"):
        save_weights(create_model("tokenpose_t"), tmp_path / "w.safetensors", metadata={"dim": 3})


def test_missing_or_broken_json_is_named(tmp_path: Path) -> None:
    path = save_weights(create_model("tokenpose_t"), tmp_path / "w.safetensors")
    path.with_suffix(".json").write_text(json.dumps({"dim": 3}))
    with pytest.raises(PrunePoseError, match="'name'"):
        model_from_weights(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(PrunePoseError, match="w.json"):
        model_from_weights(path)
