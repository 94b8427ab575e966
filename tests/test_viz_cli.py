"""Pictures from the CLI: `prunepose viz tokens` and the demo write the PNGs they promise."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from prunepose.cli import main
from prunepose.demo import BUNDLED_IMAGE
from prunepose.viz.tokens import kept_mask, overlay_mask


def test_viz_tokens_writes_masks_and_attention(tmp_path: Path) -> None:
    assert main(["viz", "tokens", str(BUNDLED_IMAGE), "--out", str(tmp_path), "--quiet"]) == 0
    kept = cv2.imread(str(tmp_path / "kept_tokens.png"))
    att = cv2.imread(str(tmp_path / "attention.png"))
    assert kept.shape == (256, 4 * 192, 3)  # input + 3 pruning stages of PPT-S
    assert att.shape[1] == 17 * 96 and att.shape[0] % 128 == 0


def test_viz_bad_image_is_named(tmp_path: Path, capsys) -> None:
    assert main(["viz", "tokens", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)]) == 2
    assert "nope.jpg" in capsys.readouterr().err


def test_kept_mask_darkens_only_pruned_patches() -> None:
    mask = kept_mask(np.array([0, 5]), (2, 3))
    assert mask.tolist() == [[True, False, False], [False, False, True]]
    crop = np.full((20, 30, 3), 200, np.uint8)
    out = overlay_mask(crop, mask)
    assert out[3, 3, 0] == 200 and out[3, 15, 0] == 50  # kept patch (0,0) intact, pruned (0,1) dimmed


def test_demo_runs(tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert cv2.imread(str(tmp_path / "demo.png")) is not None
