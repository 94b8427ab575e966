"""Lifting speed: MixSTE vs HoT-MixSTE and MotionBERT(-Lite) vs HoT-MotionBERT, seq2seq at F=243, side by side.

Prints clips/s and frames/s and the speed-up; TPC's own cost (DPC-kNN selection) is timed separately.

    python benchmarks/bench_lifting_speed.py                    # CPU
    python benchmarks/bench_lifting_speed.py --pairs mixste_243:hot_mixste_243 --repeats 5
    # the compact models of docs/results-h36m.md (overrides for both, then for the HoT side only)
    python benchmarks/bench_lifting_speed.py --pairs mixste_243:hot_mixste_243 --batch 16 \
        --common '{"num_frames": 81, "dim": 64, "depth": 4}' \
        --b-overrides '{"token_num": 27, "layer_index": 1, "recovery": "tra_linear"}'
    python benchmarks/bench_lifting_speed.py --floor            # + each model's GEMM-only time (see below)

At the default settings (CPU, batch 1, F = 243, no overrides) a second table puts our times next to the
official code's, measured on a machine like the developers' (2 cores, torch 2.13 CPU, default threads,
random weights, two runs; /work/shared/reference/official-speed.md): "x official" is official / ours, so
above 1 means ours is faster. Compare it only with a run on that kind of machine while nothing else runs.

``--floor`` replays, for each model, only its nn.Linear GEMMs at the shapes of one forward pass (inputs
recorded by hooks, random values): no attention, LayerNorm, GELU or copies. Its time is a lower bound for a
float32 forward with these BLAS kernels, so official / floor is the largest speed-up over the official
code that any rewrite of the non-GEMM work could reach. (The recording pass runs with hooks, i.e. the plain
path, so for HoT with TRA it includes the query projection per joint sequence that the inference path does
once: ~1.3 % of HoT-MixSTE's GEMM FLOPs.)
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
#: official code, ms per (1, 243, 17, C) clip: (run 1, run 2) medians (docs/performance.md)
OFFICIAL_MS = {
    "mixste_243": (2089.0, 2118.0),
    "hot_mixste_243": (1209.0, 1247.0),
    "motionbert_lite_243": (1287.0, 1145.0),
    "hot_motionbert_243": (529.0, 520.0),
}


def time_runs(models: list[torch.nn.Module], x: torch.Tensor, repeats: int, device: torch.device) -> list[list[float]]:
    """Seconds per forward of each model, alternating models within every repeat (one warm-up each)."""
    times: list[list[float]] = [[] for _ in models]
    with torch.inference_mode():
        for model in models:
            model(x)
        for _ in range(repeats):
            for model, store in zip(models, times):
                t0 = time.perf_counter()
                model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                store.append(time.perf_counter() - t0)
    return times


def gemm_floor(model: torch.nn.Module, x: torch.Tensor, repeats: int) -> float:
    """Median seconds of the model's nn.Linear GEMMs alone, at the input shapes of one forward pass."""
    calls: list[tuple[torch.nn.Linear, torch.Size]] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: calls.append((mod, args[0].shape)))
             for m in model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    inputs = [torch.randn(shape, device=x.device) for _, shape in calls]
    times = []
    with torch.inference_mode():
        for rep in range(repeats + 1):
            t0 = time.perf_counter()
            for (lin, _), inp in zip(calls, inputs):
                torch.nn.functional.linear(inp, lin.weight, lin.bias)
            if rep:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def print_official_table(rows: list[dict]) -> None:
    """Ours next to the official code (default settings only); ``x official`` = official ms / our ms."""
    print("\nvs the official code (2 cores, torch 2.13 CPU; official: two runs, ours: this run)")
    print(f"{'model':>20} | {'ours ms':>8} | {'official ms':>13} | {'x official':>11} | {'HoT/base ours':>13} | "
          f"{'HoT/base official':>17}")
    for r in rows:
        lo, hi = OFFICIAL_MS[r["name"]]
        hot = "" if r["base"] is None else f"{r['hot_speedup']:.3f}"
        off = ""
        if r["base"] is not None:
            (b1, b2), (h1, h2) = OFFICIAL_MS[r["base"]], OFFICIAL_MS[r["name"]]
            off = f"{b1 / h1:.3f} / {b2 / h2:.3f}"
        print(f"{r['name']:>20} | {r['ms']:8.0f} | {lo:5.0f} / {hi:5.0f} | {lo / r['ms']:.2f}-{hi / r['ms']:.2f}"
              f"{'':>2} | {hot:>13} | {off:>17}"
              + (f"   (GEMM floor {r['floor_ms']:.0f} ms: at most {max(lo, hi) / r['floor_ms']:.2f}x official)"
                 if r.get("floor_ms") else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--pairs", nargs="*", default=None)
    parser.add_argument("--common", default="{}", help="JSON config overrides for both models of every pair")
    parser.add_argument("--b-overrides", default="{}", help="JSON config overrides for the second model only")
    parser.add_argument("--floor", action="store_true", help="also time each model's GEMMs alone (lower bound)")
    parser.add_argument("--json")
    args = parser.parse_args()
    common, b_only = json.loads(args.common), json.loads(args.b_overrides)
    tuned = tune_cpu_allocator()
    device = torch.device(args.device)
    pairs = [tuple(p.split(":")) for p in args.pairs] if args.pairs else PAIRS
    official = device.type == "cpu" and args.batch == 1 and not common and not b_only
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, batch {args.batch}, "
          f"allocator tuning {'on' if tuned else 'off'}")
    results, rows = [], []
    for name_a, name_b in pairs:
        a = prunepose.create_model(name_a, **common).eval().to(device)
        b = prunepose.create_model(name_b, **common, **b_only).eval().to(device)
        cfg = a.config
        x = torch.randn(args.batch, cfg.num_frames, cfg.num_joints, cfg.in_channels, device=device)
        ta, tb = time_runs([a, b], x, args.repeats, device)
        ma, mb = statistics.median(ta), statistics.median(tb)
        frames = args.batch * cfg.num_frames
        r = {"pair": f"{name_a} vs {name_b}", "a_s": ma, "b_s": mb, "speedup": ma / mb,
             "paired": statistics.median([p / q for p, q in zip(ta, tb)]),
             "a_frames_per_s": frames / ma, "b_frames_per_s": frames / mb}
        if args.floor:
            r["a_floor_s"], r["b_floor_s"] = gemm_floor(a, x, args.repeats), gemm_floor(b, x, args.repeats)
        results.append(r)
        print(f"{name_a:>20} vs {name_b:<19}: {ma * 1e3:8.1f} vs {mb * 1e3:8.1f} ms per {args.batch} clip(s) "
              f"({r['a_frames_per_s']:.0f} vs {r['b_frames_per_s']:.0f} frames/s)  speed-up {ma / mb:.3f}x "
              f"(paired {r['paired']:.3f}x)"
              + (f"  GEMMs alone {r['a_floor_s'] * 1e3:.0f} / {r['b_floor_s'] * 1e3:.0f} ms" if args.floor else ""))
        rows.append({"name": name_a, "base": None, "ms": ma * 1e3, "floor_ms": r.get("a_floor_s", 0) * 1e3})
        rows.append({"name": name_b, "base": name_a, "ms": mb * 1e3, "hot_speedup": ma / mb,
                     "floor_ms": r.get("b_floor_s", 0) * 1e3})
    feats = torch.randn(args.batch, 243, 512, device=device)
    t = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        dpc_knn_select(feats, 81)
        t.append(time.perf_counter() - t0)
    print(f"TPC selection alone (DPC-kNN, 243 frames -> 81, dim 512): {statistics.median(t) * 1e3:.2f} ms")
    rows = [r for r in rows if r["name"] in OFFICIAL_MS and (r["base"] is None or r["base"] in OFFICIAL_MS)]
    if official and rows:
        print_official_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": str(device), "common": common, "b_overrides": b_only, "results": results,
                       "tpc_ms": statistics.median(t) * 1e3}, f, indent=2)


if __name__ == "__main__":
    main()
