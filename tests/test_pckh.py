"""MPII PCKh on a hand-built case whose every number is worked out below."""
from __future__ import annotations

import numpy as np
import pytest

from prunepose.errors import ConfigError
from prunepose.metrics import mpii_head_sizes, pckh

# Per-joint x errors in pixels (MPII order: 0 r_ankle 1 r_knee 2 r_hip 3 l_hip 4 l_knee 5 l_ankle
# 6 pelvis 7 thorax 8 upper_neck 9 head_top 10 r_wrist 11 r_elbow 12 r_sho 13 l_sho 14 l_elbow 15 l_wrist).
ERR_P0 = [0, 20, 15, 16, 2, 100, 0, 0, 5, 14, 31, 2, 0, 0, 50, 10]
ERR_P1 = [40] + [0] * 15


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    gt = np.stack([np.stack([np.arange(16) * 7.0, np.full(16, 50.0)], -1)] * 2)  # (2, 16, 2)
    pred = gt.copy()
    pred[0, :, 0] += ERR_P0
    pred[1, :, 0] += ERR_P1
    visible = np.ones((2, 16), dtype=bool)
    visible[1, [5, 9]] = False  # person 1: left ankle and head top missing
    # Head boxes 30 x 40 px: diagonal 50, head size = 0.6 * 50 = 30 px -> PCKh@0.5 radius 15 px.
    head_sizes = mpii_head_sizes(np.array([[10, 10, 40, 50], [0, 0, 30, 40]], dtype=float))
    return pred, gt, visible, head_sizes


def test_head_sizes() -> None:
    np.testing.assert_allclose(mpii_head_sizes([[10, 10, 40, 50], [0, 0, 30, 40]]), [30.0, 30.0])


def test_pckh_hand_built() -> None:
    res = pckh(*_case())
    # Correct at 0.5 means error <= 15 px (15 itself counts). Per joint (person 0, person 1):
    # j0 ok/40px wrong -> 50, j1 20 wrong/ok -> 50, j2 15 ok/ok -> 100, j3 16 wrong/ok -> 50,
    # j4 100, j5 100px wrong/missing -> 0 (0 of 1), j6 100, j7 100, j8 100, j9 14 ok/missing -> 100,
    # j10 31 wrong/ok -> 50, j11 100, j12 100, j13 100, j14 50 wrong/ok -> 50, j15 10 ok -> 100.
    per_joint = [50, 50, 100, 50, 100, 0, 100, 100, 100, 100, 50, 100, 100, 100, 50, 100]
    names = ("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
             "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
             "left_shoulder", "left_elbow", "left_wrist")  # fmt: skip
    for name, value in zip(names, per_joint, strict=True):
        assert res[f"PCKh/{name}"] == pytest.approx(value), name
    assert res["Head"] == pytest.approx(100.0)  # head_top
    assert res["Shoulder"] == pytest.approx(100.0)
    assert res["Elbow"] == pytest.approx((100 + 50) / 2)
    assert res["Wrist"] == pytest.approx((50 + 100) / 2)
    assert res["Hip"] == pytest.approx((100 + 50) / 2)
    assert res["Knee"] == pytest.approx((50 + 100) / 2)
    assert res["Ankle"] == pytest.approx((50 + 0) / 2)
    # Mean excludes pelvis and thorax: visible = 14 (person 0) + 12 (person 1) = 26.
    # Correct: person 0 -> j0, j2, j4, j8, j9, j11, j12, j13, j15 = 9; person 1 -> 12 visible - j0 = 11.
    assert res["Mean"] == pytest.approx(100 * 20 / 26)
    # At 0.1 (3 px): person 0 -> j0, j4, j11, j12, j13 = 5; person 1 -> 11. (16 / 26)
    assert res["Mean@0.1"] == pytest.approx(100 * 16 / 26)


def test_pckh_threshold_and_validation() -> None:
    pred, gt, visible, head = _case()
    # At thr 1.0 (30 px) only the 31, 40, 50 and 100 px errors fail: j10/j0/j14/j5 -> 22 of 26.
    assert pckh(pred, gt, visible, head, thr=1.0)["Mean"] == pytest.approx(100 * 22 / 26)
    with pytest.raises(ConfigError):
        pckh(pred[:, :15], gt[:, :15], visible[:, :15], head)
