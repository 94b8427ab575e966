"""Exponential moving average of a model's weights with GTPT's cosine momentum schedule.

Why: GTPT evaluates (and publishes) an EMA copy of the network, not the trained weights themselves; its
momentum rises from 0.996 to 1 along a half cosine over the whole run, so early updates move the
average quickly and late ones barely at all. The official loop updates after every optimizer step::

    m(it) = 1 - 0.5 * (1 - m0) * (1 + cos(pi * it / total_it))        (m0 = 0.996)
    ema[name] = m * ema[name] + (1 - m) * model[name]                   for every state_dict entry

with ``it = epoch * iters_per_epoch + i`` the 0-based index of the step just taken (so the first update
uses ``m0`` and the update after the last step uses almost 1). Here every floating-point state entry
(parameters and BatchNorm running statistics) is averaged that way; integer entries (BatchNorm's
``num_batches_tracked``) are copied from the model, where the official code averaged and truncated them.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from prunepose.errors import ConfigError

__all__ = ["ModelEMA", "cosine_ema_momentum"]


def cosine_ema_momentum(step: int, total_steps: int, momentum_start: float = 0.996) -> float:
    """GTPT's momentum at 0-based update ``step``: ``1 - 0.5 (1 - m0) (1 + cos(pi step / total))``.

    ``step`` is clamped to ``[0, total_steps]`` (the official loop never passes the end), so the value
    goes from ``momentum_start`` at 0 to exactly 1 at ``total_steps``.
    """
    if total_steps < 1:
        raise ConfigError(f"EMA total_steps must be >= 1, got {total_steps}")
    it = min(max(int(step), 0), int(total_steps))
    return 1.0 - 0.5 * (1.0 - momentum_start) * (1.0 + math.cos(math.pi * it / total_steps))


class ModelEMA:
    """EMA copy of ``model`` (or of a given ``ema_model``) updated with `cosine_ema_momentum`.

    Args:
        model: the trained model; its state at construction initialises the average (the official
            ``ema_*`` branches start as copies of the student too).
        momentum_start: ``m0`` (GTPT 0.996).
        total_steps: optimizer steps of the whole run (``epochs * steps_per_epoch``), where ``m`` reaches 1.
        ema_model: an existing module to hold the average (e.g. a model's own EMA branch, with the same
            state_dict keys as ``model``); by default a deep copy of ``model`` is made, in eval mode and
            with ``requires_grad=False``, on the model's device.

    ``self.module`` is the averaged model to evaluate. Call `update` after every optimizer step.
    """

    def __init__(
        self,
        model: nn.Module,
        momentum_start: float = 0.996,
        *,
        total_steps: int,
        ema_model: nn.Module | None = None,
    ) -> None:
        if not 0.0 <= momentum_start <= 1.0:
            raise ConfigError(f"EMA momentum_start must be in [0, 1], got {momentum_start}")
        if total_steps < 1:
            raise ConfigError(f"EMA total_steps must be >= 1, got {total_steps}")
        self.momentum_start = float(momentum_start)
        self.total_steps = int(total_steps)
        self.updates = 0  # number of update() calls so far (saved in checkpoints)
        if ema_model is None:
            ema_model = copy.deepcopy(model)
            ema_model.eval()
        else:
            self._check_keys(model, ema_model)
            ema_model.load_state_dict(model.state_dict())
        for p in ema_model.parameters():
            p.requires_grad_(False)
        self.module = ema_model

    @staticmethod
    def _check_keys(model: nn.Module, ema_model: nn.Module) -> None:
        src, dst = set(model.state_dict()), set(ema_model.state_dict())
        if src != dst:
            missing, extra = sorted(src - dst)[:5], sorted(dst - src)[:5]
            raise ConfigError(f"ema_model's state_dict keys differ from the model's (missing {missing}, "
                              f"unexpected {extra})")

    def momentum(self, step: int) -> float:
        """Momentum used by ``update(model, step)``."""
        return cosine_ema_momentum(step, self.total_steps, self.momentum_start)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> float:
        """Fold ``model``'s current state into the average after optimizer step ``step`` (0-based).

        Floating entries: ``ema = m ema + (1 - m) model`` (computed in the EMA tensor's dtype);
        other entries are copied. Pass the bare model, not a DDP wrapper (keys would differ).
        Returns the momentum used.
        """
        m = self.momentum(step)
        src = model.state_dict()
        for name, ema_t in self.module.state_dict().items():
            if name not in src:
                raise ConfigError(f"model has no state entry {name!r} that the EMA copy has")
            new = src[name].detach().to(device=ema_t.device)
            if ema_t.is_floating_point():
                ema_t.mul_(m).add_(new.to(ema_t.dtype), alpha=1.0 - m)
            else:
                ema_t.copy_(new)
        self.updates += 1
        return m

    def state_dict(self) -> dict[str, Any]:
        """Averaged weights plus the schedule, for checkpoints."""
        return {
            "module": self.module.state_dict(),
            "momentum_start": self.momentum_start,
            "total_steps": self.total_steps,
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict` (the averaged weights and the schedule)."""
        self.module.load_state_dict(state["module"])
        self.momentum_start = float(state.get("momentum_start", self.momentum_start))
        self.total_steps = int(state.get("total_steps", self.total_steps))
        self.updates = int(state.get("updates", 0))
