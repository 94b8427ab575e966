"""What pruning saves: the compute of a model next to its unpruned twin (same weights shape, keep everything).

Why a twin rather than a formula: the pruned models keep a fixed number of tokens per stage (top-k with a
fixed k, GTPT budgets, HoT's fixed ``token_num``), so their cost does not depend on the input and one forward
pass of each model on a dummy input measures it exactly, in the same ``true`` MAC convention for both.

The unpruned twin of
* a PPT / TokenPose model: ``keep_ratio = 1`` (the pruning layers keep every token);
* a GTPT model: ``keep_rates = (1, ..., 1)`` (the "entire" pass of GTPT training);
* a HoT / TPC lifter: the plain MixSTE / MotionBERT of the same width and depth (no pruning stage, no
  recovery, no token PE), i.e. the baseline the HoT paper compares against.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from prunepose.profiling.flops import count_macs, default_input_shape

__all__ = ["pruning_savings", "unpruned_overrides"]


def unpruned_overrides(config: Any) -> dict[str, Any]:
    """Config overrides that turn ``config``'s model into its unpruned twin ({} when it does not prune)."""
    names = {f.name for f in dataclasses.fields(config)}
    if "keep_rates" in names:
        return {"keep_rates": tuple(1.0 for _ in config.keep_rates)} if min(config.keep_rates) < 1 else {}
    if "keep_ratio" in names:
        return {"keep_ratio": 1.0} if config.keep_ratio < 1 and getattr(config, "prune_layers", (0,)) else {}
    if "token_num" in names:
        if not config.stages:
            return {}
        return {"token_num": None, "layer_index": None, "hierarchical": (), "recovery": None,
                "token_pos_embed": False}
    return {}


def _build(config: Any, **changes: Any) -> torch.nn.Module:
    from prunepose.registry import create_model

    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "name"}
    fields.update(changes)
    return create_model(config.name, **fields).eval()


def pruning_savings(config: Any) -> dict[str, Any]:
    """``{"macs_pruned", "macs_unpruned", "saved"}`` (raw true MACs of one input at batch 1, and the saved
    fraction) of the model built from ``config`` against its unpruned twin. Weights do not matter (random)."""
    model = _build(config)
    x = torch.zeros(default_input_shape(model))
    overrides = unpruned_overrides(config)
    pruned = count_macs(model, x)
    full = count_macs(_build(config, **overrides), x) if overrides else pruned
    return {"model": config.name, "input_shape": list(x.shape), "macs_pruned": int(pruned),
            "macs_unpruned": int(full), "saved": 1.0 - pruned / full if full else 0.0,
            "unpruned_twin": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}}
