"""Triangulating real 2D detections of Human3.6M (SH, S9/S11) and measuring world MPJPE per action.

Why: before a multi-view model is trusted, the geometry under it must be: cameras, undistortion, DLT and the
robust variant are run here on real detector output against the real mocap, view subsets included.

Synchronisation: the shared SH files are frame-aligned with the mocap (same frame count per sequence,
checked by `load_h36m_shared`); `sync_offsets` additionally measures, per sequence, which frame shift of the
detections best matches the projected mocap on *moving* joints, so a misalignment would show up as a
non-zero shift.

Damaged ground truth: three S9 sequences have mocap that does not match their videos (PPT Sec. 5.1 and the
multi-view code exclude "damaged" S9 scenes; H36M-Toolbox names them Greeting-2, SittingDown-2, Waiting-1).
Here they are identified by measurement: projected mocap vs detections disagree by a median 37-41 px in
S9 "Greeting", "SittingDown 1" and "Waiting 1" against 7-10 px in every other sequence, at every frame shift.
`DAMAGED_SEQUENCES` lists them; they are reported separately, not mixed into the table.
"""
from __future__ import annotations

import itertools
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from prunepose.data.h36m import CAMERA_IDS, TEST_SUBJECTS, load_h36m_shared
from prunepose.geometry.camera import Camera, project, world_to_camera
from prunepose.geometry.triangulation import (
    MIN_RAY_ANGLE_DEG,
    projection_matrices,
    triangulate,
    undistort_points,
)
from prunepose.metrics.multiview import WorldMPJPEMeter

#: S9 sequences whose mocap does not match the videos (see the module docstring for the measurement).
DAMAGED_SEQUENCES = frozenset({("S9", "Greeting"), ("S9", "SittingDown 1"), ("S9", "Waiting 1")})


@dataclass(frozen=True, eq=False)
class MultiViewSequence:
    """One subject x sequence seen by every camera: ``keypoints_px`` (V, T, 17, 2) distorted pixels,
    ``pose3d_world_mm`` (T, 17, 3), cameras in the order of the view axis."""

    subject: str
    sequence: str
    action: str
    cameras: tuple[Camera, ...]
    keypoints_px: np.ndarray
    pose3d_world_mm: np.ndarray


def load_multiview_sh(root: str | os.PathLike[str] | None = None, subjects: Iterable[str] = TEST_SUBJECTS,
                      camera_ids: Sequence[str] = CAMERA_IDS, keypoints: str = "sh",
                      actions: Iterable[str] | None = None) -> tuple[list[MultiViewSequence], list[str]]:
    """Group the per-camera sequences of `load_h36m_shared` into synchronised multi-view sequences.

    Returns the sequences seen by all ``camera_ids`` and a list of the ones skipped (fewer cameras), so a
    table over "all 4 views" is never silently computed on 3. ``actions`` filters by canonical action name.
    """
    data = load_h36m_shared(root, subjects=subjects, keypoints=keypoints, camera_ids=camera_ids, actions=actions,
                            warn=False)
    groups: dict[tuple[str, str], dict[str, object]] = defaultdict(dict)
    for seq in data.sequences:
        groups[(seq.subject, seq.sequence)][seq.camera_id] = seq
    out, skipped = [], list(data.missing)
    for (subject, name), by_cam in sorted(groups.items()):
        if set(by_cam) != set(camera_ids):
            skipped.append(f"{subject}/{name}: only cameras {sorted(by_cam)}")
            continue
        seqs = [by_cam[c] for c in camera_ids]
        px = np.stack([s.pose2d_px() for s in seqs]).astype(np.float64)  # type: ignore[attr-defined]
        world = np.asarray(seqs[0].pose3d_world, dtype=np.float64) * 1000.0  # type: ignore[attr-defined]
        out.append(MultiViewSequence(subject, name, seqs[0].action, tuple(s.camera for s in seqs), px, world))
    return out, skipped


