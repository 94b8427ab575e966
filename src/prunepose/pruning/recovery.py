"""Recovering full-length token sequences from the frames kept by temporal pruning.

Why: a seq2seq lifter must output a 3D pose for every input frame, but after pruning only ``f`` of the
``F`` frames have tokens. HoT's TRA (section 3.2) learns the recovery with one cross-attention from ``F``
learnable queries to the kept tokens; nearest / linear interpolation in time are its parameter-free
ablations (HoT table 5). All work on the temporal axis (dim 1) and keep any trailing dims.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RECOVERY_MODES = ("nearest", "linear")


class CrossAttention(nn.Module):
    """Multi-head cross-attention ``proj(softmax(q k^T / sqrt(d)) v)`` with separate q/k/v projections.

    Key names (``linear_q``, ``linear_k``, ``linear_v``, ``proj``) and biases follow HoT's
    ``Cross_Attention`` so its weights load unchanged.
    """

    def __init__(self, dim: int, heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.linear_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``query`` (B, Nq, C) attends to ``context`` (B, Nk, C) -> (B, Nq, C)."""
        q = self._split(self.linear_q(query))
        k = self._split(self.linear_k(context))
        v = self._split(self.linear_v(context))
        out = F.scaled_dot_product_attention(q, k, v)
        b, _, nq, _ = out.shape
        return self.proj(out.transpose(1, 2).reshape(b, nq, -1))


class TokenRecoveryAttention(nn.Module):
    """TRA: ``x = x_token + CrossAttn(q = x_token, kv = tokens)`` with ``num_frames`` learnable queries.

    ``x_token`` (1, F, C) starts at zero (HoT), so at initialisation the output is the attention of the
    constant query bias over the kept tokens -- the same for every frame until training moves the queries.
    The queries are expanded to the batch *before* the q projection, as in the official code, so ``thop``
    counts match the published FLOPs (projecting once and broadcasting would save B*J*F*C^2 MACs).
    """

    def __init__(self, dim: int, num_frames: int, heads: int = 8, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.x_token = nn.Parameter(torch.zeros(1, num_frames, dim))
        self.cross_attention = CrossAttention(dim, heads, qkv_bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` (B', f, C) of the kept frames (one sequence per batch x joint) -> (B', F, C)."""
        # repeat (a copy), not expand: a no-grad view of a parameter confuses autograd-based module hooks
        queries = self.x_token.repeat(tokens.shape[0], 1, 1)
        return queries + self.cross_attention(queries, tokens)


def interpolate_frames(x: torch.Tensor, index: torch.Tensor, length: int, mode: str = "linear") -> torch.Tensor:
    """Fill ``length`` frames from values ``x`` (B, f, ...) known at sorted frame indices ``index`` (B, f).

    ``linear``: piecewise-linear in the frame index between neighbouring kept frames (exact on signals
    linear in time); ``nearest``: the value of the closest kept frame (ties -> the earlier one). Frames
    before the first / after the last kept frame take its value (edge replication). -> (B, length, ...).
    """
    if mode not in RECOVERY_MODES:
        raise ValueError(f"unknown interpolation mode {mode!r}; use one of {RECOVERY_MODES}")
    b, f = index.shape
    if x.shape[:2] != (b, f):
        raise ValueError(f"values {tuple(x.shape)} do not match indices {tuple(index.shape)}")
    index = index.to(torch.long)
    t = torch.arange(length, device=x.device).expand(b, length).contiguous()
    if torch.onnx.is_in_onnx_export():  # ONNX has no searchsorted; counting kept indices < t is the same number
        right = (index[:, None, :] < t[:, :, None]).sum(dim=-1)
    else:
        right = torch.searchsorted(index.contiguous(), t)  # first kept position with index >= t, in [0, f]
    lo = (right - 1).clamp(0, f - 1)
    hi = right.clamp(0, f - 1)
    t_lo, t_hi = index.gather(1, lo), index.gather(1, hi)
    span = (t_hi - t_lo).to(x.dtype)
    w = torch.where(span > 0, (t - t_lo).to(x.dtype) / span.clamp(min=1), torch.zeros_like(span)).clamp(0, 1)

    def take(pos: torch.Tensor) -> torch.Tensor:
        shape = pos.shape + x.shape[2:]
        return x.gather(1, pos.reshape(b, length, *([1] * (x.dim() - 2))).expand(shape))

    if mode == "nearest":
        pick = torch.where((t - t_lo).abs() <= (t_hi - t).abs(), lo, hi)
        return take(pick)
    w = w.reshape(b, length, *([1] * (x.dim() - 2)))
    return take(lo) * (1 - w) + take(hi) * w


__all__ = ["RECOVERY_MODES", "CrossAttention", "TokenRecoveryAttention", "interpolate_frames"]
