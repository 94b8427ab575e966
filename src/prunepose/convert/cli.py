"""``prunepose convert``: official TokenPose / PPT / GTPT checkpoint -> prunepose safetensors + JSON config.

Kept out of ``prunepose.cli`` so the converter's parser and its printing live next to the converter;
``prunepose.cli`` only calls :func:`add_convert_parser`.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

_COPIES = {"ema": "the EMA copy (ema_features.*, ema_mlp_head_*)",
           "student": "the student copy (features.*, mlp_head_*)"}


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert ``args.src`` for ``args.model`` into ``args.out`` and say what was written."""
    from prunepose.convert.official import convert_checkpoint

    dst = convert_checkpoint(args.src, args.model, args.out, use_ema=not args.student)
    json_path = dst.with_suffix(".json")
    note = ""
    copy = json.loads(json_path.read_text()).get("official_copy")  # GTPT only: which copy was converted
    if copy in _COPIES:
        wanted = "student" if args.student else "ema"
        note = f", from {_COPIES[copy]}"
        if copy != wanted:
            note += f": the file has no {'EMA' if wanted == 'ema' else 'student'} copy"
    print(f"wrote {dst} and {json_path} (model {args.model}, converted from {args.src}{note})")
    return 0


def add_convert_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``convert SRC --model NAME --out DST [--student]`` on an ``add_subparsers()`` object."""
    p = subparsers.add_parser(
        "convert", help="convert an official TokenPose/PPT/GTPT checkpoint (.pth) to prunepose weights",
        description="Convert a state dict saved by the official TokenPose, PPT or GTPT code (e.g. model_best.pth, "
                    "ppt_s_256x192_ratio07.pth) into a .safetensors file plus a .json model config beside it. "
                    "The file is read with torch.load(weights_only=True), so no code from it runs. GTPT files "
                    "hold a student and an EMA copy of the model; the EMA copy, which the official evaluation "
                    "uses, is converted unless --student is given (a file with only one copy is converted from "
                    "that one, and the message says so).",
    )
    p.add_argument("src", help="official checkpoint (.pth)")
    p.add_argument("--model", required=True, help="registered model name, e.g. ppt_s (see `prunepose models`)")
    p.add_argument("--out", required=True, help="output weights file (.safetensors); its .json goes beside it")
    p.add_argument("--student", action="store_true",
                   help="GTPT only: convert the student weights (features.*, mlp_head_*) instead of the EMA copy")
    p.set_defaults(func=cmd_convert)
    return p
