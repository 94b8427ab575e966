"""Multi-view triangulation: projection matrices, undistortion, (weighted) DLT and a RANSAC variant.

Shapes and frames
-----------------
* ``P`` (V, 3, 4): one pinhole projection matrix per view, ``K [R | -R C]``, mapping homogeneous world points
  to **undistorted** pixels. Build it with `projection_matrices`; lens distortion is removed from the 2D
  points first with `undistort_points` (a DLT cannot model it).
* ``points`` (V, ..., 2): undistorted pixels, view axis first, any batch shape after it (joints, or frames x
  joints); ``weights`` (V, ...) optional confidences. Results are (..., 3) in the world unit of ``P``.

Missing data and bad geometry (the rules every function here follows)
---------------------------------------------------------------------
* A view is *usable* for a point when its 2D point is finite and its weight is > 0. NaN marks a missing
  detection; weight 0 drops a view on purpose. Non-finite or negative weights are an error.
* A point with fewer than two usable views is returned as NaN, with one `RuntimeWarning` giving how many
  points that hit; when *no* point can be triangulated `DataError` is raised instead.
* A solution at infinity (parallel rays: the homogeneous coordinate vanishes) is NaN with a warning.
* Points behind a camera that observed them (negative depth, "cheirality") are kept but warned about, since
  it almost always means a wrong extrinsic convention (e.g. camera-to-world R used as world-to-camera).
* Views whose rays meet at less than ``min_angle_deg`` (or more than 180 - ``min_angle_deg``: cameras facing
  each other across the point) give an ill-conditioned depth: warned about.
* Coincident camera centres (no baseline) make triangulation undefined for every point: `DataError`.
  Collinear centres are *not* rejected: only points on that line are degenerate, and those are caught by
  the ray-angle test.
* Shape errors raise `DataError` naming the argument.

Numerics: the world is translated/scaled to the camera centres' centroid and spread, and each DLT row is
scaled to unit norm before the weight is applied (Hartley-style conditioning), so millimetre and metre
inputs give the same answer to ~1e-9 relative.
"""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prunepose.errors import DataError
from prunepose.geometry.camera import Camera, Units
from prunepose.geometry.distortion import undistort_normalized

#: Default smallest angle (degrees) between the rays of two views for a well-conditioned depth.
MIN_RAY_ANGLE_DEG = 1.0


# --------------------------------------------------------------------------------------------- cameras


def projection_matrices(cameras: Sequence[Camera], units: Units = "mm") -> np.ndarray:
    """``K [R | -R C]`` per camera -> (V, 3, 4) float64, world points in ``units`` to undistorted pixels."""
    cameras = list(cameras)
    if not cameras:
        raise DataError("cameras: need at least one camera")
    out = np.empty((len(cameras), 3, 4))
    for i, cam in enumerate(cameras):
        if not isinstance(cam, Camera):
            raise DataError(f"cameras[{i}] must be a prunepose.geometry.Camera, got {type(cam).__name__}")
        K = np.array([[cam.f[0], 0.0, cam.c[0]], [0.0, cam.f[1], cam.c[1]], [0.0, 0.0, 1.0]])
        R = cam.R_world_to_cam
        out[i] = K @ np.concatenate([R, (-R @ cam.center(units))[:, None]], axis=1)
    return out


def undistort_points(points: np.ndarray, cameras: Sequence[Camera]) -> np.ndarray:
    """Distorted pixels (V, ..., 2) -> undistorted pixels (same shape), view ``v`` through ``cameras[v]``.

    Inverts the camera's own distortion model (``Camera.distortion_model``, Human3.6M's by default) with
    Newton's method; NaN points stay NaN, points outside the model's invertible region become NaN with a
    warning (see `prunepose.geometry.distortion.undistort_normalized`).
    """
    cameras = list(cameras)
    pts = _as_float(points, "points")
    if pts.ndim < 2 or pts.shape[-1] != 2 or pts.shape[0] != len(cameras):
        raise DataError(f"points must be (V={len(cameras)}, ..., 2) distorted pixels, got {pts.shape}")
    out = np.empty_like(pts)
    for v, cam in enumerate(cameras):
        model = getattr(cam, "distortion_model", "h36m")
        xy = undistort_normalized((pts[v] - cam.c) / cam.f, cam.k, cam.p, model, name=cam.name)
        out[v] = xy * cam.f + cam.c
    return out


