"""Evaluation metrics: COCO and COCO-WholeBody keypoint AP/AR (pycocotools), OKS-NMS and rescoring, MPII PCKh.

``metrics`` never imports models: it works on plain arrays and COCO-format records.
"""
from __future__ import annotations

from prunepose.metrics.coco_eval import (
    COCO_SIGMAS,
    STATS_NAMES,
    KeypointEvalResult,
    evaluate_coco_keypoints,
    oks_iou,
    oks_nms,
    postprocess_topdown,
    rescore,
    write_coco_results,
)
from prunepose.metrics.pckh import MPII_SC_BIAS, mpii_head_sizes, pck_per_joint, pckh
from prunepose.metrics.wholebody_eval import (
    WholeBodyEvalResult,
    evaluate_wholebody_keypoints,
    to_wholebody_result,
    write_wholebody_results,
)

__all__ = [
    "COCO_SIGMAS",
    "MPII_SC_BIAS",
    "STATS_NAMES",
    "KeypointEvalResult",
    "WholeBodyEvalResult",
    "evaluate_coco_keypoints",
    "evaluate_wholebody_keypoints",
    "mpii_head_sizes",
    "oks_iou",
    "oks_nms",
    "pck_per_joint",
    "pckh",
    "postprocess_topdown",
    "rescore",
    "to_wholebody_result",
    "write_coco_results",
    "write_wholebody_results",
]
