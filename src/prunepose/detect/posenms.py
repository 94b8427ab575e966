"""OKS-NMS on a :class:`~prunepose.api.results.Results2D`: one pose per person when detector boxes overlap.

Why after pose estimation and not only box NMS: in a crowd two people's boxes overlap a lot, so box NMS must
keep overlapping boxes; when two kept boxes cover the *same* person, their poses coincide, which OKS (the
COCO keypoint similarity) sees and box IoU does not. HRNet/MMPose top-down pipelines run OKS-NMS at 0.9 on
rescored poses for the same reason; the greedy algorithm is :func:`prunepose.metrics.coco_eval.oks_nms`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from prunepose.metrics.coco_eval import oks_nms

#: OKS above which the lower-scoring of two poses is dropped (HRNet ``TEST.OKS_THRE``).
OKS_NMS_THR = 0.9


def pose_areas(boxes_xyxy: np.ndarray) -> np.ndarray:
    """Areas (px^2) used as the OKS scale: the person boxes' areas (HRNet uses the detector box as well)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def select_persons(res: Any, keep: Sequence[int]) -> Any:
    """A copy of ``res`` (Results2D) holding only the persons ``keep``, in that order."""
    idx = np.asarray(keep, dtype=np.int64)
    return replace(res, keypoints=res.keypoints[idx], scores=res.scores[idx], boxes=res.boxes[idx],
                   box_scores=res.box_scores[idx], kept_tokens=[res.kept_tokens[i] for i in idx],
                   crop_affines=res.crop_affines[idx],
                   track_ids=None if res.track_ids is None else res.track_ids[idx])


def suppress_duplicate_poses(res: Any, sigmas: Sequence[float], thr: float = OKS_NMS_THR) -> Any:
    """Persons of ``res`` kept by OKS-NMS on their rescored poses, in their original order.

    Skeletons without OKS sigmas (MPII, H36M) are returned unchanged: box NMS in the detector is all there is.
    """
    if len(res) < 2 or len(sigmas) != res.keypoints.shape[1]:
        return res
    scores = res.person_scores()
    areas = pose_areas(res.boxes)
    db = [{"keypoints": np.concatenate([res.keypoints[p], res.scores[p, :, None]], axis=1),
           "score": float(scores[p]), "area": float(areas[p])} for p in range(len(res))]
    keep = sorted(oks_nms(db, thr, np.asarray(sigmas, dtype=np.float64)))
    return res if len(keep) == len(res) else select_persons(res, keep)
