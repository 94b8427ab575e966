"""Typed model outputs shared by visualisation, losses and profiling (no hooks into internals)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class PoseOutput:
    """What a 2D pose model returns.

    heatmaps: (B, K, H_hm, W_hm) raw heatmap logits (peak ~1 where a keypoint is).
    kept: one (B, K_s) int64 tensor per pruning stage with the *absolute* row-major indices, on the
        model's token grid, of the visual tokens that survive that stage (empty list when nothing is pruned).
    attention: when requested, one (B, K, N_grid) tensor per transformer layer: the head-averaged
        post-softmax attention of each keypoint token over the visual tokens, scattered onto the full
        token grid (zeros at pruned positions); ``None`` otherwise.
    """

    heatmaps: torch.Tensor
    kept: list[torch.Tensor] = field(default_factory=list)
    attention: list[torch.Tensor] | None = None
    # Models whose heatmaps are a sigmoid (conv_head "movenet"): the logits before it, for the focal loss.
    logits: torch.Tensor | None = None


@dataclass
class SimCCOutput:
    """What a SimCC (1-D coordinate classification) pose model returns (GTPT).

    simcc_x: (B, K, W * k) logits over x-bins, simcc_y: (B, K, H * k) over y-bins, where (W, H) is the
        model input size and k the split ratio (bin ``i`` = input pixel ``i / k``); keypoints in the
        skeleton's native order.
    kept: one int64 tensor per token-selection stage, with *absolute* row-major indices on the model's
        token grid of the visual tokens that go on: (B, K_s) for a stage over the shared tokens (GTPT's
        coarse encoder), (B, G, K_s) for a per-group stage (the fine encoder). In whole-body GTPT a group's
        budget also holds its dense keypoint tokens; their slots come first and read -1 (no grid
        position). Stages that select nothing are not listed (empty list when nothing is pruned).
    attention: reserved for per-layer attention maps; ``None`` when not requested.
    """

    simcc_x: torch.Tensor
    simcc_y: torch.Tensor
    kept: list[torch.Tensor] = field(default_factory=list)
    attention: list[torch.Tensor] | None = None
