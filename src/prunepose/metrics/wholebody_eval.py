"""COCO-WholeBody keypoint evaluation per part (body, foot, face, hands, whole body) with pycocotools.

Why not xtcocotools: the official GTPT / MMPose evaluation calls xtcocotools' ``COCOeval`` six times,
with ``iouType`` ``keypoints_body`` / ``_foot`` / ``_face`` / ``_lefthand`` / ``_righthand`` /
``_wholebody``, that part's OKS sigmas and ``use_area=True``. xtcocotools is a fork of pycocotools
that is awkward to install; its part evaluation is plain keypoint OKS evaluation on a different
keypoint array, so it is reproduced here by giving pycocotools' ``COCOeval(iouType='keypoints')`` ground
truth and results whose ``keypoints`` field *is* that part. What xtcocotools (1.14.3) does, and how each
point is reproduced:

* GT keypoints: the part's array (``wholebody`` = body + foot + face + left hand + right hand, 133);
  a GT is ignored when its *part* has no labelled keypoint (``v > 0``) -> ``num_keypoints`` (which
  pycocotools reads for that rule) is set to the part's labelled count. Crowd GTs are ignored as usual.
* GT area: the annotation's ``area`` (the whole person's; ``use_area=True``) for every part, so OKS
  scales a hand's error by the person's size, exactly as the official numbers do.
* Results: xtcocotools' ``loadRes`` computes each result's ``area``/``bbox`` from its ``keypoints`` field,
  which in the COCO-WholeBody results format holds the 17 *body* keypoints; those body-derived values
  (which decide whether an unmatched result is ignored in the medium/large ranges) are kept for every
  part. A result whose part has no keypoint score ``> 0`` is dropped from that part's evaluation
  (xtcocotools' "ignore all-zero keypoints"; pycocotools has no such rule).
* Scores: ``score``, or ``<part>_score`` / ``wholebody_score`` when a result carries one (xtcocotools'
  part score keys; never for body).
* Sigmas: the part's slice of `prunepose.skeletons.COCO_WHOLEBODY133.sigmas`; all 133 for
  ``wholebody``. Everything else (OKS formula, matching, 101-point AP, ``maxDets=20``, area ranges) is the
  same code in both libraries.

Results format (COCO-WholeBody, as MMPose and GTPT write it), one record per person::

    {"image_id", "category_id", "keypoints": [x, y, s] * 17, "foot_kpts": ... * 6,
     "face_kpts": ... * 68, "lefthand_kpts": ... * 21, "righthand_kpts": ... * 21, "score"}

`to_wholebody_result` also accepts a record whose ``keypoints`` holds all 133 keypoints (``(133, 3)`` or
flat), e.g. the output of `prunepose.metrics.coco_eval.postprocess_topdown`, and splits it.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import ConfigError, DataError
from prunepose.metrics.coco_eval import (
    STATS_NAMES,
    KeypointEvalResult,
    _load_coco,
    _write_json_atomic,
    read_results,
)

__all__ = [
    "EVAL_PARTS",
    "PART_FIELDS",
    "PART_SIZES",
    "WholeBodyEvalResult",
    "evaluate_wholebody_keypoints",
    "part_keypoints",
    "part_sigmas",
    "run_part_eval",
    "to_wholebody_result",
    "write_wholebody_results",
]

#: Result/annotation field of each part, in native COCO-WholeBody order.
PART_FIELDS: Mapping[str, str] = {
    "body": "keypoints",
    "foot": "foot_kpts",
    "face": "face_kpts",
    "lefthand": "lefthand_kpts",
    "righthand": "righthand_kpts",
}
#: Keypoints per part.
PART_SIZES: Mapping[str, int] = {"body": 17, "foot": 6, "face": 68, "lefthand": 21, "righthand": 21}
#: What `evaluate_wholebody_keypoints` evaluates by default, in the official order.
EVAL_PARTS: tuple[str, ...] = ("body", "foot", "face", "lefthand", "righthand", "wholebody")
_NUM_WHOLEBODY = sum(PART_SIZES.values())  # 133


def part_sigmas(part: str) -> np.ndarray:
    """OKS sigmas (COCO convention) of one part, or all 133 for ``"wholebody"``; float64 copy."""
    from prunepose.skeletons import COCO_WHOLEBODY133  # lazy: metrics stays free of heavy imports

    sig = np.asarray(COCO_WHOLEBODY133.sigmas, dtype=np.float64)
    if part == "wholebody":
        return sig.copy()
    if part not in PART_FIELDS:
        raise ConfigError(f"unknown COCO-WholeBody part {part!r}; valid: {', '.join(EVAL_PARTS)}")
    idx = COCO_WHOLEBODY133.parts[part]
    return sig[idx.start : idx.stop].copy()


def part_keypoints(ann: Mapping[str, Any], part: str, where: str = "annotation") -> list[float]:
    """The flat ``[x, y, v] * n`` list of ``part`` of a GT annotation or a (per-part) result record.

    ``"wholebody"`` concatenates the five parts in native order (133 keypoints). Raises `DataError`
    naming ``where`` and the field when a part is missing or has the wrong length.
    """
    names = tuple(PART_FIELDS) if part == "wholebody" else (part,)
    out: list[float] = []
    for name in names:
        field = PART_FIELDS.get(name)
        if field is None:
            raise ConfigError(f"unknown COCO-WholeBody part {part!r}; valid: {', '.join(EVAL_PARTS)}")
        values = ann.get(field)
        if values is None:
            raise DataError(f"{where}: field '{field}' missing (COCO-WholeBody needs all five part arrays)")
        if len(values) != 3 * PART_SIZES[name]:
            raise DataError(f"{where}: field '{field}' has {len(values)} values, expected {3 * PART_SIZES[name]} "
                            f"(3 x {PART_SIZES[name]} {name} keypoints)")
        out.extend(float(v) for v in values)
    return out


def to_wholebody_result(record: Mapping[str, Any], where: str = "result") -> dict[str, Any]:
    """One result -> the COCO-WholeBody results format with plain JSON types (see module docstring).

    Accepts either per-part fields, or ``keypoints`` with 133 ``(x, y, score)`` triples (``(133, 3)`` or
    flat) which are split into the five part fields. ``category_id`` defaults to 1; ``<part>_score`` and
    ``wholebody_score`` fields are kept, other fields dropped.
    """
    try:
        image_id = int(record["image_id"])
        score = float(record["score"])
        kps = np.asarray(record["keypoints"], dtype=np.float64).reshape(-1)
    except KeyError as exc:
        raise DataError(f"{where}: result is missing field {exc.args[0]!r}") from None
    out: dict[str, Any] = {"image_id": image_id, "category_id": int(record.get("category_id", 1))}
    if kps.size == 3 * _NUM_WHOLEBODY:
        start = 0
        for part, field in PART_FIELDS.items():
            stop = start + 3 * PART_SIZES[part]
            out[field] = [float(v) for v in kps[start:stop]]
            start = stop
    elif kps.size == 3 * PART_SIZES["body"]:
        for part, field in PART_FIELDS.items():
            if field not in record:
                raise DataError(f"{where}: field '{field}' missing: a result with 17 body 'keypoints' needs all "
                                "five COCO-WholeBody part fields (or give all 133 keypoints in 'keypoints')")
            values = np.asarray(record[field], dtype=np.float64).reshape(-1)
            if values.size != 3 * PART_SIZES[part]:
                raise DataError(f"{where}: field '{field}' has {values.size} values, expected "
                                f"{3 * PART_SIZES[part]} (3 x {PART_SIZES[part]} {part} keypoints)")
            out[field] = [float(v) for v in values]
    else:
        raise DataError(f"{where}: field 'keypoints' has {kps.size} values; expected {3 * _NUM_WHOLEBODY} "
                        f"(all 133 keypoints) or {3 * PART_SIZES['body']} (body, with the part fields)")
    out["score"] = score
    for key in [f"{p}_score" for p in EVAL_PARTS if p != "body"]:
        if key in record:
            out[key] = float(record[key])
    return out


def write_wholebody_results(results: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write results in the COCO-WholeBody results format (`to_wholebody_result`), atomically."""
    path = Path(path)
    records = [to_wholebody_result(r, f"{path} result #{i}") for i, r in enumerate(results)]
    return _write_json_atomic(records, path)


