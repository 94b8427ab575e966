"""SimCCCodec: official SA-SimDR targets, argmax decoding, flip test with the one-bin shift."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prunepose.codecs import SimCCCodec, flip_simcc, flip_test_logits
from prunepose.data.transforms import affine_points, get_affine_transform

CODEC = SimCCCodec(input_size=(192, 256), split_ratio=2.0, sigma=4.0)
NORM = 4.0 * math.sqrt(2.0 * math.pi)  # sigma * sqrt(2 pi): the official pdf normaliser


def _logits(target_x: np.ndarray, target_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets -> logits whose softmax is the renormalised target (log of a Gaussian is a parabola)."""
    return np.log(target_x + 1e-30)[None], np.log(target_y + 1e-30)[None]


def test_bins_and_target_formula() -> None:
    assert CODEC.num_bins == (384, 512)
    kpt = np.array([[50.3, 120.75]])  # input px -> bins (100.6, 241.5)
    tx, ty, w = CODEC.encode(kpt, np.ones(1))
    assert tx.shape == (1, 384) and ty.shape == (1, 512) and tx.dtype == ty.dtype == w.dtype == np.float32
    assert w[0] == 1.0
    bx, by = np.arange(384.0), np.arange(512.0)
    np.testing.assert_allclose(tx[0], np.exp(-((bx - 100.6) ** 2) / 32.0) / NORM, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(ty[0], np.exp(-((by - 241.5) ** 2) / 32.0) / NORM, rtol=1e-6, atol=1e-12)
    # a sampled pdf, not renormalised: peak < 1/(sigma sqrt(2 pi)), sum ~ 1 only away from the borders
    assert tx.max() < 1.0 / NORM and abs(tx.sum() - 1.0) < 1e-6
    edge_x, _, _ = CODEC.encode(np.array([[0.0, 100.0]]), np.ones(1))
    assert edge_x.sum() == pytest.approx(0.5 + 1.0 / (2 * NORM), rel=1e-3)  # half a Gaussian + its peak


def test_target_weight_rules() -> None:
    # window [int(x - 12), int(x + 13)] in *input px* (3 sigma with sigma in bins: official quirk), int()
    # truncating towards zero; weight 0 when it misses [0, 192) x [0, 256)
    kpts = np.array([
        [50.0, 50.0],  # visible, inside
        [50.0, 50.0],  # invisible
        [-13.9, 50.0],  # br = int(-0.9) = 0 >= 0: kept
        [-14.1, 50.0],  # br = int(-1.1) = -1 < 0: dropped
        [203.9, 50.0],  # ul = int(191.9) = 191 < 192: kept
        [204.0, 50.0],  # ul = 192 >= 192: dropped
        [50.0, 268.0],  # ul_y = 256: dropped
        [np.nan, 50.0],
    ])
    tx, ty, w = CODEC.encode(kpts, np.array([1, 0, 1, 1, 2, 1, 1, 1]))
    np.testing.assert_array_equal(w, [1, 0, 1, 0, 1, 0, 0, 0])
    assert np.all(tx[w == 0] == 0) and np.all(ty[w == 0] == 0)
    assert tx[2].max() > 0 and tx[4].max() > 0


@pytest.mark.parametrize("xy", [(50.5, 120.0), (50.3, 120.8), (0.0, 255.5), (191.5, 0.0)])
def test_decode_round_trip(xy: tuple[float, float]) -> None:
    kpt = np.array([xy])
    tx, ty, _ = CODEC.encode(kpt, np.ones(1))
    coords, scores = CODEC.decode(*_logits(tx, ty))
    assert coords.shape == (1, 1, 2) and scores.shape == (1, 1)
    np.testing.assert_allclose(coords[0, 0], np.round(kpt[0] * 2) / 2, atol=1e-6)  # nearest bin, 1/k px
    assert np.all(np.abs(coords[0, 0] - kpt[0]) <= 0.25 + 1e-6)


def test_decode_score_is_min_of_axis_maxima_and_torch() -> None:
    lx = np.zeros((1, 2, 384))
    ly = np.zeros((1, 2, 512))
    lx[0, 0, 10] = math.log(1000.0)  # p_max = 1000 / (1000 + 383)
    ly[0, 0, 20] = math.log(100.0)  # p_max = 100 / (100 + 511)
    lx[0, 1, 7] = math.log(10.0)
    ly[0, 1, 9] = math.log(5000.0)
    coords, scores = CODEC.decode(lx, ly)
    np.testing.assert_allclose(coords[0], [[5.0, 10.0], [3.5, 4.5]])
    np.testing.assert_allclose(scores[0], [100 / 611, 10 / 393], rtol=1e-6)
    coords_t, scores_t = CODEC.decode(torch.from_numpy(lx).float(), torch.from_numpy(ly).float())
    np.testing.assert_allclose(coords_t, coords)
    np.testing.assert_allclose(scores_t, scores, rtol=1e-5)
    probs_x = np.exp(lx) / np.exp(lx).sum(-1, keepdims=True)
    probs_y = np.exp(ly) / np.exp(ly).sum(-1, keepdims=True)
    np.testing.assert_allclose(CODEC.decode(probs_x, probs_y, apply_softmax=False)[1], scores, rtol=1e-6)
    with pytest.raises(ValueError, match="x-bins"):
        CODEC.decode(lx[..., :100], ly)


def test_flip_simcc_arrays_numpy_and_torch() -> None:
    rng = np.random.default_rng(0)
    sx, sy = rng.normal(size=(2, 3, 384)), rng.normal(size=(2, 3, 512))
    fx, fy = flip_simcc(sx, sy, [(1, 2)], shift=False)
    np.testing.assert_array_equal(fx[:, 0], sx[:, 0, ::-1])
    np.testing.assert_array_equal(fx[:, 1], sx[:, 2, ::-1])
    np.testing.assert_array_equal(fy[:, [0, 1, 2]], sy[:, [0, 2, 1]])
    gx, gy = flip_simcc(sx, sy, [(1, 2)])  # official SHIFT_HEATMAP: one bin to the left, last bin kept
    np.testing.assert_array_equal(gx[..., :-1], fx[..., 1:])
    np.testing.assert_array_equal(gx[..., -1], fx[..., -1])
    np.testing.assert_array_equal(gy, fy)
    tx, ty = flip_simcc(torch.from_numpy(sx), torch.from_numpy(sy), [(1, 2)])
    assert isinstance(tx, torch.Tensor)
    np.testing.assert_array_equal(tx.numpy(), gx)
    np.testing.assert_array_equal(ty.numpy(), gy)


def test_flip_test_recovers_mirrored_keypoints() -> None:
    """Model output for the mirrored input (pixel x -> W-1-x, joints swapped), flipped back with the shift,
    decodes to the original keypoints; without the shift it is one bin (0.5 px) too far right."""
    pairs = [(0, 1)]
    kpts = np.array([[37.5, 101.0], [150.0, 20.5]])
    mirrored = kpts[[1, 0]].copy()
    mirrored[:, 0] = 192 - 1 - mirrored[:, 0]
    lx_m, ly_m = _logits(*CODEC.encode(mirrored, np.ones(2))[:2])
    coords, _ = CODEC.decode(*flip_simcc(lx_m, ly_m, pairs))
    np.testing.assert_allclose(coords[0], kpts, atol=1e-6)
    unshifted, _ = CODEC.decode(*flip_simcc(lx_m, ly_m, pairs, shift=False))
    np.testing.assert_allclose(unshifted[0, :, 0] - kpts[:, 0], 0.5, atol=1e-6)
    # flip test: logits of both passes averaged, then softmax
    lx, ly = _logits(*CODEC.encode(kpts, np.ones(2))[:2])
    ax, ay = flip_test_logits(lx, ly, lx_m, ly_m, pairs)
    bx, by = flip_simcc(lx_m, ly_m, pairs)
    np.testing.assert_allclose(ax, (lx + bx) / 2)
    np.testing.assert_allclose(ay, (ly + by) / 2)
    np.testing.assert_allclose(CODEC.decode(ax, ay)[0][0], kpts, atol=1e-6)


def test_decode_to_image_uses_classic_affine() -> None:
    center, scale = np.array([320.0, 240.0]), np.array([240.0, 320.0])
    img_pts = np.array([[300.0, 200.0], [350.0, 300.0]])
    mat = get_affine_transform(center, scale, 0.0, CODEC.input_size, udp=False)
    crop_pts = affine_points(img_pts, mat)  # 192 / 240 = 0.8 input px per image px
    tx, ty, _ = CODEC.encode(crop_pts, np.ones(2))
    coords, scores = CODEC.decode_to_image(*_logits(tx, ty), center[None], scale[None])
    assert scores.shape == (1, 2)
    # argmax snaps to 0.5 input px = 0.625 image px; half of that is the worst case
    assert np.all(np.abs(coords[0] - img_pts) <= 0.3125 + 1e-4)
