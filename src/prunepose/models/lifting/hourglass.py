"""The HoT plug-in: prune frames part-way through a lifter, recover all frames at the end.

Why a module shared by the families: HoT is defined independently of the backbone (paper section 3.3):
at block ``layer_index`` keep ``token_num`` frames (TPC), optionally add a new temporal PE, run the rest
of the blocks on the kept frames, then restore F frames (TRA or interpolation) before the regression
head. The families only decide where their blocks are; everything else lives here.

Token layout here is (B, f, J, C): batch, frames, joints, channels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunepose.errors import ConfigError
from prunepose.models.lifting.config import TRA_RECOVERIES, LiftingConfig
from prunepose.models.lifting.layers import use_inference_path
from prunepose.pruning.recovery import TokenRecoveryAttention, interpolate_frames
from prunepose.pruning.temporal import FrameSelector


def gather_frames(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Frames ``index`` (B, f) of ``x`` (B, N, ...) -> (B, f, ...)."""
    return x[torch.arange(x.shape[0], device=x.device)[:, None], index]


class TemporalPruning(nn.Module):
    """Selection stages of a HoT model and their temporal PEs.

    Parameters: ``pos_embed_token`` (1, f_0, C) for the first stage (the official key) and
    ``pos_embed_token_<s>`` for later hierarchical stages, zero-initialised, when
    ``config.token_pos_embed``; none otherwise (TPC).
    """

    def __init__(self, config: LiftingConfig) -> None:
        super().__init__()
        self.stages = config.stages
        self.num_frames = config.num_frames
        self.keep_center = config.keep_center
        self.selector = FrameSelector(config.selector, k=config.dpc_k)
        self.layer_to_stage = {layer: s for s, (layer, _) in enumerate(self.stages)}
        self.pe_names: list[str | None] = []
        for s, (_, tokens) in enumerate(self.stages):
            name = None
            if config.token_pos_embed:
                name = "pos_embed_token" if s == 0 else f"pos_embed_token_{s}"
                self.register_parameter(name, nn.Parameter(torch.zeros(1, tokens, config.dim)))
            self.pe_names.append(name)

    def stage_at(self, layer: int) -> int | None:
        """Index of the stage that prunes before block ``layer``, or ``None``."""
        return self.layer_to_stage.get(layer)

    def needs_received(self, layer: int) -> bool:
        """Whether block ``layer`` must report attention received (it precedes an attention-scored stage)."""
        return self.selector.kind == "attention" and (layer + 1) in self.layer_to_stage

    def forward(self, x: torch.Tensor, stage: int, frames: torch.Tensor, *, poses: torch.Tensor,
                received: torch.Tensor | None = None, kept: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prune tokens ``x`` (B, f, J, C) whose absolute frame indices are ``frames`` (B, f).

        Evidence: joint-averaged tokens (TPC), ``received`` (B, f) (attention), ``poses`` (B, F, J, C_in)
        (motion, gathered at ``frames``). ``kept`` (B, f_s) absolute indices reuse a previous selection.
        Returns the kept tokens (with this stage's PE added) and their absolute indices.
        """
        num_keep = self.stages[stage][1]
        if kept is not None:
            kept = kept.to(device=x.device, dtype=torch.long)
            rel = torch.searchsorted(frames.contiguous(), kept.contiguous()).clamp(max=frames.shape[1] - 1)
            if kept.shape != (x.shape[0], num_keep) or not bool((gather_frames(frames, rel) == kept).all()):
                raise ConfigError(f"kept indices for stage {stage} must be (B, {num_keep}) sorted frames that "
                                  "survived the previous stages")
        else:
            keep_index = None
            if self.keep_center:
                center = (self.num_frames - 1) // 2
                keep_index = (frames == center).int().argmax(dim=1)
            rel = self.selector.select(num_keep, features=x.detach().mean(dim=2), received=received,
                                       poses=gather_frames(poses, frames), keep_index=keep_index,
                                       generator=generator)
        x = gather_frames(x, rel)
        name = self.pe_names[stage]
        if name is not None:
            x = x + getattr(self, name)[:, :, None, :]
        return x, gather_frames(frames, rel)


def build_recovery(config: LiftingConfig) -> TokenRecoveryAttention | None:
    """The TRA module for ``recovery="tra"``/``"tra_linear"``, else ``None`` (interpolation has no parameters)."""
    if config.recovery not in TRA_RECOVERIES:
        return None
    return TokenRecoveryAttention(config.dim, config.num_frames, config.heads, config.qkv_bias)


def recover_frames(x: torch.Tensor, frames: torch.Tensor, config: LiftingConfig,
                   tra: TokenRecoveryAttention | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens of the kept frames (B, f, J, C) -> all frames (B, F, J, C) per ``config.recovery``, with the
    output frame indices; unchanged when there is no recovery.

    ``"tra_linear"`` adds TRA's output to the linear interpolation of the kept tokens. Why (our change, not
    in the paper): TRA's queries start at zero, so its attention starts uniform and every output frame is
    the clip mean of the kept tokens. On Human3.6M with a compact MixSTE this plateau outlasted our CPU
    budget (attention entropy 3.28 vs 3.30 for uniform after 3,600 steps; the whole clip got nearly one
    pose, ~30 mm behind the unpruned model; docs/results-h36m.md). The interpolation residual makes every
    frame local from step 0 and leaves TRA to learn the correction.
    """
    if config.recovery is None:
        return x, frames
    b, _, j, c = x.shape
    if config.recovery in TRA_RECOVERIES:
        assert tra is not None
        seqs = x.transpose(1, 2).reshape(b * j, -1, c)
        out = (_tra_inference(tra, seqs) if use_inference_path(tra) else tra(seqs)).reshape(b, j, -1, c).transpose(1, 2)
        if config.recovery == "tra_linear":
            out = out + interpolate_frames(x, frames, config.num_frames, "linear")
        x = out
    else:
        x = interpolate_frames(x, frames, config.num_frames, config.recovery)
    full = torch.arange(config.num_frames, device=x.device).expand(b, -1)
    return x, full


def _tra_inference(tra: TokenRecoveryAttention, tokens: torch.Tensor) -> torch.Tensor:
    """`TokenRecoveryAttention` on ``tokens`` (B', f, C) without autograd: the learnable queries are the same
    for every sequence, so they are projected once and broadcast instead of projected B' times (HoT-MixSTE:
    17 x 243 rows -> 243; the official code projects every copy, and `thop` counts, which run with hooks and
    so take the plain path, still do). The same operations per row, so equal to the plain path to float32
    rounding (bitwise when the BLAS rounds a row independently of the other rows, as MKL does here)."""
    attn = tra.cross_attention
    n, _, c = tokens.shape
    heads, num_frames = attn.heads, tra.x_token.shape[1]
    queries = tra.x_token[0]

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(t.shape[0], t.shape[1], heads, c // heads).transpose(1, 2)

    q = split(F.linear(queries, attn.linear_q.weight, attn.linear_q.bias)[None]).expand(n, -1, -1, -1)
    k = split(F.linear(tokens, attn.linear_k.weight, attn.linear_k.bias))
    v = split(F.linear(tokens, attn.linear_v.weight, attn.linear_v.bias))
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n * num_frames, c)
    return F.linear(out, attn.proj.weight, attn.proj.bias).view(n, num_frames, c).add_(queries)


def initial_frames(batch: int, num_frames: int, device: torch.device) -> torch.Tensor:
    """(B, F) absolute frame indices 0..F-1 before any pruning."""
    return torch.arange(num_frames, device=device).expand(batch, -1)


def check_input(x: torch.Tensor, config: LiftingConfig, allow_shorter: bool = False) -> None:
    """Raise ``ValueError`` unless ``x`` is (B, F, J, C_in) as the config says."""
    if x.dim() != 4 or x.shape[2] != config.num_joints or x.shape[3] != config.in_channels:
        raise ValueError(f"{config.name} expects (B, F, {config.num_joints}, {config.in_channels}) normalised 2D, "
                         f"got {tuple(x.shape)}")
    f = x.shape[1]
    if f != config.num_frames and not (allow_shorter and 1 <= f < config.num_frames):
        raise ValueError(f"{config.name} was built for {config.num_frames} frames, got {f}")
