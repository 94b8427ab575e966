"""``prunepose viz tokens IMAGE``: kept-token masks and keypoint attention maps as PNG files."""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import torch

from prunepose.errors import ConfigError, DataError


def cmd_viz_tokens(args: argparse.Namespace) -> int:
    from prunepose.registry import create_model
    from prunepose.skeletons import get_skeleton
    from prunepose.viz.figures import attention_figure, crop_person, kept_tokens_figure

    image = cv2.imread(str(args.image))
    if image is None:
        raise DataError(f"{args.image}: cannot read image (missing file or unsupported format)")
    overrides = {} if args.keep_ratio is None else {"keep_ratio": args.keep_ratio}
    model = create_model(args.model, **overrides).eval()
    if args.checkpoint:
        from prunepose.weights import load_weights

        load_weights(model, args.checkpoint)
    if not model.config.prune_layers and not args.quiet:
        print(f"note: {args.model} does not prune; only the attention maps are informative")
    if args.box is not None and (args.box[2] <= 0 or args.box[3] <= 0):
        raise ConfigError(f"--box {args.box}: width and height must be > 0")
    crop, x, _, _ = crop_person(image, model.config.input_size, args.box)
    import inspect

    # GTPT has no keypoint-to-token attention maps to return (its keypoint tokens attend within groups)
    has_attention = "return_attention" in inspect.signature(model.forward).parameters
    with torch.no_grad():
        out = model(x, return_attention=True) if has_attention else model(x)
    grid = (model.grid_h, model.grid_w)
    names = get_skeleton(model.config.skeleton).keypoint_names
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    skeleton = get_skeleton(model.config.skeleton)
    groups = ("head", "upper limbs", "lower limbs") if skeleton.name == "coco" else None  # COCO17.groups order
    written = [out_dir / "kept_tokens.png"]
    cv2.imwrite(str(written[0]), kept_tokens_figure(crop, out.kept, grid, groups))
    if out.attention:
        written.append(out_dir / "attention.png")
        cv2.imwrite(str(written[1]), attention_figure(crop, out.attention, grid, names))
    elif not args.quiet:
        print(f"note: {args.model} returns no keypoint attention maps; only kept_tokens.png is written")
    if not args.checkpoint and not args.quiet:
        print("note: no --checkpoint given: random weights, the pictures show the mechanics only")
    for path in written:
        print(path)
    return 0


def add_viz_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("viz", help="pictures of what a model keeps and attends to")
    vsub = p.add_subparsers(dest="viz_command", required=True)
    t = vsub.add_parser("tokens", help="kept tokens per pruning stage and keypoint attention maps (PNG)")
    t.add_argument("image")
    t.add_argument("--model", default="ppt_s")
    t.add_argument("--checkpoint", help="weights (.pt checkpoint or .safetensors)")
    t.add_argument("--box", type=float, nargs=4, metavar=("X", "Y", "W", "H"),
                   help="person box in image px (default: the whole image)")
    t.add_argument("--keep-ratio", type=float, help="override the model's keep ratio")
    t.add_argument("--out", default="outputs/viz")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_viz_tokens)
