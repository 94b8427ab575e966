"""Training losses."""
from __future__ import annotations

import torch


def joints_mse_loss(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """TokenPose/HRNet ``JointsMSELoss``: ``0.5 * mean((w * (pred - target)) ** 2)``.

    pred, target: (B, K, H, W) heatmaps; target_weight: (B, K, 1) or (B, K). The official code averages
    0.5 * MSE per joint and then over joints, which equals the mean over every element computed here.
    """
    w = target_weight.reshape(target_weight.shape[0], target_weight.shape[1], 1, 1).to(pred.dtype)
    return 0.5 * ((pred - target) * w).square().mean()
