"""Inference preparation keeps outputs: BatchNorm folding and channels-last convolutions."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import prunepose
from prunepose.nn.fuse import fold_batchnorm, prepare_for_inference


@pytest.mark.parametrize("name,overrides", [("ppt_s", {"depth": 4, "prune_layers": (1, 3)}),
                                            ("tokenpose_b", {"depth": 1})])
def test_prepared_model_gives_same_outputs(name: str, overrides: dict) -> None:
    torch.manual_seed(0)
    model = prunepose.create_model(name, **overrides)
    model.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        for _ in range(3):
            model(torch.randn(2, 3, 256, 192))
    model.eval()
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        ref = model(x)
        fast = prepare_for_inference(copy.deepcopy(model))
        out = fast(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    # folding reorders float32 sums: ~1e-6 relative on heatmaps of magnitude ~1, 100x margin
    torch.testing.assert_close(out.heatmaps, ref.heatmaps, atol=1e-4, rtol=1e-4)
    # the same tokens, in any order: folding rounds the pruning scores differently, and TopK may return
    # near-equal scores in another order (it did with ATEN_CPU_CAPABILITY=default); the order does not change
    # the output, positional encodings travel with the tokens
    for a, b in zip(out.kept, ref.kept):
        assert torch.equal(a.sort(dim=-1).values, b.sort(dim=-1).values)


def test_fold_counts_every_batchnorm_and_requires_eval() -> None:
    model = prunepose.create_model("tokenpose_b", depth=1)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with pytest.raises(RuntimeError, match="eval"):
        fold_batchnorm(model)
    assert fold_batchnorm(model.eval()) == n_bn
