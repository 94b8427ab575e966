"""Multi-head self-attention on ``scaled_dot_product_attention``.

Why the extra "query rows": token pruning (PPT's Human Token Identification) needs the attention of the
J keypoint queries over the visual tokens. Computing those J rows directly costs J x N instead of the
N x N map, and lets the full attention stay on the fused SDPA kernel.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    """Pre-projected multi-head self-attention with an explicit softmax scale.

    The qkv projection has the official TokenPose layout: ``qkv(x)`` splits into [q | k | v] along the
    channel axis and each part into heads as ``(heads, head_dim)``, so official weights load unchanged.
    ``scale`` is explicit because TokenPose-S/PPT-S/GTPT use ``dim ** -0.5`` (a quirk of the official
    code) while T/B/L use the usual ``head_dim ** -0.5``.
    """

    def __init__(self, dim: int, heads: int, scale: float, qkv_bias: bool = False) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.scale = scale
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, query_rows: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend ``x`` (B, N, C) to itself.

        Returns ``(out (B, N, C), rows)`` where ``rows`` is ``None`` unless ``query_rows > 0``; then it is
        the post-softmax attention of the first ``query_rows`` tokens over all N keys, shape
        ``(B, heads, query_rows, N)``, computed without materialising the N x N map.
        """
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        rows = None
        if query_rows > 0:
            logits = torch.matmul(q[:, :, :query_rows], k.transpose(-2, -1)) * self.scale
            rows = logits.softmax(dim=-1)
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj(out), rows