def sync_offsets(seq: MultiViewSequence, shifts: Sequence[int] = tuple(range(-5, 6)), stride: int = 2,
                 min_speed_px: float = 3.0) -> dict[int, float]:
    """Median pixel error between detections at frame ``t + shift`` and the projected mocap at frame ``t``, for
    each shift, over joints moving faster than ``min_speed_px`` per frame (static joints cannot reveal an
    offset). A correct alignment has its minimum at 0 (or +-1 for a sub-frame offset)."""
    T = seq.pose3d_world_mm.shape[0]
    m = max(abs(s) for s in shifts) + 1
    frames = np.arange(m, T - m, stride)
    gt, moving = [], []
    for cam in seq.cameras:
        proj = [project(world_to_camera(seq.pose3d_world_mm[frames + d], cam), cam) for d in (-1, 0, 1)]
        gt.append(proj[1])
        moving.append(np.linalg.norm(proj[2] - proj[0], axis=-1) / 2 > min_speed_px)
    out = {}
    for s in shifts:
        errs = [np.linalg.norm(seq.keypoints_px[v, frames + s] - gt[v], axis=-1)[moving[v]]
                for v in range(len(seq.cameras))]
        all_errs = np.concatenate(errs)
        out[s] = float(np.median(all_errs)) if all_errs.size else float("nan")
    return out


@dataclass(frozen=True)
class TriangulationSetup:
    """One column of the results table: which views, which method, its options, and whether the 2D points
    are undistorted first (``False`` only to measure what ignoring the lens distortion costs)."""

    name: str
    views: tuple[int, ...]
    method: str = "dlt"
    threshold_px: float = 25.0
    undistort: bool = True


def standard_setups(num_views: int = 4, threshold_px: float = 25.0) -> list[TriangulationSetup]:
    """All views with DLT, RANSAC and DLT without undistortion; every (V-1)-view subset and every pair (DLT)."""
    allv = tuple(range(num_views))
    setups = [TriangulationSetup("dlt", allv), TriangulationSetup("ransac", allv, "ransac", threshold_px),
              TriangulationSetup("dlt_distorted", allv, undistort=False)]
    for k in (num_views - 1, 2):
        for sub in itertools.combinations(allv, k):
            setups.append(TriangulationSetup("dlt_" + "".join(str(v + 1) for v in sub), sub))
    return setups


@dataclass
class SetupResult:
    """Errors of one setup plus how many points the triangulation flagged (its warnings, counted)."""

    meter: WorldMPJPEMeter
    points: int = 0
    behind_camera: int = 0
    narrow_rays: int = 0
    angles: list[np.ndarray] = field(default_factory=list)

    @property
    def median_angle_deg(self) -> float:
        """Median best triangulation angle (folded to [0, 90] deg) over all points."""
        return float(np.nanmedian(np.concatenate(self.angles))) if self.angles else float("nan")


def evaluate_setups(sequences: Sequence[MultiViewSequence], setups: Sequence[TriangulationSetup],
                    stride: int = 1) -> dict[str, SetupResult]:
    """Triangulate every ``stride``-th frame of every sequence under each setup -> results per setup (mm).

    The per-call warnings of `triangulate` (points behind a camera, nearly parallel rays) are counted into
    the result instead of being printed once per sequence; NaN points are counted by the meter.
    """
    results = {s.name: SetupResult(WorldMPJPEMeter(scale=1.0)) for s in setups}
    for seq in sequences:
        px = seq.keypoints_px[:, ::stride]
        gt = seq.pose3d_world_mm[::stride]
        und = undistort_points(px, seq.cameras)
        P = projection_matrices(seq.cameras, "mm")
        for s in setups:
            v = list(s.views)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = triangulate(P[v], (und if s.undistort else px)[v], method=s.method, threshold_px=s.threshold_px)
            r = results[s.name]
            r.meter.update(res.points, gt, seq.action)
            r.points += res.ray_angle_deg.size
            r.behind_camera += int(np.sum(np.any(res.views_used & (res.depth <= 0), axis=0)))
            r.narrow_rays += int(np.sum(res.ray_angle_deg < MIN_RAY_ANGLE_DEG))
            r.angles.append(res.ray_angle_deg.ravel()[::17])  # a subsample is enough for a median
    return results


__all__ = ["DAMAGED_SEQUENCES", "MultiViewSequence", "SetupResult", "TriangulationSetup", "evaluate_setups",
           "load_multiview_sh", "standard_setups", "sync_offsets"]