def _load_results(results: Any) -> tuple[list[dict[str, Any]], str]:
    return read_results(results, to_wholebody_result)


def _coco_from(dataset: dict[str, Any]) -> Any:
    """A pycocotools ``COCO`` over an in-memory dataset dict (index built quietly)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _gt_name(ann_file_or_coco: Any) -> str:
    return str(ann_file_or_coco) if isinstance(ann_file_or_coco, (str, os.PathLike)) else "annotation file"


def _part_gt(coco_gt: Any, part: str, source: str) -> Any:
    """GT ``COCO`` whose ``keypoints`` are ``part``'s and ``num_keypoints`` its labelled count."""
    anns = []
    for ann in coco_gt.dataset["annotations"]:
        kp = part_keypoints(ann, part, f"{source}: annotations[id={ann.get('id', '?')}]")
        new = dict(ann)
        new["keypoints"] = kp
        new["num_keypoints"] = int(np.count_nonzero(np.asarray(kp[2::3]) > 0))
        new.setdefault("iscrowd", 0)  # xtcocotools' COCO() fills a missing iscrowd with False
        anns.append(new)
    return _coco_from({
        "images": coco_gt.dataset["images"],
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": anns,
    })


def _part_dt(coco_gt: Any, loaded: list[dict[str, Any]], part: str) -> Any:
    """Result ``COCO`` for ``part`` from results already passed through ``loadRes`` (body area/bbox/id)."""
    score_key = "score" if part == "body" else f"{part}_score"
    anns = []
    for res in loaded:
        kp = part_keypoints(res, part, f"result id {res['id']}")
        if not np.any(np.asarray(kp[2::3]) > 0):
            continue  # xtcocotools drops results whose part scores are all zero
        new = dict(res)
        new["keypoints"] = kp
        new["score"] = float(res.get(score_key, res["score"]))
        anns.append(new)
    return _coco_from({
        "images": coco_gt.dataset["images"],
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": anns,
    })


