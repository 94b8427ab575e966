"""MotionBERT's DSTformer (Zhu et al., ICCV 2023) and its HoT version.

Architecture (MotionBERT ``lib/model/DSTformer.py`` as copied into HoT's ``model/motionbert``; key names
identical): ``joints_embed`` Linear(C_in, C) + ``pos_embed`` (1, J, C) + ``temp_embed`` (1, F, 1, C); then
``depth`` layers of two parallel streams -- ``blocks_st[i]`` (spatial then temporal attention+MLP) and
``blocks_ts[i]`` (temporal then spatial) -- fused per token by ``ts_attn[i]`` = Linear(2C, 2) + softmax
(initialised to weight 0, bias 0.5: an even mix); ``norm``; ``pre_logits`` = Linear(C, dim_rep) + Tanh;
``head`` = Linear(dim_rep, 3). Linear weights trunc-normal(0.02), biases 0, PEs trunc-normal(0.02).

Two configurations exist and are easy to confuse: **MotionBERT-Lite** (C 256, MLP x4: what HoT calls
"MotionBERT", 16.0 M parameters) and the main H36M model of MotionBERT's own configs (C 512, MLP x2,
42.5 M). Both take (x, y, confidence) input, ``in_channels=3``.

HoT: pruning stages before blocks ``layer_index >= 0``; the new ``pos_embed_token`` is added after
selection; recovery after ``norm``, before ``pre_logits``. Official weights map as in `mixste`.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from prunepose.models.lifting.config import LiftingConfig
from prunepose.models.lifting.hourglass import (
    TemporalPruning,
    build_recovery,
    check_input,
    initial_frames,
    recover_frames,
)
from prunepose.models.lifting.layers import DualStreamBlock, from_frames, to_frames
from prunepose.models.lifting.outputs import LiftingOutput
from prunepose.registry import register_model


@dataclass(frozen=True)
class MotionBERTConfig(LiftingConfig):
    """DSTformer config (defaults: MotionBERT-Lite, the configuration HoT reports as "MotionBERT")."""

    in_channels: int = 3
    dim: int = 256
    depth: int = 5
    mlp_ratio: float = 4.0
    dim_rep: int = 512


class MotionBERT(nn.Module):
    """DSTformer seq2seq lifter, optionally with HoT pruning/recovery (see module docstring)."""

    def __init__(self, config: MotionBERTConfig) -> None:
        super().__init__()
        self.config = config
        c, hidden = config.dim, int(config.dim * config.mlp_ratio)
        self.joints_embed = nn.Linear(config.in_channels, c)
        rates = torch.linspace(0, config.drop_path, config.depth, device="cpu").tolist()  # timm rule
        self.blocks_st = nn.ModuleList(
            DualStreamBlock(c, config.heads, hidden, "st", config.qkv_bias, r) for r in rates)
        self.blocks_ts = nn.ModuleList(
            DualStreamBlock(c, config.heads, hidden, "ts", config.qkv_bias, r) for r in rates)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pruning = TemporalPruning(config) if config.stages else None
        self.recovery = build_recovery(config)
        self.pre_logits = nn.Sequential(OrderedDict([("fc", nn.Linear(c, config.dim_rep)), ("act", nn.Tanh())]))
        self.head = nn.Linear(config.dim_rep, 3)
        self.temp_embed = nn.Parameter(torch.zeros(1, config.num_frames, 1, c))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_joints, c))
        nn.init.trunc_normal_(self.temp_embed, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init_weights)
        self.ts_attn = nn.ModuleList(nn.Linear(2 * c, 2) for _ in range(config.depth))
        for lin in self.ts_attn:
            nn.init.zeros_(lin.weight)
            nn.init.constant_(lin.bias, 0.5)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, *, kept: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> LiftingOutput:
        """Lift ``x`` (B, F, J, C_in) normalised 2D (+ confidence). The plain model also accepts
        F < num_frames (the temporal PE is truncated, as in MotionBERT); ``kept``/``generator`` as in
        `prunepose.models.lifting.mixste.MixSTE.forward`."""
        cfg = self.config
        check_input(x, cfg, allow_shorter=self.pruning is None and self.recovery is None)
        b, f = x.shape[:2]
        frames = initial_frames(b, f, x.device)
        h = from_frames(self.joints_embed(to_frames(x)) + self.pos_embed, b) + self.temp_embed[:, :f]
        kept_out: list[torch.Tensor] = []
        received = None
        for i, (blk_st, blk_ts) in enumerate(zip(self.blocks_st, self.blocks_ts)):
            stage = self.pruning.stage_at(i) if self.pruning is not None else None
            if stage is not None:
                assert self.pruning is not None
                reuse = kept[stage] if kept is not None else None
                h, frames = self.pruning(h, stage, frames, poses=x, received=received, kept=reuse,
                                         generator=generator)
                kept_out.append(frames)
            need = self.pruning is not None and self.pruning.needs_received(i)
            x_st, rec_st = blk_st(h, need)
            x_ts, rec_ts = blk_ts(h, need)
            alpha = self.ts_attn[i](torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)
            h = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
            received = None if rec_st is None or rec_ts is None else 0.5 * (rec_st + rec_ts)
        h, frames = recover_frames(self.norm(h), frames, cfg, self.recovery)
        return LiftingOutput(pose3d=self.head(self.pre_logits(h)), kept=kept_out, frames=frames)


def build_motionbert(config: MotionBERTConfig) -> MotionBERT:
    return MotionBERT(config)


MOTIONBERT_LITE_243 = MotionBERTConfig(name="motionbert_lite_243")
MOTIONBERT_243 = MotionBERTConfig(name="motionbert_243", dim=512, mlp_ratio=2.0)
MOTIONBERT_TINY = MotionBERTConfig(name="motionbert_tiny", num_frames=27, dim=32, depth=2, heads=4, dim_rep=32)

for _cfg in (MOTIONBERT_LITE_243, MOTIONBERT_243, MOTIONBERT_TINY):
    register_model(_cfg, build_motionbert)
