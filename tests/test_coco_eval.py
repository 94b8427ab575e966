"""COCO keypoint metrics against independent references: hand arithmetic, pycocotools, real COCO GT."""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prunepose.errors import DataError
from prunepose.metrics import (
    COCO_SIGMAS,
    STATS_NAMES,
    evaluate_coco_keypoints,
    oks_iou,
    oks_nms,
    postprocess_topdown,
    rescore,
    write_coco_results,
)
from prunepose.paths import shared_data_dir

# COCO-17 sigmas as printed by pycocotools (Params.setKpParams): [.26, .25, ...] / 10.
SIGMAS = np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72,
                   0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89]) / 10.0  # fmt: skip
AREA = 10000.0  # s^2: a 100 x 100 person, "large" in COCO (> 96^2)


def _gt_pose() -> np.ndarray:
    """(17, 3) ground-truth pose, all keypoints labelled visible (v = 2)."""
    xy = np.stack([100.0 + 10.0 * np.arange(17), 150.0 + 5.0 * np.arange(17)], axis=1)
    return np.concatenate([xy, np.full((17, 1), 2.0)], axis=1)


def _gt_file(tmp_path: Path, pose: np.ndarray) -> Path:
    """A one-image, one-person COCO keypoint annotation file."""
    ann = {
        "images": [{"id": 1, "width": 640, "height": 480, "file_name": "x.jpg"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "area": AREA,
                "bbox": [90.0, 140.0, 180.0, 100.0],
                "keypoints": pose.reshape(-1).tolist(),
                "num_keypoints": int((pose[:, 2] > 0).sum()),
            }
        ],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(ann))
    return path


def _shift_x(pose: np.ndarray, dx: np.ndarray) -> np.ndarray:
    out = pose.copy()
    out[:, 0] += dx
    out[:, 2] = 1.0
    return out


def test_oks_uniform_displacement_by_hand() -> None:
    # Displace keypoint i by d_i = t * k_i * s with k_i = 2 sigma_i, s = sqrt(area) = 100, t = 0.6:
    # e_i = d_i^2 / (2 s^2 k_i^2) = t^2 / 2 = 0.18 for every i, so OKS = exp(-0.18) = 0.835270...
    gt = _gt_pose()
    pred = _shift_x(gt, 0.6 * (2 * SIGMAS) * 100.0)
    got = oks_iou(gt, pred[None], AREA, AREA, SIGMAS)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(math.exp(-0.18), abs=1e-12)
    assert got[0] == pytest.approx(0.835270211, abs=1e-9)


def test_oks_mixed_displacement_by_hand() -> None:
    # Nose moved 3 px: k = 2 * 0.026 = 0.052, k^2 = 0.002704,
    #   e = 3^2 / (2 * 10000 * 0.002704) = 9 / 54.08 = 0.16642...
    # Left wrist (index 9) moved 10 px: k = 0.124, k^2 = 0.015376,
    #   e = 10^2 / (2 * 10000 * 0.015376) = 100 / 307.52 = 0.32518...
    # The other 15 keypoints are exact (e = 0): OKS = (15 + exp(-9/54.08) + exp(-100/307.52)) / 17.
    gt = _gt_pose()
    dx = np.zeros(17)
    dx[0], dx[9] = 3.0, 10.0
    expected = (15 + math.exp(-9 / 54.08) + math.exp(-100 / 307.52)) / 17
    assert oks_iou(gt.reshape(-1), _shift_x(gt, dx).reshape(-1), AREA, AREA)[0] == pytest.approx(
        expected, abs=1e-12
    )


