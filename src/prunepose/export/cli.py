"""``prunepose export onnx MODEL``: write an ONNX graph (pruning included) and its JSON description.

Kept apart from :mod:`prunepose.cli` so the export options live next to the exporter; the main CLI only
calls :func:`add_export_parser`.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from prunepose.errors import ConfigError, PrunePoseError
from prunepose.outpaths import output_file


def load_model(model: str | None, checkpoint: str | None) -> tuple[Any, dict[str, Any]]:
    """The model to export and the provenance to carry into the JSON.

    ``checkpoint`` with a JSON beside it builds the architecture from the JSON (``model``, when given, must
    match its name); without a JSON ``model`` names the architecture; no checkpoint: random weights.
    """
    from prunepose.export.onnx import GRAPH_KEYS
    from prunepose.registry import create_model, get_config
    from prunepose.weights import model_from_weights, read_weights_info

    if checkpoint is None:
        if model is None:
            raise ConfigError("give a MODEL name (see `prunepose models`) or --checkpoint WEIGHTS")
        return create_model(model), {"weights": "random initialisation (no --checkpoint)"}
    path = Path(checkpoint)
    if not path.is_file():
        raise PrunePoseError(f"weights file not found: {path}")
    if not path.with_suffix(".json").is_file():
        if model is None:
            raise ConfigError(f"{path} has no JSON description beside it; name the architecture: "
                              "prunepose export onnx MODEL --checkpoint WEIGHTS")
        return model_from_weights(path, model=model), {"weights": str(path)}
    info = read_weights_info(path)
    if model is not None and model != info["name"]:
        raise ConfigError(f"{path.with_suffix('.json')} describes model {info['name']!r}, not {model!r}")
    fields = {f.name for f in dataclasses.fields(get_config(info["name"]))}
    provenance = {k: v for k, v in info.items() if k not in fields and k not in GRAPH_KEYS}
    return model_from_weights(path), {"weights": str(path), **provenance}


def check_inputs(model: Any, batch: int) -> tuple[Any, str]:
    """A real input batch for ``--check`` and a description of it."""
    import numpy as np

    from prunepose.export.onnx import TASK_LIFTING, example_input, model_task
    from prunepose.export.samples import ASSET_IMAGE, h36m_clips, image_crops

    if model_task(model) != TASK_LIFTING:
        return image_crops(model.config, batch), f"{batch} crops of {ASSET_IMAGE.name}"
    clips = h36m_clips(model.config, batch)
    if clips is not None:
        return clips, f"{batch} Human3.6M S9 Walking clips (Stacked-Hourglass 2D)"
    x = example_input(model, batch=batch, seed=1).numpy().astype(np.float32)
    return x, f"{batch} random clips (Human3.6M shared data not found: no real 2D track to test on)"


def cmd_export_onnx(args: argparse.Namespace) -> int:
    from prunepose.export.onnx import export_onnx

    if args.check_batch < 1:
        raise ConfigError(f"--check-batch must be >= 1, got {args.check_batch}")
    if args.out:  # a folder or read-only place: say so before building and tracing the model
        output_file(args.out, "--out", ".onnx")
    model, provenance = load_model(args.model, args.checkpoint)
    out = output_file(args.out or Path("outputs/export") / f"{model.config.name}.onnx", "--out", ".onnx")
    path = export_onnx(model, out, opset=args.opset, dynamic_batch=not args.static_batch, metadata=provenance)
    size = path.stat().st_size / 2**20
    print(f"wrote {path} ({size:.1f} MiB) and {path.with_suffix('.json')}")
    if not args.check:
        return 0
    from prunepose.export.verify import compare

    batch = 1 if args.static_batch else args.check_batch
    inputs, what = check_inputs(model, batch)
    diffs = compare(model, path, inputs)
    print(f"check: onnxruntime vs PyTorch on {what}:")
    for d in diffs:
        print(f"  {d}")
    if not all(d.ok(args.atol) for d in diffs):
        raise PrunePoseError(f"{path}: onnxruntime and PyTorch disagree beyond --atol {args.atol:g}")
    print(f"check passed (atol {args.atol:g})")
    return 0


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``export onnx MODEL [--checkpoint PATH] [--out FILE] [--opset N] [--check]``."""
    p = subparsers.add_parser("export", help="export a model for deployment (ONNX)")
    formats = p.add_subparsers(dest="format", required=True)
    q = formats.add_parser(
        "onnx",
        help="write MODEL as an ONNX graph (token pruning inside it) plus a JSON description",
        description="Export a 2D model (TokenPose/PPT heatmaps, GTPT SimCC) or a lifter (MixSTE, MotionBERT, "
                    "HoT/TPC) to ONNX. Pruning runs inside the graph; its indices are extra outputs kept_0, "
                    "kept_1, ... The batch axis is dynamic. Without --checkpoint the weights are random "
                    "(useful to test deployment only).",
    )
    q.add_argument("model", nargs="?", help="registered model name (see `prunepose models`); optional with a "
                                            "--checkpoint that has a JSON description beside it")
    q.add_argument("--checkpoint", help="weights: .safetensors (+ .json) or a training checkpoint .pt")
    q.add_argument("--out", help="output .onnx file (default outputs/export/<model>.onnx)")
    q.add_argument("--opset", type=int, default=17, help="ONNX opset, 14..20 (default 17)")
    q.add_argument("--static-batch", action="store_true", help="fix the batch size to 1 instead of dynamic")
    q.add_argument("--check", action="store_true",
                   help="run onnxruntime and PyTorch on a real input and print the largest difference")
    q.add_argument("--check-batch", type=int, default=3, metavar="N",
                   help="batch size of the --check input (default 3, unlike the export's trace batch of 2)")
    q.add_argument("--atol", type=float, default=1e-4, help="--check fails above this max |diff| (default 1e-4)")
    q.set_defaults(func=cmd_export_onnx)
    return p


__all__ = ["add_export_parser", "cmd_export_onnx", "load_model"]
