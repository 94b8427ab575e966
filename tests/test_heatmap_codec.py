"""HeatmapCodec: UDP targets, DARK decoding, flipping, mapping back to the image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prunepose.codecs.heatmap import HeatmapCodec, flip_heatmaps, input_to_image
from prunepose.data.transforms import affine_points, get_affine_transform

CODEC = HeatmapCodec(input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0)


def test_udp_stride_and_kernel() -> None:
    np.testing.assert_allclose(CODEC.feat_stride, [191 / 47, 255 / 63])
    assert CODEC.kernel_size == 11
    assert HeatmapCodec(sigma=3.0).kernel_size == 17
    np.testing.assert_allclose(HeatmapCodec(use_udp=False).feat_stride, [4.0, 4.0])


def test_encode_is_unnormalised_subpixel_gaussian() -> None:
    mu = np.array([20.3, 30.7])  # heatmap px
    kpts = (mu * CODEC.feat_stride)[None]
    hm, w = CODEC.encode(kpts, np.ones(1))
    assert hm.shape == (1, 64, 48) and hm.dtype == np.float32 and w.dtype == np.float32
    assert w[0] == 1.0
    ys, xs = np.mgrid[0:64, 0:48]
    expected = np.exp(-((xs - mu[0]) ** 2 + (ys - mu[1]) ** 2) / (2 * 2.0**2))
    np.testing.assert_allclose(hm[0], expected, atol=1e-6)
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (31, 20)
    assert hm[0].max() < 1.0  # off-grid centre: no pixel reaches the peak value 1


def test_encode_weights() -> None:
    s = CODEC.feat_stride
    kpts = np.array([
        [20.0, 20.0],  # visible, on map
        [20.0, 20.0],  # not visible
        [-7.0, 20.0],  # off map, but the 3-sigma window (radius 6) still touches column 0
        [-7.6, 20.0],  # rounded centre -8: window [-14, -1] is off the map
        [20.0, 64.0 + 6.0],  # bottom: window [64, 77) off map (last row is 63)
        [np.nan, 3.0],
    ]) * s
    hm, w = CODEC.encode(kpts, np.array([1, 0, 2, 1, 1, 1], dtype=np.float32))
    np.testing.assert_array_equal(w, [1, 0, 1, 0, 0, 0])
    assert np.all(hm[[1, 3, 4, 5]] == 0)
    assert hm[2].max() > 0


@pytest.mark.parametrize("mu", [(20.3, 30.7), (10.5, 12.25), (33.9, 50.1), (24.0, 32.0)])
def test_encode_decode_round_trip_dark(mu: tuple[float, float]) -> None:
    kpts = np.array(mu)[None] * CODEC.feat_stride
    hm, _ = CODEC.encode(kpts, np.ones(1))
    coords, scores = CODEC.decode(hm[None])
    assert coords.shape == (1, 1, 2) and scores.shape == (1, 1)
    err_hm = np.abs(coords[0, 0] - kpts[0]) / CODEC.feat_stride
    assert np.all(err_hm < 0.05), err_hm
    assert scores[0, 0] == pytest.approx(hm.max())


def test_dark_beats_argmax_off_grid() -> None:
    kpts = np.array([[20.4, 30.6], [11.35, 40.45], [30.3, 9.6]]) * CODEC.feat_stride
    hm, _ = CODEC.encode(kpts, np.ones(3))
    dark, _ = CODEC.decode(hm[None], refine="dark")
    plain, _ = CODEC.decode(hm[None], refine="none")
    quarter, _ = CODEC.decode(hm[None], refine="quarter")
    err = {name: np.linalg.norm((c[0] - kpts) / CODEC.feat_stride, axis=1)
           for name, c in [("dark", dark), ("none", plain), ("quarter", quarter)]}
    assert np.all(err["dark"] < 0.05)
    assert np.all(err["none"] > 0.4)  # each centre is ~0.4-0.6 px off the grid
    assert np.all(err["dark"] < err["quarter"]) and np.all(err["quarter"] < err["none"])


def test_decode_batch_torch_and_empty_map() -> None:
    kpts = np.array([[50.0, 60.0], [100.0, 200.0]])
    hm, _ = CODEC.encode(kpts, np.ones(2))
    batch = np.stack([hm, np.zeros_like(hm)])
    coords_np, scores_np = CODEC.decode(batch)
    coords_t, scores_t = CODEC.decode(torch.from_numpy(batch))
    np.testing.assert_allclose(scores_np, scores_t)
    np.testing.assert_allclose(coords_np, coords_t)
    np.testing.assert_allclose(coords_np[0], kpts, atol=0.05 * 4)
    assert np.all(scores_np[1] == 0) and np.all(coords_np[1] == 0)
    with pytest.raises(ValueError):
        CODEC.decode(hm)  # (K, H, W) is not a batch


def test_non_udp_centre_is_rounded() -> None:
    codec = HeatmapCodec(use_udp=False)
    hm, w = codec.encode(np.array([[4.0 * 20.3, 4.0 * 30.7]]), np.ones(1))
    assert w[0] == 1 and hm[0, 31, 20] == pytest.approx(1.0)
    assert hm[0, 31, 20 + 7] == 0  # cut to the 3-sigma window
    coords, _ = codec.decode(hm[None])
    np.testing.assert_allclose(coords[0, 0], [80.0, 124.0], atol=0.05)


def _distinct_maps(b: int = 2, k: int = 5) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((b, k, 8, 6)).astype(np.float32)


def test_flip_heatmaps_numpy_and_torch() -> None:
    pairs = [(1, 2), (3, 4)]
    hm = _distinct_maps()
    flipped = flip_heatmaps(hm, pairs)
    assert isinstance(flipped, np.ndarray)
    np.testing.assert_array_equal(flipped[:, 1], hm[:, 2, :, ::-1])
    np.testing.assert_array_equal(flipped[:, 4], hm[:, 3, :, ::-1])
    np.testing.assert_array_equal(flipped[:, 0], hm[:, 0, :, ::-1])
    np.testing.assert_array_equal(flip_heatmaps(flipped, pairs), hm)
    flipped_t = flip_heatmaps(torch.from_numpy(hm), pairs)
    assert isinstance(flipped_t, torch.Tensor)
    np.testing.assert_array_equal(flipped_t.numpy(), flipped)
    shifted = flip_heatmaps(hm, pairs, shift=True)
    np.testing.assert_array_equal(shifted[..., 1:], flipped[..., :-1])
    np.testing.assert_array_equal(flip_heatmaps(torch.from_numpy(hm), pairs, shift=True).numpy(), shifted)


def test_udp_flip_needs_no_shift() -> None:
    """Target of the mirrored crop == mirrored target: why TokenPose's flip test uses no shift."""
    pairs = [(0, 1)]
    kpts = np.array([[37.3, 101.2], [150.8, 20.9]])
    hm, _ = CODEC.encode(kpts, np.ones(2))
    mirrored = kpts[[1, 0]].copy()
    mirrored[:, 0] = 192 - 1 - mirrored[:, 0]
    hm_m, _ = CODEC.encode(mirrored, np.ones(2))
    np.testing.assert_allclose(flip_heatmaps(hm[None], pairs)[0], hm_m, atol=1e-6)


