"""``prunepose convert``: official TokenPose / PPT checkpoint -> prunepose safetensors + JSON config.

Kept out of ``prunepose.cli`` so the converter's parser and its printing live next to the converter;
``prunepose.cli`` only calls :func:`add_convert_parser`.
"""
from __future__ import annotations

import argparse
from typing import Any


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert ``args.src`` for ``args.model`` into ``args.out`` and say what was written."""
    from prunepose.convert.official import convert_checkpoint

    dst = convert_checkpoint(args.src, args.model, args.out)
    print(f"wrote {dst} and {dst.with_suffix('.json')} (model {args.model}, converted from {args.src})")
    return 0


def add_convert_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``convert SRC --model NAME --out DST`` on an ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "convert", help="convert an official TokenPose/PPT checkpoint (.pth) to prunepose weights",
        description="Convert a state dict saved by the official TokenPose or PPT code (e.g. model_best.pth, "
                    "ppt_s_256x192_ratio07.pth) into a .safetensors file plus a .json model config beside it. "
                    "The file is read with torch.load(weights_only=True), so no code from it runs.",
    )
    p.add_argument("src", help="official checkpoint (.pth)")
    p.add_argument("--model", required=True, help="registered model name, e.g. ppt_s (see `prunepose models`)")
    p.add_argument("--out", required=True, help="output weights file (.safetensors); its .json goes beside it")
    p.set_defaults(func=cmd_convert)
    return p
