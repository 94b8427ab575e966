"""JDR and world-frame MPJPE, checked against hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from prunepose.errors import DataError
from prunepose.metrics.multiview import (
    WorldMPJPEMeter,
    joint_detection_rate,
    mean_jdr,
    mpjpe_world,
    official_head_size,
)


def test_official_head_size_is_a_tenth_of_the_input_size() -> None:
    assert official_head_size(256) == pytest.approx(25.6)  # radius 0.5 * 25.6 = 12.8 px


def test_jdr_hand_computed_with_the_official_radius() -> None:
    gt = np.zeros((4, 2, 2))
    pred = gt.copy()
    # joint 0 errors: 0, 12.8 (on the radius: counts), 12.81, 30 -> 2 of 4
    pred[:, 0, 0] = [0.0, 12.8, 12.81, 30.0]
    # joint 1 errors: 5 (3-4-5), 20, NaN prediction (a miss), 1 -> 2 of 4
    pred[:, 1] = [[3.0, 4.0], [20.0, 0.0], [np.nan, np.nan], [0.0, 1.0]]
    rates = joint_detection_rate(pred, gt)
    np.testing.assert_allclose(rates, [0.5, 0.5])
    assert mean_jdr(rates) == pytest.approx(0.5)


def test_jdr_per_sample_head_size_and_visibility() -> None:
    gt = np.zeros((3, 1, 2))
    pred = np.array([[[10.0, 0.0]], [[10.0, 0.0]], [[10.0, 0.0]]])
    # radius = 0.5 * head: 15 (hit), 5 (miss), 25 (hit, but invisible -> not counted)
    rates = joint_detection_rate(pred, gt, head_size=np.array([30.0, 10.0, 50.0]),
                                 visible=np.array([[True], [True], [False]]))
    np.testing.assert_allclose(rates, [0.5])


def test_jdr_joint_without_visible_samples_is_nan_and_left_out_of_the_mean() -> None:
    gt = np.zeros((2, 2, 2))
    with pytest.warns(RuntimeWarning, match=r"joints \[1\] have no visible sample"):
        rates = joint_detection_rate(gt, gt, visible=np.array([[True, False], [True, False]]))
    assert rates[0] == 1.0 and np.isnan(rates[1])
    assert mean_jdr(rates) == 1.0


def test_jdr_bad_input() -> None:
    gt = np.zeros((2, 3, 2))
    with pytest.raises(DataError, match=r"pred and gt must both be \(\.\.\., J, 2\)"):
        joint_detection_rate(np.zeros((2, 3, 3)), gt)
    with pytest.raises(DataError, match="head_size"):
        joint_detection_rate(gt, gt, head_size=0.0)
    with pytest.raises(DataError, match="does not broadcast"):
        joint_detection_rate(gt, gt, head_size=np.ones(5))
    with pytest.raises(DataError, match="visible must be"):
        joint_detection_rate(gt, gt, visible=np.ones((2, 2), bool))
    with pytest.raises(DataError, match="no joint is visible"):
        joint_detection_rate(gt, gt, visible=np.zeros((2, 3), bool))
    with pytest.raises(DataError, match="gt contains non-finite"):
        joint_detection_rate(gt, np.full_like(gt, np.nan))


def test_world_mpjpe_is_absolute_per_joint() -> None:
    gt = np.zeros((1, 2, 3))
    pred = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, 2.0]]])  # a rigid shift is NOT removed
    np.testing.assert_allclose(mpjpe_world(pred, gt), [[5.0, 2.0]])


def test_world_meter_per_action_per_joint_failures_and_protocol_mean() -> None:
    meter = WorldMPJPEMeter(scale=1000.0)  # metres in, mm out
    gt = np.zeros((2, 2, 3))
    walk = np.array([[[0.01, 0, 0], [0.03, 0, 0]], [[0.01, 0, 0], [0.03, 0, 0]]])  # 10, 30 mm
    meter.update(walk, gt, "Walking")
    sit = np.array([[[0.1, 0, 0], [np.nan, np.nan, np.nan]], [[0.1, 0, 0], [0.1, 0, 0]]])  # 100 mm, one NaN
    meter.update(sit, gt, "Sitting")
    table = meter.per_action()
    assert table["Walking"] == {"mpjpe": pytest.approx(20.0), "failed": 0.0}
    assert table["Sitting"]["mpjpe"] == pytest.approx(100.0) and table["Sitting"]["failed"] == pytest.approx(0.25)
    summ = meter.summary()
    assert summ["mpjpe"] == pytest.approx(60.0)  # unweighted mean over actions
    assert summ["failed"] == pytest.approx(1 / 8)
    # per joint over all frames: joint 0 (10, 10, 100, 100) -> 55; joint 1 (30, 30, 100) -> 53.33
    np.testing.assert_allclose(meter.per_joint(), [55.0, 160 / 3])


def test_world_meter_rejects_changing_joint_count() -> None:
    meter = WorldMPJPEMeter()
    meter.update(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)), "a")
    with pytest.raises(DataError, match="3 joints"):
        meter.update(np.zeros((1, 3, 3)), np.zeros((1, 3, 3)), "a")
    with pytest.raises(DataError, match="no update yet"):
        WorldMPJPEMeter().per_joint()
