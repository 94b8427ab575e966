"""Person detector quality and speed on real labelled images, and end-to-end keypoint AP without GT boxes.

Per source (COCO train2017 images of coco-mini, COCO val2017 / CrowdPose / OCHuman / PoseTrack18 samples of
mmpose-testdata), over the labelled images that are present:

* recall of GT persons at IoU >= 0.5 (one-to-one, detections taken by descending score, as pycocotools
  matches), for all non-crowd GT boxes and for those with >= 1 labelled keypoint;
* pycocotools bbox AP (category person) of the detections (score threshold 0.01 for AP, as detector
  papers; the recall is given at the pipeline's default threshold too);
* detector milliseconds per image (median wall clock with the given onnxruntime thread count, and the
  process CPU time per image, which other jobs on a shared machine inflate much less than wall clock);
* ``--pose``: keypoint AP (pycocotools) of ``PoseEstimator2D`` with detector boxes vs the same model with
  the GT boxes, over every GT person of the COCO sources (OKS-NMS and rescoring as ``prunepose test``).

Caveats printed with the numbers: the COCO detector (YOLOX, COCO train2017) has seen the coco-mini images;
CrowdPose/OCHuman/PoseTrack18 label only some of the people in an image, so unlabelled people found count
as false positives in their AP (recall is unaffected).

    python benchmarks/bench_detector.py                        # detector, default settings
    python benchmarks/bench_detector.py --input-size 640 --threads 2 --pose --json work_dirs/det/bench.json
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from prunepose.detect import PersonDetector, box_iou
from prunepose.paths import shared_data_dir


@dataclass
class Source:
    name: str
    images: Path  # folder the file names are relative to
    annotations: Path
    note: str
    all_labelled: bool = False  # every person of an image has a box (COCO), so end-to-end AP is fair


def sources(data: Path, coco_val: Path | None = None) -> list[Source]:
    """The labelled image sets that are present; ``coco_val`` adds COCO val2017 images with their full
    annotations (a folder with ``val2017/`` and ``annotations/person_keypoints_val2017.json``, e.g. the
    COCO-MINI subset, see ``--coco-val``)."""
    mm = data / "mmpose-testdata"
    extra = []
    if coco_val is not None:
        extra.append(Source("COCO val2017 (COCO-MINI)", coco_val / "val2017",
                            coco_val / "annotations" / "person_keypoints_val2017.json",
                            "held out from COCO training", all_labelled=True))
    return extra + [
        Source("coco-mini (train2017)", data / "coco-mini" / "train2017", data / "coco-mini" / "annotations" /
               "person_keypoints_train2017.json", "seen by the COCO-trained detector", all_labelled=True),
        Source("COCO val2017 (mmpose)", mm / "coco", mm / "coco" / "test_coco.json", "held out from COCO training",
               all_labelled=True),
        Source("CrowdPose (mmpose)", mm / "crowdpose", mm / "crowdpose" / "test_crowdpose.json",
               "not all people labelled"),
        Source("OCHuman (mmpose)", mm / "ochuman", mm / "ochuman" / "test_ochuman.json", "not all people labelled"),
        Source("PoseTrack18 (mmpose)", mm / "posetrack18", mm / "posetrack18" / "annotations" /
               "test_posetrack18_val.json", "not all people labelled"),
    ]


def load_gt(src: Source) -> dict[str, Any]:
    """The annotation JSON restricted to the images present, person annotations with an ``area``."""
    data = json.loads(src.annotations.read_text())
    images = [im for im in data["images"] if (src.images / im["file_name"]).is_file()]
    ids = {im["id"] for im in images}
    anns = []
    for a in data["annotations"]:
        if a["image_id"] in ids and a.get("category_id", 1) == 1:
            a = dict(a)
            a.setdefault("area", float(a["bbox"][2] * a["bbox"][3]))
            a.setdefault("iscrowd", 0)
            anns.append(a)
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "person"}]}


def match_recall(gt_xyxy: np.ndarray, det_xyxy: np.ndarray, thr: float = 0.5) -> np.ndarray:
    """(G,) bool: GT boxes matched one-to-one by a detection with IoU >= thr (detections in score order)."""
    hit = np.zeros(len(gt_xyxy), bool)
    if not len(gt_xyxy) or not len(det_xyxy):
        return hit
    iou = box_iou(det_xyxy, gt_xyxy)
    for d in range(len(det_xyxy)):
        cand = np.where(~hit, iou[d], -1.0)
        g = int(np.argmax(cand))
        if cand[g] >= thr:
            hit[g] = True
    return hit


def xywh_to_xyxy(b: Any) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def bbox_ap(gt: dict[str, Any], dets: list[dict[str, Any]]) -> float:
    """pycocotools bbox AP (IoU .50:.95, all areas) for category person; -1 when nothing to score."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not dets:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        res = coco.loadRes(dets)
        ev = COCOeval(coco, res, "bbox")
        ev.params.catIds = [1]
        ev.params.imgIds = [im["id"] for im in gt["images"]]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])


