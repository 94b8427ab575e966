"""Train and evaluate a multi-view PPT configuration on the SYNTHETIC multi-view Human3.6M set.

The set (prunepose.data.multiview_synthetic) renders REAL Human3.6M poses through the REAL cameras as limb
strokes over real photos, with random occluders; it proves the fusion mechanics, not accuracy on real images.
Training uses the project's Trainer with the multi-view heatmap loss; evaluation reports JDR and triangulated
world MPJPE on the clean and on the occluded test set (S9, S11).

Example (CPU, ~20-30 min per model on one busy core)::

    PYTHONPATH=src OMP_NUM_THREADS=1 nice -n 10 python scripts/train_multiview_synthetic.py \\
        --model mvppt_tiny --work-dir work_dirs/mv_synth/mvppt_tiny
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from prunepose.atomic import atomic_write
from prunepose.data.h36m import CAMERA_IDS
from prunepose.data.multiview_synthetic import SyntheticConfig, SyntheticMultiViewH36M
from prunepose.engine.checkpoint import load_checkpoint
from prunepose.engine.trainer import TrainConfig, Trainer
from prunepose.pruning.schedule import KeepRatioSchedule
from prunepose.registry import create_model
from prunepose.tasks.multiview import evaluate_multiview, multiview_heatmap_loss


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="mvppt_tiny", help="registered multi-view model (mvppt_tiny, ...)")
    p.add_argument("--work-dir", required=True)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=16, help="view groups per step (x V images)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-stride", type=int, default=64, help="use every n-th mocap frame of S1,S5,S6,S7,S8")
    p.add_argument("--test-stride", type=int, default=200, help="use every n-th mocap frame of S9,S11")
    p.add_argument("--occlusion", type=float, default=0.5, help="per-view occluder probability in training")
    p.add_argument("--test-occlusion", type=float, default=0.5, help="per-view occluder probability, occluded test")
    p.add_argument("--warmup-epochs", type=float, default=0.25, help="epochs with every token kept")
    p.add_argument("--ramp-epochs", type=float, default=0.5, help="epochs of the cosine ramp to the keep ratio")
    p.add_argument("--subsets", nargs="*", default=[], metavar="I,J[,K]",
                   help="also evaluate on these camera subsets (indices into the 4 cameras, e.g. 0,2)")
    p.add_argument("--eval-only", action="store_true", help="evaluate work-dir/last.pt without training")
    p.add_argument("--results", default="results.json", help="file name of the results JSON in --work-dir")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (resumable)")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    model = create_model(args.model)
    size = model.config.input_size
    hm = model.config.heatmap_size
    train_cfg = SyntheticConfig(input_size=size, heatmap_size=hm, sigma=model.config.sigma,
                                occlusion_prob=args.occlusion, jitter=0.05)
    if not args.eval_only:
        train_set = SyntheticMultiViewH36M("train", train_cfg, stride=args.train_stride)
        steps_per_epoch = len(train_set) // args.batch
        callbacks = []
        if model.config.keep_ratio < 1.0:  # all tokens first, then a cosine ramp to the target (PPT / EViT)
            callbacks.append(KeepRatioSchedule(model.config.keep_ratio, args.warmup_epochs, args.ramp_epochs))
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, lr_steps=(args.epochs - 1,),
                          checkpoint_every=args.checkpoint_every, log_every=25, work_dir=str(work), seed=0)
        t0 = time.time()
        Trainer(model, train_set, multiview_heatmap_loss, cfg, step_callbacks=callbacks).fit(resume=True)
        print(f"trained {args.epochs} epochs x {steps_per_epoch} steps in {time.time() - t0:.0f} s")
    else:
        model.load_state_dict(load_checkpoint(work / "last.pt")["model"])
    model.keep_ratio = model.config.keep_ratio
    results = {"model": args.model, "synthetic": True, "args": vars(args)}
    runs = [(name, occ, CAMERA_IDS) for name, occ in (("clean", 0.0), ("occluded", args.test_occlusion))]
    for subset in args.subsets:
        cams = tuple(CAMERA_IDS[int(i)] for i in subset.split(","))
        runs += [(f"{name}_views{subset.replace(',', '')}", occ, cams) for name, occ, _ in runs[:2]]
    for name, occ, cams in runs:
        test_cfg = SyntheticConfig(input_size=size, heatmap_size=hm, sigma=model.config.sigma, occlusion_prob=occ)
        test_set = SyntheticMultiViewH36M("test", test_cfg, stride=args.test_stride, camera_ids=cams)
        results[name] = evaluate_multiview(model, test_set)
        r = results[name]
        print(f"{args.model} {name}: JDR {r['jdr']:.1f} (2x thr {r['jdr_2x']:.1f}), 2D err {r['error_2d_px']:.1f} px, "
              f"MPJPE DLT {r['mpjpe_dlt']:.1f} mm, RANSAC {r['mpjpe_ransac']:.1f} mm")
    text = json.dumps(results, indent=1).encode()
    atomic_write(work / args.results, lambda f: f.write(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
