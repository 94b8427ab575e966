"""Triangulation: exact recovery through the real Human3.6M cameras (with distortion), weights, RANSAC, the
inverse distortion, and every bad-input rule of prunepose.geometry.triangulation."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from prunepose.errors import DataError
from prunepose.geometry import Camera, load_cameras, project, world_to_camera
from prunepose.geometry.distortion import distort_normalized, distortion_jacobian, undistort_normalized
from prunepose.geometry.triangulation import (
    camera_centers,
    point_depths,
    projection_matrices,
    reprojection_error,
    triangulate,
    triangulate_cameras,
    triangulate_dlt,
    triangulate_robust,
    undistort_points,
)
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
H36M = None if DATA is None else DATA / "h36m"
needs_h36m = pytest.mark.skipif(H36M is None or not (H36M / "cameras.json").is_file(),
                                reason="shared Human3.6M data (../shared/data/h36m) not available")


def _look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera rotation of a camera at ``center`` looking at ``target`` (z forward, y down, z-up world)."""
    z = target - center
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def _ring(n: int = 4, radius: float = 4000.0, **overrides: object) -> list[Camera]:
    """``n`` synthetic cameras on a circle around the origin at 1.5 m height, all looking at (0, 0, 1000)."""
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n + 0.3
        c = np.array([radius * np.cos(a), radius * np.sin(a), 1500.0])
        fields = dict(R_world_to_cam=_look_at(c, np.array([0.0, 0.0, 1000.0])), center_world_mm=c,
                      f=[1150.0, 1145.0], c=[500.0, 505.0], k=[-0.2, 0.24, -0.002], p=[-0.001, 0.0005],
                      width=1000, height=1002, name=f"ring{i}")
        fields.update(overrides)
        cams.append(Camera(**fields))  # type: ignore[arg-type]
    return cams


