"""Lens distortion on normalised image coordinates: the forward models and their numerical inverse.

Why a module of its own: projecting (camera.py) needs the forward model, triangulating (triangulation.py)
needs its inverse, and both must agree on the *same* formula. Two formulas are in use in the data here:

* ``"h36m"`` -- 3d-pose-baseline's ``project_point_radial`` (Human3.6M, Campus, Shelf as read by
  VoxelPose/mmpose)::

      radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3,  tan = p1 y + p2 x
      x_d = x (radial + tan) + p2 r2,          y_d = y (radial + tan) + p1 r2

* ``"opencv"`` -- the Brown-Conrady form of OpenCV (CMU Panoptic's ``distCoef = [k1, k2, p1, p2, k3]``)::

      x_d = x radial + 2 p1 x y + p2 (r2 + 2 x^2),  y_d = y radial + p1 (r2 + 2 y^2) + 2 p2 x y

They differ in the tangential cross terms (factor 2), so coefficients of one cannot be used in the other.

The inverse has no closed form; `undistort_normalized` runs Newton's method with the analytic 2x2
Jacobian (quadratic convergence, ~4 iterations for Human3.6M's k1 ~ -0.2). Where the model folds over
(far outside the image, where d x_d / d x changes sign) no inverse exists: those points come back as NaN
and the caller is told how many.
"""
from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

DistortionModel = Literal["h36m", "opencv"]
DISTORTION_MODELS: tuple[str, ...] = ("h36m", "opencv")


def _check_model(model: str) -> None:
    if model not in DISTORTION_MODELS:
        raise ValueError(f"distortion model must be one of {DISTORTION_MODELS}, got {model!r}")


def _radial_terms(xy: np.ndarray, k: np.ndarray, p: np.ndarray, model: str) -> tuple[Any, ...]:
    """x, y, r^2 and the radial factor 1 + k1 r^2 + k2 r^4 + k3 r^6 at ``xy``, with the scalar k and p: what
    both the distortion and its Jacobian start from."""
    _check_model(model)
    xy = np.asarray(xy, dtype=np.float64)
    x, y = xy[..., 0], xy[..., 1]
    k1, k2, k3 = (float(v) for v in k)
    p1, p2 = (float(v) for v in p)
    r2 = x * x + y * y
    return x, y, r2, 1.0 + k1 * r2 + k2 * r2**2 + k3 * r2**3, (k1, k2, k3), (p1, p2)


def distort_normalized(xy: np.ndarray, k: np.ndarray, p: np.ndarray, model: str = "h36m") -> np.ndarray:
    """Undistorted normalised coordinates (..., 2) (``X/Z, Y/Z``) -> distorted normalised (..., 2)."""
    x, y, r2, radial, _, (p1, p2) = _radial_terms(xy, k, p, model)
    if model == "h36m":
        a = radial + p1 * y + p2 * x
        return np.stack([x * a + p2 * r2, y * a + p1 * r2], axis=-1)
    return np.stack([x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                     y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y], axis=-1)


def distortion_jacobian(xy: np.ndarray, k: np.ndarray, p: np.ndarray, model: str = "h36m") -> np.ndarray:
    """d distorted / d undistorted at ``xy`` (..., 2) -> (..., 2, 2), rows (x_d, y_d), columns (x, y)."""
    x, y, r2, radial, (k1, k2, k3), (p1, p2) = _radial_terms(xy, k, p, model)
    g = k1 + 2 * k2 * r2 + 3 * k3 * r2**2  # d radial / d r2
    if model == "h36m":
        a = radial + p1 * y + p2 * x
        dxx = a + x * (2 * g * x + p2) + 2 * p2 * x
        dxy = x * (2 * g * y + p1) + 2 * p2 * y
        dyx = y * (2 * g * x + p2) + 2 * p1 * x
        dyy = a + y * (2 * g * y + p1) + 2 * p1 * y
    else:
        dxx = radial + 2 * g * x * x + 2 * p1 * y + 6 * p2 * x
        dxy = 2 * g * x * y + 2 * p1 * x + 2 * p2 * y
        dyx = 2 * g * x * y + 2 * p1 * x + 2 * p2 * y
        dyy = radial + 2 * g * y * y + 6 * p1 * y + 2 * p2 * x
    return np.stack([np.stack([dxx, dxy], axis=-1), np.stack([dyx, dyy], axis=-1)], axis=-2)


def undistort_normalized(xy_distorted: np.ndarray, k: np.ndarray, p: np.ndarray, model: str = "h36m",
                         iterations: int = 20, tol: float = 1e-12, name: str = "") -> np.ndarray:
    """Invert `distort_normalized` by Newton's method: distorted normalised (..., 2) -> undistorted (..., 2).

    Points that do not converge to ``tol`` (residual in normalised units; 1e-12 is ~1e-9 px) or land where
    the Jacobian is singular or orientation-reversing are set to NaN with one `RuntimeWarning` giving the
    count (``name`` identifies the camera). NaN inputs stay NaN silently (they are "missing", not failures).
    """
    _check_model(model)
    target = np.asarray(xy_distorted, dtype=np.float64)
    if not np.any(np.asarray(k)) and not np.any(np.asarray(p)):
        return target.copy()
    xy = target.copy()
    for _ in range(iterations):
        res = distort_normalized(xy, k, p, model) - target
        jac = distortion_jacobian(xy, k, p, model)
        det = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
        safe = np.where(np.abs(det) > 1e-12, det, np.nan)
        dx = (jac[..., 1, 1] * res[..., 0] - jac[..., 0, 1] * res[..., 1]) / safe
        dy = (-jac[..., 1, 0] * res[..., 0] + jac[..., 0, 0] * res[..., 1]) / safe
        xy = xy - np.stack([dx, dy], axis=-1)
        if np.all((np.abs(res).max(axis=-1) < tol) | ~np.isfinite(xy).all(axis=-1)):
            break
    res = np.abs(distort_normalized(xy, k, p, model) - target).max(axis=-1)
    jac = distortion_jacobian(xy, k, p, model)
    det = jac[..., 0, 0] * jac[..., 1, 1] - jac[..., 0, 1] * jac[..., 1, 0]
    failed = np.isfinite(target).all(axis=-1) & ~((res < max(tol, 1e-9)) & (det > 0))
    if np.any(failed):
        xy[failed] = np.nan
        where = f" of camera {name!r}" if name else ""
        warnings.warn(f"undistortion{where}: {int(failed.sum())} of {failed.size} points have no inverse under the "
                      f"{model!r} distortion model (outside its invertible region); set to NaN", RuntimeWarning,
                      stacklevel=2)
    return xy


__all__ = ["DISTORTION_MODELS", "DistortionModel", "distort_normalized", "distortion_jacobian",
           "undistort_normalized"]
