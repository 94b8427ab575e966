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
