"""Token selectors: decide which visual tokens go on to the next layers.

A selector maps a per-token score to the indices to keep; models gather tokens, their positional
encodings and their absolute grid indices with the same indices (:func:`gather_tokens`).
"""
from __future__ import annotations

import math

import torch


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather tokens ``x`` (B or 1, N, C) at ``index`` (B, K) -> (B, K, C). Broadcasts a batch-1 ``x``."""
    b, k = index.shape
    if x.shape[0] != b:
        x = x.expand(b, -1, -1)
    return torch.gather(x, 1, index.unsqueeze(-1).expand(b, k, x.shape[-1]))


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
