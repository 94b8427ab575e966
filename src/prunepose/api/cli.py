"""``prunepose predict SRC``: 2D keypoints for an image, a folder of images or a video, written to files.

Outputs in ``--out`` (default ``outputs/predict``):

* ``predictions.json``: COCO keypoint results (``image_id`` = file stem, as an int for COCO-style numeric
  names; the frame index for a video; ``bbox`` the person box, ``score`` the rescored pose score,
  ``track_id`` on videos), loadable by pycocotools ``COCO.loadRes``. Rewritten atomically every few
  seconds and once more when the run ends or fails, so a long video that breaks off midway still leaves
  the results of the frames read;
* ``<name>_pose.jpg`` per image, or ``<video stem>_pose.mp4`` for a video (skeletons, boxes, pruned tokens
  darkened), unless ``--no-images``;
* ``predictions.csv`` with ``--csv``: one row per person per image/frame (``prunepose.api.csvout``);
* ``summary.json``: the printed summary as data.

Person boxes: ``--box``, else ``--det-file``, else the bundled person detector (``prunepose.detect``; on
videos every ``--det-every`` frames with keypoint tracking between, stable ``track_id``), else with
``--no-detector`` the whole image. No person found is a normal, empty result (exit 0, reported).

Headless: nothing opens a window. Bad input -> ``prunepose: error: ...`` and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from prunepose.api.csvout import CsvWriter
from prunepose.atomic import atomic_write
from prunepose.detect.person import DEFAULT_DET_SIZE
from prunepose.errors import ConfigError, DataError, PrunePoseError
from prunepose.outpaths import output_dir


class PredictionWriter:
    """COCO results accumulated in memory and written atomically at most every ``every_s`` seconds.

    Why time-based: rewriting after every frame costs O(frames^2) on long videos, never rewriting loses
    everything on a crash; every few seconds bounds both.
    """

    def __init__(self, path: Path, every_s: float = 5.0) -> None:
        self.path = path
        self.every_s = every_s
        self.records: list[dict[str, Any]] = []
        self._last = time.monotonic()

    def add(self, records: list[dict[str, Any]]) -> None:
        self.records += records
        if time.monotonic() - self._last >= self.every_s:
            self.flush()

    def flush(self) -> Path:
        data = json.dumps(self.records).encode()
        self._last = time.monotonic()
        return atomic_write(self.path, lambda f: f.write(data))


class OverlayWriter:
    """Overlay pictures: one JPEG per image, or one mp4 (mp4v) for a video, opened on the first frame."""

    def __init__(self, out_dir: Path, video_name: str | None, fps: float) -> None:
        self.out_dir = out_dir
        self.video_path = out_dir / f"{video_name}_pose.mp4" if video_name else None
        self.fps = fps if fps and fps > 0 else 25.0
        self._video: cv2.VideoWriter | None = None
        self._names: set[str] = set()
        self.written: list[Path] = []

    def add(self, picture: np.ndarray, name: str) -> None:
        if self.video_path is not None:
            if self._video is None:
                h, w = picture.shape[:2]
                self._video = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
                if not self._video.isOpened():
                    raise PrunePoseError(f"{self.video_path}: OpenCV cannot write an mp4v video here")
                self.written.append(self.video_path)
            self._video.write(picture)
            return
        stem, n = f"{name}_pose", 1
        while stem in self._names:  # a.jpg and a.png in one folder
            n += 1
            stem = f"{name}_pose{n}"
        self._names.add(stem)
        path = self.out_dir / f"{stem}.jpg"
        ok, buf = cv2.imencode(".jpg", picture)
        if not ok:
            raise PrunePoseError(f"{path}: could not encode the overlay picture")
        atomic_write(path, lambda f: f.write(buf.tobytes()))
        self.written.append(path)

    def close(self) -> None:
        if self._video is not None:
            self._video.release()  # finalises the mp4 (also after a failure: the frames so far stay playable)
            self._video = None


def _format_frames(indices: list[int], limit: int = 12) -> str:
    shown = ", ".join(map(str, indices[:limit]))
    return shown + (f", ... ({len(indices)} in all)" if len(indices) > limit else "")


def cmd_predict(args: argparse.Namespace) -> int:
    from prunepose.api.estimator2d import DEFAULT_DET_THR, PoseEstimator2D
    from prunepose.api.sources import source_kind, video_info

    src = Path(args.src)
    for flag, value in (("--det-thr", args.det_thr), ("--kpt-thr", args.kpt_thr)):
        if value is not None and not math.isfinite(value):  # argparse takes "nan"; it would reach summary.json
            raise ConfigError(f"{flag} must be a finite number, got {value}")
    detector_thr = DEFAULT_DET_THR if args.det_thr is None else args.det_thr
    if args.det_thr is None:
        args.det_thr = 0.0  # --det-file records: all kept unless a threshold is given
    kind = source_kind(src)  # checks the path (missing, unsupported, empty folder) before loading a model
    out_dir = output_dir(args.out, "--out")  # a file / read-only place: one line now, not a traceback later
    if args.det_file is not None:  # read (and checked) again by the estimator; a bad record fails here, at once
        from prunepose.api.boxes import DetectionFile

        with warnings.catch_warnings():  # the estimator's reading warns; once is enough
            warnings.simplefilter("ignore")
            DetectionFile.load(args.det_file, args.det_thr)
    boxes = np.array(args.box, dtype=np.float64) if args.box else None
    est = PoseEstimator2D(model=args.model, checkpoint=args.checkpoint, device=args.device,
                          batch_size=args.batch_size, flip=args.flip, kpt_thr=args.kpt_thr,
                          detector=None if args.no_detector else "auto", det_thr=detector_thr,
                          max_people=args.max_people, det_every=args.det_every, det_size=args.det_size)
    fps = video_info(src)["fps"] if kind == "video" else 0.0
    writer = PredictionWriter(out_dir / "predictions.json")
    table = CsvWriter(out_dir / "predictions.csv", list(est.skeleton.keypoint_names)) if args.csv else None
    overlays = None if args.no_images else OverlayWriter(out_dir, src.stem if kind == "video" else None, fps)
    n_frames, n_persons, n_poses, empty, small, tokens = 0, 0, 0, [], [], []
    failure: PrunePoseError | None = None  # a bad frame/image midway: keep what was done, then exit 2
    t0 = time.perf_counter()
    try:
        for res in est.stream(src, boxes=boxes, det_file=args.det_file, track=not args.no_track,
                              det_score_thr=args.det_thr, keep_images=overlays is not None):
            writer.add(res.to_json())
            if table is not None:
                table.add(res)
            n_poses += len(res)
            found = res.found()
            n_persons += int(found.sum())
            if not found.any():
                empty.append(res.frame_index if res.frame_index is not None else str(res.extra.get("name")))
            if res.image_size[0] < est.input_size[0] and res.image_size[1] < est.input_size[1]:
                small.append(res.frame_index if res.frame_index is not None else str(res.extra.get("name")))
            if res.tokens_per_stage():
                tokens.append(res.tokens_per_stage())
            if overlays is not None:
                overlays.add(res.plot(), str(res.extra.get("name", n_frames)))
            n_frames += 1
    except PrunePoseError as exc:
        failure = exc
    finally:
        writer.flush()  # what was predicted so far is on disk whatever happened
        if table is not None:
            table.flush()
        if overlays is not None:
            overlays.close()
    elapsed = time.perf_counter() - t0
    unit = "frame" if kind == "video" else "image"
    summary = {
        "source": str(src), "kind": kind, f"{unit}s": n_frames, "poses_written": n_poses, "persons_found": n_persons,
        f"{unit}s_without_person": empty, "model": est.config.name, "backend": est.backend.name,
        "device": est.backend.device, "flip": est.flip, "kpt_thr": round(est.kpt_thr, 4),
        "tokens_per_stage": [est.token_grid[0] * est.token_grid[1]]
        + [round(float(v), 1) for v in np.mean(tokens, axis=0)] if tokens else [],
        "ms_per_" + unit: round(1000 * elapsed / max(1, n_frames), 1),
        f"{unit}s_smaller_than_input": small, "input_size": list(est.input_size),
        "person_boxes": _box_source(args, est), "predictions": str(writer.path),
        "table": str(table.path) if table is not None else None,
        "overlays": [str(p) for p in overlays.written] if overlays else [],
        "error": str(failure) if failure else None,
    }
    atomic_write(out_dir / "summary.json", lambda f: f.write((json.dumps(summary, indent=2) + "\n").encode()))
    if not args.quiet:
        _print_summary(summary, unit, est)
    if failure is not None:
        if n_frames == 0:
            raise failure
        raise DataError(f"{failure} -- results of the {n_frames} {unit}(s) done before are in {writer.path}")
    return 0


def _box_source(args: argparse.Namespace, est: Any) -> str:
    """Where the person boxes came from, for the summary."""
    if args.box:
        return "--box"
    if args.det_file:
        return f"--det-file {args.det_file}"
    if est.detector is None:
        return "whole image"
    return repr(est.detector)


def _print_summary(s: dict[str, Any], unit: str, est: Any) -> None:
    # poses_written counts every box's pose (all are in predictions.json, low-score ones too: COCO AP ranks
    # them); persons_found only those with a keypoint >= kpt_thr. Saying just "0 person(s)" beside a file
    # holding a pose read as a contradiction.
    print(f"prunepose predict: {s[unit + 's']} {unit}(s) of {s['source']}, {s['poses_written']} pose(s) written, "
          f"{s['persons_found']} with a keypoint scoring >= {s['kpt_thr']:g} "
          f"[{s['model']}, {s['backend']} on {s['device']}, flip {'on' if s['flip'] else 'off'}]")
    if s["tokens_per_stage"]:
        print(f"  visual tokens / stage {' -> '.join(f'{v:g}' for v in s['tokens_per_stage'])} (mean per person)")
    print(f"  time                  {s['ms_per_' + unit]} ms per {unit} (reading, model, decoding, drawing)")
    empty = s[unit + "s_without_person"]
    if empty:
        print(f"  no person found in    {len(empty)} {unit}(s): {_format_frames(empty)} "
              f"(every keypoint score < {s['kpt_thr']}; their low-score poses are still in predictions.json)")
    small = s[unit + "s_smaller_than_input"]
    if small:
        w, h = s["input_size"]
        print(f"  upscaled              {len(small)} {unit}(s) smaller than the model input {w}x{h}: "
              f"{_format_frames(small)} (keypoints are less precise on blown-up pixels)")
    print(f"  predictions           {s['predictions']}")
    if s["overlays"]:
        shots = s["overlays"]
        what = shots[0] if len(shots) == 1 else f"{len(shots)} pictures in {Path(shots[0]).parent}"
        print(f"  overlays              {what}")


def add_predict_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="2D keypoints for an image, a folder of images or a video",
                              description="Top-down 2D pose estimation. Person boxes: --box, --det-file, else the "
                                          "bundled person detector (videos: detection every --det-every frames, "
                                          "keypoint tracking between, stable track ids); --no-detector: the whole "
                                          "image. Writes predictions.json (COCO results), "
                                          "overlay pictures / video and summary.json; never opens a window.")
    p.add_argument("src", help="image, folder of images, or video (.mp4 .avi .mov .mkv ...)")
    p.add_argument("--model", help="registry model name (needed when the weights have no JSON beside them)")
    p.add_argument("--checkpoint", help="weights (.safetensors/.pt) or an exported .onnx (default: bundled weights)")
    p.add_argument("--det-file", help="COCO detection JSON (image_id/file_name, bbox xywh, score, category_id)")
    p.add_argument("--det-thr", type=float, default=None,
                   help="drop person detections scoring below this (default 0.3 for the bundled detector, "
                        "0 for --det-file)")
    p.add_argument("--max-people", type=int, default=None, help="at most this many people per image (detector)")
    p.add_argument("--det-every", type=int, default=5,
                   help="video: run the detector every N frames, follow people by their keypoints in between "
                        "(default 5)")
    p.add_argument("--det-size", type=int, default=DEFAULT_DET_SIZE,
                   help=f"detector input long side, multiple of 32 (default {DEFAULT_DET_SIZE}; 416 is ~2x faster, "
                        "misses more small people)")
    p.add_argument("--no-detector", action="store_true",
                   help="no person detector: one pose for the whole image (videos: tracked from the whole frame)")
    p.add_argument("--csv", action="store_true",
                   help="also write predictions.csv: one row per person per image/frame (track id, box, keypoints)")
    p.add_argument("--box", type=float, nargs=4, action="append", metavar=("X1", "Y1", "X2", "Y2"),
                   help="person box in image px (repeatable; on a video it seeds the tracker)")
    p.add_argument("--no-track", action="store_true",
                   help="video: do not follow people from frame to frame (use --box/--det-file/whole frame each frame)")
    p.add_argument("--out", default="outputs/predict", help="output folder (default outputs/predict)")
    p.add_argument("--no-images", action="store_true", help="write predictions.json only, no overlay pictures")
    p.add_argument("--device", default="cpu", help="cpu (default) | cuda | cuda:N | mps | auto")
    p.add_argument("--batch-size", type=int, default=16, help="crops per network call (default 16)")
    p.add_argument("--flip", action="store_true", help="flip test: average with the mirrored crop (2x cost)")
    p.add_argument("--kpt-thr", type=float, default=None,
                   help="keypoint score threshold for drawing, tracking and 'no person' "
                        "(default 0.3 for heatmap models, 0.03 for SimCC/GTPT: their scores are bin probabilities)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=cmd_predict)