def test_input_to_image_inverts_crop_affine() -> None:
    rng = np.random.default_rng(1)
    img_pts = rng.uniform(100, 400, size=(2, 17, 2))
    centers = np.array([[250.0, 260.0], [300.0, 200.0]])
    scales = np.array([[300.0, 400.0], [240.0, 320.0]])
    rots = np.array([0.0, 33.0])
    mats = [get_affine_transform(centers[b], scales[b], rots[b], (192, 256)) for b in range(2)]
    crop = np.stack([affine_points(img_pts[b], mats[b]) for b in range(2)])
    back = input_to_image(crop, centers, scales, (192, 256), rots)
    np.testing.assert_allclose(back, img_pts, atol=1e-9)
    np.testing.assert_allclose(input_to_image(crop[1], centers[1], scales[1], (192, 256), 33.0), img_pts[1])


def test_decode_to_image_end_to_end() -> None:
    center, scale = np.array([320.0, 240.0]), np.array([240.0, 320.0])
    img_pts = np.array([[300.5, 200.25], [350.0, 300.0]])
    mat = get_affine_transform(center, scale, 0.0, CODEC.input_size)
    hm, _ = CODEC.encode(affine_points(img_pts, mat), np.ones(2))
    coords, scores = CODEC.decode_to_image(hm[None], center[None], scale[None])
    assert scores.shape == (1, 2)
    stride_img = scale[0] / 47
    assert np.all(np.abs(coords[0] - img_pts) < 0.05 * stride_img)
