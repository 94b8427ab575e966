"""Task-agnostic training engine: loop, checkpoints, distributed helpers and resumable sampling.

Tasks (2D pose, 3D lifting) plug in through ``loss_fn(model, batch) -> (loss, logs)``; nothing here knows
about keypoints, which keeps one well-tested loop for every model.
"""
from __future__ import annotations

from prunepose.engine.checkpoint import load_checkpoint, save_checkpoint
from prunepose.engine.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    broadcast_object,
    cleanup,
    init_distributed,
    is_main,
)
from prunepose.engine.ema import ModelEMA, cosine_ema_momentum
from prunepose.engine.sampler import ResumableShardedSampler
from prunepose.engine.trainer import NonFiniteLossError, TrainConfig, Trainer

__all__ = [
    "DistInfo",
    "ModelEMA",
    "NonFiniteLossError",
    "ResumableShardedSampler",
    "TrainConfig",
    "Trainer",
    "all_reduce_mean",
    "barrier",
    "broadcast_object",
    "cleanup",
    "cosine_ema_momentum",
    "init_distributed",
    "is_main",
    "load_checkpoint",
    "save_checkpoint",
]
