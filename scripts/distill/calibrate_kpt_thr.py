"""Write a calibrated keypoint-score threshold (``kpt_thr``) into the JSON beside a 2D weights file.

Why: a score threshold only means something on the model's own score scale. The defaults
(``prunepose.api.estimator2d.default_kpt_thr``) assume a well-trained model (heatmap maxima near 1, SimCC
peaks near the target's 0.0997); an undertrained model's scores sit far below, so "is this keypoint
confident" would be false everywhere and tracking and drawing would stop. The calibrated value is the
``--quantile`` quantile of the model's scores on the *labelled* keypoints of the held-out persons (GT
boxes): with 0.25, three in four labelled keypoints count as confident. ``PoseEstimator2D`` uses it when
no ``kpt_thr`` is given.

    PYTHONPATH=src python scripts/distill/calibrate_kpt_thr.py src/prunepose/assets/weights/pose2d_default.safetensors
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from prunepose.distill.evaluate import predict_student
from prunepose.weights import model_from_weights


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", type=Path)
    ap.add_argument("--heldout", default="work_dirs/distill/heldout.json")
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--quantile", type=float, default=0.25)
    args = ap.parse_args()
    model = model_from_weights(args.weights).eval()
    ids, _, scores = predict_student(model, args.heldout, args.data, flip=False)
    anns = {a["id"]: a for a in json.loads(Path(args.heldout).read_text())["annotations"]}
    vis = np.stack([np.asarray(anns[i]["keypoints"]).reshape(-1, 3)[:, 2] > 0 for i in ids])
    thr = float(np.quantile(scores[vis], args.quantile))
    json_path = args.weights.with_suffix(".json")
    info = json.loads(json_path.read_text())
    info["kpt_thr"] = thr
    info["kpt_thr_calibration"] = (f"{args.quantile:g} quantile of the scores of {int(vis.sum())} labelled keypoints "
                                   f"of {len(ids)} held-out persons ({args.heldout}), no flip")
    json_path.write_text(json.dumps(info, indent=2) + "\n")
    print(f"kpt_thr = {thr:.5f} written to {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
