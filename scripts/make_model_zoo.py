"""Write docs/model-zoo.md: every registered model with its parameters, its cost in each convention, the
throughput measured by the benchmarks and the accuracy measured here (and on what data).

Why generated: the table must agree with ``prunepose profile`` and the committed benchmark / result files;
a hand-kept table drifts. Nothing is typed in: numbers come from the profiler, ``benchmarks/results_*.json``
and the metrics files listed in ``TRAINED`` (tests/test_model_zoo.py re-checks a sample against the code).

    PYTHONPATH=src python scripts/make_model_zoo.py            # rewrites docs/model-zoo.md (a few minutes)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Weights trained in this repository: (what, registry model, metrics JSON, how to read the headline number)
TRAINED: list[dict[str, Any]] = [
    {"what": "compact MixSTE (81 frames, dim 64, depth 4)", "file": "artifacts/h36m/mixste_compact_metrics.json",
     "data": "Human3.6M S9/S11, 2D = GT projected / SH detections", "config": "configs/h36m/mixste_compact.yaml"},
    {"what": "compact HoT-MixSTE, tra_linear (27 of 81 frames kept)",
     "file": "artifacts/h36m/hot_mixste_compact_tralin_metrics.json",
     "data": "Human3.6M S9/S11, 2D = GT projected / SH detections",
     "config": "configs/h36m/hot_mixste_compact_tralin.yaml"},
    {"what": "compact HoT-MixSTE, paper TRA, 2294 steps (plateau, see results-h36m.md)",
     "file": "artifacts/h36m/hot_mixste_compact_epoch2_metrics.json",
     "data": "Human3.6M S9/S11, 2D = GT projected / SH detections",
     "config": "configs/h36m/hot_mixste_compact.yaml"},
    {"what": "default 2D model (distilled from MoveNet)", "file": "docs/results-2d.json",
     "data": "held-out real persons with ground truth (see docs/results-2d.md)", "config": None},
]


def _throughputs() -> dict[str, str]:
    """model -> 'N img/s' (batch 32, prepared mode) or 'N frames/s' (lifters, F=243), from benchmark files."""
    out: dict[str, str] = {}
    for path in sorted((ROOT / "benchmarks").glob("results_*_cpu.json")):
        for rec in json.loads(path.read_text()).get("results", []):
            a, _, b = rec["pair"].partition(" vs ")
            if "a_img_per_s" in rec and rec.get("batch") == 32 and rec.get("mode") == "prepared":
                out.setdefault(a, f"{rec['a_img_per_s']:.1f} img/s")
                out.setdefault(b, f"{rec['b_img_per_s']:.1f} img/s")
            elif "a_frames_per_s" in rec:
                out.setdefault(a, f"{rec['a_frames_per_s']:.0f} frames/s")
                out.setdefault(b, f"{rec['b_frames_per_s']:.0f} frames/s")
    return out


def _keep(config: Any, rec: dict[str, Any]) -> str:
    """What is kept: PPT keep ratio, GTPT per-stage keep rates, HoT frames kept of F, or '-'."""
    if getattr(config, "keep_rates", None):
        return "/".join(f"{r:g}" for r in config.keep_rates)
    stages = getattr(config, "stages", ())
    if stages:
        return ", ".join(f"{n} of {config.num_frames} frames" for _, n in stages)
    return "-" if rec["keep_ratio"] is None else f"{rec['keep_ratio']:g}"


def _architecture_rows() -> list[list[str]]:
    from prunepose.profiling.flops import default_input_shape, profile_model
    from prunepose.registry import create_model, list_models

    speed = _throughputs()
    rows = []
    for name in list_models():
        model = create_model(name).eval()
        rec = profile_model(model, default_input_shape(model))
        lifter = "flops_hot" in rec
        shape = rec["input_shape"]
        if lifter:
            inp = f"{shape[1]} frames x {shape[2]} joints"
        else:  # height x width as the papers write it; multi-view inputs are (B, V, 3, H, W)
            inp = f"{shape[-2]}x{shape[-1]}" + (f", {shape[1]} views" if len(shape) == 5 else "")
        keep = _keep(model.config, rec)
        paper = f"{rec['flops_hot']:.3f} (HoT)" if lifter else f"{rec['gflops_paper_hrnet']:.3f} (HRNet)"
        rows.append([name, inp, keep, f"{rec['params'] / 1e6:.3f}", f"{rec['macs_true']:.3f}",
                     f"{rec['macs_thop']:.3f}", paper, speed.get(name, "-")])
        print(f"profiled {name}", file=sys.stderr)
    return rows


def _trained_rows() -> list[list[str]]:
    rows = []
    for item in TRAINED:
        path = ROOT / item["file"]
        if not path.is_file():
            rows.append([item["what"], "not trained yet", "-", item["data"]])
            continue
        res = json.loads(path.read_text())
        if "gt2d" in res:
            acc = (f"P1 {res['gt2d']['mpjpe_mm']:.1f} / P2 {res['gt2d']['p_mpjpe_mm']:.1f} mm (GT 2D)"
                   + (f"; P1 {res['sh2d']['mpjpe_mm']:.1f} mm (SH 2D)" if "sh2d" in res else ""))
        else:  # scripts/distill/evaluate_heldout.py --out: "teacher", "mean_pose_baseline", "student:<weights>"
            student = next((v for k, v in res.items() if k.startswith("student")), None)
            if student is None:
                acc = "see file"
            else:
                acc = f"mean OKS {student['mean_oks']:.3f}, AP {student['AP']:.3f} ({student['persons']} persons)"
                for key, label in (("teacher", "MoveNet teacher"), ("mean_pose_baseline", "mean-pose baseline")):
                    if key in res:
                        acc += f"; {label} {res[key]['mean_oks']:.3f} / {res[key]['AP']:.3f}"
        rows.append([item["what"], acc, item["file"], item["data"]])
    return rows


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    arch = _architecture_rows()
    text = f"""# Model zoo

Generated by `scripts/make_model_zoo.py` from the profiler (`prunepose profile NAME`), the committed benchmark
results (`benchmarks/results_*_cpu.json`, this repo's 2-core CPU) and the metrics files of the weights trained
here. Do not edit by hand.

## Architectures
Params in millions (all parameters, incl. fixed sine PEs). Cost per image (2D, batch 1) or per clip (lifters):
**true** = every multiply-accumulate incl. attention, in G = 1e9 MACs; **thop** = thop 0.1.1 module rules (no
attention matmuls; GTPT's convention); **paper** = the convention of that family's paper (TokenPose/PPT: HRNet
counter, "GFLOPs" of 1024^3; HoT/MixSTE/MotionBERT: 2 x thop MACs per clip). Throughput: CPU, 2 threads,
batch 32 (2D) or one 243-frame clip (lifters), from the benchmarks; "-" = not benchmarked.
Random-initialised architectures: paper-level accuracy needs training on the full datasets or converted official
weights (`prunepose convert`, docs/models.md).

{_table(["model", "input", "keep", "params (M)", "true GMACs", "thop GMACs", "paper convention", "CPU throughput"],
        arch)}

## Weights trained in this repository (measured accuracy)
{_table(["weights", "accuracy measured here", "metrics file", "evaluated on"], _trained_rows())}
"""
    (ROOT / "docs" / "model-zoo.md").write_text(text)
    print(f"wrote docs/model-zoo.md ({len(arch)} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
