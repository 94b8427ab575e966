"""Person detection for top-down pose: the bundled detector, box NMS and detector-driven multi-person tracking.

Why a package of its own: the pose API (:mod:`prunepose.api`) only needs "person boxes for this image";
which network finds them, how its output is decoded and how boxes are matched to tracks over a video are
separate jobs that are tested on their own.
"""
from __future__ import annotations

from prunepose.detect.nms import box_iou, box_nms
from prunepose.detect.person import DEFAULT_DETECTOR, PersonDetector, detector_available

__all__ = ["DEFAULT_DETECTOR", "PersonDetector", "box_iou", "box_nms", "detector_available"]
