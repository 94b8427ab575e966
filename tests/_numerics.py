"""Tolerances for decoded keypoints, derived from how heatmap rounding errors propagate through DARK.

Why this exists: two runs of one network on one crop (another backend, BN folded or not, another batch size,
another CPU's kernels, 1 or 2 threads, oneDNN on or off) give float32 heatmaps that differ by a small
``delta`` (about 1e-6 of their range). The integer argmax does not move unless two pixels are within
``2 delta`` of each other, but DARK's sub-pixel step ``-H^-1 g`` (of the log of the blurred heatmap) divides
by the heatmap's curvature: on the flat maps of random weights, or on an unconfident joint of a trained model,
``1e-7`` in a heatmap becomes ``1e-3`` px in a keypoint. A fixed pixel tolerance is therefore either loose or
machine-dependent; this module bounds the shift joint by joint instead:

* blur is linear with weights summing to <= 1 (zero border), so each blurred value moves by <= ``delta``; the
  codec's max-preserving rescale multiplies every blurred value of a map by one factor, which adds the same
  constant to every log value and cancels in all finite differences;
* ``|log(B + e) - log B| <= |e| / (B - |e|)``: the log values at DARK's 13 stencil points move by at most
  ``eps = delta / min(B_p - delta)``; points clamped at ``1e-10`` by the codec on both runs do not move at all;
* DARK's gradient moves by ``||dg||_2 <= sqrt(2) eps`` and its Hessian by ``||dH||_2 <= ||dH||_F <= 2 eps``
  (finite-difference weights 0.5 and 0.25); perturbing ``H off = -g`` gives
  ``|d off| <= ||H^-1|| (||dg|| + ||dH|| |off|) / (1 - ||H^-1|| ||dH||)`` (exact, not first-order), valid
  while the denominator is positive.

A joint is *unbounded* (``inf``) when the argmax may move (runner-up within ``2 delta``), a stencil value may
cross the codec's clamp, or the denominator is not positive. Tests compare the bounded joints and require
most joints to be bounded, so the check can still fail.
"""
from __future__ import annotations

import cv2
import numpy as np

from prunepose.codecs.heatmap import HeatmapCodec

#: float32 heatmaps of two runs of one network differ by a few ulps per operation accumulated over the layers:
#: relative rounding ~1.2e-7 per op, sums over <= 256 terms (sqrt growth, ~16x) and ~a dozen sequential
#: ops (attention, LayerNorm, MLP per block) give ~2e-5 of the heatmap range in the worst case; measured
#: differences are 5e-7 of the range (BN folding, onnxruntime vs PyTorch, batch 1 vs 16).
HEATMAP_RTOL = 2e-5

#: float32 image-pixel coordinates below 4096 px are rounded to 2^-12 px (half an ulp at 2048..4096);
#: the estimator rounds twice (input px, then image px).
COORD_ROUNDING = 2 * 2.0**-12

_STENCIL = [(0, 0), (0, 1), (0, -1), (1, 0), (-1, 0), (0, 2), (0, -2), (2, 0), (-2, 0),
            (1, 1), (-1, 1), (1, -1), (-1, -1)]


def heatmap_delta(heatmaps: np.ndarray) -> float:
    """The bound on the difference of two float32 runs' heatmaps: `HEATMAP_RTOL` of the largest magnitude."""
    return HEATMAP_RTOL * float(np.abs(heatmaps).max())


