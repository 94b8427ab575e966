"""Skeleton overlays drawn with OpenCV on BGR images (headless-safe)."""
from __future__ import annotations

import cv2
import numpy as np

from prunepose.skeletons import Skeleton


def _colour(i: int, n: int) -> tuple[int, int, int]:
    hue = int(180 * i / max(1, n))
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_skeleton(image_bgr: np.ndarray, keypoints: np.ndarray, scores: np.ndarray | None, skeleton: Skeleton,
                  score_thr: float = 0.3, radius: int = 3, thickness: int = 2) -> np.ndarray:
    """Return a copy of ``image_bgr`` with one person's keypoints (K, 2) image px and limbs drawn.

    Joints whose score is below ``score_thr`` (and limbs touching them) are not drawn.
    """
    out = image_bgr.copy()
    kpts = np.asarray(keypoints, dtype=np.float64)
    ok = np.ones(len(kpts), bool) if scores is None else np.asarray(scores) >= score_thr
    for i, (a, b) in enumerate(skeleton.limbs):
        if ok[a] and ok[b]:
            pa = tuple(int(round(v)) for v in kpts[a])
            pb = tuple(int(round(v)) for v in kpts[b])
            cv2.line(out, pa, pb, _colour(i, len(skeleton.limbs)), thickness, cv2.LINE_AA)
    for k in np.flatnonzero(ok):
        cv2.circle(out, (int(round(kpts[k, 0])), int(round(kpts[k, 1]))), radius, (255, 255, 255), -1, cv2.LINE_AA)
    return out
