"""The bundled default 2D model vs MoveNet Lightning and MoveNet Thunder on the same real persons, one run.

Accuracy: every labelled person of a COCO keypoints JSON (``--test``, GT boxes; by default the test split of
scripts/distill/build_splits.py, never used for training or checkpoint choice) is predicted by each model
from its GT box; pycocotools AP / AP50 (one result per box, HRNet rescoring) and the mean per-person OKS
are computed by ``prunepose.distill.evaluate.score_predictions``, on all persons and on the COCO val2017
persons alone. Speed: milliseconds per person crop at batch 1, whole call (crop warp, network, decoding),
``--threads`` CPU threads for every model; the models are timed in interleaved rounds over the same
persons, so machine noise hits all alike, and the median round is printed.

The default model runs as users get it: ``PoseEstimator2D()`` (flip off, batch 1). MoveNet runs through
onnxruntime on a square crop of 1.25 x the box's longer side, single pass (``MoveNetTeacher``).
``--keep-ratios 1.0 0.85 0.7 0.5`` adds the default model at those PPT keep ratios (same weights; for the
ONNX default re-exported at each ratio); ``--pytorch`` adds the default weights on the PyTorch backend.

    python benchmarks/bench_2d_default.py [--test work_dirs/distill2/test/test.json] [--json out.json]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Predictor = Callable[[np.ndarray, list[float]], tuple[np.ndarray, np.ndarray]]


def default_predictor(keep_ratio: float | None, threads: int, weights: str | None, tmp: Path,
                      backend: str = "default") -> tuple[Predictor, str]:
    """``PoseEstimator2D`` on the bundled weights (or ``weights``), flip off, batch 1.

    ``backend="default"`` mirrors what ``PoseEstimator2D()`` picks: the ONNX export beside the safetensors
    (``<stem>_cpu.onnx``) when onnxruntime is installed; ``"pytorch"`` forces the safetensors weights. With
    ``keep_ratio`` the PPT keep ratio is changed (same weights); for onnxruntime the model is re-exported at
    that ratio into ``tmp``.
    """
    import torch

    from prunepose import PoseEstimator2D
    from prunepose.api.backends import DEFAULT_WEIGHTS
    from prunepose.weights import model_from_weights, read_weights_info

    torch.set_num_threads(threads)
    source = Path(weights) if weights else DEFAULT_WEIGHTS
    if source.suffix == ".onnx":  # its JSON names the safetensors file it was exported from
        base = source.with_name(read_weights_info(source).get("exported_from", "")) if keep_ratio else source
        onnx_file: Path | None = source
    else:
        base, sibling = source, source.with_name(source.stem + "_cpu.onnx")
        try:
            import onnxruntime  # noqa: F401
            onnx_file = sibling if sibling.is_file() else None
        except ImportError:
            onnx_file = None
    if backend == "pytorch":
        onnx_file = None
    if keep_ratio is None and weights is None and backend == "default":
        checkpoint: Path | None = None  # literally PoseEstimator2D()
    elif keep_ratio is None or onnx_file is None:
        checkpoint = onnx_file or base
    else:
        from prunepose.export.onnx import export_onnx

        model = model_from_weights(base).eval()
        model.keep_ratio = keep_ratio
        checkpoint = export_onnx(model, tmp / f"keep_{keep_ratio:g}.onnx",
                                 metadata={"kpt_thr": read_weights_info(base).get("kpt_thr")})
    est = PoseEstimator2D(checkpoint=checkpoint, flip=False, batch_size=1)
    if keep_ratio is not None and est.backend.name == "pytorch":
        est.backend.net.keep_ratio = keep_ratio
    name = f"{est.config.name}, {est.backend.name}" + ("" if keep_ratio is None else f", keep {keep_ratio:g}")

    def predict(image: np.ndarray, box_xywh: list[float]) -> tuple[np.ndarray, np.ndarray]:
        x, y, w, h = box_xywh
        res = est.predict_image(image, np.array([[x, y, x + w, y + h]], np.float32))
        return res.keypoints[0].astype(np.float64), res.scores[0].astype(np.float64)

    return predict, name


def movenet_predictor(path: Path, threads: int) -> Predictor:
    from prunepose.distill.teacher import MoveNetTeacher

    teacher = MoveNetTeacher(path, flip=False, threads=threads)
    return lambda image, box: teacher(image, box)


def subset_gt(gt: Any, source: str) -> Any:
    """A pycocotools COCO of the images of one ``source`` (for a per-subset AP)."""
    from pycocotools.coco import COCO

    data = dict(gt.dataset)
    images = [im for im in data["images"] if im.get("source") == source]
    ids = {im["id"] for im in images}
    data = {**data, "images": images, "annotations": [a for a in data["annotations"] if a["image_id"] in ids]}
    sub = COCO()
    sub.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        sub.createIndex()
    return sub


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=Path, default=Path("work_dirs/distill2/test/test.json"))
    ap.add_argument("--image-root", type=Path, default=None, help="default: the folder of --test")
    ap.add_argument("--movenet", type=Path, default=Path("../shared/data/movenet"))
    ap.add_argument("--weights", default=None, help="2D weights instead of the bundled default")
    ap.add_argument("--keep-ratios", type=float, nargs="*", default=[])
    ap.add_argument("--pytorch", action="store_true", help="also the default weights on the PyTorch backend")
    ap.add_argument("--also", nargs="*", default=[], help="more 2D weights files (.onnx or .safetensors) as rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timing-persons", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--subset", default="coco_val2017", help="image source reported separately")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from pycocotools.coco import COCO

    from prunepose.data.coco import read_image_bgr
    from prunepose.distill.evaluate import score_predictions
    from prunepose.runtime import tune_cpu_allocator

    tune_cpu_allocator()
    root = args.image_root or args.test.parent
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(args.test))
    ann_ids = [i for i in sorted(gt.anns) if not gt.anns[i].get("iscrowd") and gt.anns[i]["num_keypoints"] > 0]
    images = {}
    for i in ann_ids:
        info = gt.imgs[gt.anns[i]["image_id"]]
        if info["id"] not in images:
            images[info["id"]] = read_image_bgr(root / info["file_name"], info["id"], str(args.test))

    predictors: dict[str, Predictor] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench_2d_default_"))
    pred, name = default_predictor(None, args.threads, args.weights, tmp)
    predictors[f"default ({name})"] = pred
    if args.pytorch:
        pred, name = default_predictor(None, args.threads, args.weights, tmp, backend="pytorch")
        predictors[f"default weights ({name})"] = pred
    for r in args.keep_ratios:
        pred, name = default_predictor(r, args.threads, args.weights, tmp)
        predictors[f"default weights ({name})"] = pred
    for extra in args.also:
        pred, name = default_predictor(None, args.threads, extra, tmp)
        predictors[f"{extra} ({name})"] = pred
    predictors["MoveNet Lightning (onnxruntime)"] = movenet_predictor(args.movenet / "movenet-lightning.onnx",
                                                                      args.threads)
    predictors["MoveNet Thunder (onnxruntime)"] = movenet_predictor(args.movenet / "movenet-thunder.onnx",
                                                                    args.threads)
    sub = subset_gt(gt, args.subset)
    sub_ids = [i for i in ann_ids if gt.imgs[gt.anns[i]["image_id"]].get("source") == args.subset]
    report: dict[str, Any] = {"test": str(args.test), "persons": len(ann_ids), "subset": args.subset,
                              "subset_persons": len(sub_ids), "threads": args.threads, "models": {}}
    for label, predict in predictors.items():
        kpts, scores = [], []
        for i in ann_ids:
            k, s = predict(images[gt.anns[i]["image_id"]], gt.anns[i]["bbox"])
            kpts.append(k)
            scores.append(s)
        kpts_a, scores_a = np.asarray(kpts), np.asarray(scores)
        if not np.isfinite(kpts_a).all():
            raise SystemExit(f"{label}: non-finite keypoints")
        full = score_predictions(gt, ann_ids, kpts_a, scores_a)
        pos = [ann_ids.index(i) for i in sub_ids]
        part = score_predictions(sub, sub_ids, kpts_a[pos], scores_a[pos]) if sub_ids else None
        report["models"][label] = {"all": {k: v for k, v in full.items() if k != "oks"},
                                   "subset": None if part is None else {k: v for k, v in part.items() if k != "oks"}}
    timed = ann_ids[: args.timing_persons]
    rounds: dict[str, list[float]] = {label: [] for label in predictors}
    for predict in predictors.values():  # warm-up
        for i in timed[:5]:
            predict(images[gt.anns[i]["image_id"]], gt.anns[i]["bbox"])
    for _ in range(args.rounds):
        for label, predict in predictors.items():
            start = time.perf_counter()
            for i in timed:
                predict(images[gt.anns[i]["image_id"]], gt.anns[i]["bbox"])
            rounds[label].append((time.perf_counter() - start) / len(timed) * 1e3)
    for label in predictors:
        report["models"][label]["ms_per_crop"] = statistics.median(rounds[label])
        report["models"][label]["ms_rounds"] = rounds[label]

    print(f"{report['persons']} persons ({report['subset_persons']} {args.subset}) from {args.test}; "
          f"GT boxes; batch 1; {args.threads} threads; ms = median of {args.rounds} interleaved rounds over "
          f"{len(timed)} persons")
    print(f"| predictor | AP | AP50 | mean OKS | {args.subset} AP | {args.subset} mean OKS | ms per crop |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, r in report["models"].items():
        a, s = r["all"], r["subset"] or {"AP": float("nan"), "mean_oks": float("nan")}
        print(f"| {label} | {a['AP']:.3f} | {a['AP50']:.3f} | {a['mean_oks']:.3f} | {s['AP']:.3f} | "
              f"{s['mean_oks']:.3f} | {r['ms_per_crop']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
