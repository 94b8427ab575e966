"""Positional encodings.

TokenPose, PPT and GTPT all use the DETR-style fixed 2D sine encoding ("sine-full"). It is stored as a
frozen ``nn.Parameter`` by the official code, so it appears in state dicts and parameter counts; we keep
that so that official checkpoints load and published parameter counts are reproduced exactly.
"""
from __future__ import annotations

import math

import torch


def sine_position_encoding_2d(
    grid_h: int, grid_w: int, dim: int, temperature: float = 10000.0, scale: float = 2 * math.pi
) -> torch.Tensor:
    """Fixed 2D sine encoding for a row-major ``grid_h x grid_w`` token grid.

    Returns a float32 tensor of shape ``(1, grid_h * grid_w, dim)``. The first ``dim/2`` channels encode
    the row (y), the last ``dim/2`` the column (x); within each half the channels alternate
    sin, cos, sin, cos ... with frequencies ``temperature ** (2 * (i // 2) / (dim / 2))`` on positions
    normalised to ``(0, 2*pi]`` (cumulative index / (count + 1e-6) * scale), as in TokenPose.
    """
    if dim % 4 != 0:
        raise ValueError(f"sine position encoding needs dim divisible by 4, got {dim}")
    half = dim // 2
    eps = 1e-6
    rows = torch.arange(1, grid_h + 1, dtype=torch.float32)
    cols = torch.arange(1, grid_w + 1, dtype=torch.float32)
    y_embed = (rows / (grid_h + eps) * scale)[:, None].expand(grid_h, grid_w)
    x_embed = (cols / (grid_w + eps) * scale)[None, :].expand(grid_h, grid_w)
    idx = torch.arange(half, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(idx, 2, rounding_mode="floor") / half)

    def interleave(embed: torch.Tensor) -> torch.Tensor:
        pos = embed[..., None] / dim_t  # (h, w, half)
        return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)

    pe = torch.cat((interleave(y_embed), interleave(x_embed)), dim=-1)  # (h, w, dim)
    return pe.reshape(1, grid_h * grid_w, dim)
