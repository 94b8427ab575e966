"""Docs figures, built only from measured result files in the repository: ``docs/figures/*.png``.

Figures (each skipped with a printed reason when its inputs are missing; nothing is invented):

* ``cost_accuracy_h36m.png``: MPJPE (mm, S9/S11, GT 2D and SH-detected 2D) of the Human3.6M lifters in
  ``artifacts/h36m/<run>_metrics.json`` against their measured cost (GFLOPs per clip, true count with attention;
  parameters). The cost is measured here on the experiment config the run names.
* ``cost_accuracy_2d.png``: the 2D models' cost (params, GMACs per 256x192 crop, pruned and unpruned twin).
  When a held-out evaluation JSON of the distilled default model exists (``docs/results-2d.json``, the format
  ``scripts/distill/evaluate_heldout.py --out`` writes: ``teacher``, ``mean_pose_baseline``, ``student:<weights>``
  entries with ``mean_oks``/``AP``), a second panel plots the students' mean OKS against their cost with the
  teacher and the baseline as reference lines; otherwise the chart says "cost only".
* ``pose3d_example.png``: one 3D pose of the demo (``outputs/demo/results.json`` from ``prunepose demo``) from
  two viewpoints; ``demo_preview.png``: the demo's preview (overlay, kept tokens per stage, 3D).
* ``kept_tokens.png``: kept tokens per pruning stage of the bundled 2D model on the demo clip's middle frame
  (per group for GTPT), when the bundled 2D weights are installed.

Usage: ``PYTHONPATH=src python scripts/make_figures.py [--demo outputs/demo] [--out docs/figures]``
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS_2D = ("tokenpose_t", "tokenpose_s_v1", "tokenpose_s_v2", "ppt_s", "gtpt_t", "gtpt_s", "gtpt_b")


def _figure(w_in: float, h_in: float, cols: int = 1):  # noqa: ANN202
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w_in, h_in), dpi=110)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, cols, i + 1) for i in range(cols)]


def _rel(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _save(fig, path: Path) -> None:  # noqa: ANN001
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {_rel(path)}")


def _cost(model: Any) -> dict[str, float]:
    from prunepose.profiling import profile_model

    rec = profile_model(model)
    return {"params_m": rec["params"] / 1e6, "gflops": rec["flops_true"], "gmacs": rec["macs_true"]}


# ------------------------------------------------------------------------------------------ 3D: Human3.6M


def h36m_chart(out: Path) -> None:
    from prunepose.config import load_config
    from prunepose.registry import create_model

    rows = []
    for path in sorted((ROOT / "artifacts" / "h36m").glob("*_metrics.json")):
        run = re.sub(r"_step\d+_metrics$", "", path.stem)
        step = re.search(r"_step(\d+)_metrics$", path.stem)
        config = ROOT / "configs" / "h36m" / f"{run}.yaml"
        if not config.is_file():
            print(f"skip {path.name}: no experiment config {_rel(config)}")
            continue
        cfg = load_config(config)
        cost = _cost(create_model(cfg["model"], **cfg["model_overrides"]))
        metrics = json.loads(path.read_text())
        rows.append({"run": run, "steps": int(step.group(1)) if step else None, **cost,
                     "frames": cfg["model_overrides"].get("num_frames"),
                     **{k: metrics[k]["mpjpe_mm"] for k in ("gt2d", "sh2d") if k in metrics}})
    if not rows:
        print("skip cost_accuracy_h36m.png: no artifacts/h36m/*_metrics.json")
        return
    fig, axes = _figure(9.0, 3.8, cols=2)
    for ax, key, xlabel in ((axes[0], "gflops", "GFLOPs per clip (true count, attention included)"),
                            (axes[1], "params_m", "parameters (M)")):
        for src, marker in (("gt2d", "o"), ("sh2d", "s")):
            pts = [(r[key], r[src], r["run"]) for r in rows if src in r]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker,
                       label={"gt2d": "2D = ground truth", "sh2d": "2D = SH detections"}[src])
            for x, y, name in pts:
                ax.annotate(name.replace("_compact", ""), (x, y), textcoords="offset points", xytext=(5, 3), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("MPJPE (mm, lower is better)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    steps = {r["steps"] for r in rows}
    fig.suptitle(f"Human3.6M S9/S11, compact lifters ({rows[0]['frames']}-frame clips) after "
                 f"{', '.join(map(str, sorted(s for s in steps if s)))} training steps: undertrained, measured here",
                 fontsize=9)
    _save(fig, out / "cost_accuracy_h36m.png")


# ------------------------------------------------------------------------------------------ 2D


def _load_2d_results(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if any(k.startswith("student:") for k in data) else None


def _student_model(weights: str) -> Any:
    from prunepose.weights import model_from_weights

    path = Path(weights)
    path = path if path.is_absolute() else ROOT / path
    return model_from_weights(path) if path.is_file() else None


def cost_2d_chart(out: Path, results_path: Path) -> None:
    from prunepose.profiling.savings import pruning_savings
    from prunepose.registry import create_model, get_config

    rows = []
    for name in MODELS_2D:
        cost = _cost(create_model(name))
        s = pruning_savings(get_config(name))
        rows.append({"name": name, **cost, "gmacs_unpruned": s["macs_unpruned"] / 1e9})
    results = _load_2d_results(results_path)
    fig, axes = _figure(10.0 if results else 5.5, 4.0, cols=2 if results else 1)
    ax = axes[0]
    for r in rows:
        colour = "tab:red" if r["name"].startswith("gtpt") else "tab:blue" if r["name"].startswith("ppt") \
            else "tab:grey"
        ax.scatter(r["gmacs"], r["params_m"], color=colour)
        if r["gmacs_unpruned"] > r["gmacs"] * 1.001:  # pruned model: arrow from its unpruned twin
            ax.annotate("", (r["gmacs"], r["params_m"]), (r["gmacs_unpruned"], r["params_m"]),
                        arrowprops={"arrowstyle": "->", "color": colour, "alpha": 0.6})
        below = r["name"].startswith("ppt")  # PPT-S sits next to its twin TokenPose-S-v1: label it underneath
        ax.annotate(r["name"], (r["gmacs"], r["params_m"]), textcoords="offset points",
                    xytext=(-10, -12) if below else (4, 4), fontsize=8)
    ax.set_xlabel("GMACs per 256x192 crop (true count; arrows: from the unpruned twin)")
    ax.set_ylabel("parameters (M)")
    ax.grid(alpha=0.3)
    if results is None:
        ax.set_title("2D models: cost only (no measured 2D accuracy in the repository yet)", fontsize=9)
        print(f"note: {_rel(results_path)} not found: cost_accuracy_2d.png shows cost only")
    else:
        ax.set_title("2D models: cost", fontsize=9)
        acc = axes[1]
        for key, r in results.items():
            if not key.startswith("student:"):
                continue
            model = _student_model(key.split(":", 1)[1])
            if model is None:
                print(f"skip {key}: weights file not in the repository")
                continue
            c = _cost(model)
            acc.scatter(c["gmacs"], r["mean_oks"], color="tab:green")
            acc.annotate(f"{model.config.name} (AP {r['AP']:.2f})", (c["gmacs"], r["mean_oks"]),
                         textcoords="offset points", xytext=(4, 4), fontsize=8)
        for key, style, text in (("teacher", "--", "teacher (MoveNet Thunder)"), ("mean_pose_baseline", ":",
                                                                                   "mean-pose baseline")):
            if key in results:
                acc.axhline(results[key]["mean_oks"], ls=style, color="k", lw=1)
                acc.text(acc.get_xlim()[0], results[key]["mean_oks"], f" {text} {results[key]['mean_oks']:.3f}",
                         va="bottom", fontsize=8)
        persons = next((r["persons"] for r in results.values() if isinstance(r, dict) and "persons" in r), "?")
        acc.set_title(f"held-out real persons (n={persons}), GT boxes", fontsize=9)
        acc.set_xlabel("GMACs per crop (true count)")
        acc.set_ylabel("mean OKS (higher is better)")
        acc.grid(alpha=0.3)
    _save(fig, out / "cost_accuracy_2d.png")


# ------------------------------------------------------------------------------------------ demo pictures


def demo_figures(out: Path, demo_dir: Path) -> None:
    from prunepose.viz.draw3d import render_pose3d

    results = demo_dir / "results.json"
    if not results.is_file() or "pose3d" not in json.loads(results.read_text()):
        print(f"skip pose3d_example.png / demo_preview.png: run `prunepose demo --out {demo_dir}` first")
        return
    data = json.loads(results.read_text())
    poses = np.asarray(data["pose3d"]["poses3d"], dtype=np.float64)
    t = len(poses) // 2
    views = [render_pose3d(poses[t], size=(420, 420), elev=15, azim=-70, title=f"demo frame {t}: oblique view"),
             render_pose3d(poses[t], size=(420, 420), elev=0, azim=-90, title="camera view (x right, up)")]
    cv2.imwrite(str(out / "pose3d_example.png"), np.concatenate(views, axis=1))
    print(f"wrote {_rel(out / 'pose3d_example.png')}")
    preview = cv2.imread(str(demo_dir / "preview.png"))
    if preview is not None:
        scale = min(1.0, 1100 / preview.shape[1])
        cv2.imwrite(str(out / "demo_preview.png"), cv2.resize(preview, None, fx=scale, fy=scale,
                                                              interpolation=cv2.INTER_AREA))
        print(f"wrote {_rel(out / 'demo_preview.png')}")


def kept_tokens_figure_for_demo(out: Path) -> None:
    from prunepose.api.backends import DEFAULT_WEIGHTS
    from prunepose.demo import BUNDLED_FIRST_BOX, BUNDLED_VIDEO

    if not DEFAULT_WEIGHTS.is_file():
        print("skip kept_tokens.png: the bundled 2D weights are not installed")
        return
    import torch

    from prunepose.viz.figures import kept_tokens_figure
    from prunepose.weights import model_from_weights

    model = model_from_weights(DEFAULT_WEIGHTS).eval()
    from prunepose.viz.figures import crop_person

    cap = cv2.VideoCapture(str(BUNDLED_VIDEO))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        print(f"skip kept_tokens.png: cannot read {BUNDLED_VIDEO}")
        return
    x1, y1, x2, y2 = BUNDLED_FIRST_BOX
    crop, x, _, _ = crop_person(frame, model.config.input_size, (x1, y1, x2 - x1, y2 - y1))
    with torch.no_grad():
        kept = model(x).kept
    groups = ("head", "upper limbs", "lower limbs") if model.config.skeleton == "coco" else None
    fig = kept_tokens_figure(crop, kept, (model.grid_h, model.grid_w), groups)
    cv2.imwrite(str(out / "kept_tokens.png"), fig)
    print(f"wrote {_rel(out / 'kept_tokens.png')} ({model.config.name}, bundled weights, frame 0)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    parser.add_argument("--demo", default=str(ROOT / "outputs" / "demo"), help="output folder of `prunepose demo`")
    parser.add_argument("--results-2d", default=str(ROOT / "docs" / "results-2d.json"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    h36m_chart(out)
    cost_2d_chart(out, Path(args.results_2d))
    demo_figures(out, Path(args.demo))
    kept_tokens_figure_for_demo(out)


if __name__ == "__main__":
    main()
