"""3D pose metrics on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from prunepose.metrics.mpjpe import LiftingErrorMeter, apply_root, mpjpe, mpjve, n_mpjpe, p_mpjpe


def _pose(seed: int = 0, frames: int = 1) -> np.ndarray:
    pose = np.random.default_rng(seed).normal(size=(frames, 17, 3))
    pose[:, 0] = 0.0
    return pose


def test_mpjpe_hand_computed() -> None:
    target = _pose()
    assert mpjpe(target + [3.0, 4.0, 0.0], target)[0] == pytest.approx(5.0)
    pred = target.copy()
    pred[0, 5] += [0.0, 0.0, 17.0]  # one joint off by 17 -> mean over 17 joints is 1
    assert mpjpe(pred, target)[0] == pytest.approx(1.0)


def test_p_mpjpe_ignores_similarity_transforms() -> None:
    target = _pose(1)
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    pred = 2.5 * target @ q + [1.0, -2.0, 3.0]
    assert p_mpjpe(pred, target)[0] == pytest.approx(0.0, abs=1e-9)
    assert mpjpe(pred, target)[0] > 1.0


def test_n_mpjpe_ignores_scale_only() -> None:
    target = _pose(3)
    assert n_mpjpe(0.5 * target, target)[0] == pytest.approx(0.0, abs=1e-12)
    shifted = target + [1.0, 0.0, 0.0]
    assert n_mpjpe(shifted, target)[0] > 0.1


def test_mpjve_hand_computed() -> None:
    target = np.zeros((4, 17, 3))
    pred = np.zeros((4, 17, 3))
    pred[:, :, 0] = np.arange(4)[:, None] * 2.0  # moves 2 units per frame, target static
    np.testing.assert_allclose(mpjve(pred, target), [2.0, 2.0, 2.0])


def test_root_modes() -> None:
    pose = np.ones((2, 17, 3))
    assert np.all(apply_root(pose, "zero")[:, 0] == 0) and np.all(apply_root(pose, "zero")[:, 1:] == 1)
    assert np.all(apply_root(pose, "subtract") == 0)
    assert np.all(apply_root(pose, "none") == 1)


def test_meter_sets_prediction_root_to_zero_and_averages_actions_unweighted() -> None:
    target = _pose(4, frames=5)
    pred = target.copy()
    pred[:, 0] = [0.01, 0.0, 0.0]  # a non-zero predicted root is ignored (HoT/MixSTE protocol)
    meter = LiftingErrorMeter(root="zero", scale=1000.0)
    meter.update(pred, target, "Walking")
    assert meter.per_action()["Walking"]["mpjpe"] == pytest.approx(0.0)
    # MotionBERT protocol: subtracting the root moves the 16 other joints by 10 mm
    sub = LiftingErrorMeter(root="subtract")
    sub.update(pred, target, "Walking")
    assert sub.per_action()["Walking"]["mpjpe"] == pytest.approx(10.0 * 16 / 17)

    meter = LiftingErrorMeter()
    clip_a = target[:4] + [0.0, 0.001, 0.0]  # 1 mm on every non-root joint of 4 frames
    meter.update(clip_a[None], target[None, :4], ["Eating"])
    one = target[:2].copy()
    one[:, 1:] += [0.0, 0.0, 0.003]  # 3 mm, 2 frames
    meter.update(one, target[:2], "Sitting")
    rows = meter.per_action()
    assert rows["Eating"]["mpjpe"] == pytest.approx(16 / 17)
    assert rows["Sitting"]["mpjpe"] == pytest.approx(3 * 16 / 17)
    assert meter.summary()["mpjpe"] == pytest.approx(2 * 16 / 17)  # not frame-weighted (that would be 5/3 * 16/17)
    assert rows["Eating"]["mpjve"] == pytest.approx(0.0)


def test_meter_valid_mask_drops_padding() -> None:
    target = _pose(5, frames=3)
    pred = target.copy()
    pred[0, 1:] += [0.002, 0.0, 0.0]  # only the padded first frame is wrong
    meter = LiftingErrorMeter()
    meter.update(pred, target, "Posing", valid=np.array([False, True, True]))
    assert meter.summary()["mpjpe"] == pytest.approx(0.0)
    assert meter.summary()["mpjve"] == pytest.approx(0.0)
