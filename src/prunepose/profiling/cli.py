"""``prunepose profile MODEL``: parameters and compute of a registered model in every convention.

Kept apart from :mod:`prunepose.cli` so the profiler's options live next to the profiler; the main CLI
only calls :func:`add_profile_parser`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from prunepose.errors import ConfigError


def _validate(args: argparse.Namespace) -> None:
    """Reject bad numbers here, with the flag's name, before a model is built."""
    r = args.keep_ratio
    if r is not None and not 0.0 < r <= 1.0:  # also rejects NaN
        raise ConfigError(f"--keep-ratio must be in (0, 1] (fraction of tokens kept per pruning layer), got {r}")
    if args.batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {args.batch}")
    if args.input_size is not None and min(args.input_size) < 1:
        raise ConfigError(f"--input-size W H must be positive, got {args.input_size}")


def _overrides(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides for the flags; the heatmap follows the input (models require input/4)."""
    from prunepose.registry import get_config

    overrides: dict[str, Any] = {}
    if args.input_size is not None:
        w, h = args.input_size
        overrides["input_size"] = (w, h)
        fields = {f.name for f in dataclasses.fields(get_config(name))}
        if "heatmap_size" in fields:
            overrides["heatmap_size"] = (w // 4, h // 4)
    if args.keep_ratio is not None:
        overrides["keep_ratio"] = args.keep_ratio
    if getattr(args, "views", None) is not None:
        if "num_views" not in {f.name for f in dataclasses.fields(get_config(name))}:
            raise ConfigError(f"--views applies to multi-view models (mvppt_*, mvtokenpose_*), not {name!r}")
        if args.views < 2:
            raise ConfigError(f"--views must be >= 2, got {args.views}")
        overrides["num_views"] = args.views
    return overrides


def cmd_profile(args: argparse.Namespace) -> int:
    """Build the model (random weights), profile one batch at its input size and print the record."""
    from prunepose.profiling.flops import default_input_shape, format_profile, profile_model
    from prunepose.registry import create_model

    _validate(args)
    model = create_model(args.model, **_overrides(args.model, args))
    record = profile_model(model, default_input_shape(model, batch=args.batch))
    print(json.dumps(record) if args.json else format_profile(record))
    return 0


def add_profile_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``profile MODEL [--json] [--input-size W H] [--keep-ratio R] [--batch N]``."""
    p = subparsers.add_parser(
        "profile",
        help="parameters and compute (true MACs, thop MACs, paper GFLOPs) of a model",
        description="Count parameters and compute of a registered model on one random batch. true = every "
                    "conv/matmul MAC incl. attention (G = 1e9); thop = thop 0.1.1 module rules (G = 1e9); "
                    "paper-hrnet = HRNet get_model_summary as in the TokenPose/PPT tables (/1024^3).",
    )
    p.add_argument("model", help="registered model name (see `prunepose models`)")
    p.add_argument("--json", action="store_true", help="print the record as one JSON line")
    p.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"),
                   help="input width and height (default: the model's configured size)")
    p.add_argument("--keep-ratio", type=float, metavar="R",
                   help="token keep ratio per pruning layer, in (0, 1] (default: the model's)")
    p.add_argument("--batch", type=int, default=1, metavar="N", help="batch size (default 1)")
    p.add_argument("--views", type=int, metavar="V", help="number of camera views (multi-view models; default 4)")
    p.set_defaults(func=cmd_profile)
    return p


__all__ = ["add_profile_parser", "cmd_profile"]