def camera_centers(P: np.ndarray) -> np.ndarray:
    """Centres (V, 3) of finite projective cameras: ``C = -M^-1 p4`` with ``P = [M | p4]``."""
    P = _check_P(P)
    M = P[:, :, :3]
    if np.any(np.abs(np.linalg.det(M)) < 1e-12 * np.linalg.norm(M, axis=(1, 2)) ** 3):
        raise DataError("P: a camera has a singular left 3x3 block (not a finite projective camera)")
    return -np.linalg.solve(M, P[:, :, 3:])[..., 0]


def check_camera_set(P: np.ndarray, rel_tol: float = 1e-6) -> np.ndarray:
    """Raise `DataError` when all camera centres coincide (no baseline); return the centres (V, 3)."""
    centers = camera_centers(P)
    spread = np.max(np.linalg.norm(centers[:, None] - centers[None], axis=-1))
    scale = max(1.0, float(np.max(np.linalg.norm(centers, axis=-1))))
    if centers.shape[0] >= 2 and spread <= rel_tol * scale:
        raise DataError(f"P: all {centers.shape[0]} camera centres coincide (largest baseline {spread:.3g}): "
                        "rays from one centre cannot be triangulated")
    return centers


# ------------------------------------------------------------------------------------- small helpers


def _as_float(value: object, name: str) -> np.ndarray:
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be a numeric array") from exc


def _check_P(P: object) -> np.ndarray:
    P = _as_float(P, "P")
    if P.ndim != 3 or P.shape[1:] != (3, 4):
        raise DataError(f"P must be (V, 3, 4) projection matrices, got {P.shape}")
    if not np.all(np.isfinite(P)):
        raise DataError("P contains non-finite values")
    return P


def _check_inputs(P: object, points: object, weights: object | None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> P (V,3,4), points (V,N,2), weights (V,N) with 0 where a view is unusable."""
    P = _check_P(P)
    pts = _as_float(points, "points")
    V = P.shape[0]
    if pts.ndim < 2 or pts.shape[0] != V or pts.shape[-1] != 2:
        raise DataError(f"points must be (V={V}, ..., 2) to match P {P.shape}, got {pts.shape}")
    if weights is None:
        w = np.ones(pts.shape[:-1])
    else:
        w = _as_float(weights, "weights")
        if w.shape != pts.shape[:-1]:
            raise DataError(f"weights must be {pts.shape[:-1]} (points without the last axis), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataError("weights must be finite and >= 0 (use 0 to drop a view, NaN points for missing ones)")
    pts = pts.reshape(V, -1, 2)
    w = np.where(np.isfinite(pts).all(axis=-1), w.reshape(V, -1), 0.0)
    return P, pts, w


def _normalizer(P: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """World similarity T (X_world = s X_n + c0) from the camera centres -> (P @ T, c0, s)."""
    centers = check_camera_set(P)
    c0 = centers.mean(axis=0)
    s = float(np.mean(np.linalg.norm(centers - c0, axis=-1))) or 1.0
    T = np.eye(4)
    T[:3, :3] *= s
    T[:3, 3] = c0
    return P @ T, c0, s


def _dlt_normalized(Pn: np.ndarray, pts: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted DLT in the normalised world: Pn (V,3,4), pts (V,N,2), w (V,N) -> homogeneous (N, 4).

    Rows ``x P3 - P1`` and ``y P3 - P2`` are scaled to unit norm, then by the view's weight; the solution is
    the right singular vector of the smallest singular value (batched SVD over N).
    """
    x = np.nan_to_num(pts[..., 0])[..., None]  # (V, N, 1); unusable views have weight 0
    y = np.nan_to_num(pts[..., 1])[..., None]
    rows = np.stack([x * Pn[:, None, 2] - Pn[:, None, 0], y * Pn[:, None, 2] - Pn[:, None, 1]], axis=1)
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)  # (V, 2, N, 1)
    rows = rows / np.where(norms > 0, norms, 1.0) * w[:, None, :, None]
    A = rows.transpose(2, 0, 1, 3).reshape(pts.shape[1], -1, 4)  # (N, 2V, 4)
    _, _, vh = np.linalg.svd(A, full_matrices=False)
    return vh[:, -1, :]


