"""Composite frames for the demo: the overlay (skeletons + pruned tokens darkened) above a strip that shows,
for the first person, the model-input crop and the tokens each pruning stage kept (PPT Fig. 5 per frame).

Why a strip per frame: the overlay on the full frame can only show one stage (the last) without clutter; the
strip shows how the token set shrinks stage by stage, which is what a token-pruning model is about.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from prunepose.viz.tokens import kept_mask, label, overlay_mask

__all__ = ["crop_of", "demo_frame", "side_by_side", "stage_strip", "strip_height"]


def crop_of(result: Any, person: int = 0) -> np.ndarray:
    """The model-input crop (H_in, W_in, 3) BGR of ``person``, cut with the estimator's own affine."""
    w, h = result.input_size
    return cv2.warpAffine(result.image, result.crop_affines[person], (int(w), int(h)), flags=cv2.INTER_LINEAR)


def _fit(strip: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``strip`` to fit ``width`` x ``height`` (aspect kept) and pad it with black to exactly that size."""
    scale = min(width / strip.shape[1], height / strip.shape[0])
    w, h = max(1, round(strip.shape[1] * scale)), max(1, round(strip.shape[0] * scale))
    out = np.zeros((height, width, 3), np.uint8)
    out[:h, :w] = cv2.resize(strip, (w, h), interpolation=cv2.INTER_AREA)
    return out


def strip_height(input_size: tuple[int, int], width: int, panels: int = 4) -> int:
    """Height of the token strip under a ``width``-px frame: ``panels`` crops side by side fill the width.

    Rounded to an even number: MPEG-4 encoders need even frame sizes (OpenCV would crop a row silently).
    """
    return max(2, 2 * round(width / panels * input_size[1] / input_size[0] / 2))


def stage_strip(result: Any, width: int, person: int = 0) -> np.ndarray:
    """One row of ``width`` x :func:`strip_height` px: the crop, then the crop with each stage's pruned tokens
    darkened (more than three stages are scaled down to fit). A dark "no person" row when there is none."""
    height = strip_height(result.input_size, width)
    if result.image is None or len(result) <= person:
        return label(np.zeros((height, width, 3), np.uint8), "no person")
    crop = crop_of(result, person)
    rows, cols = result.token_grid
    panels = [label(crop, f"crop: {rows * cols} tokens")]
    for s, idx in enumerate(result.kept_tokens[person]):
        panels.append(label(overlay_mask(crop, kept_mask(idx, (rows, cols))), f"stage {s + 1}: {len(idx)} kept"))
    return _fit(np.concatenate(panels, axis=1), width, height)


def demo_frame(result: Any, caption: str, kpt_thr: float = 0.3, strip: bool = True) -> np.ndarray:
    """The overlay picture of one frame (``Results2D.plot`` with the kept-token mask) with a caption and,
    when ``strip``, the per-stage token strip of the first person underneath (same size on every frame)."""
    overlay = label(result.plot(kept_mask=True, kpt_thr=kpt_thr), caption)
    if not strip:
        return overlay
    return np.concatenate([overlay, stage_strip(result, overlay.shape[1])], axis=0)


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``right`` resized to ``left``'s height and put beside it."""
    h = left.shape[0]
    w = max(1, round(right.shape[1] * h / right.shape[0]))
    return np.concatenate([left, cv2.resize(right, (w, h), interpolation=cv2.INTER_AREA)], axis=1)
