"""Pruning parts: keep-ratio validation and schedule, kept-token masks on the grid and in the image."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import prunepose
from prunepose.errors import ConfigError
from prunepose.pruning.masks import grid_mask, image_mask
from prunepose.pruning.schedule import KeepRatioSchedule, cosine_keep_ratio
from prunepose.pruning.selectors import AttentionTopKSelector


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5])
def test_keep_ratio_outside_unit_interval_rejected_at_build(ratio: float) -> None:
    with pytest.raises(ConfigError, match="keep_ratio"):
        prunepose.create_model("ppt_s", keep_ratio=ratio, depth=4)
    model = prunepose.create_model("ppt_s", depth=4)
    with pytest.raises(ConfigError, match="keep_ratio"):
        model.keep_ratio = ratio


def test_num_kept_compounds_with_ceil_and_never_drops_below_one() -> None:
    counts = [256]
    for _ in range(3):
        counts.append(AttentionTopKSelector.num_kept(counts[-1], 0.7))
    assert counts == [256, 180, 126, 89]  # ceil(256*.7)=180, ceil(180*.7)=126, ceil(126*.7)=89
    assert AttentionTopKSelector.num_kept(3, 0.01) == 1


def test_selector_picks_tokens_with_most_keypoint_attention() -> None:
    # 2 keypoints, 2 heads, 4 visual tokens; token 2 gets most attention, then token 0
    rows = torch.zeros(1, 2, 2, 2 + 4)
    rows[..., 2 + 2] = 0.5
    rows[..., 2 + 0] = 0.3
    rows[..., 2 + 1] = 0.1
    keep = AttentionTopKSelector().select(rows, num_queries=2, keep_ratio=0.5)
    assert keep.tolist() == [[2, 0]]


def test_cosine_schedule_matches_ppt_formula() -> None:
    assert cosine_keep_ratio(0, 0.7) == 1.0 and cosine_keep_ratio(9.99, 0.7) == 1.0
    assert cosine_keep_ratio(10, 0.7) == pytest.approx(1.0)
    assert cosine_keep_ratio(60, 0.7) == pytest.approx(0.85)  # half-way: (1 + 0.7) / 2
    assert cosine_keep_ratio(35, 0.7) == pytest.approx(0.7 + 0.3 * (1 + math.cos(math.pi / 4)) / 2)
    assert cosine_keep_ratio(110, 0.7) == 0.7 and cosine_keep_ratio(299, 0.7) == 0.7
    model = prunepose.create_model("ppt_s", depth=4)
    KeepRatioSchedule(0.7)(model, epoch=60, step_in_epoch=0, global_step=0, steps_per_epoch=10)
    assert model.keep_ratio == pytest.approx(0.85)


def test_grid_and_image_masks() -> None:
    kept = torch.tensor([[0, 3], [1, 2]])
    m = grid_mask(kept, (2, 2))
    assert m.tolist() == [[[True, False], [False, True]], [[False, True], [True, False]]]
    # the crop covers the whole 100x200 (w x h) image; input_size (w, h) = (50, 100); 2x2 token grid
    img = image_mask(m[0], (50, 100), center=np.array([49.5, 99.5]), scale=np.array([100.0, 200.0]),
                     image_hw=(200, 100))
    assert img.shape == (200, 100)
    assert img[10, 10] and img[190, 90] and not img[10, 90] and not img[190, 10]