def _dehomogenize(Xh: np.ndarray, c0: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) normalised homogeneous -> world (N, 3) and a mask of points at infinity."""
    w4 = Xh[:, 3]
    at_inf = np.abs(w4) < 1e-9 * np.linalg.norm(Xh, axis=-1)
    X = Xh[:, :3] / np.where(at_inf, np.nan, w4)[:, None]
    return X * s + c0, at_inf


def project_points(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """World points (..., 3) -> undistorted pixels (V, ..., 2) in every view of ``P``."""
    P = _check_P(P)
    X = _as_float(X, "X")
    if X.shape[-1] != 3:
        raise DataError(f"X must be (..., 3) world points, got {X.shape}")
    h = np.einsum("vij,...j->v...i", P[:, :, :3], X) + P[:, :, 3].reshape((P.shape[0],) + (1,) * (X.ndim - 1) + (3,))
    return h[..., :2] / h[..., 2:3]


def point_depths(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Signed depth (V, ...) of world points (..., 3) in each camera (Hartley & Zisserman eq. 6.15):
    ``sign(det M) w / ||m3||`` with ``P X = w (x, y, 1)``; positive = in front of the camera."""
    P = _check_P(P)
    X = _as_float(X, "X")
    w = np.einsum("vj,...j->v...", P[:, 2, :3], X) + P[:, 2, 3].reshape((-1,) + (1,) * (X.ndim - 1))
    scale = np.sign(np.linalg.det(P[:, :, :3])) / np.linalg.norm(P[:, 2, :3], axis=-1)
    return w * scale.reshape((-1,) + (1,) * (X.ndim - 1))


