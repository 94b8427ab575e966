"""Similarity (Procrustes) alignment of one point set onto another, for P-MPJPE.

Why its own module: P-MPJPE (protocol 2) aligns every predicted frame to its ground truth with the best
scale, rotation and translation before measuring; the same alignment serves visualisation. Units are
whatever the inputs use (the scale factor is unit-free).
"""
from __future__ import annotations

import numpy as np


def procrustes_transform(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best similarity transform taking ``source`` onto ``target`` in the least-squares sense.

    Args:
        source, target: (..., N, 3) point sets (row vectors), e.g. predicted and true joints of each frame.

    Returns:
        ``(scale (...,), rotation (..., 3, 3), translation (..., 3))`` with
        ``aligned = scale * source @ rotation + translation`` minimising ``|aligned - target|^2``.
        ``rotation`` is a proper rotation (det +1): when the SVD solution would be a reflection, the
        singular direction of the smallest singular value is flipped (Umeyama's correction).
    """
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    if src.shape != dst.shape or src.shape[-1] != 3:
        raise ValueError(f"source and target must both be (..., N, 3), got {src.shape} and {dst.shape}")
    mu_s = src.mean(axis=-2, keepdims=True)
    mu_d = dst.mean(axis=-2, keepdims=True)
    s0, d0 = src - mu_s, dst - mu_d
    cov = np.swapaxes(s0, -1, -2) @ d0  # (..., 3, 3): sum_i s_i^T d_i
    u, sing, vt = np.linalg.svd(cov)
    sign = np.sign(np.linalg.det(u @ vt))
    sign = np.where(sign == 0, 1.0, sign)
    fix = np.ones(sing.shape)
    fix[..., -1] = sign
    rotation = (u * fix[..., None, :]) @ vt
    var_s = np.sum(s0**2, axis=(-1, -2))
    scale = np.sum(sing * fix, axis=-1) / np.where(var_s > 0, var_s, 1.0)
    translation = mu_d[..., 0, :] - scale[..., None] * (mu_s @ rotation)[..., 0, :]
    return scale, rotation, translation


def procrustes_align(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``source`` (..., N, 3) after the best similarity transform onto ``target`` (see `procrustes_transform`)."""
    scale, rotation, translation = procrustes_transform(source, target)
    src = np.asarray(source, dtype=np.float64)
    return scale[..., None, None] * (src @ rotation) + translation[..., None, :]
