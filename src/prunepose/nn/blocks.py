"""Transformer building blocks shared by every model family."""
from __future__ import annotations

import torch
from torch import nn

from prunepose.nn.attention import GroupAttention, SelfAttention


class FeedForward(nn.Module):
    """Linear -> GELU -> Linear, the MLP of every transformer block here (dropout 0 in all configs)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PreNormBlock(nn.Module):
    """Pre-norm transformer block split in two halves.

    The split exists because PPT prunes tokens *between* the attention residual and the FFN of the same
    layer: callers run :meth:`attend`, optionally drop tokens, then run :meth:`feed_forward`.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, scale: float, qkv_bias: bool = False) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, scale=scale, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))

    def attend(
        self, x: torch.Tensor, query_rows: int = 0, logits: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x + attn(norm1(x))``; also returns the attention rows of the first ``query_rows`` tokens
        (post-softmax, or the pre-softmax scaled logits with ``logits=True``)."""
        out, rows = self.attn(self.norm1(x), query_rows=query_rows, logits=logits)
        return x + out, rows

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + mlp(norm2(x))``."""
        return x + self.mlp(self.norm2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.attend(x)[0])


class GroupPreNormBlock(nn.Module):
    """:class:`PreNormBlock` with GTPT's group attention, on (B, G, S + N, C) grouped tokens.

    Split into :meth:`attend` / :meth:`feed_forward` for the same reason: GTPT prunes each group's
    tokens between the attention residual and the FFN.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, scale: float, num_sparse: int,
                 num_groups: int = 3, blocked_keys: tuple[int, ...] = (0,)) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = GroupAttention(dim, heads, scale, num_sparse, num_groups, blocked_keys)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio))

    def attend(self, x: torch.Tensor, query_rows: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x + attn(norm1(x))``; also the scaled logits (B, G, heads, query_rows, N) of the first
        ``query_rows`` tokens of each group over the group's own tokens (see :class:`GroupAttention`)."""
        out, logits = self.attn(self.norm1(x), query_rows=query_rows)
        return x + out, logits

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + mlp(norm2(x))``."""
        return x + self.mlp(self.norm2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feed_forward(self.attend(x)[0])