def reprojection_error(P: np.ndarray, X: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Pixel distance (V, ...) between ``points`` (V, ..., 2) and the projection of ``X`` (..., 3).

    NaN where the point or ``X`` is missing. Both sides are undistorted pixels (as the DLT sees them).
    """
    pts = _as_float(points, "points")
    proj = project_points(P, X)
    if pts.shape != proj.shape:
        raise DataError(f"points must be {proj.shape} to match P and X, got {pts.shape}")
    return np.linalg.norm(proj - pts, axis=-1)


def _ray_angles(centers: np.ndarray, X: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Best triangulation angle (deg, in [0, 90]) over pairs of usable views, per point: X (N,3), usable (V,N).

    The angle between two rays is folded to ``min(theta, 180 - theta)``: rays from cameras facing each other
    across the subject (theta near 180) constrain depth as badly as nearly parallel ones (the depth error
    grows like 1 / sin(theta) either way).
    """
    d = X[None] - centers[:, None]  # (V, N, 3)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    cos = np.abs(np.einsum("anc,bnc->abn", d, d))
    pair = usable[:, None] & usable[None]
    cos = np.where(pair, cos, np.inf)
    best = np.clip(np.min(cos, axis=(0, 1)), 0.0, 1.0)
    return np.degrees(np.arccos(best))


# --------------------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class Triangulation:
    """What `triangulate` found, every array with the caller's batch shape ``...``.

    Attributes:
        points: (..., 3) world points (NaN where not triangulable).
        views_used: (V, ...) bool, the views that entered the final solve (for RANSAC: the inliers).
        reprojection_error: (V, ...) pixels in every view with a 2D point (NaN where the point is missing).
        depth: (V, ...) signed depth in each camera (world unit); <= 0 means behind that camera.
        ray_angle_deg: (...) best triangulation angle over pairs of used views, folded to [0, 90] degrees
            (``min(theta, 180 - theta)``; small = depth poorly constrained).
    """

    points: np.ndarray
    views_used: np.ndarray
    reprojection_error: np.ndarray
    depth: np.ndarray
    ray_angle_deg: np.ndarray


def _finish(P: np.ndarray, pts: np.ndarray, X: np.ndarray, used: np.ndarray, at_inf: np.ndarray,
            batch: tuple[int, ...], min_angle_deg: float, stacklevel: int = 3) -> Triangulation:
    """Validate the solved points (warnings of the module rules) and reshape to the caller's batch."""
    V = P.shape[0]
    n_views = used.sum(axis=0)
    few = n_views < 2
    if np.all(few):
        raise DataError(f"points: no point has two usable views (finite 2D point, weight > 0) among the {V} views; "
                        "nothing can be triangulated")
    X[few] = np.nan
    if np.any(few):
        warnings.warn(f"triangulation: {int(few.sum())} of {few.size} points have fewer than two usable views "
                      "(finite 2D point and weight > 0); returned as NaN", RuntimeWarning, stacklevel=stacklevel)
    inf = at_inf & ~few
    if np.any(inf):
        warnings.warn(f"triangulation: {int(inf.sum())} of {inf.size} points are at infinity (parallel rays); "
                      "returned as NaN", RuntimeWarning, stacklevel=stacklevel)
    ok = ~few & ~at_inf
    centers = camera_centers(P)
    angles = np.full(X.shape[0], np.nan)
    if np.any(ok):
        angles[ok] = _ray_angles(centers, X[ok], used[:, ok])
    narrow = ok & (angles < min_angle_deg)
    if np.any(narrow):
        warnings.warn(f"triangulation: {int(narrow.sum())} of {narrow.size} points are seen under rays less than "
                      f"{min_angle_deg:g} deg from parallel (depth is ill-conditioned)", RuntimeWarning,
                      stacklevel=stacklevel)
    depth = point_depths(P, X)
    behind = ok & np.any(used & (depth <= 0), axis=0)
    if np.any(behind):
        warnings.warn(f"triangulation: {int(behind.sum())} of {behind.size} points lie behind a camera that observed "
                      "them (cheirality); check the extrinsics (R must map world to camera)", RuntimeWarning,
                      stacklevel=stacklevel)
    err = reprojection_error(P, X, pts)
    return Triangulation(points=X.reshape(batch + (3,)), views_used=used.reshape((V,) + batch),
                         reprojection_error=err.reshape((V,) + batch), depth=depth.reshape((V,) + batch),
                         ray_angle_deg=angles.reshape(batch))


def triangulate(P: np.ndarray, points: np.ndarray, weights: np.ndarray | None = None, method: str = "dlt",
                threshold_px: float = 25.0, refine_iterations: int = 2,
                min_angle_deg: float = MIN_RAY_ANGLE_DEG) -> Triangulation:
    """Triangulate every point of ``points`` (V, ..., 2) (undistorted pixels) seen by cameras ``P`` (V, 3, 4).

    Args:
        weights: (V, ...) confidences >= 0 multiplying each view's DLT rows; 0 drops the view.
        method: ``"dlt"`` (all usable views, weighted) or ``"ransac"`` (see `triangulate_robust`).
        threshold_px: RANSAC inlier threshold on the reprojection error.
        refine_iterations: RANSAC re-fits on the inliers of the previous fit.
        min_angle_deg: ray-angle below which a point is reported as ill-conditioned.
    """
    P, pts, w = _check_inputs(P, points, weights)
    batch = np.shape(points)[1:-1]
    Pn, c0, s = _normalizer(P)
    if method == "dlt":
        used = w > 0
        X, at_inf = _dehomogenize(_dlt_normalized(Pn, pts, w), c0, s)
    elif method == "ransac":
        if not threshold_px > 0:
            raise DataError(f"threshold_px must be > 0, got {threshold_px}")
        X, used, at_inf = _ransac(P, Pn, c0, s, pts, w, float(threshold_px), int(refine_iterations))
    else:
        raise DataError(f"method must be 'dlt' or 'ransac', got {method!r}")
    return _finish(P, pts, X, used, at_inf, tuple(batch), min_angle_deg)


def _ransac(P: np.ndarray, Pn: np.ndarray, c0: np.ndarray, s: float, pts: np.ndarray, w: np.ndarray, thr: float,
            refine: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exhaustive RANSAC over view pairs with an MSAC score, then weighted re-fits on the inliers."""
    V, N = w.shape
    usable = w > 0
    best_cost = np.full(N, np.inf)
    best_inl = usable.copy()
    for a, b in itertools.combinations(range(V), 2):
        X, at_inf = _dehomogenize(_dlt_normalized(Pn[[a, b]], pts[[a, b]], w[[a, b]]), c0, s)
        valid = usable[a] & usable[b] & ~at_inf
        depth = point_depths(P[[a, b]], np.nan_to_num(X))
        valid &= np.all(depth > 0, axis=0)
        err = np.linalg.norm(project_points(P, np.nan_to_num(X)) - pts, axis=-1)  # (V, N)
        err = np.where(usable, err, np.inf)
        cost = np.where(usable, np.minimum(err, thr) ** 2, 0.0).sum(axis=0)
        inl = usable & (err < thr)
        better = valid & (cost < best_cost) & (inl.sum(axis=0) >= 2)
        best_cost = np.where(better, cost, best_cost)
        best_inl[:, better] = inl[:, better]
    # Points where no pair had two inliers keep all usable views (plain weighted DLT): documented fallback.
    inl = best_inl
    for _ in range(max(1, refine)):
        X, at_inf = _dehomogenize(_dlt_normalized(Pn, pts, w * inl), c0, s)
        err = np.linalg.norm(project_points(P, np.nan_to_num(X)) - pts, axis=-1)
        new = usable & (err < thr)
        keep = new.sum(axis=0) >= 2
        if np.array_equal(new[:, keep], inl[:, keep]):
            break
        inl = np.where(keep[None], new, inl)
    X, at_inf = _dehomogenize(_dlt_normalized(Pn, pts, w * inl), c0, s)
    return X, inl, at_inf


def triangulate_dlt(P: np.ndarray, points: np.ndarray, weights: np.ndarray | None = None,
                    min_angle_deg: float = MIN_RAY_ANGLE_DEG) -> np.ndarray:
    """Linear (DLT) triangulation: P (V, 3, 4), points (V, ..., 2) undistorted px, weights (V, ...) | None
    -> (..., 3) world points. Confidence-weighted when ``weights`` is given. See the module rules for NaN."""
    return triangulate(P, points, weights, method="dlt", min_angle_deg=min_angle_deg).points


def triangulate_robust(P: np.ndarray, points: np.ndarray, weights: np.ndarray | None = None,
                       threshold_px: float = 25.0, refine_iterations: int = 2,
                       min_angle_deg: float = MIN_RAY_ANGLE_DEG) -> np.ndarray:
    """Outlier-robust triangulation -> (..., 3).

    With V views there are only V(V-1)/2 view pairs (6 for Human3.6M), so RANSAC is *exhaustive*: every pair
    is triangulated (weighted DLT), must put the point in front of both cameras, and is scored by MSAC
    (sum over usable views of ``min(err, threshold_px)^2``). The best pair's inliers (reprojection error below
    ``threshold_px``) are re-fitted with weighted DLT, and inliers are re-computed from the new point up to
    ``refine_iterations`` times. Why this and not plain DLT: one wrong detection (left/right swap, occluded
    joint) pulls the least-squares point far off, while it disagrees with every pair formed by the others.
    Fallback: a point where no pair has two inliers uses all its usable views (plain weighted DLT).
    """
    return triangulate(P, points, weights, method="ransac", threshold_px=threshold_px,
                       refine_iterations=refine_iterations, min_angle_deg=min_angle_deg).points


def triangulate_cameras(cameras: Sequence[Camera], points_px: np.ndarray, weights: np.ndarray | None = None,
                        method: str = "dlt", units: Units = "mm", **kwargs: float) -> Triangulation:
    """Convenience: distorted pixels (V, ..., 2) of ``cameras`` -> undistort -> `triangulate` (world ``units``)."""
    cameras = list(cameras)
    return triangulate(projection_matrices(cameras, units), undistort_points(points_px, cameras), weights,
                       method=method, **kwargs)


__all__ = [
    "MIN_RAY_ANGLE_DEG",
    "Triangulation",
    "camera_centers",
    "check_camera_set",
    "point_depths",
    "project_points",
    "projection_matrices",
    "reprojection_error",
    "triangulate",
    "triangulate_cameras",
    "triangulate_dlt",
    "triangulate_robust",
    "undistort_points",
]
