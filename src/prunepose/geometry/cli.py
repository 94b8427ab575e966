"""``prunepose triangulate``: 2D keypoints of several calibrated views -> 3D points, from the command line.

Kept apart from :mod:`prunepose.cli` so the options live next to the geometry; the main CLI only calls
:func:`add_triangulate_parser`.

Input: ``--points`` a ``.npy`` (V, ..., 2) of **distorted** pixels (view axis first, NaN = missing), or a
``.npz`` with ``points`` and optionally ``weights`` (V, ...); the calibration in one of the supported formats
(``--format``); ``--cameras`` picks and orders the views (default: the file's order). Output: ``--out`` a
``.npy`` (..., 3) in world millimetres, and a one-screen summary (reprojection error, flagged points).
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import ConfigError, DataError

FORMATS = ("h36m", "campus", "shelf", "panoptic")


def _cameras(args: argparse.Namespace) -> list[Any]:
    from prunepose.geometry.camera import load_cameras
    from prunepose.geometry.camera_formats import (
        load_campus_calibration,
        load_panoptic_calibration,
        load_shelf_calibration,
    )

    path = Path(args.calibration)
    if args.format == "h36m":
        by_subject = load_cameras(path)
        if args.subject not in by_subject:
            raise ConfigError(f"--subject {args.subject!r} not in {path} (has {sorted(by_subject)})")
        cams = by_subject[args.subject]
    elif args.format == "panoptic":
        if not args.cameras:
            raise ConfigError("--format panoptic needs --cameras (e.g. --cameras 00_03 00_06 00_12)")
        cams = load_panoptic_calibration(path, kinds=("hd", "vga", "kinect-color"), names=args.cameras)
    else:
        cams = (load_campus_calibration if args.format == "campus" else load_shelf_calibration)(path)
    if args.cameras:
        missing = [c for c in args.cameras if c not in cams]
        if missing:
            raise ConfigError(f"--cameras {missing} not in {path} (has {sorted(cams)})")
        return [cams[c] for c in args.cameras]
    return list(cams.values())


def _points(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                if "points" not in npz.files:
                    raise DataError(f"{path}: no array 'points' (has {npz.files})")
                return np.asarray(npz["points"]), (np.asarray(npz["weights"]) if "weights" in npz.files else None)
        return np.load(path, allow_pickle=False), None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read --points ({exc})") from exc


def cmd_triangulate(args: argparse.Namespace) -> int:
    """Read cameras and points, triangulate, write ``--out`` and print a summary."""
    from prunepose.geometry.triangulation import triangulate_cameras

    if args.threshold <= 0:
        raise ConfigError(f"--threshold must be > 0 pixels, got {args.threshold}")
    cams = _cameras(args)
    points, weights = _points(Path(args.points))
    if points.ndim < 2 or points.shape[0] != len(cams) or points.shape[-1] != 2:
        raise DataError(f"{args.points}: --points must be (V={len(cams)}, ..., 2) for the {len(cams)} cameras "
                        f"{[c.name for c in cams]}, got {points.shape}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = triangulate_cameras(cams, points, weights, method=args.method, threshold_px=args.threshold)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, res.points)
    err = res.reprojection_error[res.views_used]
    summary = {"points": int(res.points[..., 0].size), "nan_points": int(np.isnan(res.points[..., 0]).sum()),
               "views": len(cams), "method": args.method,
               "reprojection_px_median": float(np.nanmedian(err)) if err.size else float("nan"),
               "reprojection_px_p95": float(np.nanpercentile(err, 95)) if err.size else float("nan"),
               "warnings": [str(w.message) for w in caught], "out": str(out)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['points']} points from {len(cams)} views ({args.method}) -> {out} (world mm)")
        print(f"reprojection error of the used views: median {summary['reprojection_px_median']:.2f} px, "
              f"95th percentile {summary['reprojection_px_p95']:.2f} px; NaN points: {summary['nan_points']}")
        for msg in summary["warnings"]:
            print(f"warning: {msg}")
    return 0


def add_triangulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``triangulate --calibration F --format X --points P --out O [--method dlt|ransac] ...``."""
    p = subparsers.add_parser(
        "triangulate", help="triangulate 2D keypoints of calibrated views to 3D (DLT or RANSAC)",
        description="Undistort each view's 2D points with its camera, triangulate them (weighted DLT or RANSAC "
                    "over view pairs) and save world points in millimetres.")
    p.add_argument("--calibration", required=True, help="calibration file (see --format)")
    p.add_argument("--format", choices=FORMATS, default="h36m",
                   help="h36m: cameras.json of the shared data (needs --subject); campus/shelf: VoxelPose json; "
                        "panoptic: CMU Panoptic calibration_<seq>.json (needs --cameras)")
    p.add_argument("--subject", default="S9", help="subject of an h36m cameras.json (default S9)")
    p.add_argument("--cameras", nargs="+", help="camera ids in the order of the view axis of --points")
    p.add_argument("--points", required=True,
                   help=".npy (V, ..., 2) distorted pixels, or .npz with 'points' and optional 'weights' (V, ...)")
    p.add_argument("--method", choices=("dlt", "ransac"), default="dlt")
    p.add_argument("--threshold", type=float, default=25.0, help="RANSAC inlier threshold in pixels (default 25)")
    p.add_argument("--out", required=True, help="output .npy (..., 3), world millimetres")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.set_defaults(func=cmd_triangulate)
    return p


__all__ = ["add_triangulate_parser", "cmd_triangulate"]
