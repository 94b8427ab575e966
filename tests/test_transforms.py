"""Affine crop geometry, flips and TokenPose augmentation (prunepose.data.transforms)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from prunepose.data.transforms import (
    AugmentConfig,
    AugmentResult,
    affine_points,
    box_to_center_scale,
    compose_affine,
    flip_keypoints,
    flip_matrix,
    get_affine_transform,
    half_body_center_scale,
    invert_affine,
    normalize_image,
    random_augment,
    warp_image,
)

PAIRS = [(1, 2), (3, 4)]


def test_box_to_center_scale_pads_to_aspect() -> None:
    center, scale = box_to_center_scale([10, 20, 30, 80], aspect_ratio=0.75)
    np.testing.assert_allclose(center, [25.0, 60.0])
    np.testing.assert_allclose(scale, [60 * 1.25, 80 * 1.25])  # width grown to 0.75 * 80
    _, scale = box_to_center_scale([0, 0, 120, 40], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(scale, [120.0, 160.0])


def test_udp_affine_maps_box_to_pixel_centres() -> None:
    center, scale = np.array([100.0, 200.0]), np.array([120.0, 160.0])
    mat = get_affine_transform(center, scale, 0.0, (192, 256))
    corners = np.array([[40.0, 120.0], [160.0, 280.0], [100.0, 200.0]])
    np.testing.assert_allclose(affine_points(corners, mat), [[0, 0], [191, 255], [95.5, 127.5]], atol=1e-9)
    classic = get_affine_transform(center, scale, 0.0, (192, 256), udp=False)
    np.testing.assert_allclose(affine_points(corners, classic), [[0, 0], [192, 256], [96, 128]], atol=1e-9)


def test_positive_rotation_is_counter_clockwise() -> None:
    mat = get_affine_transform([0.0, 0.0], [100.0, 100.0], 90.0, (101, 101))
    # a point to the right of the centre ends up above it (y down) in the crop
    np.testing.assert_allclose(affine_points(np.array([[10.0, 0.0]]), mat), [[50.0, 40.0]], atol=1e-9)
    ref = cv2.getRotationMatrix2D((0.0, 0.0), 90.0, 1.0)
    np.testing.assert_allclose(mat[:, :2], ref[:, :2], atol=1e-12)


def test_inverse_of_forward_is_identity() -> None:
    mat = get_affine_transform([320.0, 240.0], [150.0, 200.0], 27.0, (192, 256))
    inv = get_affine_transform([320.0, 240.0], [150.0, 200.0], 27.0, (192, 256), inv=True)
    np.testing.assert_allclose(compose_affine(inv, mat), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(invert_affine(mat), inv, atol=1e-12)
    pts = np.random.default_rng(0).uniform(0, 640, size=(17, 2))
    np.testing.assert_allclose(affine_points(affine_points(pts, mat), inv), pts, atol=1e-9)


def _blob(shape: tuple[int, int], centre: tuple[float, float], sigma: float = 3.0) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2)).astype(np.float32)


def _centroid(img: np.ndarray) -> np.ndarray:
    w = np.where(img > 0.05 * img.max(), img, 0.0)
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


@pytest.mark.parametrize("rot", [0.0, 30.0, -75.0])
def test_points_follow_the_warped_image(rot: float) -> None:
    """Draw a dot, warp the image, find the dot: it must be where affine_points (and cv2.transform) say."""
    dot = (211.3, 148.6)
    image = _blob((300, 400), dot)
    mat = get_affine_transform([200.0, 150.0], [150.0, 200.0], rot, (192, 256))
    crop = warp_image(image, mat, (192, 256))
    assert crop.shape == (256, 192)
    found = _centroid(crop)
    predicted = affine_points(np.array([dot]), mat)[0]
    via_cv2 = cv2.transform(np.array([[dot]], dtype=np.float64), mat)[0, 0]
    np.testing.assert_allclose(predicted, via_cv2, atol=1e-9)
    np.testing.assert_allclose(found, predicted, atol=0.05)


def test_flip_matrix_equals_array_flip_and_keypoint_flip() -> None:
    image = np.random.default_rng(0).integers(0, 255, size=(40, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_image(image, flip_matrix(30), (30, 40)), image[:, ::-1])
    kpts = np.array([[0.0, 1.0], [3.0, 4.0], [5.5, 6.0], [29.0, 7.0], [10.0, 11.0]])
    vis = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    fk, fv = flip_keypoints(kpts, vis, 30, PAIRS)
    np.testing.assert_allclose(fk[0], [29.0, 1.0])
    np.testing.assert_allclose(fk[1], [29.0 - 5.5, 6.0])  # joint 1 now holds mirrored joint 2
    np.testing.assert_allclose(fk[3], [29.0 - 10.0, 11.0])
    np.testing.assert_array_equal(fv, [1, 1, 0, 0, 1])
    back_k, back_v = flip_keypoints(fk, fv, 30, PAIRS)
    np.testing.assert_allclose(back_k, kpts)
    np.testing.assert_array_equal(back_v, vis)
    np.testing.assert_allclose(affine_points(kpts, flip_matrix(30))[:, 0], fk[[0, 2, 1, 4, 3], 0])


def test_half_body_center_scale() -> None:
    kpts = np.array([[10.0, 10.0], [20.0, 10.0], [15.0, 30.0], [40.0, 90.0], [60.0, 100.0], [50.0, 120.0]])
    vis = np.ones(6)

    class AlwaysUpper:
        def standard_normal(self) -> float:
            return 0.0

    res = half_body_center_scale(kpts, vis, [0, 1, 2], [3, 4, 5], 0.75, AlwaysUpper())  # type: ignore[arg-type]
    assert res is not None
    center, scale = res
    np.testing.assert_allclose(center, [15.0, 50.0 / 3.0])
    np.testing.assert_allclose(scale, np.array([21.0 * 0.75, 21.0]) * 1.5)  # extent 11 x 21, padded
    assert half_body_center_scale(kpts, np.r_[1, 0, 0, 0, 0, 0], [0, 1, 2], [3, 4, 5], 0.75,
                                  np.random.default_rng(0)) is None


def _augment(seed: int, cfg: AugmentConfig | None = None) -> AugmentResult:
    kpts = np.random.default_rng(123).uniform(100, 300, size=(17, 2))
    return random_augment(
        kpts, np.ones(17), np.array([200.0, 200.0]), np.array([150.0, 200.0]), 640,
        aspect_ratio=0.75, rng=np.random.default_rng(seed), cfg=cfg or AugmentConfig(),
        flip_pairs=[(1, 2), (3, 4), (5, 6)],
        upper_body_ids=list(range(11)),
        lower_body_ids=list(range(11, 17)),
    )


def test_random_augment_ranges_and_rates() -> None:
    cfg = AugmentConfig(half_body_prob=0.0)
    results = [_augment(s, cfg) for s in range(2000)]
    factors = np.array([r.scale[0] / 150.0 for r in results])
    rots = np.array([r.rotation for r in results])
    flips = np.array([r.flipped for r in results])
    assert factors.min() >= 0.65 - 1e-9 and factors.max() <= 1.35 + 1e-9
    assert np.all(np.abs(rots) <= 90.0)
    assert 0.35 < np.mean(rots == 0.0) < 0.45  # rotation applied with prob 0.6
    assert 0.45 < flips.mean() < 0.55
    assert 30.0 < np.std(rots[rots != 0]) < 45.0
    a, b = _augment(7), _augment(7)
    assert a.rotation == b.rotation and a.flipped == b.flipped
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_flipped_augment_matrices_agree() -> None:
    """Warping the original image with image_matrix == warping the mirrored image with crop_matrix."""
    cfg = AugmentConfig(half_body_prob=0.0)
    res = next(r for r in (_augment(s, cfg) for s in range(50)) if r.flipped and r.rotation != 0)
    assert res.center[0] == pytest.approx(639.0 - 200.0)  # centre mirrored in the 640-px-wide image
    image = np.random.default_rng(2).integers(0, 255, size=(400, 640, 3), dtype=np.uint8)
    a = warp_image(image, res.image_matrix((192, 256)), (192, 256))
    b = warp_image(np.ascontiguousarray(image[:, ::-1]), res.crop_matrix((192, 256)), (192, 256))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_normalize_image_rgb_order() -> None:
    crop = np.zeros((2, 3, 3), dtype=np.uint8)
    crop[..., 2] = 255  # red in BGR
    out = normalize_image(crop)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], (1 - 0.485) / 0.229, rtol=1e-6)
    np.testing.assert_allclose(out[2], (0 - 0.406) / 0.225, rtol=1e-6)