def dark_shift_bound(heatmaps: np.ndarray, delta: float, codec: HeatmapCodec) -> np.ndarray:
    """(B, K) bound in *heatmap* px on how far `HeatmapCodec.decode` (DARK) moves a keypoint when every
    heatmap value moves by at most ``delta``; ``inf`` where no bound holds (see the module docstring)."""
    hm = np.asarray(heatmaps, dtype=np.float64)
    b, k, h, w = hm.shape
    k1d = cv2.getGaussianKernel(codec.kernel_size, codec.sigma).astype(np.float64)
    bound = np.zeros((b, k))
    for i in range(b):
        for j in range(k):
            m = hm[i, j]
            flat = np.sort(m.reshape(-1))
            if flat[-1] - flat[-2] <= 2 * delta:
                bound[i, j] = np.inf  # the argmax itself may move
                continue
            py, px = np.unravel_index(int(np.argmax(m)), m.shape)
            if not (1 < px < w - 2 and 1 < py < h - 2):
                continue  # no DARK step at the border: the integer argmax is exact
            blur = cv2.sepFilter2D(m, cv2.CV_64F, k1d, k1d, borderType=cv2.BORDER_CONSTANT)
            new_max = blur.max()
            if m.max() <= 0 or new_max <= 0:
                bound[i, j] = np.inf
                continue
            scale = m.max() / new_max  # the codec's max-preserving rescale
            vals = np.array([blur[py + dy, px + dx] for dy, dx in _STENCIL]) * scale
            d = delta * scale
            floor = 1e-10
            if np.any(np.abs(vals - floor) <= d):
                bound[i, j] = np.inf  # may cross the codec's log clamp
                continue
            clamped = vals < floor  # clamped on both runs: log value identical
            live = vals[~clamped]
            eps = float(np.max(d / (live - d))) if live.size else 0.0
            logv = np.log(np.maximum(vals, floor))
            c0 = logv[0]
            g = np.array([0.5 * (logv[1] - logv[2]), 0.5 * (logv[3] - logv[4])])
            dxx = 0.25 * (logv[5] - 2 * c0 + logv[6])
            dyy = 0.25 * (logv[7] - 2 * c0 + logv[8])
            dxy = 0.25 * (logv[9] - logv[10] - logv[11] + logv[12])
            hess = np.array([[dxx, dxy], [dxy, dyy]])
            if np.linalg.det(hess) == 0:
                bound[i, j] = np.inf
                continue
            inv_norm = float(np.linalg.norm(np.linalg.inv(hess), 2))
            off = float(np.linalg.norm(np.linalg.solve(hess, g)))
            denom = 1.0 - inv_norm * 2 * eps
            bound[i, j] = inv_norm * (np.sqrt(2) * eps + 2 * eps * off) / denom if denom > 0 else np.inf
    return bound


def keypoint_tolerance(heatmaps: np.ndarray, crop_affines: np.ndarray, codec: HeatmapCodec,
                       delta: float | None = None) -> np.ndarray:
    """(B, K) tolerance in *image* px for keypoints decoded from ``heatmaps`` (B, K, h, w) of crops cut with
    ``crop_affines`` (B, 2, 3, image -> input px, no rotation) when the heatmaps may differ by ``delta``
    (default `heatmap_delta`): DARK's shift bound, times input px per heatmap px, times image px per input px,
    plus float32 rounding of the coordinates."""
    delta = heatmap_delta(heatmaps) if delta is None else delta
    hm_px = dark_shift_bound(heatmaps, delta, codec)
    mats = np.asarray(crop_affines, dtype=np.float64).reshape(-1, 2, 3)
    image_per_input = 1.0 / np.minimum(np.abs(mats[:, 0, 0]), np.abs(mats[:, 1, 1]))  # (B,)
    stride = float(np.max(codec.feat_stride))
    return hm_px * stride * image_per_input[:, None] + COORD_ROUNDING


def assert_keypoints_within(got: np.ndarray, want: np.ndarray, tol: np.ndarray, min_bounded: float = 0.5) -> None:
    """``|got - want| <= tol`` per joint (both coordinates) where ``tol`` is finite, and at least ``min_bounded``
    of the joints bounded (else the comparison would check nothing)."""
    got, want, tol = (np.asarray(a, dtype=np.float64) for a in (got, want, tol))
    err = np.abs(got - want).max(axis=-1)
    finite = np.isfinite(tol)
    assert finite.mean() >= min_bounded, f"only {finite.sum()} of {finite.size} joints have an error bound"
    bad = finite & (err > tol)
    assert not bad.any(), (f"{int(bad.sum())} joint(s) beyond their bound: error {err[bad].tolist()} px vs "
                           f"bound {tol[bad].tolist()} px")


class RecordingBackend:
    """Wraps a `PoseEstimator2D`'s backend and keeps every batch it ran and what came out, so a test can check
    the crops, the network and the decoding of one prediction separately, each with its own tolerance."""

    def __init__(self, estimator: object) -> None:
        self.inner = estimator.backend  # type: ignore[attr-defined]
        self.calls: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        estimator.backend = self  # type: ignore[attr-defined]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = self.inner(images)
        self.calls.append((np.array(images), {k: np.array(v) for k, v in out.items()}))
        return out

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)
