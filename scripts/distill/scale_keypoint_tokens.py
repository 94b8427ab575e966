"""Multiply a GTPT checkpoint's keypoint-token embeddings by a factor; write init weights for stage 2.

Why: GTPT builds its 17 keypoint tokens as the human token plus small learned embeddings (trunc-normal
0.02). Trained from scratch for only a few hundred steps (all this CPU allows), the tokens stay nearly
identical, and every keypoint of a group (head / upper / lower body) predicted the same point: stage 1 of
the distillation stalled at a mean OKS of ~0.23 on the held-out persons. Scaling the embeddings (std
0.11 -> 0.87 with factor 8) separated the keypoints; the stage-2 run then improved within 100 steps.

The same trick from step 0 (``--fresh MODEL``): a freshly initialised model (seeded) with its keypoint
tokens scaled, e.g. the PPT-S student of configs/distill/ppt_s_movenet.yaml.

Usage: python scripts/distill/scale_keypoint_tokens.py work_dirs/distill/gtpt_t_movenet/last.pt \
           work_dirs/distill/init_kpt_x8.pt --factor 8
       python scripts/distill/scale_keypoint_tokens.py --fresh ppt_s \
           --overrides '{"input_size": [96, 128], "heatmap_size": [24, 32]}' \
           work_dirs/distill/init_ppt_s_x50.pt --factor 50
       python scripts/distill/scale_keypoint_tokens.py --fresh ppt_movenet \
           --backbone work_dirs/distill/movenet_lightning_backbone.pt work_dirs/distill/init_ppt_movenet.pt \
           --factor 50

``--backbone STATE_DICT`` loads pretrained backbone weights (e.g. the MoveNet Lightning features converted
by scripts/distill/convert_movenet_backbone.py) into the ``backbone.`` entries, strictly (every key, every
shape), because a silently random backbone would defeat the point of ``ppt_movenet``.
"""
from __future__ import annotations

import argparse
import json

import torch

from prunepose.weights import read_state_dict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", nargs="?", help="checkpoint to scale (omit with --fresh)")
    ap.add_argument("out")
    ap.add_argument("--factor", type=float, default=8.0)
    ap.add_argument("--fresh", metavar="MODEL", help="scale a freshly initialised registry model instead")
    ap.add_argument("--overrides", default="{}", help="JSON model overrides for --fresh")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backbone", default=None, help="backbone state_dict (torch.save) to load into backbone.*")
    args = ap.parse_args()
    if (args.checkpoint is None) == (args.fresh is None):
        ap.error("give either a checkpoint or --fresh MODEL")
    if args.fresh:
        from prunepose.registry import create_model

        torch.manual_seed(args.seed)
        state = dict(create_model(args.fresh, **json.loads(args.overrides)).state_dict())
    else:
        state = dict(read_state_dict(args.checkpoint, prefer_ema=False))  # the raw weights, as stage 1 left them
    if args.backbone:
        backbone = torch.load(args.backbone, map_location="cpu", weights_only=True)
        ours = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        if set(backbone) != set(ours):
            raise SystemExit(f"backbone keys differ: missing {sorted(set(ours) - set(backbone))[:5]}, "
                             f"unexpected {sorted(set(backbone) - set(ours))[:5]}")
        for k, v in backbone.items():
            if v.shape != ours[k].shape:
                raise SystemExit(f"backbone.{k}: shape {tuple(v.shape)} != model {tuple(ours[k].shape)}")
            state[f"backbone.{k}"] = v.clone()
        print(f"loaded {len(backbone)} backbone tensors from {args.backbone}")
    state["keypoint_tokens"] = state["keypoint_tokens"] * args.factor
    torch.save({"model": state}, args.out)
    print(f"keypoint_tokens std {float(state['keypoint_tokens'].std()):.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
