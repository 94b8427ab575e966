"""2D keypoint layouts the lifter accepts, and their conversion to the H36M-17 order it was trained on.

Why a module of its own: a 2D detector (ours or anyone's) speaks COCO-17, the lifters speak Human3.6M-17;
which H36M joints are measured and which are guessed must be written down once, next to the formulas,
so the documentation, the tests and the code cannot disagree.

Layouts (``layout=`` in :class:`prunepose.api.lifter3d.Lifter3D`):

* ``"h36m"``: already H36M-17 (`prunepose.skeletons.H36M17`): used as is.
* ``"coco"``: COCO-17 (`prunepose.skeletons.COCO17`), converted by :func:`coco_to_h36m`.
* ``"mpii"``: MPII-16 (= the Stacked-Hourglass order of Human3.6M's released detections), converted by
  `prunepose.data.h36m.sh16_to_h36m17` (its fractions were fitted on real Human3.6M data).

Missing joints are NaN. Every formula is plain arithmetic, so a synthesised joint is NaN exactly when a
joint it needs is NaN; the caller then fills it over time (`prunepose.api.gaps`).
"""
from __future__ import annotations

import numpy as np

from prunepose.errors import PrunePoseError
from prunepose.skeletons import COCO17, H36M17, MPII16

#: joint count of each accepted layout
LAYOUTS: dict[str, int] = {"coco": 17, "h36m": 17, "mpii": 16}

#: H36M-17 joint <- COCO-17 keypoint, for the 12 limb joints taken over unchanged
COCO_DIRECT: dict[int, int] = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10}
#: neck/nose = thorax + COCO_NECK_T * (nose - thorax)
COCO_NECK_T = 0.75
#: H36M joint -> the COCO keypoints its value (and score) is made from; for messages and scores
COCO_SOURCES: dict[int, tuple[int, ...]] = {
    **{h: (c,) for h, c in COCO_DIRECT.items()},
    0: (11, 12), 7: (5, 6, 11, 12), 8: (5, 6), 9: (0, 5, 6), 10: (0, 1, 2),
}
#: the H36M joints that COCO has no keypoint for (approximations, see `coco_to_h36m`)
COCO_SYNTHESISED = (0, 7, 8, 9, 10)


def check_layout(layout: str, num_joints: int) -> None:
    """Raise a PrunePoseError unless ``layout`` is known and has ``num_joints`` joints."""
    if layout not in LAYOUTS:
        raise PrunePoseError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    want = LAYOUTS[layout]
    if num_joints != want:
        others = [name for name, n in LAYOUTS.items() if n == num_joints]
        hint = f" (layouts with {num_joints} joints: {others})" if others else ""
        raise PrunePoseError(f"layout {layout!r} has {want} joints, but the keypoints have {num_joints}{hint}")


def _eye_centre(coco: np.ndarray) -> np.ndarray:
    """Mean of the eyes that are present (one is enough, e.g. in profile views); NaN when neither is."""
    eyes = coco[..., 1:3, :]
    ok = np.isfinite(eyes).all(axis=-1, keepdims=True)
    count = ok.sum(axis=-2)
    total = np.where(ok, eyes, 0.0).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def coco_to_h36m(coco: np.ndarray) -> np.ndarray:
    """COCO-17 keypoints (..., 17, 2) -> H36M-17 (..., 17, 2), same pixel frame; NaN marks missing joints.

    Taken over unchanged (12): hips, knees, ankles, shoulders, elbows, wrists (COCO's hip keypoints sit a
    few centimetres off H36M's hip joint centres; not corrected). Synthesised (5 approximations, no
    COCO keypoint exists for them):

    * pelvis (0) = midpoint of the hips (as MMPose's ``convert_keypoint_definition``);
    * thorax (8) = midpoint of the shoulders (MMPose; H36M's thorax marker sits a little higher, nearer
      the base of the neck);
    * spine (7) = midpoint of pelvis and thorax (MMPose);
    * neck/nose (9) = thorax + 0.75 (nose - thorax): about chin height, where H36M's neck/nose joint
      projects (MMPose uses the nose itself);
    * head (10) = eye centre + (eye centre - nose), i.e. the nose reflected through the eyes: the
      forehead, near H36M's head joint (MMPose uses the eye centre). The eye centre is the mean of the
      eyes present, so a profile view with one eye hidden still gives a head.

    Ears are not used. On projected Human3.6M 2D the first three land 0.2 px (pelvis), 7-17 px (thorax)
    and 7-9 px (spine) from the true joints, costing the default lifter 0.9-2.5 mm P1 (docs/lifting.md);
    the two face-based joints cannot be checked there.
    """
    coco = np.asarray(coco, dtype=np.float64)
    check_layout("coco", coco.shape[-2])
    out = np.full(coco.shape[:-2] + (17, coco.shape[-1]), np.nan)
    for dst, src in COCO_DIRECT.items():
        out[..., dst, :] = coco[..., src, :]
    pelvis = 0.5 * (coco[..., 11, :] + coco[..., 12, :])
    thorax = 0.5 * (coco[..., 5, :] + coco[..., 6, :])
    nose = coco[..., 0, :]
    eyes = _eye_centre(coco)
    out[..., 0, :] = pelvis
    out[..., 8, :] = thorax
    out[..., 7, :] = 0.5 * (pelvis + thorax)
    out[..., 9, :] = thorax + COCO_NECK_T * (nose - thorax)
    out[..., 10, :] = 2.0 * eyes - nose
    return out


