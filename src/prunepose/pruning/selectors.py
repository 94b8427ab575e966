"""Token selectors: decide which visual tokens go on to the next layers.

A selector maps a per-token score to the indices to keep; models gather tokens, their positional
encodings and their absolute grid indices with the same indices (:func:`gather_tokens`).
"""
from __future__ import annotations

import math

import torch


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather tokens ``x`` (..., N, C) at ``index`` (..., K) -> (..., K, C).

    The leading dims of ``x`` broadcast to those of ``index`` (a batch-1 positional encoding (1, N, C)
    gathered with (B, K) indices gives (B, K, C); grouped tokens (B, G, N, C) take (B, G, K) indices).
    """
    lead = index.shape[:-1]
    x = x.expand(*lead, *x.shape[-2:])
    return torch.gather(x, -2, index.unsqueeze(-1).expand(*index.shape, x.shape[-1]))


class AttentionTopKSelector:
    """PPT's Human Token Identification.

    Score of a visual token = post-softmax attention it receives from the J keypoint queries, averaged
    over heads and summed over keypoints; keep the top ``ceil(keep_ratio * N_current)`` tokens (ordered by
    descending score, as the official code does; order is irrelevant because positional encodings travel
    with the tokens).
    """

    @staticmethod
    def num_kept(num_tokens: int, keep_ratio: float) -> int:
        return min(num_tokens, max(1, math.ceil(num_tokens * keep_ratio)))

    @staticmethod
    def scores(rows: torch.Tensor, num_queries: int) -> torch.Tensor:
        """``rows`` (B, heads, J, J + N) post-softmax attention of the keypoint queries -> (B, N) scores."""
        return rows[..., num_queries:].mean(dim=1).sum(dim=1)

    def select(self, rows: torch.Tensor, num_queries: int, keep_ratio: float) -> torch.Tensor:
        """Indices (B, K) of the visual tokens to keep, relative to the current visual tokens."""
        score = self.scores(rows, num_queries)
        k = self.num_kept(score.shape[1], keep_ratio)
        return score.topk(k, dim=1).indices


def softmax_pool(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``sum(x * softmax(x))`` along ``dim``: a smooth maximum (each value weighted by its own softmax).

    Why GTPT pools this way: a token that one head (or one keypoint query) finds important keeps a high
    score even when the other heads ignore it, which a plain mean would wash out.
    """
    return (x * x.softmax(dim)).sum(dim)


class SoftmaxPoolTopKSelector:
    """GTPT's pruning selector.

    Score of a visual token = :func:`softmax_pool` of the *pre-softmax* scaled logits ``q k^T * scale``
    it receives, over the flattened (heads x queries) axis; keep the top ``budget`` tokens. Budgets are
    ``int(num_original * keep_rate)`` of the ORIGINAL token count (256 -> 179 -> 76 -> 25 for the COCO
    rates), not compounded like PPT's. Order of the kept tokens is by descending score (irrelevant to the
    model: positional encodings and grid indices travel with the tokens).
    """

    @staticmethod
    def budget(num_original: int, keep_rate: float) -> int:
        """``int(num_original * keep_rate)`` (truncation, as the official code), at least 1."""
        if not 0.0 < keep_rate <= 1.0:
            raise ValueError(f"keep rate must be in (0, 1], got {keep_rate}")
        return max(1, int(num_original * keep_rate))

    @staticmethod
    def scores(logits: torch.Tensor, query_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``logits`` (..., heads, Q, N) -> (..., N) scores.

        ``query_mask`` (bool, broadcastable to ``logits.shape[:-1]``, True = use) leaves query rows out,
        e.g. GTPT's duplicated-nose dummy. They are filled with the dtype's lowest finite value, so their
        softmax weight is exactly 0 and they add exactly 0 -- what the official -1e5 / -finfo.max padding
        does -- without producing inf * 0 = NaN.
        """
        if query_mask is not None:
            logits = logits.masked_fill(~query_mask.unsqueeze(-1), torch.finfo(logits.dtype).min)
        return softmax_pool(logits.flatten(-3, -2), dim=-2)

    def select(self, logits: torch.Tensor, num_keep: int, query_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Indices (..., num_keep) of the tokens to keep, relative to the N current tokens."""
        return self.scores(logits, query_mask).topk(num_keep, dim=-1).indices
