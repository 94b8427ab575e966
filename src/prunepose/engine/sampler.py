"""Deterministic, resumable, rank-sharded sampling.

Why not ``RandomSampler``/``DistributedSampler`` as-is: exact resume needs two things they lack.
The order of an epoch must depend only on ``(seed, epoch)`` (not on the global RNG, which dropout also
consumes), and a resumed epoch must be able to start at sample ``start_index`` so the batches already
trained on are skipped, not repeated or re-shuffled.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ResumableShardedSampler"]


class ResumableShardedSampler(Sampler[int]):
    """Per-epoch permutation of ``range(dataset_len)``, split across ranks like ``DistributedSampler``.

    The permutation comes from ``torch.Generator().manual_seed(seed + epoch)``. It is padded (by
    repeating its head) to a multiple of ``num_replicas`` so every rank sees the same number of samples
    and therefore runs the same number of steps; rank ``r`` takes positions ``r, r + R, r + 2R, ...``.
    With a per-rank batch ``b`` this makes the union of the ranks' k-th batches equal to the k-th batch
    of size ``R * b`` in a single process, which is what keeps DDP runs comparable to 1-process runs.
    """

    def __init__(
        self,
        dataset_len: int,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        if dataset_len <= 0:
            raise ValueError(f"dataset is empty (len={dataset_len}); nothing to sample")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside [0, {num_replicas})")
        self.dataset_len = dataset_len
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start_index = 0
        self.num_samples = math.ceil(dataset_len / num_replicas)  # per rank, before skipping
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``; call at the start of every epoch on every rank."""
        self.epoch = epoch

    def set_start_index(self, start_index: int) -> None:
        """Skip the first ``start_index`` samples of this rank's shard (resume in mid-epoch)."""
        if not 0 <= start_index <= self.num_samples:
            raise ValueError(f"start_index {start_index} is outside [0, {self.num_samples}]")
        self.start_index = start_index

    def rank_indices(self) -> list[int]:
        """This rank's full shard for the current epoch, ignoring ``start_index``."""
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.dataset_len, generator=gen).tolist()
        else:
            order = list(range(self.dataset_len))
        pad = self.total_size - len(order)
        while pad > 0:  # loop: a tiny dataset may need more padding than its own length
            order += order[:pad]
            pad = self.total_size - len(order)
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.rank_indices()[self.start_index :])

    def __len__(self) -> int:
        return self.num_samples - self.start_index
