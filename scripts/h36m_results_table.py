"""Print the per-action Markdown table of docs/results-h36m.md from two `prunepose test` metrics files.

Why a script: the table in the docs is copied from measured files, never typed; rerun it after a new
evaluation.

    python scripts/h36m_results_table.py artifacts/h36m/mixste_compact_metrics.json \
        artifacts/h36m/hot_mixste_compact_tralin_metrics.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def table(base: dict, hot: dict, names: tuple[str, str] = ("MixSTE", "HoT")) -> str:
    """Rows per action (P1/P2 of both models on projected GT 2D), then the means for every 2D source."""
    a, b = names
    lines = [f"| action | {a} P1 | {a} P2 | {b} P1 | {b} P2 |", "| --- | --- | --- | --- | --- |"]
    for action in sorted(base["gt2d"]["per_action"]):
        x, y = base["gt2d"]["per_action"][action], hot["gt2d"]["per_action"][action]
        lines.append(f"| {action} | {x['mpjpe']:.1f} | {x['p_mpjpe']:.1f} | {y['mpjpe']:.1f} | {y['p_mpjpe']:.1f} |")
    for src in ("gt2d", "sh2d"):
        if src in base and src in hot:
            x, y = base[src], hot[src]
            lines.append(f"| **mean ({src})** | {x['mpjpe_mm']:.1f} | {x['p_mpjpe_mm']:.1f} | "
                         f"{y['mpjpe_mm']:.1f} | {y['p_mpjpe_mm']:.1f} |")
    lines.append(f"MPJVE (gt2d): {a} {base['gt2d']['mpjve_mm']:.2f} mm, {b} {hot['gt2d']['mpjve_mm']:.2f} mm; "
                 f"N-MPJPE (gt2d): {a} {base['gt2d']['n_mpjpe_mm']:.1f} mm, {b} {hot['gt2d']['n_mpjpe_mm']:.1f} mm.")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("baseline", type=Path)
    p.add_argument("hot", type=Path)
    args = p.parse_args()
    print(table(json.loads(args.baseline.read_text()), json.loads(args.hot.read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
