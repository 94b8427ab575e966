"""MixSTE (Zhang et al., CVPR 2022) and its HoT / TPC versions.

Architecture (HoT's ``model/mixste/{mixste,hot_mixste,tpc_mixste}.py``; key names identical):
``Spatial_patch_to_embedding`` Linear(C_in, C) + ``Spatial_pos_embed`` (1, J, C); then ``depth`` pairs of
a spatial block (``STEblocks[i]``, attention over the J joints of each frame) and a temporal block
(``TTEblocks[i]``, attention over the F frames of each joint), each followed by the *shared*
``Spatial_norm`` / ``Temporal_norm`` LayerNorms; ``Temporal_pos_embed`` (1, F, C) is added before the
first temporal block; ``head`` = LayerNorm + Linear(C, 3) on every token. Blocks: pre-norm, LN eps 1e-6,
qkv bias, MLP ratio 2, stochastic depth ``linspace(0, drop_path, depth)`` (same rate for the i-th
spatial and temporal block). Zero-initialised PEs, PyTorch-default Linear init (as the official code).

HoT: pruning stages before blocks ``layer_index >= 1`` (block pair 0 always sees all frames), then
``recovery``. Official HoT weights map as ``pos_embed_token`` -> same, ``x_token`` -> ``recovery.x_token``,
``cross_attention.*`` -> ``recovery.cross_attention.*``.

Input (B, F, J, C_in) normalised 2D (see `prunepose.data.lifting`); output `LiftingOutput` with
camera-frame, root-relative 3D in the training targets' units (metres).
"""
from __future__ import annotations

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
from prunepose.models.lifting.layers import Block, from_frames, from_joints, to_frames, to_joints
from prunepose.models.lifting.outputs import LiftingOutput
from prunepose.registry import register_model


@dataclass(frozen=True)
class MixSTEConfig(LiftingConfig):
    """MixSTE family config (defaults: the 243-frame model of MixSTE / HoT)."""

    drop_path: float = 0.1
    min_layer_index = 1


class MixSTE(nn.Module):
    """MixSTE seq2seq lifter, optionally with HoT pruning/recovery (see module docstring)."""

    def __init__(self, config: MixSTEConfig) -> None:
        super().__init__()
        self.config = config
        c, f, j = config.dim, config.num_frames, config.num_joints
        hidden = int(c * config.mlp_ratio)
        self.Spatial_patch_to_embedding = nn.Linear(config.in_channels, c)
        self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, j, c))
        self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, f, c))
        rates = torch.linspace(0, config.drop_path, config.depth, device="cpu").tolist()  # timm rule
        self.STEblocks = nn.ModuleList(Block(c, config.heads, hidden, config.qkv_bias, r) for r in rates)
        self.TTEblocks = nn.ModuleList(Block(c, config.heads, hidden, config.qkv_bias, r) for r in rates)
        self.Spatial_norm = nn.LayerNorm(c, eps=1e-6)
        self.Temporal_norm = nn.LayerNorm(c, eps=1e-6)
        self.pruning = TemporalPruning(config) if config.stages else None
        self.recovery = build_recovery(config)
        self.head = nn.Sequential(nn.LayerNorm(c), nn.Linear(c, 3))

    def _block_pair(self, i: int, x: torch.Tensor, need_received: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Spatial then temporal block ``i`` on (B, f, J, C) tokens; ``received`` (B, f) when asked for."""
        b, _, j, _ = x.shape
        h, _ = self.STEblocks[i](to_frames(x))
        x = from_frames(self.Spatial_norm(h), b)
        h = to_joints(x)
        if i == 0:
            h = h + self.Temporal_pos_embed
        h, received = self.TTEblocks[i](h, need_received)
        if received is not None:
            received = received.reshape(b, j, -1).mean(dim=1)
        return from_joints(self.Temporal_norm(h), b), received

    def forward(self, x: torch.Tensor, *, kept: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> LiftingOutput:
        """Lift ``x`` (B, F, J, C_in) normalised 2D.

        ``kept``: absolute frame indices per stage to reuse instead of selecting (e.g. the flipped test
        pass reuses the unflipped ``out.kept``); ``generator`` drives TPC's tie-breaking noise.
        """
        cfg = self.config
        check_input(x, cfg)
        b = x.shape[0]
        frames = initial_frames(b, x.shape[1], x.device)
        h = from_frames(self.Spatial_patch_to_embedding(to_frames(x)) + self.Spatial_pos_embed, b)
        kept_out: list[torch.Tensor] = []
        received = None
        for i in range(cfg.depth):
            stage = self.pruning.stage_at(i) if self.pruning is not None else None
            if stage is not None:
                assert self.pruning is not None
                reuse = kept[stage] if kept is not None else None
                h, frames = self.pruning(h, stage, frames, poses=x, received=received, kept=reuse,
                                         generator=generator)
                kept_out.append(frames)
            need = self.pruning is not None and self.pruning.needs_received(i)
            h, received = self._block_pair(i, h, need)
        h, frames = recover_frames(h, frames, cfg, self.recovery)
        return LiftingOutput(pose3d=self.head(h), kept=kept_out, frames=frames)


def build_mixste(config: MixSTEConfig) -> MixSTE:
    return MixSTE(config)


MIXSTE_243 = MixSTEConfig(name="mixste_243")
MIXSTE_TINY = MixSTEConfig(name="mixste_tiny", num_frames=27, dim=32, depth=3, heads=4)

for _cfg in (MIXSTE_243, MIXSTE_TINY):
    register_model(_cfg, build_mixste)
