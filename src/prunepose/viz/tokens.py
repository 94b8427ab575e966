"""Kept-token masks (PPT Fig. 5) and keypoint attention maps (TokenPose Fig. 3) over the input crop."""
from __future__ import annotations

import cv2
import numpy as np
import torch


def kept_mask(kept: torch.Tensor | np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """Absolute kept indices (K,) of one sample -> boolean (grid_h, grid_w) mask on the token grid."""
    idx = np.asarray(kept.cpu() if torch.is_tensor(kept) else kept).reshape(-1)
    mask = np.zeros(grid_hw[0] * grid_hw[1], dtype=bool)
    mask[idx] = True
    return mask.reshape(grid_hw)


def overlay_mask(crop_bgr: np.ndarray, mask: np.ndarray, dim: float = 0.25) -> np.ndarray:
    """Darken the pruned tokens' patches of ``crop_bgr`` (H, W, 3); kept patches keep their colours."""
    h, w = crop_bgr.shape[:2]
    big = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    out = crop_bgr.astype(np.float32)
    out[~big] *= dim
    gh, gw = mask.shape
    for r in range(1, gh):  # thin grid lines show the token layout
        cv2.line(out, (0, r * h // gh), (w - 1, r * h // gh), (80, 80, 80), 1)
    for c in range(1, gw):
        cv2.line(out, (c * w // gw, 0), (c * w // gw, h - 1), (80, 80, 80), 1)
    return out.clip(0, 255).astype(np.uint8)


def overlay_attention(crop_bgr: np.ndarray, attention: np.ndarray, grid_hw: tuple[int, int],
                      alpha: float = 0.55) -> np.ndarray:
    """Blend one keypoint's attention over the visual tokens (N,) as a heat map onto the crop."""
    h, w = crop_bgr.shape[:2]
    att = np.asarray(attention, dtype=np.float32).reshape(grid_hw)
    att = att / max(float(att.max()), 1e-12)
    heat = cv2.applyColorMap((cv2.resize(att, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(
        np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(crop_bgr, 1 - alpha, heat, alpha, 0)


def label(image: np.ndarray, text: str) -> np.ndarray:
    """Write a caption in the top-left corner (white on a dark band) and return a copy."""
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 18), (0, 0, 0), -1)
    cv2.putText(out, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out
