"""COCO-WholeBody per-part evaluation: GT as prediction, hand-computed OKS and AP, result formats, errors.

The OKS here is computed by hand in numpy (the COCO formula with per-part sigmas and the person's
``area``); the AP from those OKS follows the COCO definition written out in `_hand_ap`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prunepose.errors import ConfigError, DataError
from prunepose.metrics.coco_eval import STATS_NAMES
from prunepose.metrics.wholebody_eval import (
    EVAL_PARTS,
    PART_FIELDS,
    evaluate_wholebody_keypoints,
    part_sigmas,
    run_part_eval,
    to_wholebody_result,
    write_wholebody_results,
)
from prunepose.paths import shared_data_dir
from prunepose.skeletons import COCO_WHOLEBODY133

DATA = shared_data_dir()
ANN = DATA / "mmpose-testdata" / "coco" / "test_coco_wholebody.json" if DATA is not None else None
needs_data = pytest.mark.skipif(ANN is None or not ANN.is_file(), reason="mmpose-testdata/coco not found")
SLICES = {"body": slice(0, 17), "foot": slice(17, 23), "face": slice(23, 91), "lefthand": slice(91, 112),
          "righthand": slice(112, 133), "wholebody": slice(0, 133)}


def _gt() -> dict[str, Any]:
    return json.loads(ANN.read_text())  # type: ignore[union-attr]


def _kpts133(ann: dict[str, Any]) -> np.ndarray:
    return np.concatenate([np.asarray(ann[f], dtype=np.float64).reshape(-1, 3) for f in PART_FIELDS.values()])


def test_part_sigmas_are_the_skeleton_slices() -> None:
    sig = np.asarray(COCO_WHOLEBODY133.sigmas)
    for part, sl in SLICES.items():
        np.testing.assert_array_equal(part_sigmas(part), sig[sl])
    assert part_sigmas("foot")[0] == 0.068 and part_sigmas("lefthand")[0] == 0.029
    with pytest.raises(ConfigError, match="unknown COCO-WholeBody part"):
        part_sigmas("tail")


@needs_data
def test_ground_truth_as_prediction_gives_ap_one() -> None:
    """Labelled keypoints predicted exactly with score 1, unlabelled ones with score 0, so a part without
    any label is not predicted at all (xtcocotools drops all-zero-score predictions per part; a
    prediction for an unlabelled part would otherwise have to match that part's *ignored* GT)."""
    results = []
    for ann in _gt()["annotations"]:
        kp = _kpts133(ann)
        pred = kp.copy()
        pred[:, 2] = (kp[:, 2] > 0).astype(float)
        results.append({"image_id": ann["image_id"], "keypoints": pred, "score": 1.0})
    res = evaluate_wholebody_keypoints(ANN, results)
    assert set(res.parts) == set(EVAL_PARTS)
    for part in EVAL_PARTS:
        stats = res.parts[part]
        for name in ("AP", "AP .5", "AP .75", "AR", "AR .5", "AR .75", "AP (L)", "AR (L)"):
            assert stats[name] == pytest.approx(1.0), (part, name, stats)
    assert res["AP"] == 1.0 and res["body_AP"] == 1.0 and res["righthand_AR"] == 1.0
    # no face is labelled on a medium-sized person: pycocotools reports -1 there
    assert res["face_AP (M)"] == -1.0
    assert "== lefthand" in res.summary


# ------------------------------------------------------------------------------ perturbed predictions
def _perturbed() -> tuple[list[dict[str, Any]], dict[int, np.ndarray]]:
    """One prediction per annotated person: each keypoint j of person n moved by
    ``d = t_n * k_j * sqrt(area) * (1 + 0.4 sin(j))`` (``k_j = 2 sigma_j``) in direction ``j``, so a part's
    OKS is near ``exp(-t_n^2 / 2)`` but differs per keypoint; unlabelled keypoints get score 0.
    Returns the results and each annotation's predicted (133, 3) array by annotation id."""
    sig = np.asarray(COCO_WHOLEBODY133.sigmas)
    j = np.arange(133)
    results, preds = [], {}
    for n, ann in enumerate(_gt()["annotations"]):
        kp = _kpts133(ann)
        t = 0.15 + 0.11 * ((n * 5) % 11)  # person-level error, spread over the OKS threshold grid
        mag = t * 2 * sig * np.sqrt(ann["area"]) * (1 + 0.4 * np.sin(j))
        pred = kp.copy()
        pred[:, 0] += mag * np.cos(j)
        pred[:, 1] += mag * np.sin(j)
        pred[:, 2] = np.where(kp[:, 2] > 0, 0.5 + 0.01 * (j % 7), 0.0)
        score = 0.95 - 0.06 * ((n * 7) % 13)  # an order unrelated to the error
        results.append({"image_id": ann["image_id"], "keypoints": pred.reshape(-1).tolist(), "score": score})
        preds[ann["id"]] = pred
    return results, preds


def _hand_oks(pred: np.ndarray, gt_ann: dict[str, Any], part: str) -> float:
    """COCO OKS of one prediction against one GT for a part, from the formula."""
    sl = SLICES[part]
    g = _kpts133(gt_ann)[sl]
    d = pred[sl]
    var = (2 * part_sigmas(part)) ** 2
    vis = g[:, 2] > 0
    if vis.any():
        dx, dy = d[:, 0] - g[:, 0], d[:, 1] - g[:, 1]
    else:  # unlabelled GT: distance to the box doubled on each side (it is ignored anyway)
        x, y, w, h = gt_ann["bbox"]
        dx = np.maximum(0, (x - w) - d[:, 0]) + np.maximum(0, d[:, 0] - (x + 2 * w))
        dy = np.maximum(0, (y - h) - d[:, 1]) + np.maximum(0, d[:, 1] - (y + 2 * h))
    e = (dx**2 + dy**2) / var / (gt_ann["area"] + np.spacing(1)) / 2
    if vis.any():
        e = e[vis]
    return float(np.mean(np.exp(-e)))


def _match_image(hand: np.ndarray, own: list[int], ignored: np.ndarray, t: float) -> list[str]:
    """COCO matching at OKS threshold ``t`` for one image, given that no prediction reaches 0.5 with another
    person's *labelled* GT: prediction ``i`` (rows in score order) is a TP when its own GT is labelled and
    OKS >= t; otherwise it may still match a not yet matched *ignored* GT (best OKS >= t, ties to the later
    GT) and is then left out ("ign"); else it is a FP."""
    taken = np.zeros(len(ignored), dtype=bool)
    out = []
    for i, j in enumerate(own):
        if not ignored[j] and hand[i, j] >= t:
            out.append("tp")
            continue
        best, m = min(t, 1 - 1e-10), -1
        for g in np.flatnonzero(ignored & ~taken):
            if hand[i, g] >= best:
                best, m = hand[i, g], g
        if m >= 0:
            taken[m] = True
            out.append("ign")
        else:
            out.append("fp")
    return out


def _hand_ap(tp: np.ndarray, scores: np.ndarray, num_gt: int) -> tuple[float, float]:
    """101-point interpolated COCO AP and the recall of one threshold, detections given as TP flags."""
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order].astype(float)
    tps, fps = np.cumsum(tp), np.cumsum(1 - tp)
    recall = tps / num_gt
    precision = tps / (tps + fps + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # precision envelope
    rec_thrs = np.linspace(0.0, 1.0, 101)
    idx = np.searchsorted(recall, rec_thrs, side="left")
    q = np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0)
    return float(q.mean()), float(recall[-1]) if len(recall) else 0.0


