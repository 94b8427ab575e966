"""MPII PCKh, computed the way HRNet's ``MPIIDataset.evaluate`` (and MMPose) report it.

Why: MPII results are compared through one table (Head, Shoulder, ..., Mean, Mean@0.1), whose details
decide the numbers: a joint is correct when ``||pred - gt|| / head_size <= thr`` (``<=``, not ``<``);
``head_size = 0.6 * ||head box diagonal||`` (``SC_BIAS = 0.6``); only visible (not missing) joints count.

The Mean: HRNet masks joints 6 and 7 (pelvis, thorax) and weights each remaining joint's PCKh by its
share of visible instances (``jnt_ratio``), so the Mean is *total correct / total visible over the other
14 joints*. Note that upper_neck (8) is in the Mean although no named column shows it, and "Head" is
head_top (9).

Mean@0.1 here uses threshold 0.1. HRNet's code reads ``pckAll[11]`` from ``np.arange(0, 0.51, 0.01)``,
i.e. threshold 0.11, under the same label; MMPose uses index 10 (0.1). Pass ``low_thr=0.11`` to
reproduce HRNet's printed Mean@0.1.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from prunepose.errors import ConfigError

__all__ = ["MPII_SC_BIAS", "mpii_head_sizes", "pck_per_joint", "pckh"]

#: Fraction of the head-box diagonal used as the PCKh normaliser.
MPII_SC_BIAS = 0.6

# MPII joint order: 0 r_ankle 1 r_knee 2 r_hip 3 l_hip 4 l_knee 5 l_ankle 6 pelvis 7 thorax 8 upper_neck
# 9 head_top 10 r_wrist 11 r_elbow 12 r_shoulder 13 l_shoulder 14 l_elbow 15 l_wrist.
_MPII_JOINTS = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
    "left_elbow", "left_wrist",
)  # fmt: skip
_SUMMARY = (
    ("Head", (9,)),
    ("Shoulder", (13, 12)),
    ("Elbow", (14, 11)),
    ("Wrist", (15, 10)),
    ("Hip", (3, 2)),
    ("Knee", (4, 1)),
    ("Ankle", (5, 0)),
)
_EXCLUDED_FROM_MEAN = (6, 7)  # pelvis, thorax


def mpii_head_sizes(head_boxes: ArrayLike, sc_bias: float = MPII_SC_BIAS) -> np.ndarray:
    """PCKh normalisers from MPII head boxes.

    Args:
        head_boxes: ``(N, 4)`` as ``(x1, y1, x2, y2)`` or ``(N, 2, 2)`` as two corners, pixels.
        sc_bias: fraction of the diagonal (0.6 for MPII).

    Returns:
        ``(N,)`` head sizes in pixels: ``sc_bias * ||(x2, y2) - (x1, y1)||``.
    """
    b = np.asarray(head_boxes, dtype=np.float64).reshape(-1, 2, 2)
    return sc_bias * np.linalg.norm(b[:, 1] - b[:, 0], axis=-1)


def pck_per_joint(
    pred: ArrayLike, gt: ArrayLike, visible: ArrayLike, normalizer: ArrayLike, thr: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint PCK counts: correct means ``||pred - gt|| / normalizer <= thr`` on a visible joint.

    Args:
        pred, gt: ``(N, K, 2)`` keypoints in the same pixel frame.
        visible: ``(N, K)`` bool, joints that have ground truth.
        normalizer: ``(N,)`` per-instance length in pixels (head size for PCKh).
        thr: threshold as a fraction of ``normalizer``.

    Returns:
        ``correct (K,)`` and ``count (K,)`` integer arrays (visible instances per joint).
    """
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    vis = np.asarray(visible).astype(bool)
    norm = np.asarray(normalizer, dtype=np.float64).reshape(-1)
    if p.shape != g.shape or p.ndim != 3 or p.shape[-1] != 2:
        raise ConfigError(f"pred and gt must both have shape (N, K, 2); got {p.shape} and {g.shape}")
    if vis.shape != p.shape[:2] or norm.shape[0] != p.shape[0]:
        raise ConfigError(
            f"visible must be (N, K) and normalizer (N,) for N, K = {p.shape[:2]}; "
            f"got {vis.shape} and {norm.shape}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = np.linalg.norm(p - g, axis=-1) / norm[:, None]
    correct = ((scaled <= thr) & vis).sum(axis=0)
    return correct, vis.sum(axis=0)


def pckh(
    pred: ArrayLike,
    gt: ArrayLike,
    visible: ArrayLike,
    head_sizes: ArrayLike,
    thr: float = 0.5,
    low_thr: float = 0.1,
) -> dict[str, float]:
    """MPII PCKh table in percent.

    Args:
        pred, gt: ``(N, 16, 2)`` keypoints (MPII order) in the same pixel frame. HRNet adds 1 to its
            0-based predictions to compare with the 1-based MATLAB ground truth; do the equivalent so
            both arrays use one convention.
        visible: ``(N, 16)`` bool, ``1 - jnt_missing``.
        head_sizes: ``(N,)`` normalisers in pixels *including* ``SC_BIAS``, see :func:`mpii_head_sizes`.
        thr: PCKh threshold of the main table (0.5).
        low_thr: threshold of the ``Mean@0.1`` entry (see module docstring for HRNet's 0.11).

    Returns:
        ``{"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"}`` plus one
        entry per joint named ``"PCKh/<joint name>"``, all in percent. Left/right columns are the plain
        average of the two joints' PCKh. A joint with no visible instance has per-joint PCKh ``nan`` and
        no weight in the Mean (HRNet would produce ``nan`` for the whole Mean).
    """
    p = np.asarray(pred)
    if p.ndim != 3 or p.shape[1] != len(_MPII_JOINTS):
        raise ConfigError(f"pckh expects MPII keypoints of shape (N, 16, 2), got {p.shape}")
    correct, count = pck_per_joint(pred, gt, visible, head_sizes, thr)
    correct_low, _ = pck_per_joint(pred, gt, visible, head_sizes, low_thr)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_joint = 100.0 * correct / count

    in_mean = np.ones(len(_MPII_JOINTS), dtype=bool)
    in_mean[list(_EXCLUDED_FROM_MEAN)] = False
    total = count[in_mean].sum()

    def _mean(c: np.ndarray) -> float:
        return float(100.0 * c[in_mean].sum() / total) if total else float("nan")

    out: dict[str, float] = {name: float(np.mean(per_joint[list(ids)])) for name, ids in _SUMMARY}
    out["Mean"] = _mean(correct)
    out["Mean@0.1"] = _mean(correct_low)
    out.update({f"PCKh/{name}": float(v) for name, v in zip(_MPII_JOINTS, per_joint, strict=True)})
    return out
