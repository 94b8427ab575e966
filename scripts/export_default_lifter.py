"""Write the bundled default lifter (``src/prunepose/assets/weights/lifter3d_default.safetensors`` + ``.json``)
from a training checkpoint of the compact HoT-MixSTE.

Why a script: the shipped file must say where it came from (data, licence, checkpoint, step) and the lead
re-runs this with the final checkpoint; doing it by hand would lose that provenance.

    PYTHONPATH=src python scripts/export_default_lifter.py artifacts/h36m/hot_mixste_compact_step600.pt

The architecture comes from the experiment YAML the checkpoint was trained with (``--config``, default
``configs/h36m/hot_mixste_compact.yaml``); training checkpoints hold the weights and the training state,
not the model overrides.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from prunepose.config import load_config
from prunepose.errors import PrunePoseError
from prunepose.registry import create_model
from prunepose.weights import load_weights, save_weights

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "prunepose" / "assets" / "weights" / "lifter3d_default.safetensors"
DEFAULT_CONFIG = REPO / "configs" / "h36m" / "hot_mixste_compact.yaml"
#: the bundled file must stay small (it ships inside the wheel)
MAX_BYTES = 2 * 1024 * 1024


def _step(checkpoint: Path) -> int | None:
    """Training step stored in an engine checkpoint (``global_step``), or None for plain weight files."""
    if checkpoint.suffix == ".safetensors":
        return None
    obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    step = obj.get("global_step") if isinstance(obj, dict) else None
    return int(step) if step is not None else None


def _trained_on(cfg: dict) -> str:
    """What 2D the config trains on, in words (the JSON tells users what input the weights expect)."""
    data = cfg.get("data") or {}
    base = "Human3.6M S1,S5,S6,S7,S8, "
    if data.get("keypoints", "gt") == "sh":
        prob, noise = float(data.get("gt2d_prob", 0.0)), float(data.get("gt2d_noise_px", 0.0))
        text = base + "Stacked-Hourglass 2D detections"
        if prob > 0:
            text += f" ({prob:.0%} of the clips swapped for GT 2D projected with the real cameras + {noise:g} px noise)"
        return text
    return base + "GT 2D projected with the real cameras"


def export(checkpoint: Path, config: Path, out: Path) -> Path:
    """Build the config's model, load ``checkpoint`` (strict) and save it with its provenance."""
    cfg = load_config(config)
    model = create_model(cfg["model"], **cfg["model_overrides"])
    load_weights(model, checkpoint, strict=True)
    try:
        source = str(checkpoint.resolve().relative_to(REPO))
        config_name = str(config.resolve().relative_to(REPO))
    except ValueError:
        source, config_name = str(checkpoint), str(config)
    metadata = {
        "trained_on": _trained_on(cfg),
        "licence": "Human3.6M: non-commercial research only; these weights carry that restriction",
        "source_checkpoint": source,
        "initialised_from": (cfg.get("init") or {}).get("checkpoint"),
        "step": _step(checkpoint),
        "experiment_config": config_name,
        "command": f"python scripts/export_default_lifter.py {source} --config {config_name}",
    }
    path = save_weights(model.eval(), out, metadata=metadata)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise PrunePoseError(f"{path}: {size / 1e6:.2f} MB, over the {MAX_BYTES / 1e6:.1f} MB budget for a "
                             "bundled file; export a smaller model")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (.pt) or weights (.safetensors)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="experiment YAML it was trained with")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the .safetensors (+ .json)")
    args = parser.parse_args(argv)
    try:
        path = export(args.checkpoint, args.config, args.out)
    except PrunePoseError as exc:
        print(f"export_default_lifter: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
