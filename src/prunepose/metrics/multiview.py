"""Multi-view pose metrics: Joint Detection Rate (2D) and MPJPE in world coordinates (3D).

JDR -- where the definition comes from
--------------------------------------
PPT (Sec. 5.1) evaluates multi-view 2D poses with "the Joint Detection Rate (JDR) on original images [43]"
([43] = Qiu et al., *Cross View Fusion for 3D Human Pose Estimation*, ICCV 2019): a joint counts as detected
when its 2D error is at most half the head size. The code of [43]
(``microsoft/multiview-human-pose-estimation-pytorch``, ``lib/dataset/multiview_h36m.py::evaluate``), which the
multi-view PPT code reuses, fixes the head size to ``image_size[0] / 10`` -- 25.6 px for the 256x256 input --
with ``threshold = 0.5``, and compares predictions and ground truth in **original-image pixels** (1000x1000
for Human3.6M). So the published JDR uses a constant 12.8 px radius on the original image, not a per-person
head measurement; `official_head_size` returns that constant. A per-sample head size (e.g. a measured
head-segment length) can be passed instead, as an array broadcasting against the batch.

MPJPE in the world frame
------------------------
Multi-view PPT (``run/pose3d/estimate_tri.py``) measures the triangulated pose against the ground truth in
**world coordinates, absolute** (no root alignment, no Procrustes), mean over the 17 joints, per action.
`WorldMPJPEMeter` does that per action and per joint; the protocol number is the unweighted mean over
actions (as `prunepose.metrics.mpjpe.LiftingErrorMeter`). Points that could not be triangulated (NaN)
are not averaged as zeros or silently skipped: they are counted and reported (``failed``), and the caller
decides whether a table with failures is acceptable.
"""
from __future__ import annotations

import warnings
from collections import defaultdict

import numpy as np

from prunepose.errors import DataError

#: Head-size divisor and threshold of the cross-view-fusion / multi-view PPT evaluation code.
JDR_HEAD_SIZE_DIVISOR = 10.0
JDR_THRESHOLD = 0.5


def official_head_size(image_size: float = 256.0) -> float:
    """The head size used by the cross-view-fusion / multi-view PPT JDR: ``image_size / 10`` pixels."""
    if not image_size > 0:
        raise DataError(f"image_size must be > 0, got {image_size}")
    return float(image_size) / JDR_HEAD_SIZE_DIVISOR


