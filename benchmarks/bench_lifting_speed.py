"""Lifting speed: MixSTE vs HoT-MixSTE and MotionBERT(-Lite) vs HoT-MotionBERT, seq2seq at F=243, side by side.

Prints clips/s and frames/s and the speed-up; TPC's own cost (DPC-kNN selection) is timed separately.

    python benchmarks/bench_lifting_speed.py                    # CPU
    python benchmarks/bench_lifting_speed.py --pairs mixste_243:hot_mixste_243 --repeats 5
    # the compact models of docs/results-h36m.md (overrides for both, then for the HoT side only)
    python benchmarks/bench_lifting_speed.py --pairs mixste_243:hot_mixste_243 --batch 16 \
        --common '{"num_frames": 81, "dim": 64, "depth": 4}' \
        --b-overrides '{"token_num": 27, "layer_index": 1, "recovery": "tra_linear"}'
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import prunepose
from prunepose.pruning.temporal import dpc_knn_select
from prunepose.runtime import tune_cpu_allocator

PAIRS = [("mixste_243", "hot_mixste_243"), ("motionbert_lite_243", "hot_motionbert_243")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--pairs", nargs="*", default=None)
    parser.add_argument("--common", default="{}", help="JSON config overrides for both models of every pair")
    parser.add_argument("--b-overrides", default="{}", help="JSON config overrides for the second model only")
    parser.add_argument("--json")
    args = parser.parse_args()
    common, b_only = json.loads(args.common), json.loads(args.b_overrides)
    tune_cpu_allocator()
    device = torch.device(args.device)
    pairs = [tuple(p.split(":")) for p in args.pairs] if args.pairs else PAIRS
    results = []
    for name_a, name_b in pairs:
        a = prunepose.create_model(name_a, **common).eval().to(device)
        b = prunepose.create_model(name_b, **common, **b_only).eval().to(device)
        cfg = a.config
        x = torch.randn(args.batch, cfg.num_frames, cfg.num_joints, cfg.in_channels, device=device)
        ta, tb = [], []
        with torch.inference_mode():
            a(x), b(x)
            for _ in range(args.repeats):
                for model, store in ((a, ta), (b, tb)):
                    t0 = time.perf_counter()
                    model(x)
                    if device.type == "cuda":
                        torch.cuda.synchronize()
                    store.append(time.perf_counter() - t0)
        ma, mb = statistics.median(ta), statistics.median(tb)
        frames = args.batch * cfg.num_frames
        r = {"pair": f"{name_a} vs {name_b}", "a_s": ma, "b_s": mb, "speedup": ma / mb,
             "paired": statistics.median([p / q for p, q in zip(ta, tb)]),
             "a_frames_per_s": frames / ma, "b_frames_per_s": frames / mb}
        results.append(r)
        print(f"{name_a:>20} vs {name_b:<19}: {ma * 1e3:8.1f} vs {mb * 1e3:8.1f} ms per {args.batch} clip(s) "
              f"({r['a_frames_per_s']:.0f} vs {r['b_frames_per_s']:.0f} frames/s)  speed-up {ma / mb:.3f}x "
              f"(paired {r['paired']:.3f}x)")
    feats = torch.randn(args.batch, 243, 512, device=device)
    t = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        dpc_knn_select(feats, 81)
        t.append(time.perf_counter() - t0)
    print(f"TPC selection alone (DPC-kNN, 243 frames -> 81, dim 512): {statistics.median(t) * 1e3:.2f} ms")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "common": common, "b_overrides": b_only, "results": results,
                       "tpc_ms": statistics.median(t) * 1e3}, f, indent=2)


if __name__ == "__main__":
    main()