def _points(n: int = 17, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([-400, -400, 0], [400, 400, 1800], size=(n, 3))


def _px(cams: list[Camera], X: np.ndarray) -> np.ndarray:
    return np.stack([project(world_to_camera(X, c), c) for c in cams])


# ----------------------------------------------------------------------------------------- distortion


@pytest.mark.parametrize("model", ["h36m", "opencv"])
def test_distortion_jacobian_matches_finite_differences(model: str) -> None:
    k, p = np.array([-0.21, 0.25, -0.01]), np.array([-0.0012, 0.0009])
    xy = np.random.default_rng(1).uniform(-0.5, 0.5, size=(50, 2))
    jac = distortion_jacobian(xy, k, p, model)
    eps = 1e-6
    for axis in range(2):
        d = np.zeros(2)
        d[axis] = eps
        num = (distort_normalized(xy + d, k, p, model) - distort_normalized(xy - d, k, p, model)) / (2 * eps)
        np.testing.assert_allclose(jac[..., axis], num, atol=1e-8)


@pytest.mark.parametrize("model", ["h36m", "opencv"])
def test_undistortion_inverts_distortion(model: str) -> None:
    k, p = np.array([-0.21, 0.25, -0.01]), np.array([-0.0012, 0.0009])
    xy = np.random.default_rng(2).uniform(-0.55, 0.55, size=(200, 2))
    back = undistort_normalized(distort_normalized(xy, k, p, model), k, p, model)
    np.testing.assert_allclose(back, xy, atol=1e-11)


def test_distortion_models_differ_in_the_tangential_terms() -> None:
    # x_d of the two models at (0.3, 0.2) with only p1 set: h36m has p1*x*y, OpenCV 2*p1*x*y.
    xy, k, p = np.array([0.3, 0.2]), np.zeros(3), np.array([0.01, 0.0])
    assert distort_normalized(xy, k, p, "h36m")[0] == pytest.approx(0.3 + 0.01 * 0.3 * 0.2)
    assert distort_normalized(xy, k, p, "opencv")[0] == pytest.approx(0.3 + 2 * 0.01 * 0.3 * 0.2)


def test_undistortion_outside_the_invertible_region_is_nan_with_warning() -> None:
    # k1 = -0.5: x_d = x (1 - 0.5 x^2) peaks at x_d = 0.544 (x = 0.816); x_d = 0.7 has no preimage.
    k, p = np.array([-0.5, 0.0, 0.0]), np.zeros(2)
    with pytest.warns(RuntimeWarning, match="1 of 2 points have no inverse"):
        out = undistort_normalized(np.array([[0.7, 0.0], [0.2, 0.0]]), k, p)
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()


# ----------------------------------------------------------------------------------- exact recovery


@needs_h36m
@pytest.mark.parametrize("subject", ["S9", "S11"])
def test_dlt_recovers_mocap_exactly_through_the_real_h36m_cameras(subject: str) -> None:
    assert H36M is not None
    cams = list(load_cameras(H36M / "cameras.json")[subject].values())
    pose = np.load(H36M / "h36m_positions3d_17j_world_m.npz")[f"{subject}/Walking 1"][::200].astype(np.float64)
    X = pose * 1000.0  # (T, 17, 3) mm
    px = _px(cams, X)  # distorted pixels, as the detector sees them
    assert np.abs(undistort_points(px, cams) - px).max() > 1.0  # distortion is not negligible here
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean geometry: no warning at all
        res = triangulate_cameras(cams, px)
    np.testing.assert_allclose(res.points, X, atol=1e-6)
    assert np.nanmax(res.reprojection_error) < 1e-6
    assert res.views_used.all() and (res.depth > 0).all()
    # metres in, metres out: the same points scaled
    np.testing.assert_allclose(triangulate_cameras(cams, px, units="m").points, pose, atol=1e-9)
    # ignoring the distortion is measurably wrong (why undistort_points exists)
    plain = triangulate_dlt(projection_matrices(cams), px)
    assert np.linalg.norm(plain - X, axis=-1).mean() > 1.0


def test_projection_matrix_agrees_with_the_camera_model_without_distortion() -> None:
    cams = _ring(3, k=[0.0, 0.0, 0.0], p=[0.0, 0.0])
    X = _points(5)
    P = projection_matrices(cams)
    h = np.einsum("vij,nj->vni", P, np.concatenate([X, np.ones((5, 1))], axis=1))
    np.testing.assert_allclose(h[..., :2] / h[..., 2:], _px(cams, X), atol=1e-9)
    np.testing.assert_allclose(camera_centers(P), [c.center_world_mm for c in cams], atol=1e-6)


def test_reprojection_error_and_depth_hand_computed() -> None:
    P = np.array([[[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]])  # K = I at the origin, looking down +z
    X = np.array([1.0, 2.0, 4.0])  # projects to (0.25, 0.5)
    err = reprojection_error(P, X, np.array([[0.25, 1.5]]))
    assert err.shape == (1,) and err[0] == pytest.approx(1.0)
    assert point_depths(P, X)[0] == pytest.approx(4.0)
    assert point_depths(-2.0 * P, X)[0] == pytest.approx(4.0)  # P is defined up to scale, sign included
    assert point_depths(P, np.array([0.0, 0.0, -3.0]))[0] == pytest.approx(-3.0)


# --------------------------------------------------------------------------------- weights and RANSAC


def test_zero_weight_view_is_ignored_even_when_corrupted() -> None:
    cams = _ring(4)
    X = _points()
    und = undistort_points(_px(cams, X), cams)
    bad = und.copy()
    bad[2] += 300.0
    w = np.ones((4, 17))
    w[2] = 0.0
    P = projection_matrices(cams)
    np.testing.assert_allclose(triangulate_dlt(P, bad, w), X, atol=1e-6)
    assert np.linalg.norm(triangulate_dlt(P, bad) - X, axis=-1).min() > 10.0  # unweighted: pulled away


def test_confidence_weights_pull_towards_the_confident_views() -> None:
    cams = _ring(4)
    X = _points()
    und = undistort_points(_px(cams, X), cams)
    noisy = und.copy()
    noisy[1] += np.random.default_rng(3).normal(scale=15.0, size=noisy[1].shape)
    P = projection_matrices(cams)
    w = np.ones((4, 17))
    w[1] = 0.05
    err_w = np.linalg.norm(triangulate_dlt(P, noisy, w) - X, axis=-1).mean()
    err_u = np.linalg.norm(triangulate_dlt(P, noisy) - X, axis=-1).mean()
    assert err_w < 0.2 * err_u


def test_ransac_rejects_an_outlier_view() -> None:
    cams = _ring(4)
    X = _points()
    und = undistort_points(_px(cams, X), cams)
    und[3, :, 0] += 150.0  # a wrong detection in view 4 for every joint
    P = projection_matrices(cams)
    res = triangulate(P, und, method="ransac", threshold_px=10.0)
    np.testing.assert_allclose(res.points, X, atol=1e-6)
    assert not res.views_used[3].any() and res.views_used[:3].all()
    assert np.linalg.norm(triangulate_dlt(P, und) - X, axis=-1).mean() > 10.0
    np.testing.assert_allclose(triangulate_robust(P, und, threshold_px=10.0), X, atol=1e-6)


def test_ransac_equals_dlt_without_outliers() -> None:
    cams = _ring(4)
    X = _points()
    und = undistort_points(_px(cams, X), cams) + np.random.default_rng(4).normal(scale=1.0, size=(4, 17, 2))
    P = projection_matrices(cams)
    np.testing.assert_allclose(triangulate_robust(P, und, threshold_px=25.0), triangulate_dlt(P, und), atol=1e-9)


def test_batch_shape_is_kept() -> None:
    cams = _ring(3)
    X = _points(12).reshape(3, 4, 3)
    P = projection_matrices(cams)
    out = triangulate_dlt(P, undistort_points(_px(cams, X), cams))
    assert out.shape == (3, 4, 3)
    np.testing.assert_allclose(out, X, atol=1e-6)


# ------------------------------------------------------------------------------------------ bad input


def test_fewer_than_two_usable_views_gives_nan_with_a_warning() -> None:
    cams = _ring(3)
    X = _points()
    und = undistort_points(_px(cams, X), cams)
    und[1:, 5] = np.nan  # joint 5 only seen by view 0
    w = np.ones((3, 17))
    w[0, 7] = w[1, 7] = 0.0  # joint 7 only by view 2
    with pytest.warns(RuntimeWarning, match="2 of 17 points have fewer than two usable views"):
        out = triangulate_dlt(projection_matrices(cams), und, w)
    assert np.isnan(out[[5, 7]]).all()
    keep = np.setdiff1d(np.arange(17), [5, 7])
    np.testing.assert_allclose(out[keep], X[keep], atol=1e-6)


def test_no_triangulable_point_is_an_error() -> None:
    cams = _ring(2)
    und = undistort_points(_px(cams, _points()), cams)
    with pytest.raises(DataError, match="no point has two usable views"):
        triangulate_dlt(projection_matrices(cams), und, np.array([np.ones(17), np.zeros(17)]))


def test_shape_and_value_errors_name_the_argument() -> None:
    P = projection_matrices(_ring(3))
    pts = np.zeros((3, 17, 2))
    with pytest.raises(DataError, match=r"points must be \(V=3"):
        triangulate_dlt(P, np.zeros((2, 17, 2)))
    with pytest.raises(DataError, match=r"points must be \(V=3"):
        triangulate_dlt(P, np.zeros((3, 17, 3)))
    with pytest.raises(DataError, match="weights must be"):
        triangulate_dlt(P, pts, np.ones((3, 16)))
    with pytest.raises(DataError, match="weights must be finite and >= 0"):
        triangulate_dlt(P, pts, -np.ones((3, 17)))
    with pytest.raises(DataError, match=r"P must be \(V, 3, 4\)"):
        triangulate_dlt(P[:, :, :3], pts)
    with pytest.raises(DataError, match="P contains non-finite"):
        triangulate_dlt(np.full_like(P, np.nan), pts)
    with pytest.raises(DataError, match="method must be"):
        triangulate(P, pts, method="median")
    with pytest.raises(DataError, match="threshold_px"):
        triangulate(P, pts, method="ransac", threshold_px=0.0)
    with pytest.raises(DataError, match=r"cameras\[1\] must be"):
        projection_matrices([_ring(1)[0], "cam"])  # type: ignore[list-item]


def test_camera_facing_away_is_flagged_by_cheirality() -> None:
    cams = _ring(3)
    X = _points()
    und = undistort_points(_px(cams, X), cams)
    P = projection_matrices(cams)
    # The classic mistake: a camera rotated by 180 deg about its y axis (x and z negated) still yields finite
    # pixels for points behind it. Feed its projections as if the scene were in front.
    flip = np.diag([-1.0, 1.0, -1.0])
    P_bad = P.copy()
    K = np.array([[1150.0, 0, 500.0], [0, 1145.0, 505.0], [0, 0, 1]])
    R, C = cams[0].R_world_to_cam, cams[0].center_world_mm
    Rf = flip @ R
    P_bad[0] = K @ np.concatenate([Rf, (-Rf @ C)[:, None]], axis=1)
    mirrored = 2 * C - X  # points behind the flipped camera that project where X projected
    und_bad = und.copy()
    h = P_bad[0] @ np.concatenate([mirrored, np.ones((17, 1))], axis=1).T
    und_bad[0] = (h[:2] / h[2]).T
    with pytest.warns(RuntimeWarning, match="behind a camera that observed them"):
        res = triangulate(P_bad, und_bad)
    assert (res.depth[0] <= 0).any()


def test_coincident_camera_centres_are_an_error() -> None:
    cam = _ring(1)[0]
    other = Camera(R_world_to_cam=_look_at(cam.center_world_mm, np.array([100.0, 0.0, 900.0])),
                   center_world_mm=cam.center_world_mm, f=cam.f, c=cam.c, k=cam.k, p=cam.p, width=1000, height=1002)
    with pytest.raises(DataError, match="camera centres coincide"):
        triangulate_dlt(projection_matrices([cam, other]), np.full((2, 3, 2), 500.0))


def test_nearly_parallel_rays_are_warned_about() -> None:
    # Two cameras 2 mm apart looking at points 4 m away: rays meet at ~0.03 deg.
    a = _ring(1, k=[0.0, 0.0, 0.0], p=[0.0, 0.0])[0]
    b = Camera(R_world_to_cam=a.R_world_to_cam, center_world_mm=a.center_world_mm + [0.0, 0.0, 2.0], f=a.f,
               c=a.c, k=a.k, p=a.p, width=1000, height=1002)
    X = _points(4)
    with pytest.warns(RuntimeWarning, match="rays less than 1 deg from parallel"):
        triangulate_dlt(projection_matrices([a, b]), _px([a, b], X))


def test_parallel_rays_give_nan_with_a_warning() -> None:
    # Two cameras seeing the same direction (point at infinity): pure translation, identical image points.
    a = _ring(1, k=[0.0, 0.0, 0.0], p=[0.0, 0.0])[0]
    b = Camera(R_world_to_cam=a.R_world_to_cam, center_world_mm=a.center_world_mm + [0.0, 0.0, 500.0], f=a.f,
               c=a.c, k=a.k, p=a.p, width=1000, height=1002)
    pts = np.array([[[620.0, 400.0]], [[620.0, 400.0]]])
    with pytest.warns(RuntimeWarning, match="at infinity"):
        out = triangulate_dlt(projection_matrices([a, b]), pts)
    assert np.isnan(out).all()


def test_opencv_model_matches_cv2_undistort_points() -> None:
    """Independent reference: OpenCV's own (iterative) inverse of its Brown-Conrady model."""
    cv2 = pytest.importorskip("cv2")
    cam = _ring(1, k=[-0.22, 0.2, 0.024], p=[8.7e-5, 9.8e-4], distortion_model="opencv")[0]
    K = np.array([[cam.f[0], 0, cam.c[0]], [0, cam.f[1], cam.c[1]], [0, 0, 1.0]])
    dist = np.array([cam.k[0], cam.k[1], cam.p[0], cam.p[1], cam.k[2]])
    px = np.random.default_rng(5).uniform([100, 100], [900, 900], size=(1, 50, 2))
    ref = cv2.undistortPoints(px.reshape(-1, 1, 2), K, dist, None, K,
                              criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)).reshape(1, 50, 2)
    np.testing.assert_allclose(undistort_points(px, [cam]), ref, atol=1e-4)
    # and the forward direction agrees with cv2.projectPoints
    X = _points(10)
    ref_px, _ = cv2.projectPoints(world_to_camera(X, cam), np.zeros(3), np.zeros(3), K, dist)
    np.testing.assert_allclose(project(world_to_camera(X, cam), cam), ref_px.reshape(-1, 2), atol=1e-6)


def test_cameras_facing_each_other_across_the_point_are_ill_conditioned() -> None:
    # Two cameras on opposite sides of the room: for a point on the line joining their centres the rays are
    # anti-parallel, so its depth along that line is unconstrained, just as for parallel rays. A point off
    # the line (the look-at target) is well conditioned.
    cams = _ring(2, k=[0.0, 0.0, 0.0], p=[0.0, 0.0])
    centers = np.stack([c.center_world_mm for c in cams])
    X = np.stack([centers[0] + 0.4 * (centers[1] - centers[0]), [0.0, 0.0, 1000.0]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = triangulate(projection_matrices(cams), _px(cams, X))
    assert any("from parallel" in str(w.message) for w in caught)
    assert res.ray_angle_deg[0] < 1.0 and res.ray_angle_deg[1] > 10.0
