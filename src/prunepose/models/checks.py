"""Input validation shared by the model families.

Why a helper: every model ties its positional encoding to one input size, and a wrong-sized crop
otherwise fails deep inside with a shape error about tokens; this names the model and the fix instead.
"""
from __future__ import annotations

import torch

from prunepose.errors import ConfigError


def check_images(images: torch.Tensor, model_name: str, input_size: tuple[int, int]) -> None:
    """Raise :class:`ConfigError` unless ``images`` is a float (B, 3, H, W) batch at ``input_size`` (w, h)."""
    w, h = input_size
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ConfigError(f"{model_name}: expected images of shape (B, 3, {h}, {w}), got {got}")
    if images.shape[2] != h or images.shape[3] != w:
        raise ConfigError(
            f"{model_name} was built for {h}x{w} (HxW) input, got {images.shape[2]}x{images.shape[3]}; "
            "crop/resize to the model's input size (the positional encoding is tied to it)"
        )
    if not images.is_floating_point():
        raise ConfigError(f"{model_name}: expected a float image tensor, got {images.dtype}")