@needs_data
@pytest.mark.parametrize("part", EVAL_PARTS)
def test_perturbed_oks_and_ap_by_hand(part: str) -> None:
    results, preds = _perturbed()
    gt = _gt()
    anns_by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in gt["annotations"]:
        anns_by_image.setdefault(ann["image_id"], []).append(ann)
    ev = run_part_eval(ANN, results, part)
    sl = SLICES[part]
    score_of = {ann["id"]: r["score"] for ann, r in zip(gt["annotations"], results, strict=True)}

    thresholds = np.linspace(0.5, 0.95, 10)
    outcome: list[list[tuple[float, str]]] = [[] for _ in thresholds]  # (score, tp/fp/ign) per threshold
    num_gt = 0
    for image_id, anns in anns_by_image.items():
        labelled = [a for a in anns if np.any(_kpts133(a)[sl, 2] > 0)]
        num_gt += len(labelled)
        # predictions without any positive score in this part are dropped (xtcocotools rule)
        dts = [a for a in anns if np.any(preds[a["id"]][sl, 2] > 0)]
        dts.sort(key=lambda a: -score_of[a["id"]])
        coco = ev.ious[(image_id, 1)]
        if len(dts) == 0:
            assert len(coco) == 0 and not labelled
            continue
        hand = np.array([[_hand_oks(preds[d["id"]], g, part) for g in anns] for d in dts])
        np.testing.assert_allclose(coco, hand, rtol=1e-12, atol=1e-15)
        ignored = np.array([not np.any(_kpts133(g)[sl, 2] > 0) for g in anns])
        own = [anns.index(d) for d in dts]
        for i in range(len(dts)):
            others = [g for g in range(len(anns)) if g != own[i] and not ignored[g]]
            # no prediction reaches OKS 0.5 with another labelled person: matching is by identity
            assert np.all(hand[i, others] < 0.5), (part, image_id, hand[i])
        for k, t in enumerate(thresholds):
            outcome[k] += zip([score_of[d["id"]] for d in dts], _match_image(hand, own, ignored, t), strict=True)
    assert num_gt > 0
    kinds = {o for res_t in outcome for _, o in res_t}
    assert "fp" in kinds and ("ign" in kinds or part not in ("lefthand", "righthand")), kinds

    aps, recalls = [], []
    for res_t in outcome:
        counted = [(s, o == "tp") for s, o in res_t if o != "ign"]
        ap, rec = _hand_ap(np.array([tp for _, tp in counted]), np.array([s for s, _ in counted]), num_gt)
        aps.append(ap)
        recalls.append(rec)
    stats = dict(zip(STATS_NAMES, ev.stats, strict=True))
    assert stats["AP"] == pytest.approx(np.mean(aps), abs=1e-12)
    assert stats["AP .5"] == pytest.approx(aps[0], abs=1e-12)
    assert stats["AP .75"] == pytest.approx(aps[5], abs=1e-12)
    assert stats["AR"] == pytest.approx(np.mean(recalls), abs=1e-12)
    assert 0.0 < stats["AP"] < 1.0  # the offsets spread over the threshold grid: a non-trivial AP
    res = evaluate_wholebody_keypoints(ANN, results, parts=[part])
    assert res.parts[part]["AP"] == stats["AP"]


