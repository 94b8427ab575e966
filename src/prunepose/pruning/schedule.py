"""Keep-ratio schedules for training pruned models.

PPT (following EViT) trains with every token for the first epochs, then lowers the keep ratio along a
cosine to its target, per iteration, and keeps it there. At test time the target ratio is used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn


def cosine_keep_ratio(epoch_progress: float, target: float, warmup_epochs: float = 10.0,
                      ramp_epochs: float = 100.0) -> float:
    """Keep ratio at ``epoch_progress`` (fractional epochs since the start of training).

    1.0 before ``warmup_epochs``; then ``target + (1 - target) * (1 + cos(pi * t)) / 2`` with ``t`` going
    from 0 to 1 over ``ramp_epochs``; ``target`` afterwards (PPT: warm-up 10, ramp 100).
    """
    if epoch_progress < warmup_epochs:
        return 1.0
    t = (epoch_progress - warmup_epochs) / ramp_epochs
    if t >= 1.0:
        return target
    return target + (1.0 - target) * (1.0 + math.cos(math.pi * t)) / 2.0


@dataclass
class KeepRatioSchedule:
    """Trainer step callback that sets ``model.keep_ratio`` before each step (see ``engine.trainer``)."""

    target: float
    warmup_epochs: float = 10.0
    ramp_epochs: float = 100.0

    def __call__(self, model: nn.Module, epoch: int, step_in_epoch: int, global_step: int,
                 steps_per_epoch: int) -> None:
        progress = epoch + step_in_epoch / max(1, steps_per_epoch)
        model.keep_ratio = cosine_keep_ratio(progress, self.target, self.warmup_epochs, self.ramp_epochs)
