"""Score pose predictions on GT-box persons: per-person OKS, mean OKS (overall and per source) and OKS AP.

Why both numbers: with a few dozen held-out persons, pycocotools' AP (a ranking metric over OKS
thresholds) is coarse and noisy; the mean OKS of each person's prediction is the direct, per-person
view. Both use the COCO OKS (sigmas of COCO-17, the annotation ``area`` as scale, labelled keypoints
only), so teacher and student are compared on identical persons, boxes and rules.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from prunepose.metrics.coco_eval import evaluate_coco_keypoints, oks_iou, rescore


def person_oks(gt_ann: dict[str, Any], keypoints: np.ndarray) -> float:
    """pycocotools' OKS of one prediction ``keypoints`` (17, 2) image px against one GT annotation."""
    g = np.asarray(gt_ann["keypoints"], dtype=np.float64).reshape(17, 3)
    d = np.concatenate([np.asarray(keypoints, dtype=np.float64).reshape(17, 2), np.ones((17, 1))], axis=1)
    return float(oks_iou(g, d[None], float(gt_ann["area"]), float(gt_ann["area"]), vis_thr=0.0)[0])


def score_predictions(coco_gt: Any, ann_ids: list[int], keypoints: np.ndarray, scores: np.ndarray,
                      in_vis_thr: float = 0.2) -> dict[str, Any]:
    """Mean OKS (all, per image ``source``) and pycocotools AP for one prediction per GT annotation.

    ``keypoints`` (N, 17, 2) image px and ``scores`` (N, 17) for the annotations ``ann_ids``; each
    result's score is the HRNet rescoring (mean keypoint score above ``in_vis_thr``; box score 1).
    """
    oks, per_source, results = [], {}, []
    for ann_id, kpts, conf in zip(ann_ids, keypoints, scores, strict=True):
        ann = coco_gt.anns[int(ann_id)]
        value = person_oks(ann, kpts)
        oks.append(value)
        source = coco_gt.imgs[ann["image_id"]].get("source", "all")
        per_source.setdefault(source, []).append(value)
        flat = np.concatenate([np.asarray(kpts, np.float64), np.asarray(conf, np.float64)[:, None]], 1)
        results.append({"image_id": int(ann["image_id"]), "category_id": 1, "keypoints": flat.reshape(-1).tolist(),
                        "score": rescore(flat, 1.0, in_vis_thr)})
    ap = evaluate_coco_keypoints(coco_gt, results, image_ids=sorted(coco_gt.getImgIds()))
    by_source = {k: [len(v), float(np.mean(v))] for k, v in per_source.items()}
    return {"persons": len(oks), "mean_oks": float(np.mean(oks)), "AP": ap["AP"], "AP50": ap["AP .5"],
            "AP75": ap["AP .75"], "per_source_mean_oks": by_source, "oks": [float(v) for v in oks]}


def mean_pose_baseline(coco_gt: Any, ann_ids: list[int]) -> np.ndarray:
    """The trivial "mean pose in the box" predictor: (N, 17, 2) image px for the annotations ``ann_ids``.

    Each labelled keypoint is normalised to its GT box (``(p - xy) / wh``); the per-keypoint mean over
    all given persons is placed back into each box. It sees the evaluated persons' own labels, so it is
    a slightly optimistic baseline: a model that does not beat it has learnt nothing useful.
    """
    sums, counts = np.zeros((17, 2)), np.zeros((17, 1))
    for ann_id in ann_ids:
        ann = coco_gt.anns[int(ann_id)]
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        x, y, w, h = ann["bbox"]
        lab = kp[:, 2] > 0
        sums[lab] += (kp[lab, :2] - [x, y]) / [w, h]
        counts[lab] += 1
    mean = np.divide(sums, counts, out=np.full((17, 2), 0.5), where=counts > 0)
    out = []
    for ann_id in ann_ids:
        x, y, w, h = coco_gt.anns[int(ann_id)]["bbox"]
        out.append(mean * [w, h] + [x, y])
    return np.asarray(out)


def predict_student(model: Any, ann_file: str, image_root: str, flip: bool = True) -> tuple[list[int], np.ndarray,
                                                                                             np.ndarray]:
    """A prunepose 2D model on every GT box of ``ann_file``: (ann ids, keypoints (N, 17, 2), scores (N, 17))."""
    from prunepose.data.coco import CocoTopDownDataset
    from prunepose.tasks.topdown import make_codec, predict_dataset

    cfg = model.config
    codec = make_codec(cfg)
    kwargs: dict[str, Any] = {"codec": codec}
    if hasattr(cfg, "heatmap_size"):
        kwargs.update(heatmap_size=cfg.heatmap_size, sigma=cfg.sigma)
    data = CocoTopDownDataset(ann_file, image_root, input_size=cfg.input_size, skeleton=cfg.skeleton, train=False,
                              **kwargs)
    pred = predict_dataset(model, data, flip=flip, batch_size=64, progress=False)
    ann_ids = [int(data._records[int(i)]["ann_id"]) for i in pred["index"]]
    return ann_ids, pred["preds"].astype(np.float64), pred["scores"].astype(np.float64)


def predict_teacher(teacher: Any, coco_gt: Any, image_root: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The MoveNet teacher on every labelled GT box (square crop, 1.25 x box): ann ids, keypoints, scores."""
    from pathlib import Path

    from prunepose.data.coco import read_image_bgr

    ann_ids, kpts, scores = [], [], []
    for ann_id in sorted(coco_gt.anns):
        ann = coco_gt.anns[ann_id]
        if ann.get("iscrowd") or ann.get("num_keypoints", 0) == 0:
            continue
        info = coco_gt.imgs[ann["image_id"]]
        image = read_image_bgr(Path(image_root) / info["file_name"], ann["image_id"], "held-out JSON")
        k, s = teacher(image, ann["bbox"])
        ann_ids.append(int(ann_id))
        kpts.append(k)
        scores.append(s)
    return ann_ids, np.asarray(kpts), np.asarray(scores)
