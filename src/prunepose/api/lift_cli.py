"""``prunepose lift SRC_2D``: one person's 2D keypoint track -> 3D poses, written to files.

Outputs in ``--out`` (default ``outputs/lift``):

* ``poses3d.json``: `prunepose.api.results3d.Results3D.to_json` (metres, camera frame, root-relative, H36M-17)
  plus the source file, its frame ids and which joints were interpolated;
* ``poses3d.npy``: the (T, 17, 3) float32 poses;
* ``poses3d.gif`` / ``.mp4`` with ``--animate`` (`prunepose.viz.draw3d.animate_poses3d`).

Bad input -> ``prunepose: error: ...`` and exit code 2, before any file is written.
"""
from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path
from typing import Any

from prunepose.errors import ConfigError, PrunePoseError
from prunepose.outpaths import output_dir


def _image_size(args: argparse.Namespace, track: Any) -> tuple[float, float]:
    if args.image_size is not None:
        w, h = args.image_size
        if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
            raise ConfigError(f"--image-size W H must be two finite positive numbers, got {w} {h}")
        return w, h
    if track.image_size is not None:
        return track.image_size
    raise ConfigError(f"{track.source}: pass --image-size W H, the size in pixels of the frames the 2D keypoints "
                      "are in (read automatically only for `prunepose predict` output on a video)")


def _layout(args: argparse.Namespace, track: Any) -> str:
    if args.layout is not None:
        return args.layout
    if track.kind == "json":
        return "coco"
    raise ConfigError(f"{track.source}: pass --layout coco|h36m|mpii for array input (17 joints could be COCO or "
                      "H36M; the order cannot be told from the numbers)")


def cmd_lift(args: argparse.Namespace) -> int:
    """Read the track, check every option, lift, write the outputs and print one summary line."""
    from prunepose.api.lifter3d import Lifter3D
    from prunepose.api.tracks2d import read_track
    from prunepose.atomic import atomic_write

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise ConfigError(f"--fps must be > 0, got {args.fps}")
    if args.animate is not None and Path(args.animate).suffix.lower() not in (".gif", ".mp4"):
        raise ConfigError(f"--animate {args.animate}: the animation must be a .gif or .mp4 file")
    out_dir = output_dir(args.out, "--out")  # before the model runs: a bad --out fails in one line, at once
    track = read_track(args.src, person=args.person)
    if args.person is not None and track.kind != "json":
        raise ConfigError("--person picks a person in JSON detections; an array holds one person already")
    image_size = _image_size(args, track)
    layout = _layout(args, track)
    lifter = Lifter3D(model=args.model, checkpoint=args.checkpoint, device=args.device, flip=not args.no_flip,
                      batch_size=args.batch_size, min_score=args.min_score)
    with warnings.catch_warnings(record=True) as caught:  # the API speaks of "keypoints2d"; name the file
        warnings.simplefilter("always")
        try:
            res = lifter(track.keypoints, image_size=image_size, layout=layout, scores=track.scores)
        except PrunePoseError as exc:
            raise type(exc)(f"{track.source}: {exc}") from None
    for w in caught:
        warnings.warn(f"{track.source}: {w.message}", w.category, stacklevel=1)
    record = {"source": str(track.source), "frame_ids": track.frame_ids, "person": args.person,
              "notes": track.notes, **res.to_json()}
    text = json.dumps(record) + "\n"
    atomic_write(out_dir / "poses3d.json", lambda f: f.write(text.encode()))
    res.save(out_dir / "poses3d.npy")
    written = [out_dir / "poses3d.json", out_dir / "poses3d.npy"]
    if args.animate is not None:
        fps = args.fps or track.fps or 25.0
        written.append(res.animate(out_dir / args.animate, fps=fps))
    filled = int(res.filled.any(axis=1).sum())
    for note in track.notes:
        print(f"note: {note}")
    print(f"lifted {len(res)} frames with {res.model} ({lifter.num_frames}-frame windows, flip "
          f"{'on' if lifter.flip else 'off'}); {filled} frames had interpolated joints -> "
          + ", ".join(str(p) for p in written))
    return 0


def add_lift_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``lift SRC_2D [--layout] [--image-size W H] [--person N] [--model/--checkpoint] [--out DIR]
    [--animate [FILE]]``."""
    p = subparsers.add_parser(
        "lift", help="2D keypoint track (.npy/.npz/predict JSON) -> 3D poses (HoT lifter)",
        description="Lift one person's 2D keypoints over time to 3D poses (metres, camera frame, root-relative, "
                    "Human3.6M-17 joints). Missing joints are interpolated over time and reported. The default "
                    "model is the bundled compact HoT-MixSTE, trained on Human3.6M (non-commercial research only).")
    p.add_argument("src", help=".npy/.npz array (T, J, 2|3) in pixels, or predictions.json of `prunepose predict`")
    p.add_argument("--layout", choices=("coco", "h36m", "mpii"), default=None,
                   help="joint order of the 2D input (default coco for JSON; required for arrays)")
    p.add_argument("--image-size", type=float, nargs=2, metavar=("W", "H"), default=None,
                   help="frame size in pixels (required unless SRC is predict output on a video)")
    p.add_argument("--person", "--track", dest="person", type=int, default=None,
                   help="JSON: track_id to lift (`prunepose predict` on a video writes one per person), or without "
                        "track ids the score rank within each frame (0 = best)")
    p.add_argument("--model", default=None, help="registry name or experiment YAML (default: the bundled lifter)")
    p.add_argument("--checkpoint", default=None, help="weights (.safetensors or training .pt) for --model")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default cpu)")
    p.add_argument("--batch-size", type=int, default=16, help="model windows per forward pass (default 16)")
    p.add_argument("--min-score", type=float, default=None,
                   help="treat joints scoring below this as missing and interpolate them (default: keep all)")
    p.add_argument("--no-flip", action="store_true", help="skip the flip test (about 2x faster)")
    p.add_argument("--out", default="outputs/lift", help="output folder (default outputs/lift)")
    p.add_argument("--animate", nargs="?", const="poses3d.gif", default=None, metavar="FILE",
                   help="also write an animation into --out (default name poses3d.gif; .mp4 works too)")
    p.add_argument("--fps", type=float, default=None,
                   help="animation frame rate (default: the video's, else 25)")
    p.set_defaults(func=cmd_lift)
    return p


__all__ = ["add_lift_parser", "cmd_lift"]
