"""Teacher predictions -> a COCO person-keypoints JSON that `CocoTopDownDataset` trains on unchanged.

Why COCO format: the student then trains with the existing ``prunepose train`` path (datasets, codecs,
augmentation, checkpoints, resume) and pycocotools can read the labels. Keypoints whose teacher score is
below ``score_thr`` get visibility 0, so they carry no target (weight 0) instead of teaching the
student the teacher's guesses; confident ones get visibility 2. The raw scores are kept in an extra
``keypoint_scores`` field of each annotation for inspection.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from prunepose.skeletons import get_skeleton


def coco_categories() -> list[dict[str, Any]]:
    """The COCO person category with the COCO-17 keypoint names and (1-based) skeleton."""
    sk = get_skeleton("coco")
    return [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(sk.keypoint_names),
             "skeleton": [[a + 1, b + 1] for a, b in sk.limbs]}]


def person_annotation(ann_id: int, image_id: int, box_xywh: Iterable[float], keypoints: np.ndarray,
                      scores: np.ndarray, score_thr: float) -> dict[str, Any]:
    """One COCO annotation: ``keypoints`` (17, 2) image px, ``scores`` (17,) teacher confidences."""
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    conf = np.asarray(scores, dtype=np.float64).reshape(-1)
    vis = np.where(conf >= score_thr, 2, 0)
    flat: list[float] = []
    for (x, y), v in zip(kpts, vis, strict=True):
        flat += [round(float(x), 2), round(float(y), 2), int(v)] if v else [0.0, 0.0, 0]
    x, y, w, h = (float(v) for v in box_xywh)
    return {"id": int(ann_id), "image_id": int(image_id), "category_id": 1, "iscrowd": 0,
            "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "area": round(w * h, 2),
            "num_keypoints": int(vis.astype(bool).sum()), "keypoints": flat,
            "keypoint_scores": [round(float(s), 4) for s in conf]}


def build_coco_json(images: list[Mapping[str, Any]], annotations: list[dict[str, Any]],
                    description: str) -> dict[str, Any]:
    """Assemble the JSON; ``images`` are COCO image records (``id``, ``file_name``, ``width``, ``height``)
    possibly with extra provenance fields (``source``, ``licence``)."""
    return {"info": {"description": description}, "licenses": [], "categories": coco_categories(),
            "images": [dict(im) for im in images], "annotations": annotations}


def repeat_sources(coco: dict[str, Any], repeats: Mapping[str, int]) -> dict[str, Any]:
    """A copy of ``coco`` whose annotations on images of source ``s`` appear ``repeats[s]`` times.

    Why: one street video gives most of the persons; repeating the few varied still images (COCO, sports,
    studio frames) keeps them from being drowned out. Each copy gets a new annotation id, and the dataset
    draws a different augmentation for every sample index, so copies are not identical crops.
    """
    source = {im["id"]: im.get("source", "") for im in coco["images"]}
    anns: list[dict[str, Any]] = []
    for ann in coco["annotations"]:
        for _ in range(max(1, int(repeats.get(source[ann["image_id"]], 1)))):
            anns.append({**ann, "id": len(anns) + 1})
    return {**coco, "annotations": anns}