def run_detector(args: argparse.Namespace, data: Path) -> list[dict[str, Any]]:
    low = PersonDetector(input_size=args.input_size, score_thr=0.01, nms_thr=args.nms_thr,
                         num_threads=args.threads)
    rows, times, cpu_times = [], [], []
    pooled = {"gt": 0, "hit": 0, "hit_thr": 0}
    pooled_thr = {t: 0 for t in args.recall_thrs}
    for src in sources(data, args.coco_val):
        if not src.annotations.is_file():
            continue
        gt = load_gt(src)
        dets, rec_all, rec_kp, rec_all_def, n_all, n_kp = [], 0, 0, 0, 0, 0
        for im in gt["images"]:
            image = cv2.imread(str(src.images / im["file_name"]))
            for _ in range(args.warmup if not times else 0):
                low(image)
            t0, c0 = time.perf_counter(), time.process_time()
            boxes, scores = low(image)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
            anns = [a for a in gt["annotations"] if a["image_id"] == im["id"] and not a["iscrowd"]]
            g = xywh_to_xyxy([a["bbox"] for a in anns]) if anns else np.zeros((0, 4))
            kp = np.array([a.get("num_keypoints", 0) > 0 for a in anns], bool)
            hit = match_recall(g, boxes)
            hit_def = match_recall(g, boxes[scores >= args.det_thr])
            for t in args.recall_thrs:
                pooled_thr[t] += int(match_recall(g, boxes[scores >= t]).sum())
            rec_all += int(hit.sum())
            rec_kp += int(hit[kp].sum())
            rec_all_def += int(hit_def.sum())
            n_all += len(anns)
            n_kp += int(kp.sum())
            pooled["gt"] += len(anns)
            pooled["hit"] += int(hit.sum())
            pooled["hit_thr"] += int(hit_def.sum())
            for b, s in zip(boxes, scores):
                dets.append({"image_id": im["id"], "category_id": 1, "score": float(s),
                             "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
        rows.append({"source": src.name, "note": src.note, "images": len(gt["images"]), "gt_persons": n_all,
                     "gt_with_keypoints": n_kp, "recall_iou50": rec_all / max(1, n_all),
                     "recall_iou50_with_keypoints": rec_kp / max(1, n_kp),
                     f"recall_iou50_at_det_thr_{args.det_thr}": rec_all_def / max(1, n_all),
                     "bbox_ap": bbox_ap(gt, dets)})
    rows.append({"source": "all sources pooled", "gt_persons": pooled["gt"],
                 "recall_iou50": pooled["hit"] / max(1, pooled["gt"]),
                 f"recall_iou50_at_det_thr_{args.det_thr}": pooled["hit_thr"] / max(1, pooled["gt"]),
                 **{f"recall_iou50_at_det_thr_{t:g}": n / max(1, pooled["gt"]) for t, n in pooled_thr.items()}})
    rows.append({"source": "timing", "images": len(times), "ms_median": 1000 * statistics.median(times),
                 "ms_mean": 1000 * statistics.fmean(times), "cpu_ms_median": 1000 * statistics.median(cpu_times),
                 "threads": args.threads, "input_size": args.input_size})
    return rows


def keypoint_ap(gt: dict[str, Any], results: list[dict[str, Any]]) -> tuple[float, float]:
    """pycocotools keypoint AP and AR (OKS .50:.95) of ``results`` over all images of ``gt``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not results:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), "keypoints")
        ev.params.imgIds = [im["id"] for im in gt["images"]]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[5])


def run_pose(args: argparse.Namespace, data: Path) -> list[dict[str, Any]]:
    """Keypoint AP of the default pose model from GT boxes vs from the detector (default and low thresholds).

    GT boxes: every non-crowd annotation with >= 1 labelled keypoint (the persons COCOeval scores), box score 1,
    as ``prunepose test`` with ground-truth boxes. Detector: ``PoseEstimator2D(det_thr=...)`` on the bare image.
    """
    from prunepose import PoseEstimator2D

    gt_est = PoseEstimator2D(detector=None)
    det_thrs = sorted({args.det_thr, *args.pose_det_thrs})
    det_ests = {t: PoseEstimator2D(det_thr=t, det_size=args.input_size) for t in det_thrs}
    rows = []
    for src in [s for s in sources(data, args.coco_val) if s.all_labelled and s.annotations.is_file()]:
        gt = load_gt(src)
        res_gt: list[dict[str, Any]] = []
        res_det: dict[float, list[dict[str, Any]]] = {t: [] for t in det_thrs}
        n_kp = 0
        for im in gt["images"]:
            image = cv2.imread(str(src.images / im["file_name"]))
            anns = [a for a in gt["annotations"] if a["image_id"] == im["id"] and not a["iscrowd"]
                    and a.get("num_keypoints", 0) > 0]
            n_kp += len(anns)
            if anns:
                r = gt_est.predict_image(image, xywh_to_xyxy([a["bbox"] for a in anns]))
                r.image_id = im["id"]
                res_gt += r.to_json()
            for t, est in det_ests.items():
                r = est.predict_image(image)
                r.image_id = im["id"]
                res_det[t] += r.to_json()
        ap_gt, ar_gt = keypoint_ap(gt, res_gt)
        row: dict[str, Any] = {"source": src.name, "pose_model": gt_est.config.name, "persons_with_keypoints": n_kp,
                               "kpt_ap_gt_boxes": ap_gt, "kpt_ar_gt_boxes": ar_gt}
        for t in det_thrs:
            ap, ar = keypoint_ap(gt, res_det[t])
            row[f"kpt_ap_detector_thr_{t:g}"] = ap
            row[f"kpt_ar_detector_thr_{t:g}"] = ar
            row[f"ratio_thr_{t:g}"] = ap / ap_gt if ap_gt > 0 else float("nan")
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", type=int, default=416, help="detector input long side (default 416)")
    parser.add_argument("--nms-thr", type=float, default=0.6)
    parser.add_argument("--det-thr", type=float, default=0.3, help="pipeline score threshold for the 2nd recall")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pose", action="store_true", help="also end-to-end keypoint AP vs GT boxes")
    parser.add_argument("--pose-det-thrs", type=float, nargs="*", default=[0.05],
                        help="extra detector thresholds for the end-to-end AP (default 0.05)")
    parser.add_argument("--recall-thrs", type=float, nargs="*", default=[0.05, 0.1, 0.2],
                        help="more score thresholds for the pooled recall")
    parser.add_argument("--coco-val", type=Path, default=None,
                        help="COCO val2017 images + full annotations: a folder with val2017/ and "
                             "annotations/person_keypoints_val2017.json (e.g. a COCO-MINI checkout, "
                             "github.com/Obmutescence/COCO-MINI@644f29e)")
    parser.add_argument("--json", help="write all numbers here")
    args = parser.parse_args()
    data = shared_data_dir()
    if data is None:
        raise SystemExit("no shared data folder (set PRUNEPOSE_DATA)")
    rows = run_detector(args, data)
    for r in rows:
        print(json.dumps(r))
    if args.pose:
        for r in run_pose(args, data):
            print(json.dumps(r))
            rows.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
