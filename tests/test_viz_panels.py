"""Demo pictures: kept-token panels (PPT stages, GTPT per-group stages), the per-frame token strip, and the
unpruned twins the demo's "compute saved" line compares against."""
from __future__ import annotations

import numpy as np
import torch

from prunepose.api.results import Results2D
from prunepose.profiling.savings import pruning_savings, unpruned_overrides
from prunepose.registry import get_config
from prunepose.viz.figures import kept_tokens_figure
from prunepose.viz.panels import demo_frame, stage_strip, strip_height


def _is_kept(panel: np.ndarray, y: int, x: int) -> bool:
    """Kept cells keep the crop's value 200; pruned ones are dimmed to 50 (overlay_mask, dim 0.25)."""
    return int(panel[y, x, 0]) == 200


def test_gtpt_group_stages_get_one_panel_per_group() -> None:
    crop = np.full((64, 48, 3), 200, np.uint8)  # 2 x 2 token grid of 32 x 24 px cells
    kept = [torch.tensor([[0, 1, 3]]),  # shared stage (1, K)
            torch.tensor([[[0, -1], [3, 1]]])]  # per-group stage (1, G=2, K=2); -1 is a dense-token slot
    fig = kept_tokens_figure(crop, kept, (2, 2), ("head", "legs"))
    assert fig.shape == (64, 4 * 48, 3)  # input + stage 1 + one panel per group
    panels = [fig[:, i * 48:(i + 1) * 48] for i in range(4)]
    cells = {0: (25, 5), 1: (25, 40), 2: (50, 5), 3: (50, 40)}  # (y, x) inside each cell, below the caption
    expected = {1: {0, 1, 3}, 2: {0}, 3: {1, 3}}
    for p, kept_cells in expected.items():
        assert {c for c, (y, x) in cells.items() if _is_kept(panels[p], y, x)} == kept_cells


def _result(persons: int) -> Results2D:
    image = np.full((100, 80, 3), 120, np.uint8)
    return Results2D(
        keypoints=np.full((persons, 17, 2), 40, np.float32), scores=np.ones((persons, 17), np.float32),
        boxes=np.tile(np.float32([10, 10, 58, 74]), (persons, 1)), box_scores=np.ones(persons, np.float32),
        kept_tokens=[[np.array([0, 1, 2]), np.array([0])] for _ in range(persons)], token_grid=(2, 2),
        crop_affines=np.tile(np.array([[1.0, 0, -10], [0, 1.0, -10]]), (persons, 1, 1)), input_size=(48, 64),
        skeleton="coco17", image=image)


def test_token_strip_has_the_same_size_with_and_without_a_person() -> None:
    height = strip_height((48, 64), 200)
    assert height == 66  # 200 / 4 panels * 64 / 48 = 66.7 -> even 66 (MPEG-4 needs even frame sizes)
    assert stage_strip(_result(1), 200).shape == (66, 200, 3)
    assert stage_strip(_result(0), 200).shape == (66, 200, 3)
    # under the 80 px wide frame: 80 / 4 * 64 / 48 = 26.7 -> 26
    assert demo_frame(_result(1), "x").shape == demo_frame(_result(0), "x").shape == (100 + 26, 80, 3)


def test_strip_shows_the_crop_cut_by_the_affine() -> None:
    """The first panel is the image warped by the crop affine (a shift by -10, -10 px here)."""
    r = _result(1)
    r.image[10:40, 10:40] = 255  # a white square at image (10..39, 10..39) lands at crop (0..29, 0..29)
    strip = stage_strip(r, 4 * 48)  # strip 4 crops wide and 64 high: 3 panels fit unscaled, padded right
    assert strip[25, 5].tolist() == [255, 255, 255]  # below the 19-row caption band, inside the square
    assert strip[25, 35].tolist() == [120, 120, 120]  # crop x 35 = image x 45, outside it


def test_unpruned_twins() -> None:
    assert unpruned_overrides(get_config("ppt_s")) == {"keep_ratio": 1.0}
    assert unpruned_overrides(get_config("gtpt_t")) == {"keep_rates": (1.0, 1.0, 1.0, 1.0)}
    assert unpruned_overrides(get_config("tokenpose_t")) == {}
    hot = get_config("hot_mixste_tiny")
    twin = unpruned_overrides(hot)
    assert twin["token_num"] is None and twin["recovery"] is None
    assert unpruned_overrides(get_config("mixste_tiny")) == {}
    s = pruning_savings(hot)
    assert 0 < s["macs_pruned"] < s["macs_unpruned"] and s["saved"] == 1 - s["macs_pruned"] / s["macs_unpruned"]


def test_viz_tokens_cli_draws_gtpt_group_masks(tmp_path) -> None:  # noqa: ANN001
    """GTPT-T: stage 1 shared (1, K), stages 2 and 3 per group (head, upper limbs, lower limbs); no attention maps."""
    import cv2

    from prunepose.cli import main
    from prunepose.demo import BUNDLED_IMAGE

    assert main(["viz", "tokens", str(BUNDLED_IMAGE), "--model", "gtpt_t", "--out", str(tmp_path), "--quiet"]) == 0
    fig = cv2.imread(str(tmp_path / "kept_tokens.png"))
    assert fig.shape == (256, (1 + 1 + 3 + 3) * 192, 3)  # input, stage 1, 3 groups x 2 group stages
    assert not (tmp_path / "attention.png").exists()
