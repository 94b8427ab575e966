"""COCO keypoint evaluation: OKS, OKS-NMS, rescoring, result files and pycocotools AP/AR.

Why: top-down COCO numbers (HRNet, TokenPose and their successors) are produced by one fixed recipe:
per person, rescore the detector's box score by the mean confident keypoint score; per image, remove
duplicate poses with OKS-NMS; then score the result file with pycocotools' ``COCOeval`` (``keypoints``).
Reproducing published numbers needs every step to match, so each is a small function here.

OKS (Object Keypoint Similarity), as pycocotools computes it, for keypoint ``i`` with squared distance
``d_i^2`` (pixels^2), object area ``s^2`` (pixels^2) and per-keypoint constant ``k_i = 2 * sigma_i``::

    e_i = d_i^2 / k_i^2 / (s^2 + eps) / 2        OKS = mean_i exp(-e_i)   (over the counted keypoints)

which is ``exp(-d^2 / (2 s^2 k^2))`` with ``eps = np.spacing(1)``.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from prunepose.atomic import atomic_write
from prunepose.errors import ConfigError, DataError

__all__ = [
    "COCO_SIGMAS",
    "STATS_NAMES",
    "KeypointEvalResult",
    "evaluate_coco_keypoints",
    "oks_iou",
    "oks_nms",
    "postprocess_topdown",
    "rescore",
    "write_coco_results",
]

#: pycocotools' default keypoint sigmas (COCO-17), ``COCOeval.Params.kpt_oks_sigmas``.
COCO_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
     0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
)  # fmt: skip
COCO_SIGMAS.setflags(write=False)

#: Names of ``COCOeval.stats`` for ``iouType='keypoints'``, in order.
STATS_NAMES = ("AP", "AP .5", "AP .75", "AP (M)", "AP (L)", "AR", "AR .5", "AR .75", "AR (M)", "AR (L)")


def _sigmas_for(num_keypoints: int, sigmas: ArrayLike | None) -> np.ndarray:
    """Sigmas as a float array of length ``K``; ``None`` means COCO-17 (then ``K`` must be 17)."""
    s = COCO_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if s.shape[0] != num_keypoints:
        raise ConfigError(
            f"OKS sigmas have {s.shape[0]} values but the keypoints have {num_keypoints}; "
            "pass the sigmas of the skeleton in use (prunepose.skeletons)"
        )
    return s


def oks_iou(
    g: ArrayLike,
    d: ArrayLike,
    area_g: float,
    area_d: ArrayLike,
    sigmas: ArrayLike | None = None,
    vis_thr: float | None = None,
) -> np.ndarray:
    """OKS between one pose ``g`` and ``M`` poses ``d``, the similarity OKS-NMS thresholds.

    Args:
        g: reference pose, ``(K, 3)`` or flat ``(3K,)`` of ``(x, y, v)``; ``v`` is a visibility flag or
            a keypoint score and is only read when ``vis_thr`` is given.
        d: ``M`` poses, ``(M, K, 3)``, ``(M, 3K)``, a single pose, or a list of any of those per pose.
        area_g: area of ``g`` in pixels^2.
        area_d: area(s) of ``d`` in pixels^2, scalar or ``(M,)``.
        sigmas: ``(K,)`` OKS sigmas (COCO convention); ``None`` = COCO-17.
        vis_thr: when given, only keypoints whose ``v`` exceeds it in *both* poses are counted.
            (HRNet's ``oks_iou`` wrote ``list(vg > t) and list(vd > t)``, which Python evaluates to the
            detection mask alone; a real logical AND is used here.)

    Returns:
        ``(M,)`` float64 OKS values in ``[0, 1]``; a pose with no counted keypoint gets 0.

    The scale ``s^2`` is the mean of the two areas, ``(area_g + area_d) / 2`` (HRNet/MMPose OKS-NMS); with
    equal areas this is exactly pycocotools' ``computeOks`` for a ground truth whose keypoints are all
    labelled.
    """
    g_arr = np.asarray(g, dtype=np.float64).reshape(-1, 3)
    k = g_arr.shape[0]
    d_arr = np.asarray(d, dtype=np.float64).reshape(-1, k, 3)
    m = d_arr.shape[0]
    var = (2.0 * _sigmas_for(k, sigmas)) ** 2  # k_i^2
    a_d = np.broadcast_to(np.asarray(area_d, dtype=np.float64), (m,))
    scale = (float(area_g) + a_d) / 2.0 + np.spacing(1)  # (M,)
    sq_dist = ((d_arr[..., :2] - g_arr[None, :, :2]) ** 2).sum(-1)  # (M, K)
    e = sq_dist / var[None, :] / scale[:, None] / 2.0
    if vis_thr is None:
        return np.exp(-e).mean(axis=1) if k else np.zeros(m)
    counted = (g_arr[None, :, 2] > vis_thr) & (d_arr[..., 2] > vis_thr)  # (M, K)
    n = counted.sum(axis=1)
    total = np.where(counted, np.exp(-e), 0.0).sum(axis=1)
    return np.divide(total, n, out=np.zeros(m), where=n > 0)


def oks_nms(
    kpts_db: Sequence[Mapping[str, Any]],
    thr: float = 0.9,
    sigmas: ArrayLike | None = None,
    vis_thr: float | None = None,
) -> list[int]:
    """Greedy OKS non-maximum suppression over the poses of one image (HRNet's ``oks_nms``).

    Why: a top-down pipeline estimates one pose per detector box, and overlapping boxes of one person
    yield near-identical poses; COCO AP counts the extras as false positives.

    Args:
        kpts_db: poses, each a mapping with ``'keypoints'`` ``(K, 3)`` (x, y, score; pixels), ``'score'``
            (the pose score, usually after :func:`rescore`) and ``'area'`` (pixels^2).
        thr: a pose is suppressed when its OKS with an already kept, higher-scoring pose exceeds ``thr``.
        sigmas: ``(K,)`` OKS sigmas; ``None`` = COCO-17.
        vis_thr: see :func:`oks_iou` (HRNet's default is ``None``: all keypoints count).

    Returns:
        Indices into ``kpts_db`` of the kept poses, highest score first.
    """
    if len(kpts_db) == 0:
        return []
    scores = np.array([float(p["score"]) for p in kpts_db])
    kpts = np.stack([np.asarray(p["keypoints"], dtype=np.float64).reshape(-1, 3) for p in kpts_db])
    areas = np.array([float(p["area"]) for p in kpts_db])
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        ovr = oks_iou(kpts[i], kpts[rest], areas[i], areas[rest], sigmas, vis_thr)
        order = rest[ovr <= thr]
    return keep


def rescore(keypoints: ArrayLike, box_score: float, in_vis_thr: float = 0.2) -> float:
    """Pose score = ``box_score`` x mean of the keypoint scores strictly above ``in_vis_thr``.

    Why: the detector's box score says nothing about how well the pose was found; HRNet/TokenPose weight
    it by the confident keypoints' mean heatmap maximum. With no keypoint above the threshold the pose
    score is 0 (as in HRNet's loop, where the mean stays 0).

    Args:
        keypoints: ``(K, 3)`` of ``(x, y, score)``, or ``(K,)`` of scores alone.
        box_score: detector confidence of the person box.
        in_vis_thr: keypoint score threshold (HRNet ``TEST.IN_VIS_THRE`` = 0.2).
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    s = kp[:, 2] if kp.ndim == 2 else kp.reshape(-1)
    confident = s[s > in_vis_thr]
    mean = float(confident.mean()) if confident.size else 0.0
    return float(box_score) * mean


def _result_record(r: Mapping[str, Any], where: str) -> dict[str, Any]:
    """One result as plain JSON types with the four standard fields."""
    try:
        kps = np.asarray(r["keypoints"], dtype=np.float64).reshape(-1)
        rec = {
            "image_id": int(r["image_id"]),
            "category_id": int(r.get("category_id", 1)),
            "keypoints": [float(v) for v in kps],
            "score": float(r["score"]),
        }
    except KeyError as exc:
        raise DataError(f"{where}: result is missing field {exc.args[0]!r}") from None
    if len(rec["keypoints"]) % 3:
        raise DataError(f"{where}: field 'keypoints' has {len(rec['keypoints'])} values, not 3 per keypoint")
    return rec


def write_coco_results(results: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write keypoint results in the standard COCO results format, atomically.

    Each record becomes ``{"image_id", "category_id" (default 1), "keypoints": [x, y, s] * K, "score"}``;
    other fields are dropped. ``keypoints`` may be ``(K, 3)`` or flat. The file is written next to its
    destination and renamed into place, so a crash never leaves a truncated JSON behind.

    Returns:
        The path written.
    """
    path = Path(path)
    records = [_result_record(r, f"{path} result #{i}") for i, r in enumerate(results)]
    return _write_json_atomic(records, path)


def _write_json_atomic(data: Any, path: Path) -> Path:
    """Dump ``data`` as JSON next to ``path`` and rename it into place (no truncated file on a crash)."""
    return atomic_write(path, lambda f: f.write(json.dumps(data).encode("utf-8")))


class KeypointEvalResult(dict[str, float]):
    """``{stat name: value}`` for the ten :data:`STATS_NAMES`, plus ``.summary`` (pycocotools' text).

    A ``dict`` of floats so it can be logged as is; the printed table lives in the ``summary`` attribute.
    """

    summary: str

    def __init__(self, stats: Mapping[str, float], summary: str) -> None:
        super().__init__(stats)
        self.summary = summary


def _load_coco(ann: Any) -> Any:
    """A pycocotools ``COCO`` from a path, or a ``COCO``-like object as is (loading output is swallowed)."""
    from pycocotools.coco import COCO

    if isinstance(ann, COCO) or hasattr(ann, "loadRes"):
        return ann
    path = Path(ann)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a COCO annotation file ({exc})") from exc


def read_results(results: Any, convert: Any = None) -> tuple[list[dict[str, Any]], str]:
    """Results as a list of records from a results JSON path or an iterable, each passed through
    ``convert(record, where)`` (default: the COCO keypoint result check); also returns where they came from."""
    convert = convert or _result_record
    if isinstance(results, (str, os.PathLike)):
        where = str(results)
        try:
            with open(results) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise DataError(f"{where}: results file not found") from None
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: results file is not valid JSON ({exc})") from exc
        if not isinstance(data, list):
            raise DataError(f"{where}: results file must hold a JSON list of results")
    else:
        where, data = "results", list(results)
    return [convert(r, f"{where} result #{i}") for i, r in enumerate(data)], where


def evaluate_coco_keypoints(
    ann_file_or_coco: Any,
    results: Iterable[Mapping[str, Any]] | str | os.PathLike[str],
    sigmas: ArrayLike | None = None,
    image_ids: Iterable[int] | None = None,
) -> KeypointEvalResult:
    """COCO keypoint AP/AR with pycocotools ``COCOeval(iouType='keypoints')``.

    Args:
        ann_file_or_coco: ground-truth annotation JSON path or a ``pycocotools.coco.COCO``.
        results: result records (see :func:`write_coco_results`) or a path to a results JSON.
        sigmas: ``(K,)`` OKS sigmas set as ``params.kpt_oks_sigmas``; ``None`` keeps pycocotools' COCO-17.
        image_ids: evaluate only these images (``params.imgIds``), e.g. the images actually present.

    Returns:
        :class:`KeypointEvalResult`: the ten stats by name (AP at OKS .50:.05:.95 etc.; ``-1`` where
        pycocotools has no ground truth in a range) and the captured summary text. pycocotools' own
        printing is captured so the library stays quiet.
    """
    from pycocotools.cocoeval import COCOeval

    coco_gt = _load_coco(ann_file_or_coco)
    records, where = read_results(results)
    if not records:  # pycocotools' loadRes cannot load an empty list; nothing detected scores 0.
        return KeypointEvalResult(dict.fromkeys(STATS_NAMES, 0.0), "no results to evaluate\n")
    num_kpts = len(records[0]["keypoints"]) // 3
    if any(len(r["keypoints"]) != 3 * num_kpts for r in records):
        raise DataError(f"{where}: results have different numbers of keypoints")
    sig = None if sigmas is None else _sigmas_for(num_kpts, sigmas)
    if sig is None and num_kpts != len(COCO_SIGMAS):
        raise ConfigError(f"{where}: results have {num_kpts} keypoints; pass the matching OKS sigmas")

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            coco_dt = coco_gt.loadRes(copy.deepcopy(records))
        except AssertionError as exc:
            raise DataError(f"{where}: results refer to images not in the annotation file") from exc
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        if sig is not None:
            coco_eval.params.kpt_oks_sigmas = sig
        if image_ids is not None:
            coco_eval.params.imgIds = sorted(int(i) for i in image_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
        summary_start = buf.tell()
        coco_eval.summarize()
    summary = buf.getvalue()[summary_start:]
    stats = {name: float(v) for name, v in zip(STATS_NAMES, coco_eval.stats, strict=True)}
    return KeypointEvalResult(stats, summary)


def postprocess_topdown(
    preds: ArrayLike,
    meta: Mapping[str, ArrayLike],
    *,
    sigmas: ArrayLike | None = None,
    oks_thr: float = 0.9,
    in_vis_thr: float = 0.2,
    use_nms: bool = True,
    category_id: int = 1,
) -> list[dict[str, Any]]:
    """Top-down predictions -> COCO result records: rescoring, then OKS-NMS per image (HRNet recipe).

    Args:
        preds: ``(N, K, 2)`` keypoints in original-image pixels, one row per person box; ``(N, K, 3)``
            with the keypoint scores in the last column is accepted when ``meta`` has no ``'scores'``.
        meta: per-person arrays, all of length ``N``:
            ``'scores'`` ``(N, K)`` keypoint scores (heatmap maxima),
            ``'box_scores'`` ``(N,)`` detector box scores,
            ``'areas'`` ``(N,)`` box areas in pixels^2 used by OKS-NMS (HRNet: ``w * h`` of the enlarged
            box, i.e. the ``scale`` of :mod:`prunepose.data` multiplied out),
            ``'image_ids'`` ``(N,)`` COCO image ids.
        sigmas: ``(K,)`` OKS sigmas for the NMS; ``None`` = COCO-17.
        oks_thr: OKS-NMS threshold (HRNet ``TEST.OKS_THRE`` = 0.9).
        in_vis_thr: rescoring threshold (HRNet ``TEST.IN_VIS_THRE`` = 0.2).
        use_nms: ``False`` keeps every pose (still rescored).
        category_id: COCO category of the results.

    Returns:
        Result records ``{"image_id", "category_id", "keypoints": [x, y, s] * K, "score"}``, grouped by
        image in first-appearance order, highest score first within an image.
    """
    p = np.asarray(preds, dtype=np.float64)
    if p.ndim != 3 or p.shape[-1] not in (2, 3):
        raise ConfigError(f"preds must have shape (N, K, 2) or (N, K, 3), got {p.shape}")
    n, k = p.shape[:2]
    if "scores" in meta:
        kp_scores = np.asarray(meta["scores"], dtype=np.float64).reshape(n, k)
    elif p.shape[-1] == 3:
        kp_scores = p[..., 2]
    else:
        raise ConfigError("meta['scores'] (N, K) is required when preds has shape (N, K, 2)")

    def _field(name: str) -> np.ndarray:
        if name not in meta:
            raise ConfigError(f"meta[{name!r}] is required by postprocess_topdown")
        arr = np.asarray(meta[name]).reshape(-1)
        if arr.shape[0] != n:
            raise ConfigError(f"meta[{name!r}] has {arr.shape[0]} entries for {n} predictions")
        return arr

    box_scores = _field("box_scores").astype(np.float64)
    areas = _field("areas").astype(np.float64)
    image_ids = _field("image_ids")
    kpts = np.concatenate([p[..., :2], kp_scores[..., None]], axis=-1)  # (N, K, 3)

    by_image: dict[int, list[int]] = defaultdict(list)
    for i, img in enumerate(image_ids):
        by_image[int(img)].append(i)

    results: list[dict[str, Any]] = []
    for img, idx in by_image.items():
        poses = [
            {"keypoints": kpts[i], "score": rescore(kpts[i], box_scores[i], in_vis_thr), "area": areas[i]}
            for i in idx
        ]
        if use_nms:
            keep = oks_nms(poses, oks_thr, sigmas)
        else:
            keep = [int(j) for j in np.argsort([-q["score"] for q in poses], kind="stable")]
        for j in keep:
            results.append(
                {
                    "image_id": img,
                    "category_id": int(category_id),
                    "keypoints": [float(v) for v in poses[j]["keypoints"].reshape(-1)],
                    "score": float(poses[j]["score"]),
                }
            )
    return results
