"""Composite pictures of what a pruned model looks at: kept tokens per stage (PPT Fig. 5) and keypoint-token
attention maps per layer (TokenPose Fig. 3). Pure OpenCV/numpy, written as PNG by the callers."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from prunepose.data.transforms import box_to_center_scale, get_affine_transform, normalize_image, warp_image
from prunepose.viz.tokens import kept_mask, label, overlay_attention, overlay_mask


def crop_person(image_bgr: np.ndarray, input_size: tuple[int, int],
                box_xywh: Sequence[float] | None = None) -> tuple[np.ndarray, torch.Tensor, np.ndarray, np.ndarray]:
    """Cut the model-input crop around ``box_xywh`` (whole image when None, padded to the input aspect).

    Returns ``(crop_bgr (H, W, 3) uint8, input tensor (1, 3, H, W), center (2,), scale (2,))``.
    """
    h, w = image_bgr.shape[:2]
    box = box_xywh if box_xywh is not None else (0, 0, w, h)
    padding = 1.0 if box_xywh is None else 1.25
    center, scale = box_to_center_scale(box, input_size[0] / input_size[1], padding=padding)
    crop = warp_image(image_bgr, get_affine_transform(center, scale, 0.0, input_size), input_size)
    return crop, torch.from_numpy(normalize_image(crop))[None], center, scale


def kept_tokens_figure(crop_bgr: np.ndarray, kept: Sequence[torch.Tensor], grid_hw: tuple[int, int],
                       group_names: Sequence[str] | None = None) -> np.ndarray:
    """One panel per pruning stage (plus the input): pruned patches darkened, kept ones in colour.

    A stage of shape (1, K) is one shared token set (PPT, GTPT's first stage); a stage of shape (1, G, K) keeps
    a set per keypoint group (GTPT's group-wise pruning), drawn as one panel per group (``group_names`` label
    them, default ``group 1..G``). Negative indices (GTPT's dense keypoint-token slots) are not tokens.
    """
    panels = [label(crop_bgr, f"input: {grid_hw[0] * grid_hw[1]} tokens")]
    for s, k in enumerate(kept):
        sets = k[0] if k.dim() == 3 else k[0][None]
        for g, idx in enumerate(sets):
            idx = idx[idx >= 0]
            where = f"stage {s + 1}" if k.dim() == 2 else \
                f"s{s + 1} {group_names[g] if group_names else f'group {g + 1}'}"
            panels.append(label(overlay_mask(crop_bgr, kept_mask(idx, grid_hw)), f"{where}: {len(idx)} kept"))
    return np.concatenate(panels, axis=1)


def attention_figure(crop_bgr: np.ndarray, attention: Sequence[torch.Tensor], grid_hw: tuple[int, int],
                     keypoint_names: Sequence[str], layers: Sequence[int] | None = None,
                     tile_scale: float = 0.5) -> np.ndarray:
    """Grid of attention maps: one row per chosen layer, one column per keypoint token.

    ``attention`` is the model output's per-layer (1, K, N) list; ``layers`` defaults to every third
    layer and the last one.
    """
    n_layers = len(attention)
    if layers is None:
        layers = sorted(set(list(range(0, n_layers, 3)) + [n_layers - 1]))
    th, tw = int(crop_bgr.shape[0] * tile_scale), int(crop_bgr.shape[1] * tile_scale)
    small = cv2.resize(crop_bgr, (tw, th), interpolation=cv2.INTER_AREA)
    rows = []
    for layer in layers:
        maps = attention[layer][0].float().cpu().numpy()
        tiles = [label(overlay_attention(small, maps[k], grid_hw), f"L{layer} {keypoint_names[k][:10]}")
                 for k in range(maps.shape[0])]
        rows.append(np.concatenate(tiles, axis=1))
    return np.concatenate(rows, axis=0)
