"""Teacher vs student (vs the mean-pose baseline) on the held-out real persons, GT boxes; prints JSON.

Usage: python scripts/distill/evaluate_heldout.py [--student W.safetensors|ckpt.pt] [--out results.json]
Writes ``work_dirs/distill/heldout.json`` (prunepose.distill.heldout) if it is missing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

from prunepose.distill.evaluate import (
    mean_pose_baseline,
    predict_student,
    predict_teacher,
    score_predictions,
)
from prunepose.distill.heldout import build_heldout
from prunepose.distill.teacher import MoveNetTeacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--heldout", default="work_dirs/distill/heldout.json")
    ap.add_argument("--teacher", default="../shared/data/movenet/movenet-thunder.onnx")
    ap.add_argument("--teacher-flip", action="store_true")
    ap.add_argument("--student", nargs="*", default=[], help="weights files (safetensors+json, or checkpoints "
                                                               "with --model)")
    ap.add_argument("--model", default=None, help="registry name when a student file has no JSON beside it")
    ap.add_argument("--overrides", default="{}", help="JSON model overrides for checkpoints (e.g. input_size)")
    ap.add_argument("--no-flip", action="store_true", help="student without flip test")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from pycocotools.coco import COCO

    heldout = Path(args.heldout)
    if not heldout.is_file():
        heldout.parent.mkdir(parents=True, exist_ok=True)
        heldout.write_text(json.dumps(build_heldout(args.data)))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(heldout))
    report = {}
    if args.teacher:
        teacher = MoveNetTeacher(args.teacher, flip=args.teacher_flip)
        ids, k, s = predict_teacher(teacher, gt, args.data)
        report["teacher"] = score_predictions(gt, ids, k, s)
        report["mean_pose_baseline"] = score_predictions(gt, ids, mean_pose_baseline(gt, ids), s * 0 + 1)
    for path in args.student:
        from prunepose.registry import create_model
        from prunepose.weights import load_weights, model_from_weights

        if args.model:
            model = load_weights(create_model(args.model, **json.loads(args.overrides)), path)
        else:
            model = model_from_weights(path)
        ids, k, s = predict_student(model.eval(), str(heldout), args.data, flip=not args.no_flip)
        report[f"student:{path}"] = score_predictions(gt, ids, k, s)
    for name, r in report.items():
        print(f"{name:60s} persons {r['persons']:3d}  mean OKS {r['mean_oks']:.3f}  AP {r['AP']:.3f}  "
              f"AP50 {r['AP50']:.3f}  per source " + ", ".join(f"{k} {v[1]:.3f} (n={v[0]})"
                                                              for k, v in r["per_source_mean_oks"].items()))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
