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

    def forward(
        self, x: torch.Tensor, query_rows: int = 0, logits: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend ``x`` (B, N, C) to itself.

        Returns ``(out (B, N, C), rows)`` where ``rows`` is ``None`` unless ``query_rows > 0``; then it is
        the post-softmax attention of the first ``query_rows`` tokens over all N keys, shape
        ``(B, heads, query_rows, N)``, computed without materialising the N x N map. With ``logits=True``
        the rows are the pre-softmax scaled logits ``q k^T * scale`` instead (GTPT scores tokens on them).
        """
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        rows = None
        if query_rows > 0:
            rows_logits = torch.matmul(q[:, :, :query_rows], k.transpose(-2, -1)) * self.scale
            rows = rows_logits if logits else rows_logits.softmax(dim=-1)
        out = out.transpose(1, 2).reshape(b, n, c)
        return self.proj(out), rows


class GroupAttention(nn.Module):
    """GTPT's Multi-Head Group Attention (MHGA) over ``G`` token groups at once.

    Input ``x`` is (B, G, S + N, C): per group, S sparse keypoint tokens first, then N tokens of that
    group only (visual tokens, and in whole-body models the dense keypoint tokens). Queries of group g
    attend to keys/values ``[the sparse tokens of all G groups (G*S), group g's own N tokens]``: the
    sparse tokens carry information between groups, everything else stays inside its group. q/k/v and the
    output projection are shared by all groups (one ``qkv`` / ``proj``, the official layout).

    ``blocked_keys`` are positions among the G*S shared sparse keys that nobody may attend to: GTPT pads
    the 5-token head group with a duplicate of the nose (slot 0), whose key the official code masks with
    ``-finfo.max`` for every query. Leaving those keys out of the key set is the same computation (their
    softmax weight is exactly 0 either way) without a mask, so every group runs in one batched
    ``scaled_dot_product_attention`` call over B*G and no row can be fully masked (no NaN). The one
    difference is invisible: the official code also masks the dummy's *query* row (uniform attention over
    everything), here the dummy attends normally; its output is never used and it is never a key.
    """

    def __init__(self, dim: int, heads: int, scale: float, num_sparse: int, num_groups: int = 3,
                 blocked_keys: tuple[int, ...] = (0,), qkv_bias: bool = False) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        shared = [i for i in range(num_groups * num_sparse) if i not in set(blocked_keys)]
        if not shared or any(not 0 <= i < num_groups * num_sparse for i in blocked_keys):
            raise ValueError(f"blocked_keys {blocked_keys} must be a proper subset of 0..{num_groups * num_sparse - 1}")
        self.heads = heads
        self.scale = scale
        self.num_sparse = num_sparse
        self.num_groups = num_groups
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        # Not in the state dict: it is architecture (derived from the arguments), not a weight.
        self.register_buffer("shared_keys", torch.tensor(shared, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor, query_rows: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Group attention of ``x`` (B, G, S + N, C).

        Returns ``(out (B, G, S + N, C), logits)``; ``logits`` is ``None`` unless ``query_rows > 0``, then
        it holds the pre-softmax scaled logits ``q k^T * scale`` of the first ``query_rows`` tokens of each
        group over that group's own N tokens, shape (B, G, heads, query_rows, N) -- what pruning scores
        need, without the full attention map.
        """
        b, g, n, c = x.shape
        s, h = self.num_sparse, self.heads
        if g != self.num_groups or n < s:
            raise ValueError(f"GroupAttention expects (B, {self.num_groups}, >= {s}, C) tokens, got {tuple(x.shape)}")
        d = c // h
        q, k, v = self.qkv(x).reshape(b, g, n, 3, h, d).permute(3, 0, 1, 4, 2, 5).unbind(0)  # (B, G, H, n, D)
        out = F.scaled_dot_product_attention(
            q.reshape(b * g, h, n, d), self._group_keys(k), self._group_keys(v), scale=self.scale
        )
        out = out.reshape(b, g, h, n, d).permute(0, 1, 3, 2, 4).reshape(b, g, n, c)
        logits = None
        if query_rows > 0:
            logits = torch.matmul(q[:, :, :, :query_rows], k[:, :, :, s:].transpose(-2, -1)) * self.scale
        return self.proj(out), logits

    def _group_keys(self, t: torch.Tensor) -> torch.Tensor:
        """(B, G, H, S + N, D) -> (B*G, H, S' + N, D): the shared sparse keys, then the group's own."""
        b, g, h, _, d = t.shape
        s = self.num_sparse
        shared = t[:, :, :, :s].transpose(1, 2).reshape(b, h, g * s, d).index_select(2, self.shared_keys)
        shared = shared.unsqueeze(1).expand(b, g, h, shared.shape[2], d)
        return torch.cat((shared, t[:, :, :, s:]), dim=3).reshape(b * g, h, -1, d)
