"""The rough human mask that pruning yields (PPT Fig. 5): kept token indices -> masks on the token grid,
in the model-input crop, and in original-image pixels."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from prunepose.data.transforms import get_affine_transform


def grid_mask(kept: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Absolute kept indices (B, K) -> boolean (B, grid_h, grid_w) masks (True = token kept)."""
    b = kept.shape[0]
    mask = torch.zeros(b, grid_hw[0] * grid_hw[1], dtype=torch.bool, device=kept.device)
    mask.scatter_(1, kept, True)
    return mask.reshape(b, *grid_hw)


def image_mask(mask_hw: np.ndarray | torch.Tensor, input_size: tuple[int, int], center: np.ndarray,
               scale: np.ndarray, image_hw: tuple[int, int], rotation: float = 0.0) -> np.ndarray:
    """One grid mask (grid_h, grid_w) -> boolean (H_img, W_img) mask in original-image pixels.

    The grid is first expanded to the model-input crop (each token covers ``input / grid`` pixels), then
    warped back with the inverse of the crop affine (``center``/``scale`` in image px, as the datasets'
    meta); pixels outside the crop are False.
    """
    m = np.asarray(mask_hw.cpu() if torch.is_tensor(mask_hw) else mask_hw, dtype=np.uint8)
    crop = cv2.resize(m, (int(input_size[0]), int(input_size[1])), interpolation=cv2.INTER_NEAREST)
    inv = get_affine_transform(center, scale, rotation, input_size, inv=True)
    out = cv2.warpAffine(crop, inv, (int(image_hw[1]), int(image_hw[0])), flags=cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.astype(bool)
