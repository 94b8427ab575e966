"""3D pose errors of the Human3.6M protocols: MPJPE (P1), P-MPJPE (P2), N-MPJPE and MPJVE.

Units: the functions return errors in the unit of their inputs (metres for this project's targets);
`LiftingErrorMeter` multiplies by ``scale`` (default 1000: metres -> millimetres, the unit of every
published table).

Root handling follows HoT/MixSTE (reference section 4.7): targets are root-relative with the root joint
at 0, and the *prediction's* root joint is **set to 0** (not subtracted from the other joints) before
measuring; ``root="subtract"`` gives MotionBERT's protocol (pred and target made root-relative by
subtraction), ``root="none"`` measures the poses as given.

Aggregation (protocol): errors are averaged over all frames of an action (every frame of every clip
counts once, padded frames included when the caller passes them, as MixSTE's test loop does), then the
final number is the unweighted mean over actions.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Literal

import numpy as np

from prunepose.geometry.procrustes import procrustes_align

RootMode = Literal["zero", "subtract", "none"]


def _pair(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.shape != t.shape or p.ndim < 2 or p.shape[-1] != 3:
        raise ValueError(f"pred and target must both be (..., J, 3), got {p.shape} and {t.shape}")
    return p, t


def apply_root(pose: np.ndarray, mode: RootMode, root: int = 0) -> np.ndarray:
    """``"zero"``: copy with joint ``root`` set to 0; ``"subtract"``: copy minus joint ``root``; ``"none"``: as is."""
    pose = np.array(pose, dtype=np.float64, copy=True)
    if mode == "zero":
        pose[..., root, :] = 0.0
    elif mode == "subtract":
        pose = pose - pose[..., root : root + 1, :]
    elif mode != "none":
        raise ValueError(f"root mode must be 'zero', 'subtract' or 'none', got {mode!r}")
    return pose


def mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """P1 per pose: mean over joints of the Euclidean distance. (..., J, 3) -> (...)."""
    p, t = _pair(pred, target)
    return np.linalg.norm(p - t, axis=-1).mean(axis=-1)


def p_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """P2 per pose: MPJPE after the best similarity transform (scale, rotation, translation) of each
    predicted pose onto its target (`prunepose.geometry.procrustes_align`). (..., J, 3) -> (...)."""
    p, t = _pair(pred, target)
    return mpjpe(procrustes_align(p, t), t)


def n_mpjpe(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Scale-normalised MPJPE per pose (VideoPose3D): the prediction is scaled by the least-squares factor
    ``<pred, target> / <pred, pred>`` (over joints and axes, no rotation/translation). (..., J, 3) -> (...)."""
    p, t = _pair(pred, target)
    norm = np.sum(p * p, axis=(-1, -2), keepdims=True)
    scale = np.sum(p * t, axis=(-1, -2), keepdims=True) / np.where(norm > 0, norm, 1.0)
    return mpjpe(scale * p, t)


def mpjve(pred: np.ndarray, target: np.ndarray, axis: int = -3) -> np.ndarray:
    """Mean per-joint velocity error between consecutive frames along ``axis`` (the time axis of
    (..., T, J, 3)): MPJPE of the first differences, one value per frame pair -> (..., T - 1)."""
    p, t = _pair(pred, target)
    return mpjpe(np.diff(p, axis=axis), np.diff(t, axis=axis))


class LiftingErrorMeter:
    """Accumulates P1, P2, N-MPJPE and MPJVE per action and reports the protocol's mean over actions.

    ``update(pred, target, action)`` takes one clip (T, J, 3) or a batch of clips (B, T, J, 3) with one
    action per clip (a string, or B strings). MPJVE is computed inside each clip along T (never across
    clip boundaries) and needs T >= 2. ``valid`` (T,) or (B, T) bool restricts which frames count
    (e.g. drop edge padding); by default every frame counts, as in MixSTE's test loop.
    """

    METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve")

    def __init__(self, root: RootMode = "zero", scale: float = 1000.0) -> None:
        self.root = root
        self.scale = float(scale)
        self._sum: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(self.METRICS, 0.0))
        self._count: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(self.METRICS, 0))

    def update(self, pred: np.ndarray, target: np.ndarray, action: str | Iterable[str],
               valid: np.ndarray | None = None) -> None:
        p, t = _pair(pred, target)
        if p.ndim == 3:
            p, t = p[None], t[None]
            valid = None if valid is None else np.asarray(valid)[None]
        if p.ndim != 4:
            raise ValueError(f"expected (T, J, 3) or (B, T, J, 3) poses, got {p.shape}")
        actions = [action] * p.shape[0] if isinstance(action, str) else list(action)
        if len(actions) != p.shape[0]:
            raise ValueError(f"{len(actions)} actions for {p.shape[0]} clips")
        mask = np.ones(p.shape[:2], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
        p, t = apply_root(p, self.root), apply_root(t, self.root)
        per_frame = {"mpjpe": mpjpe(p, t), "p_mpjpe": p_mpjpe(p, t), "n_mpjpe": n_mpjpe(p, t)}
        vel = mpjve(p, t, axis=1)  # (B, T - 1); a frame pair counts when both frames count
        vel_mask = mask[:, 1:] & mask[:, :-1]
        for b, act in enumerate(actions):
            for name, err in per_frame.items():
                self._sum[act][name] += float(err[b][mask[b]].sum())
                self._count[act][name] += int(mask[b].sum())
            self._sum[act]["mpjve"] += float(vel[b][vel_mask[b]].sum())
            self._count[act]["mpjve"] += int(vel_mask[b].sum())

    def per_action(self) -> dict[str, dict[str, float]]:
        """``{action: {metric: mean error * scale}}`` (NaN where nothing was counted)."""
        def mean(act: str, m: str) -> float:
            n = self._count[act][m]
            return self._sum[act][m] / n * self.scale if n else float("nan")

        return {act: {m: mean(act, m) for m in self.METRICS} for act in sorted(self._sum)}

    def summary(self) -> dict[str, float]:
        """``{metric: unweighted mean over actions}`` (the number published as "Average")."""
        table = self.per_action()
        out = {}
        for m in self.METRICS:
            vals = [row[m] for row in table.values() if not np.isnan(row[m])]
            out[m] = float(np.mean(vals)) if vals else float("nan")
        return out


__all__ = ["LiftingErrorMeter", "apply_root", "mpjpe", "mpjve", "n_mpjpe", "p_mpjpe"]
