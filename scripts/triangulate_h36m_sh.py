"""Triangulate the Stacked-Hourglass detections of Human3.6M S9/S11 from the 4 real cameras and report the
world MPJPE (mm) per action: DLT, the RANSAC variant, DLT without undistortion, every 3-view subset and every
view pair. Prints Markdown tables (the ones in docs/results-multiview.md) and optionally writes JSON.

    PYTHONPATH=src OMP_NUM_THREADS=1 python scripts/triangulate_h36m_sh.py --stride 5 --json out.json

Data: ``$PRUNEPOSE_DATA/h36m`` (research-only Human3.6M files, see its README); nothing is written there.
The SH file holds no confidence scores, so confidence-weighted DLT cannot be measured on it (weights are
exercised in tests/test_triangulation.py on synthetic data instead).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prunepose.data.h36m import ACTIONS
from prunepose.errors import PrunePoseError
from prunepose.tasks.triangulation_h36m import (
    DAMAGED_SEQUENCES,
    SetupResult,
    TriangulationSetup,
    evaluate_setups,
    load_multiview_sh,
    standard_setups,
    sync_offsets,
)

JOINTS = ("Hip", "RHip", "RKnee", "RFoot", "LHip", "LKnee", "LFoot", "Spine", "Thorax", "Neck", "Head",
          "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist")


def _fmt(v: float) -> str:
    return f"{v:.1f}" if np.isfinite(v) else "-"


def _mean_of(results: dict[str, SetupResult], names: Sequence[str], action: str | None) -> float:
    vals = [(r.meter.summary() if action is None else r.meter.per_action().get(action, {"mpjpe": np.nan}))["mpjpe"]
            for n, r in results.items() if n in names]
    return float(np.mean(vals)) if vals else float("nan")


def action_table(results: dict[str, SetupResult], setups: Sequence[TriangulationSetup]) -> str:
    triples = [s.name for s in setups if len(s.views) == 3]
    pairs = [s.name for s in setups if len(s.views) == 2]
    head = ["action", "DLT 4 views", "RANSAC 4 views", "DLT 4 views, no undistortion", "DLT 3 views (mean of 4)",
            "DLT 2 views (mean of 6)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    acts = [a for a in ACTIONS if a in results["dlt"].meter.per_action()]
    for act in acts + [None]:
        row = [act or "**mean over actions**"]
        for name in ("dlt", "ransac", "dlt_distorted"):
            r = results[name].meter
            row.append(_fmt(r.summary()["mpjpe"] if act is None else r.per_action()[act]["mpjpe"]))
        row += [_fmt(_mean_of(results, triples, act)), _fmt(_mean_of(results, pairs, act))]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def subset_table(results: dict[str, SetupResult], setups: Sequence[TriangulationSetup], cam_ids: Sequence[str]
                 ) -> str:
    lines = ["| setup | views (camera ids) | MPJPE mm (mean over actions) | median triangulation angle | "
             "points behind a camera | points with rays < 1 deg from parallel | NaN points |",
             "|---|---|---|---|---|---|---|"]
    for s in setups:
        r = results[s.name]
        summ = r.meter.summary()
        views = ", ".join(f"{v + 1}={cam_ids[v]}" for v in s.views)
        lines.append(f"| {s.name} | {views} | {_fmt(summ['mpjpe'])} | {r.median_angle_deg:.0f} deg | "
                     f"{r.behind_camera / r.points:.2%} | "
                     f"{r.narrow_rays / r.points:.2%} | {summ['failed']:.2%} |")
    return "\n".join(lines)


def joint_table(results: dict[str, SetupResult]) -> str:
    lines = ["| joint | DLT | RANSAC |", "|---|---|---|"]
    a, b = results["dlt"].meter.per_joint(), results["ransac"].meter.per_joint()
    for j, name in enumerate(JOINTS):
        lines.append(f"| {name} | {_fmt(a[j])} | {_fmt(b[j])} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help="Human3.6M folder (default $PRUNEPOSE_DATA/h36m)")
    p.add_argument("--stride", type=int, default=5, help="use every N-th frame (default 5; 1 = all frames)")
    p.add_argument("--threshold", type=float, default=25.0, help="RANSAC inlier threshold in pixels (default 25)")
    p.add_argument("--sweep", type=float, nargs="*", default=[],
                   help="extra RANSAC thresholds to report (4 views), e.g. --sweep 10 15 40 60")
    p.add_argument("--include-damaged", action="store_true",
                   help="keep the 3 S9 sequences with damaged mocap in the tables (excluded by default, as in PPT)")
    p.add_argument("--json", type=Path, help="also write all numbers to this JSON file")
    args = p.parse_args(argv)
    if args.stride < 1:
        raise SystemExit("--stride must be >= 1")
    t0 = time.perf_counter()
    try:
        seqs, skipped = load_multiview_sh(args.root)
    except PrunePoseError as exc:
        print(f"triangulate_h36m_sh: error: {exc}", file=sys.stderr)
        return 2
    damaged = [s for s in seqs if (s.subject, s.sequence) in DAMAGED_SEQUENCES]
    if not args.include_damaged:
        seqs = [s for s in seqs if (s.subject, s.sequence) not in DAMAGED_SEQUENCES]
    cam_ids = [c.name.split("/")[-1] for c in seqs[0].cameras]
    sync = {f"{s.subject}/{s.sequence}": sync_offsets(s) for s in seqs + damaged}
    best = {k: min(v, key=v.get) for k, v in sync.items()}
    setups = standard_setups(len(cam_ids), args.threshold)
    setups += [TriangulationSetup(f"ransac_{t:g}px", tuple(range(len(cam_ids))), "ransac", t) for t in args.sweep]
    results = evaluate_setups(seqs, setups, stride=args.stride)
    bad = evaluate_setups(damaged, setups[:2], stride=args.stride) if damaged and not args.include_damaged else {}
    frames = sum(len(range(0, s.pose3d_world_mm.shape[0], args.stride)) for s in seqs)
    gt_seqs, _ = load_multiview_sh(args.root, keypoints="gt")
    gt_check = evaluate_setups(gt_seqs, setups[:1], stride=args.stride * 10)["dlt"].meter.summary()["mpjpe"]
    elapsed = time.perf_counter() - t0

    print(f"{len(seqs)} sequences (S9/S11, all of {len(cam_ids)} cameras), every {args.stride}th frame: {frames} "
          f"frames x 17 joints; skipped: {'; '.join(skipped) or 'none'}")
    hist = {k: sum(v == k for v in best.values()) for k in sorted(set(best.values()))}
    print(f"sync check (moving joints, shifts -5..5): best shift histogram {hist}; median error at shift 0 / "
          f"+-5 frames: {np.median([v[0] for v in sync.values()]):.1f} / "
          f"{np.median([(v[-5] + v[5]) / 2 for v in sync.values()]):.1f} px")
    for name in sorted(f"{s.subject}/{s.sequence}" for s in damaged):
        print(f"damaged mocap {'(included)' if args.include_damaged else '(excluded)'}: {name}: detections vs "
              f"projected mocap {sync[name][0]:.1f} px at shift 0, best {min(sync[name].values()):.1f} px")
    if bad:
        print(f"  on those {len(damaged)} sequences: DLT {bad['dlt'].meter.summary()['mpjpe']:.1f} mm, "
              f"RANSAC {bad['ransac'].meter.summary()['mpjpe']:.1f} mm (mean over their actions)")
    clean = [v[0] for k, v in sync.items() if k not in {f"{a}/{b}" for a, b in DAMAGED_SEQUENCES}]
    print(f"other sequences: detections vs projected mocap {min(clean):.1f}-{max(clean):.1f} px at shift 0")
    print(f"pipeline check: DLT of the projected (distorted) mocap, 4 views: {gt_check:.2e} mm")
    print(f"runtime: {elapsed:.0f} s\n")
    print(action_table(results, setups), "\n")
    print(subset_table(results, setups, cam_ids), "\n")
    print(joint_table(results))
    if args.json:
        out = {"stride": args.stride, "frames": frames, "sequences": len(seqs), "skipped": skipped,
               "sync": sync, "damaged": {k: v.meter.summary() for k, v in bad.items()},
               "gt_pipeline_mpjpe_mm": gt_check, "threshold_px": args.threshold,
               "setups": {n: {"views": list(s.views), "method": s.method, "threshold_px": s.threshold_px,
                              "undistort": s.undistort, **r.meter.summary(), "per_action": r.meter.per_action(),
                              "per_joint": r.meter.per_joint().tolist(), "points": r.points,
                              "behind_camera": r.behind_camera, "narrow_rays": r.narrow_rays,
                              "median_angle_deg": r.median_angle_deg}
                          for s in setups for n, r in [(s.name, results[s.name])]}}
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