@needs_data
def test_result_formats_agree_and_round_trip(tmp_path: Path) -> None:
    results, _ = _perturbed()
    per_part = [to_wholebody_result(r) for r in results]
    assert set(per_part[0]) == {"image_id", "category_id", "score", *PART_FIELDS.values()}
    assert len(per_part[0]["keypoints"]) == 51 and len(per_part[0]["face_kpts"]) == 204
    a = evaluate_wholebody_keypoints(ANN, results)
    b = evaluate_wholebody_keypoints(ANN, per_part)
    path = write_wholebody_results(results, tmp_path / "res.json")
    c = evaluate_wholebody_keypoints(ANN, path)
    assert dict(a) == dict(b) == dict(c)
    assert json.loads(path.read_text())[0]["foot_kpts"] == per_part[0]["foot_kpts"]
    assert "body_AP" in a and "AP" in a and "wholebody_AP" not in a and len(a) == 60


@needs_data
def test_part_scores_and_empty_results() -> None:
    results, _ = _perturbed()
    # a per-part score key (xtcocotools' 'foot_score') replaces 'score' for that part only
    flipped = [dict(r, foot_score=1.0 - r["score"]) for r in results]
    base = evaluate_wholebody_keypoints(ANN, results, parts=["body", "foot"])
    other = evaluate_wholebody_keypoints(ANN, flipped, parts=["body", "foot"])
    assert other["body_AP"] == base["body_AP"] and other["foot_AP"] != base["foot_AP"]
    empty = evaluate_wholebody_keypoints(ANN, [])
    assert empty["AP"] == 0.0 and empty["face_AR"] == 0.0


@needs_data
def test_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"result #0: field 'keypoints' has 60 values"):
        evaluate_wholebody_keypoints(ANN, [{"image_id": 785, "keypoints": [0.0] * 60, "score": 1.0}])
    with pytest.raises(DataError, match=r"result #0: field 'foot_kpts' missing"):
        evaluate_wholebody_keypoints(ANN, [{"image_id": 785, "keypoints": [1.0] * 51, "score": 1.0}])
    with pytest.raises(DataError, match="not in"):
        evaluate_wholebody_keypoints(ANN, [{"image_id": 1, "keypoints": [1.0] * 399, "score": 1.0}])
    with pytest.raises(ConfigError, match="unknown"):
        evaluate_wholebody_keypoints(ANN, [], parts=["hands"])
    gt = _gt()
    del gt["annotations"][2]["righthand_kpts"]
    bad = tmp_path / "gt.json"
    bad.write_text(json.dumps(gt))
    with pytest.raises(DataError, match=r"gt\.json: annotations\[id=230195\]: field 'righthand_kpts' missing"):
        evaluate_wholebody_keypoints(bad, [{"image_id": 785, "keypoints": [1.0] * 399, "score": 1.0}])
