"""Pruned vs unpruned 2D models, measured side by side in one run (ratios, not absolute claims).

Throughput at batch 32 and latency at batch 1 on 256x192 inputs for TokenPose-S-v1 vs PPT-S and
TokenPose-B vs PPT-B. The two models of a pair share weights; runs alternate A, B, A, B ... so machine
noise hits both alike; medians and the median of per-pair ratios are printed. Each pair is timed twice:
as built (eval mode) and after ``prepare_for_inference`` (BatchNorm folded, channels-last convolutions),
which is what the inference API uses.

    python benchmarks/bench_2d_speed.py                 # CPU, all pairs
    python benchmarks/bench_2d_speed.py --suite gtpt      # GTPT-T/S vs TokenPose-S and PPT-S
    python benchmarks/bench_2d_speed.py --device cuda --json results.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import prunepose
from prunepose.nn.fuse import prepare_for_inference
from prunepose.runtime import tune_cpu_allocator

SUITES = {
    "ppt": [("tokenpose_s_v1", "ppt_s"), ("tokenpose_b", "ppt_b")],
    "gtpt": [("tokenpose_s_v1", "gtpt_t"), ("tokenpose_s_v1", "gtpt_s"), ("ppt_s", "gtpt_t"), ("ppt_s", "gtpt_s")],
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_pair(a: torch.nn.Module, b: torch.nn.Module, x: torch.Tensor, repeats: int, warmup: int) -> dict:
    """Alternate the two models on the same input; return per-model median seconds and the paired ratio."""
    device = x.device
    with torch.inference_mode():
        for _ in range(warmup):
            a(x)
            b(x)
        _sync(device)
        ta, tb = [], []
        for _ in range(repeats):
            for model, store in ((a, ta), (b, tb)):
                t0 = time.perf_counter()
                model(x)
                _sync(device)
                store.append(time.perf_counter() - t0)
    return {"a_median_s": statistics.median(ta), "b_median_s": statistics.median(tb),
            "ratio_of_medians": statistics.median(ta) / statistics.median(tb),
            "paired_ratio": statistics.median([p / q for p, q in zip(ta, tb)])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats-batch", type=int, default=8)
    parser.add_argument("--repeats-latency", type=int, default=40)
    parser.add_argument("--suite", choices=sorted(SUITES), default="ppt", help="preset list of pairs")
    parser.add_argument("--pairs", nargs="*", default=None, help="instead of --suite, e.g. tokenpose_s_v1:ppt_s")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--modes", nargs="*", default=["eval", "prepared"], choices=["eval", "prepared", "compiled"],
                        help="compiled = prepared + torch.compile of the CNN backbone")
    parser.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default allocator settings")
    args = parser.parse_args()
    tuned = False if args.no_malloc_tuning else tune_cpu_allocator()
    device = torch.device(args.device)
    pairs = [tuple(p.split(":")) for p in args.pairs] if args.pairs else SUITES[args.suite]
    machine = (torch.cuda.get_device_name(device) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"torch {torch.__version__} on {device} ({machine}); malloc tuning {'on' if tuned else 'off'}")
    results = []
    for name_a, name_b in pairs:
        torch.manual_seed(0)
        a = prunepose.create_model(name_a).eval().to(device)
        b = prunepose.create_model(name_b).eval().to(device)
        if a.state_dict().keys() == b.state_dict().keys():  # same architecture: share the weights
            b.load_state_dict(a.state_dict())
        for mode in args.modes:
            if mode in ("prepared", "compiled"):
                prepare_for_inference(a, compile_backbone=mode == "compiled")
                prepare_for_inference(b, compile_backbone=mode == "compiled")
            for batch, repeats, what in ((args.batch, args.repeats_batch, "throughput"),
                                         (1, args.repeats_latency, "latency")):
                x = torch.randn(batch, 3, 256, 192, device=device)
                r = time_pair(a, b, x, repeats, warmup=2 if batch > 1 else 5)
                r.update(pair=f"{name_a} vs {name_b}", mode=mode, batch=batch, kind=what,
                         a_img_per_s=batch / r["a_median_s"], b_img_per_s=batch / r["b_median_s"])
                results.append(r)
                print(f"{name_a:>15} vs {name_b:<7} {mode:>8} bs {batch:>2}: {r['a_median_s'] * 1e3:8.1f} ms vs "
                      f"{r['b_median_s'] * 1e3:8.1f} ms  ({r['a_img_per_s']:.1f} vs {r['b_img_per_s']:.1f} img/s)  "
                      f"speed-up {r['ratio_of_medians']:.3f}x (paired {r['paired_ratio']:.3f}x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "machine": machine, "torch": torch.__version__, "malloc_tuning": tuned,
                       "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