def _load_gt_and_results(ann_file_or_coco: Any, results: Any) -> tuple[Any, list[dict[str, Any]], str, str]:
    """GT COCO, results after ``loadRes`` (area/bbox from the body keypoints, ids 1..N), and names."""
    coco_gt = _load_coco(ann_file_or_coco)
    source = _gt_name(ann_file_or_coco)
    records, where = _load_results(results)
    if not records:
        return coco_gt, [], source, where
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            coco_dt = coco_gt.loadRes(copy.deepcopy(records))
        except AssertionError as exc:
            raise DataError(f"{where}: results refer to images not in {source}") from exc
    return coco_gt, coco_dt.dataset["annotations"], source, where


def run_part_eval(
    ann_file_or_coco: Any,
    results: Iterable[Mapping[str, Any]] | str | os.PathLike[str],
    part: str,
    image_ids: Iterable[int] | None = None,
    summarize: bool = True,
) -> Any:
    """Evaluate one part and return the pycocotools ``COCOeval`` after ``evaluate``/``accumulate``
    (and ``summarize`` unless ``summarize=False``; pycocotools' printing is swallowed).

    For inspection and tests: ``.ious[(image_id, category_id)]`` holds the ``(D, G)`` OKS matrix of that
    part (results sorted by descending score, GT in annotation order), ``.stats`` the ten numbers.
    ``part`` is one of :data:`EVAL_PARTS`.
    """
    if part not in EVAL_PARTS:
        raise ConfigError(f"unknown COCO-WholeBody part {part!r}; valid: {', '.join(EVAL_PARTS)}")
    coco_gt, loaded, source, _ = _load_gt_and_results(ann_file_or_coco, results)
    return _evaluate_part(coco_gt, loaded, part, source, image_ids, summarize)[0]


