"""Label every gathered person with the MoveNet Thunder teacher; write a COCO keypoints JSON.

Reads ``<out>/manifest.json`` (scripts/distill/gather_images.py), writes ``<out>/pseudo_train.json``
(file names relative to ``<out>``) and prints per-source counts of kept persons. A person is kept when
at least ``--min-keypoints`` keypoints score >= ``--score-thr`` (implausible boxes, e.g. background
blobs of the MOG2 step, fail this). Entries without boxes: the teacher runs on the whole image, then
again on the box its confident keypoints span.

Usage: python scripts/distill/pseudo_label.py [--out work_dirs/distill] [--flip]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2

from prunepose.distill.pseudo_labels import build_coco_json, person_annotation
from prunepose.distill.teacher import MoveNetTeacher, keypoint_box


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="work_dirs/distill")
    ap.add_argument("--teacher", default="../shared/data/movenet/movenet-thunder.onnx")
    ap.add_argument("--flip", action="store_true", help="average the teacher over the mirrored crop")
    ap.add_argument("--score-thr", type=float, default=0.3)
    ap.add_argument("--min-keypoints", type=int, default=8)
    args = ap.parse_args()
    out = Path(args.out)
    manifest = json.loads((out / "manifest.json").read_text())
    teacher = MoveNetTeacher(args.teacher, flip=args.flip)
    images, annotations, counts = [], [], {}
    t0 = time.time()
    for image_id, entry in enumerate(manifest, start=1):
        image = cv2.imread(str(out / entry["file"]))
        h, w = image.shape[:2]
        boxes = entry["boxes"]
        if boxes is None:  # find the (most prominent) person with the teacher on the whole image
            kpts, scores = teacher(image, [0.0, 0.0, float(w), float(h)], padding=1.0)
            box = keypoint_box(kpts, scores, args.score_thr)
            boxes = [] if box is None else [box.tolist()]
        kept = 0
        for box in boxes:
            kpts, scores = teacher(image, box)
            if int((scores >= args.score_thr).sum()) < args.min_keypoints:
                continue
            annotations.append(person_annotation(len(annotations) + 1, image_id, box, kpts, scores, args.score_thr))
            kept += 1
        c = counts.setdefault(entry["source"], [0, 0, 0])
        c[1] += len(boxes)
        c[2] += kept
        if kept:
            c[0] += 1
            images.append({"id": image_id, "file_name": entry["file"], "width": w, "height": h,
                           "source": entry["source"], "licence": entry["licence"], "origin": entry["origin"]})
        if image_id % 50 == 0:
            done = f"{image_id}/{len(manifest)} images, {len(annotations)} persons"
            print(f"{done}, {time.time() - t0:.0f} s", flush=True)
    desc = (f"MoveNet Thunder pseudo-labels ({'flip-averaged' if args.flip else 'single pass'}, keypoints with "
            f"score < {args.score_thr} marked v=0) on real images; see manifest.json for provenance")
    (out / "pseudo_train.json").write_text(json.dumps(build_coco_json(images, annotations, desc)))
    print(json.dumps({"source: [images kept, candidate persons, persons kept]": counts,
                      "persons": len(annotations), "seconds": round(time.time() - t0)}))


if __name__ == "__main__":
    main()