def _pycocotools_oks(gt_path: Path, pred: np.ndarray) -> float:
    """OKS of one detection against the one GT, read from pycocotools' own ``COCOeval.ious``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(gt_path))
        dt = coco.loadRes([{"image_id": 1, "category_id": 1, "keypoints": pred.reshape(-1).tolist(),
                            "score": 1.0}])  # fmt: skip
        ev = COCOeval(coco, dt, iouType="keypoints")
        ev.evaluate()
    return float(ev.ious[(1, 1)][0, 0])


def test_oks_matches_pycocotools_including_unlabelled(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    gt = _gt_pose()
    gt[[3, 4, 16], :] = 0.0  # unlabelled keypoints (v = 0) are not counted by pycocotools
    pred = _shift_x(gt, rng.uniform(-8, 8, 17))
    pred[:, 1] += rng.uniform(-8, 8, 17)
    ref = _pycocotools_oks(_gt_file(tmp_path, gt), pred)
    # Counting only keypoints whose flag/score exceeds 0 in both poses reproduces pycocotools.
    assert oks_iou(gt, pred, AREA, AREA, vis_thr=0.0)[0] == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize(
    ("t", "passed"),
    [
        # OKS = exp(-t^2/2). t = 0.6: 0.8353 passes .50,.55,...,.80 (7 of 10 thresholds), fails .85.
        (0.6, 7),
        # t = 1.0: OKS = exp(-0.5) = 0.6065 passes .50, .55, .60 (3 of 10).
        (1.0, 3),
    ],
)
def test_ap_counts_passed_thresholds(tmp_path: Path, t: float, passed: int, capsys: Any) -> None:
    gt = _gt_pose()
    gt_path = _gt_file(tmp_path, gt)
    pred = _shift_x(gt, t * (2 * SIGMAS) * 100.0)
    results = [{"image_id": 1, "category_id": 1, "keypoints": pred, "score": 0.9}]
    stats = evaluate_coco_keypoints(gt_path, results)
    assert capsys.readouterr().out == ""  # pycocotools' printing is captured
    assert list(stats) == list(STATS_NAMES)
    # One GT, one detection: at each OKS threshold the precision is 1 (match) or 0 (no match),
    # so AP = AR = fraction of the 10 thresholds passed.
    assert stats["AP"] == pytest.approx(passed / 10)
    assert stats["AR"] == pytest.approx(passed / 10)
    assert stats["AP .5"] == pytest.approx(1.0)
    assert stats["AP .75"] == pytest.approx(1.0 if passed >= 6 else 0.0)
    assert stats["AP (L)"] == pytest.approx(passed / 10)
    assert stats["AP (M)"] == -1.0  # no medium ground truth
    assert "Average Precision" in stats.summary


def test_evaluate_from_path_and_errors(tmp_path: Path) -> None:
    gt = _gt_pose()
    gt_path = _gt_file(tmp_path, gt)
    res_path = write_coco_results(
        [{"image_id": 1, "keypoints": gt.reshape(-1), "score": np.float32(1.0), "extra": "dropped"}],
        tmp_path / "out" / "res.json",
    )
    assert [p.name for p in res_path.parent.iterdir()] == ["res.json"]  # no temporary file left
    assert json.loads(res_path.read_text())[0].keys() == {"image_id", "category_id", "keypoints", "score"}
    assert evaluate_coco_keypoints(gt_path, res_path, sigmas=COCO_SIGMAS)["AP"] == pytest.approx(1.0)
    with pytest.raises(DataError, match="not in the annotation file"):
        evaluate_coco_keypoints(gt_path, [{"image_id": 99, "keypoints": gt, "score": 1.0}])
    with pytest.raises(DataError, match="missing field 'score'"):
        write_coco_results([{"image_id": 1, "keypoints": gt}], tmp_path / "bad.json")
    with pytest.raises(DataError, match="not found"):
        evaluate_coco_keypoints(tmp_path / "missing.json", [])


def test_ground_truth_as_predictions_gives_ap_one_on_coco_mini(tmp_path: Path) -> None:
    root = shared_data_dir()
    ann_file = None if root is None else root / "coco-mini/annotations/person_keypoints_train2017.json"
    if ann_file is None or not ann_file.is_file():
        pytest.skip("shared COCO-mini data not available (set PRUNEPOSE_DATA)")
    image_ids = {int(p.stem) for p in (ann_file.parent.parent / "train2017").glob("*.jpg")}
    assert len(image_ids) == 28
    anns = json.loads(ann_file.read_text())["annotations"]
    results = []
    for a in anns:
        if a["image_id"] in image_ids and a["num_keypoints"] > 0 and not a["iscrowd"]:
            kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
            kp[:, 2] = 1.0
            results.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp, "score": 1.0})
    assert len(results) == 86
    stats = evaluate_coco_keypoints(ann_file, write_coco_results(results, tmp_path / "r.json"),
                                    image_ids=image_ids)  # fmt: skip
    # These 28 images hold both medium and large people, so every one of the ten stats is defined.
    for name in STATS_NAMES:
        assert stats[name] == pytest.approx(1.0), name


def test_oks_nms_removes_near_duplicate_keeps_distinct() -> None:
    a = _gt_pose()
    a[:, 2] = 0.9
    a_dup = a.copy()
    a_dup[:, :2] += 1.0  # 1 px in x and y: OKS ~ 0.99 with a
    b = a.copy()
    b[:, 0] += 300.0  # another person: OKS ~ 0
    db = [
        {"keypoints": a, "score": 0.90, "area": AREA},
        {"keypoints": a_dup, "score": 0.95, "area": AREA},
        {"keypoints": b, "score": 0.50, "area": AREA},
    ]
    assert oks_iou(a_dup, a[None], AREA, AREA)[0] > 0.9
    assert oks_nms(db, thr=0.9) == [1, 2]  # highest score first; the lower duplicate goes
    assert oks_nms(db, thr=1.0) == [1, 0, 2]  # nothing exceeds OKS 1
    assert oks_nms([], thr=0.9) == []


def test_rescore() -> None:
    kp = np.zeros((17, 3))
    kp[:, 2] = [0.1] * 4 + [0.2] + [0.5] * 6 + [0.9] * 6  # 0.2 is not above the threshold
    # mean of the 12 scores above 0.2 = (6 * 0.5 + 6 * 0.9) / 12 = 0.7; times box score 0.8 = 0.56
    assert rescore(kp, 0.8, in_vis_thr=0.2) == pytest.approx(0.56)
    assert rescore(np.full(17, 0.1), 0.8) == 0.0


def test_postprocess_topdown_groups_rescoring_and_nms() -> None:
    a = _gt_pose()[:, :2]
    c = a + np.array([200.0, 0.0])
    preds = np.stack([a, c, a])  # the third is an exact duplicate of the first (same image)
    scores = np.ones((3, 17))
    scores[2] = 0.5
    meta = {
        "scores": scores,
        "box_scores": np.array([0.9, 0.7, 0.8]),
        "areas": np.full(3, AREA),
        "image_ids": np.array([5, 6, 5]),
    }
    out = postprocess_topdown(preds, meta)
    assert [(r["image_id"], round(r["score"], 6)) for r in out] == [(5, 0.9), (6, 0.7)]
    assert len(out[0]["keypoints"]) == 51 and out[0]["keypoints"][:3] == [100.0, 150.0, 1.0]
    # Without NMS the duplicate (0.8 * mean 0.5 = 0.4) stays, ranked after the original.
    out = postprocess_topdown(np.concatenate([preds, scores[..., None]], -1),
                              {k: v for k, v in meta.items() if k != "scores"}, use_nms=False)  # fmt: skip
    assert [(r["image_id"], round(r["score"], 6)) for r in out] == [(5, 0.9), (5, 0.4), (6, 0.7)]