def _evaluate_part(
    coco_gt: Any,
    loaded: list[dict[str, Any]],
    part: str,
    source: str,
    image_ids: Iterable[int] | None,
    summarize: bool,
) -> tuple[Any, str]:
    from pycocotools.cocoeval import COCOeval

    gt = _part_gt(coco_gt, part, source)
    dt = _part_dt(coco_gt, loaded, part)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        coco_eval = COCOeval(gt, dt, iouType="keypoints")
        coco_eval.params.kpt_oks_sigmas = part_sigmas(part)
        if image_ids is not None:
            coco_eval.params.imgIds = sorted(int(i) for i in image_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        start = buf.tell()
        if summarize:
            coco_eval.summarize()
    return coco_eval, buf.getvalue()[start:]


class WholeBodyEvalResult(dict[str, float]):
    """Flat stats as the official code names them: ``"<part>_<stat>"`` for body/foot/face/lefthand/
    righthand (``"body_AP"``, ``"foot_AR .5"``, ...) and the bare :data:`STATS_NAMES` for the whole body
    (``"AP"`` is the headline COCO-WholeBody number). ``.parts`` maps each evaluated part to its
    `KeypointEvalResult`; ``.summary`` is the pycocotools text of all parts.
    """

    parts: dict[str, KeypointEvalResult]
    summary: str

    def __init__(self, parts: Mapping[str, KeypointEvalResult]) -> None:
        flat: dict[str, float] = {}
        for part, stats in parts.items():
            prefix = "" if part == "wholebody" else f"{part}_"
            flat.update({prefix + name: float(v) for name, v in stats.items()})
        super().__init__(flat)
        self.parts = dict(parts)
        self.summary = "".join(f"== {part}\n{stats.summary}" for part, stats in parts.items())


def evaluate_wholebody_keypoints(
    ann_file_or_coco: Any,
    results: Iterable[Mapping[str, Any]] | str | os.PathLike[str],
    image_ids: Iterable[int] | None = None,
    parts: Sequence[str] = EVAL_PARTS,
) -> WholeBodyEvalResult:
    """COCO-WholeBody AP/AR per part, numerically as xtcocotools' part evaluation (module docstring).

    Args:
        ann_file_or_coco: COCO-WholeBody annotation JSON path or a pycocotools ``COCO`` of it.
        results: result records (`to_wholebody_result` formats) or a path to a results JSON.
        image_ids: evaluate only these images (``params.imgIds``).
        parts: which of :data:`EVAL_PARTS` to evaluate.

    Returns:
        `WholeBodyEvalResult`. With no results at all every stat is 0 (pycocotools cannot load an empty
        result list), as `prunepose.metrics.coco_eval.evaluate_coco_keypoints` does.
    """
    unknown = [p for p in parts if p not in EVAL_PARTS]
    if unknown:
        raise ConfigError(f"unknown COCO-WholeBody part(s) {unknown}; valid: {', '.join(EVAL_PARTS)}")
    coco_gt, loaded, source, _ = _load_gt_and_results(ann_file_or_coco, results)
    out: dict[str, KeypointEvalResult] = {}
    for part in parts:
        if not loaded:
            out[part] = KeypointEvalResult(dict.fromkeys(STATS_NAMES, 0.0), "no results to evaluate\n")
            continue
        coco_eval, summary = _evaluate_part(coco_gt, loaded, part, source, image_ids, summarize=True)
        stats = {name: float(v) for name, v in zip(STATS_NAMES, coco_eval.stats, strict=True)}
        out[part] = KeypointEvalResult(stats, summary)
    return WholeBodyEvalResult(out)
