"""Held-out real persons with ground truth, mapped to COCO-17, in one COCO keypoints JSON.

Why: the distilled student and its teacher must be scored on persons neither has trained on. The
mmpose test fixtures in the shared data folder hold a few such persons from five datasets; each has
its own keypoint layout, so each gets an explicit mapping to COCO-17 and keypoints without a COCO
counterpart are left unlabelled (v=0: pycocotools then ignores them in the OKS):

* ``coco``: 4 COCO **val2017** images, 17 keypoints as is (MoveNet trained on train2017, not val).
* ``ochuman``: OCHuman, 17 keypoints in COCO order as is.
* ``posetrack18``: 3 val frames; slots 1, 2 hold head_bottom / head_top (not eyes) and ears are never
  labelled, so only nose + 12 limb joints count.
* ``crowdpose``: 14 keypoints -> the 12 limb joints (head and neck have no COCO counterpart).
  CrowdPose draws its images from COCO, MPII and AI Challenger, so the teacher may have seen them.
* ``mpii``: 16 joints -> the 12 limb joints; box = extent of the 16 joints grown by 10% per side.

Areas (the OKS scale): the annotation's ``area`` for COCO and OCHuman, box ``w * h`` for the others
(they have no segmentation). Image file names are relative to the shared data folder (nothing copied).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.distill.pseudo_labels import coco_categories
from prunepose.errors import DataError

#: COCO-17 index <- source index, for the sources whose layout is not COCO-17.
CROWDPOSE_TO_COCO = {5 + i: i for i in range(12)}
MPII_TO_COCO = {5: 13, 6: 12, 7: 14, 8: 11, 9: 15, 10: 10, 11: 3, 12: 2, 13: 4, 14: 1, 15: 5, 16: 0}
POSETRACK_UNLABELLED = (1, 2, 3, 4)  # head_bottom, head_top, ears (never labelled)

HELDOUT_SOURCES = ("coco", "ochuman", "posetrack18", "crowdpose", "mpii")


def _read(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: held-out annotation file not found")
    return json.loads(path.read_text())


def _remap(flat: list[float], mapping: dict[int, int]) -> list[float]:
    src = np.asarray(flat, dtype=np.float64).reshape(-1, 3)
    out = np.zeros((17, 3))
    for dst, s in mapping.items():
        out[dst] = src[s]
    return out.reshape(-1).tolist()


def _coco_like(root: Path, folder: str, ann_name: str, image_prefix: str = "") -> list[tuple[dict, list[dict]]]:
    data = _read(root / folder / ann_name)
    anns: dict[Any, list[dict]] = {}
    for a in data["annotations"]:
        anns.setdefault(a["image_id"], []).append(a)
    return [(im, anns.get(im["id"], [])) for im in data["images"]]


def build_heldout(data_dir: str | Path, sources: tuple[str, ...] = HELDOUT_SOURCES) -> dict[str, Any]:
    """The held-out COCO-17 JSON; each image carries ``source``; file names are relative to ``data_dir``."""
    root = Path(data_dir) / "mmpose-testdata"
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []

    def add(source: str, file_name: str, width: int, height: int, persons: list[tuple[list, list, float]]) -> None:
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": f"mmpose-testdata/{file_name}", "width": int(width),
                       "height": int(height), "source": source})
        for kpts, bbox, area in persons:
            kp = np.asarray(kpts, dtype=np.float64).reshape(17, 3)
            kp[kp[:, 2] <= 0] = 0.0
            kp[kp[:, 2] > 0, 2] = 2.0
            n = int((kp[:, 2] > 0).sum())
            if n == 0:
                continue
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                                "bbox": [float(v) for v in bbox], "area": float(area), "num_keypoints": n,
                                "keypoints": [round(float(v), 2) for v in kp.reshape(-1)]})

    for source in sources:
        if source in ("coco", "ochuman"):
            name = "test_coco.json" if source == "coco" else "test_ochuman.json"
            for im, anns in _coco_like(root, source, name):
                add(source, f"{source}/{im['file_name']}", im["width"], im["height"],
                    [(a["keypoints"], a["bbox"], a["area"]) for a in anns if not a.get("iscrowd")])
        elif source == "posetrack18":
            for im, anns in _coco_like(root, source, "annotations/test_posetrack18_val.json"):
                persons = []
                for a in anns:
                    kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
                    kp[list(POSETRACK_UNLABELLED)] = 0.0
                    persons.append((kp.reshape(-1).tolist(), a["bbox"], a["bbox"][2] * a["bbox"][3]))
                add(source, f"{source}/{im['file_name']}", im["width"], im["height"], persons)
        elif source == "crowdpose":
            for im, anns in _coco_like(root, source, "test_crowdpose.json"):
                add(source, f"{source}/{im['file_name']}", im["width"], im["height"],
                    [(_remap(a["keypoints"], CROWDPOSE_TO_COCO), a["bbox"], a["bbox"][2] * a["bbox"][3])
                     for a in anns if not a.get("iscrowd")])
        elif source == "mpii":
            import cv2

            for rec in _read(root / "mpii/test_mpii.json"):
                joints = np.asarray(rec["joints"], dtype=np.float64)
                vis = np.asarray(rec["joints_vis"], dtype=np.float64)
                flat = np.concatenate([joints, vis[:, None]], 1).reshape(-1).tolist()
                pts = joints[vis > 0]
                lo, hi = pts.min(0), pts.max(0)
                w, h = hi - lo
                box = [lo[0] - 0.1 * w, lo[1] - 0.1 * h, 1.2 * w, 1.2 * h]
                image = cv2.imread(str(root / "mpii" / rec["image"]))
                if image is None:
                    raise DataError(f"{root / 'mpii' / rec['image']}: unreadable image")
                add(source, f"mpii/{rec['image']}", image.shape[1], image.shape[0],
                    [(_remap(flat, MPII_TO_COCO), box, box[2] * box[3])])
        else:
            raise DataError(f"unknown held-out source {source!r}; choose from {HELDOUT_SOURCES}")
    return {"info": {"description": "held-out real persons (mmpose test fixtures) mapped to COCO-17"},
            "licenses": [], "categories": coco_categories(), "images": images, "annotations": annotations}
