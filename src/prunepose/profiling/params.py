"""Parameter counts in the conventions the papers use.

``all`` counts every parameter, including TokenPose's frozen sine PE (stored as a parameter by the
official code); ``trainable`` only those with ``requires_grad``; ``hrnet`` reproduces HRNet's
``get_model_summary`` counter used for the TokenPose/PPT tables: parameters of Conv, BatchNorm and
Linear modules only (LayerNorm, keypoint tokens and PE are not counted).
"""
from __future__ import annotations

from torch import nn

_HRNET_COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Linear)


def count_params(model: nn.Module, convention: str = "all") -> int:
    """Number of parameters of ``model`` under ``convention`` (``all`` | ``trainable`` | ``hrnet``)."""
    if convention == "all":
        return sum(p.numel() for p in model.parameters())
    if convention == "trainable":
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    if convention == "hrnet":
        return sum(
            p.numel()
            for m in model.modules()
            if isinstance(m, _HRNET_COUNTED)
            for p in m.parameters(recurse=False)
        )
    raise ValueError(f"unknown parameter convention {convention!r}; use all, trainable or hrnet")