def coco_scores_to_h36m(scores: np.ndarray) -> np.ndarray:
    """COCO-17 scores (..., 17) -> H36M-17 (..., 17): a synthesised joint gets the lowest score of its
    sources (the head: min of the nose and the better eye), so it is never more trusted than its inputs."""
    scores = np.asarray(scores, dtype=np.float64)
    out = np.empty(scores.shape[:-1] + (17,))
    for dst, src in COCO_SOURCES.items():
        if dst == 10:
            out[..., dst] = np.minimum(scores[..., 0], np.fmax(scores[..., 1], scores[..., 2]))
        else:
            out[..., dst] = scores[..., list(src)].min(axis=-1)
    return out


#: SH/MPII-16 index of every H36M joint's sources (see `prunepose.data.h36m.sh16_to_h36m17`)
MPII_SOURCES: dict[int, tuple[int, ...]] = {0: (6,), 1: (2,), 2: (1,), 3: (0,), 4: (3,), 5: (4,), 6: (5,),
                                            7: (6, 8), 8: (8,), 9: (8, 9), 10: (8, 9), 11: (13,), 12: (14,),
                                            13: (15,), 14: (12,), 15: (11,), 16: (10,)}


def to_h36m(keypoints: np.ndarray, layout: str) -> np.ndarray:
    """Keypoints (..., J, 2) in ``layout`` -> H36M-17 (..., 17, 2) float64 (NaN = missing)."""
    from prunepose.data.h36m import sh16_to_h36m17

    keypoints = np.asarray(keypoints, dtype=np.float64)
    check_layout(layout, keypoints.shape[-2])
    if layout == "coco":
        return coco_to_h36m(keypoints)
    if layout == "mpii":
        return sh16_to_h36m17(keypoints)
    return keypoints.copy()


def scores_to_h36m(scores: np.ndarray, layout: str) -> np.ndarray:
    """Per-joint scores (..., J) in ``layout`` -> (..., 17): synthesised joints take their sources' minimum."""
    scores = np.asarray(scores, dtype=np.float64)
    check_layout(layout, scores.shape[-1])
    if layout == "coco":
        return coco_scores_to_h36m(scores)
    if layout == "mpii":
        return np.stack([scores[..., list(MPII_SOURCES[j])].min(axis=-1) for j in range(17)], axis=-1)
    return scores.copy()


def source_names(layout: str, h36m_joint: int) -> str:
    """Which input keypoints an H36M joint comes from, e.g. ``"COCO nose, left_eye, right_eye"``."""
    if layout == "coco":
        return "COCO " + ", ".join(COCO17.keypoint_names[i] for i in COCO_SOURCES[h36m_joint])
    if layout == "mpii":
        return "MPII " + ", ".join(MPII16.keypoint_names[i] for i in MPII_SOURCES[h36m_joint])
    return f"H36M {H36M17.keypoint_names[h36m_joint]}"


__all__ = ["COCO_DIRECT", "COCO_NECK_T", "COCO_SYNTHESISED", "LAYOUTS", "check_layout", "coco_scores_to_h36m",
           "coco_to_h36m", "scores_to_h36m", "source_names", "to_h36m"]
