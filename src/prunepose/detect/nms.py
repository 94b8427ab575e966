"""Box IoU and greedy box non-maximum suppression (numpy), for detector outputs in ``xyxy`` pixels."""
from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union of ``xyxy`` boxes ``a`` (N, 4) and ``b`` (M, 4); 0 where a union is empty.

    Continuous-coordinate areas ``(x2 - x1) * (y2 - y1)`` (as pycocotools for ``xywh`` boxes), not the
    ``+1`` pixel-count convention of old VOC code, so IoUs match pycocotools' bbox evaluation.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(hi - lo, 0.0, None).prod(axis=2)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None).prod(axis=1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None).prod(axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, highest score first.

    A box is dropped when its IoU with an already kept, higher-scoring box exceeds ``iou_thr``; ties in score
    keep the earlier box (stable sort), so the result does not depend on the sorting algorithm.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i : i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_thr]
    return np.asarray(keep, dtype=np.int64)
