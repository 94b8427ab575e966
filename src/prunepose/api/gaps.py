"""Missing 2D joints: fill them over time, or say clearly why that is impossible.

Why interpolation and not an error: detectors lose a wrist for a few frames all the time, and a lifter
needs every joint in every frame. A joint seen in some frames is filled linearly between the frames where
it was seen (and held at the nearest seen value before the first / after the last one), and the caller
reports which entries were filled. A joint never seen gives no information to interpolate from, so it is
an error naming the joint rather than a silent guess.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from prunepose.errors import PrunePoseError


def missing_mask(keypoints: np.ndarray, scores: np.ndarray | None = None,
                 min_score: float | None = None) -> np.ndarray:
    """(T, J) bool: True where x or y is not finite, or (with ``min_score``) the score is below it or NaN."""
    missing = ~np.isfinite(keypoints).all(axis=-1)
    if scores is not None and min_score is not None:
        with np.errstate(invalid="ignore"):
            missing |= ~(scores >= min_score)
    return missing


def fill_missing(keypoints: np.ndarray, missing: np.ndarray,
                 describe: Callable[[int], str] = lambda j: f"joint {j}") -> np.ndarray:
    """Fill the ``missing`` (T, J) entries of ``keypoints`` (T, J, C) along time; returns a new float64 array.

    Linear interpolation between the nearest present frames (``np.interp``), the nearest present value
    at both ends. Raises PrunePoseError naming the joint (``describe(j)``) when it is missing in every frame.
    """
    out = np.array(keypoints, dtype=np.float64, copy=True)
    t = np.arange(out.shape[0])
    for j in range(out.shape[1]):
        gone = missing[:, j]
        if not gone.any():
            continue
        if gone.all():
            raise PrunePoseError(f"{describe(j)} is missing (NaN/inf or low score) in all {out.shape[0]} frames; "
                                 "nothing to interpolate from. Provide that joint in at least one frame")
        seen = np.flatnonzero(~gone)
        for c in range(out.shape[2]):
            out[gone, j, c] = np.interp(t[gone], seen, out[seen, j, c])
    return out


__all__ = ["fill_missing", "missing_mask"]