def _pair(pred: object, gt: object, dim: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim < 2 or p.shape[-1] != dim:
        raise DataError(f"pred and gt must both be (..., J, {dim}) {what}, got {p.shape} and {g.shape}")
    if not np.all(np.isfinite(g)):
        raise DataError("gt contains non-finite values; mask such joints with `visible` instead")
    return p, g


def joint_detection_rate(pred: np.ndarray, gt: np.ndarray, head_size: float | np.ndarray | None = None,
                         threshold: float = JDR_THRESHOLD, visible: np.ndarray | None = None) -> np.ndarray:
    """Per-joint JDR (J,) in [0, 1]: fraction of samples with ``||pred - gt|| <= threshold * head_size``.

    Args:
        pred, gt: (..., J, 2) pixels in the same frame (the original image, as in the paper).
        head_size: scalar or array broadcasting to ``pred.shape[:-2]``; default `official_head_size` (25.6 px).
        visible: optional (..., J) bool; only visible joints are counted. A NaN prediction counts as missed.
    Returns:
        (J,) rates; NaN (with a warning) for a joint with no visible sample, `DataError` if no joint has one.
    """
    p, g = _pair(pred, gt, 2, "pixels")
    hs = official_head_size() if head_size is None else np.asarray(head_size, dtype=np.float64)
    if not np.all(np.isfinite(hs)) or np.any(hs <= 0):
        raise DataError("head_size must be finite and > 0")
    if not threshold > 0:
        raise DataError(f"threshold must be > 0, got {threshold}")
    try:
        radius = np.broadcast_to(threshold * hs, p.shape[:-2])
    except ValueError as exc:
        raise DataError(f"head_size {np.shape(hs)} does not broadcast to the batch shape {p.shape[:-2]}") from exc
    vis = np.ones(p.shape[:-1], dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    if vis.shape != p.shape[:-1]:
        raise DataError(f"visible must be {p.shape[:-1]}, got {vis.shape}")
    dist = np.linalg.norm(p - g, axis=-1)
    hit = (dist <= radius[..., None]) & vis  # NaN distance compares False: a missing prediction is a miss
    J = p.shape[-2]
    counts = vis.reshape(-1, J).sum(axis=0)
    if not np.any(counts):
        raise DataError("visible: no joint is visible in any sample")
    if np.any(counts == 0):
        warnings.warn(f"JDR: joints {np.flatnonzero(counts == 0).tolist()} have no visible sample; their rate is NaN "
                      "(left out of mean_jdr)", RuntimeWarning, stacklevel=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, hit.reshape(-1, J).sum(axis=0) / counts, np.nan)


def mean_jdr(per_joint: np.ndarray) -> float:
    """Mean JDR over joints (the "Avg" column of PPT Table 4), joints without samples left out."""
    return float(np.nanmean(per_joint))


def mpjpe_world(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Absolute per-joint error (..., J) in the input unit (no root alignment; NaN where pred is NaN)."""
    p, g = _pair(pred, gt, 3, "world points")
    return np.linalg.norm(p - g, axis=-1)


class WorldMPJPEMeter:
    """Accumulates absolute world-frame joint errors per action and per joint.

    ``update(pred, gt, action)`` takes (..., J, 3) arrays of one action (any batch shape) in the same unit;
    ``scale`` converts to the reported unit (1000 for metres -> mm, 1 for mm inputs).
    """

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)
        self._sum: dict[str, np.ndarray] = {}
        self._count: dict[str, np.ndarray] = {}
        self._failed: dict[str, int] = defaultdict(int)
        self._total: dict[str, int] = defaultdict(int)

    def update(self, pred: np.ndarray, gt: np.ndarray, action: str) -> None:
        err = mpjpe_world(pred, gt)
        J = err.shape[-1]
        err = err.reshape(-1, J)
        ok = np.isfinite(err)
        if action not in self._sum:
            self._sum[action], self._count[action] = np.zeros(J), np.zeros(J, dtype=np.int64)
        elif self._sum[action].shape[0] != J:
            raise DataError(f"action {action!r}: {J} joints, earlier updates had {self._sum[action].shape[0]}")
        self._sum[action] += np.where(ok, err, 0.0).sum(axis=0)
        self._count[action] += ok.sum(axis=0)
        self._failed[action] += int((~ok).sum())
        self._total[action] += int(err.size)

    def per_action(self) -> dict[str, dict[str, float]]:
        """``{action: {"mpjpe": mean over finite joints * scale, "failed": fraction of NaN joints}}``."""
        out = {}
        for act in sorted(self._sum):
            n = self._count[act].sum()
            out[act] = {"mpjpe": float(self._sum[act].sum() / n * self.scale) if n else float("nan"),
                        "failed": self._failed[act] / self._total[act]}
        return out

    def per_joint(self) -> np.ndarray:
        """(J,) mean error per joint over all actions' frames, in the reported unit."""
        if not self._sum:
            raise DataError("WorldMPJPEMeter: no update yet")
        total = sum(self._sum.values())
        count = sum(self._count.values())
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count > 0, total / count * self.scale, np.nan)

    def summary(self) -> dict[str, float]:
        """``mpjpe``: unweighted mean over actions (the protocol number); ``failed``: overall NaN fraction."""
        table = self.per_action()
        vals = [r["mpjpe"] for r in table.values() if np.isfinite(r["mpjpe"])]
        total = sum(self._total.values())
        return {"mpjpe": float(np.mean(vals)) if vals else float("nan"),
                "failed": sum(self._failed.values()) / total if total else float("nan")}


__all__ = [
    "JDR_HEAD_SIZE_DIVISOR",
    "JDR_THRESHOLD",
    "WorldMPJPEMeter",
    "joint_detection_rate",
    "mean_jdr",
    "mpjpe_world",
    "official_head_size",
]
