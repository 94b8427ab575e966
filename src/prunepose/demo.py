"""The bundled demo (``prunepose demo`` / ``make demo``): a real video -> 2D keypoints -> 3D poses -> files.

What it does, with nothing downloaded:

1. reads the bundled clip ``assets/street_vtest.mp4`` (8 s of OpenCV's ``vtest.avi``, 7 to 10 pedestrians;
   see ``assets/README.md``) or ``--video``/``--image``;
2. runs :class:`prunepose.PoseEstimator2D` (the bundled 2D weights unless ``--checkpoint``) frame by frame.
   Person boxes: the bundled person detector every few frames, each person followed by its keypoints in
   between, every person with a stable track id (``--box`` instead seeds a keypoint tracker on frame 0);
3. lifts every track seen on at least :data:`MIN_TRACK_FRAMES` frames to 3D with :class:`prunepose.Lifter3D`
   (the bundled compact HoT-MixSTE), over the frames from its first to its last appearance;
4. writes ``overlay.mp4`` (skeletons with their track ids, pruned tokens darkened, and a strip with the first
   person's kept tokens per pruning stage), ``pose3d.mp4`` (3D animation of the longest track),
   ``demo.mp4`` (the two side by side), ``preview.png`` (one frame: overlay + 3D) and ``results.json``
   (per-frame COCO-format 2D results with ``track_id``, the 3D poses of every lifted track, the summary), and
   prints the summary: frames, people, tracks, tokens kept per stage, compute saved against the unpruned twin
   models, time per frame.

Failures keep what was done: a video that breaks off midway still gets its overlay and a ``results.json``
with the frames read (and the error) before the command exits non-zero.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import DataError, PrunePoseError

ASSETS = Path(__file__).parent / "assets"
BUNDLED_VIDEO = ASSETS / "street_vtest.mp4"
BUNDLED_IMAGE = ASSETS / "astronaut.jpg"
#: A track is lifted to 3D when its person was found on at least this many frames (shorter ones are passers-by
#: at the border, whose 3D would mostly be interpolation).
MIN_TRACK_FRAMES = 10

_LIFT_LAYOUT = {"coco": "coco", "coco_wholebody": "coco", "mpii": "mpii", "h36m": "h36m"}


def _estimator(model: str | None, checkpoint: str | Path | None, kpt_thr: float | None):  # noqa: ANN202
    """PoseEstimator2D with the demo's weights, and a description of where they come from."""
    from prunepose.api.backends import DEFAULT_WEIGHTS
    from prunepose.api.estimator2d import PoseEstimator2D

    if checkpoint is None and model is None and not DEFAULT_WEIGHTS.is_file():
        raise PrunePoseError(
            f"the demo needs the bundled 2D weights, which are not in this installation ({DEFAULT_WEIGHTS} is "
            "missing; they are produced by the distillation step, see docs/results-2d.md). Run it with your own "
            "weights: prunepose demo --checkpoint WEIGHTS.safetensors [--model NAME]")
    # kpt_thr None: the estimator's default for the model's score scale (heatmap maxima vs SimCC probabilities).
    # Keypoints below it are not drawn, not used for tracking, and "no person" means none reaches it.
    est = PoseEstimator2D(model=model, checkpoint=checkpoint, kpt_thr=kpt_thr)
    path = Path(checkpoint) if checkpoint is not None else DEFAULT_WEIGHTS
    info: dict[str, Any] = {"model": est.config.name, "family": getattr(est.config, "family", None),
                            "input_size": list(est.input_size), "weights": str(path)}
    if path.suffix != ".onnx" and path.with_suffix(".json").is_file():
        from prunepose.weights import read_weights_info

        meta = read_weights_info(path)
        info.update({k: meta[k] for k in ("trained_on", "licence") if k in meta})
    return est, info


def _cost(config: Any) -> dict[str, Any]:
    from prunepose.profiling.savings import pruning_savings

    return pruning_savings(config)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from prunepose.atomic import atomic_write

    text = json.dumps(data, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def _track_arrays(per_frame: list[Any], skeleton: str) -> tuple[np.ndarray, np.ndarray, str]:
    """First person's keypoints (T, K, 2) and scores (T, K) over the frames, NaN where nobody was found, in a
    layout the lifter reads (WholeBody is cut to its 17 body joints)."""
    layout = _LIFT_LAYOUT[skeleton]
    k = 17 if skeleton == "coco_wholebody" else None
    kpts, scores = [], []
    for kp, sc in per_frame:
        kpts.append(kp[:k])
        scores.append(sc[:k])
    return np.stack(kpts).astype(np.float64), np.stack(scores).astype(np.float64), layout


def run_demo(out_dir: str | Path = "outputs/demo", video: str | Path | None = None, image: str | Path | None = None,
             model: str | None = None, checkpoint: str | Path | None = None,
             box: tuple[float, float, float, float] | None = None, max_frames: int | None = None,
             progress: bool = True, quiet: bool = False, kpt_thr: float | None = None) -> dict[str, Any]:
    """Run the demo (see the module docstring) and return the summary that it prints and stores."""
    if image is not None and video is not None:
        raise PrunePoseError("give either --video or --image, not both")
    if max_frames is not None and max_frames < 1:
        raise PrunePoseError(f"--max-frames must be >= 1, got {max_frames}")
    out = Path(out_dir)
    if image is not None:
        summary = _run_image(out, Path(image), model, checkpoint, box, kpt_thr)
    else:
        src = Path(video) if video is not None else BUNDLED_VIDEO
        summary = _run_video(out, src, model, checkpoint, box, max_frames, progress, kpt_thr)
    if not quiet:
        print_summary(summary)
    return summary


# ---------------------------------------------------------------------------------------------------- video


def _run_video(out: Path, src: Path, model: str | None, checkpoint: str | Path | None,
               first_box: tuple[float, ...] | None, max_frames: int | None, progress: bool,
               kpt_thr: float | None) -> dict[str, Any]:
    from tqdm import tqdm

    from prunepose.api.sources import video_info
    from prunepose.viz.panels import demo_frame
    from prunepose.viz.video import Mp4Writer

    t_start = time.perf_counter()
    info = video_info(src)  # names the file when it is missing, unsupported or unreadable
    fps = info["fps"] if info["fps"] > 0 else 25.0
    est, weights2d = _estimator(model, checkpoint, kpt_thr)
    out.mkdir(parents=True, exist_ok=True)
    seed = None if first_box is None else np.asarray([first_box], dtype=np.float64)
    total = info["frames"] or None
    if max_frames is not None and total:
        total = min(total, max_frames)
    frames: list[dict[str, Any]] = []
    tracks: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}  # track id -> frame -> (keypoints, scores)
    people, tokens = [], []
    preview_result, preview_index, preview_at = None, 0, (total or 1) // 2
    t_2d = t_draw = 0.0
    failure: PrunePoseError | None = None
    overlay = Mp4Writer(out / "overlay.mp4", fps)
    bar = tqdm(total=total, desc="2D pose", unit="frame", disable=not progress, mininterval=0.5)
    stream = est.stream(src, boxes=seed, track=True)
    try:
        while max_frames is None or len(frames) < max_frames:
            t0 = time.perf_counter()
            try:
                res = next(stream)
            except StopIteration:
                break
            t1 = time.perf_counter()
            found = res.found(est.kpt_thr)
            people.append(int(found.sum()))
            tokens.append(res.tokens_per_stage())
            ids = res.track_ids if res.track_ids is not None else np.arange(len(res))
            for p in np.flatnonzero(found):
                if int(ids[p]) >= 0:
                    tracks.setdefault(int(ids[p]), {})[len(frames)] = (res.keypoints[p], res.scores[p])
            frames.append({"frame_index": res.frame_index, "people": res.to_json(), "box_origin": res.box_origin,
                           "tokens_kept": res.tokens_per_stage()})
            caption = f"frame {res.frame_index}  {est.config.name}  " + (
                " -> ".join(f"{v:g}" for v in [est.token_grid[0] * est.token_grid[1], *res.tokens_per_stage()])
                + " tokens" if res.tokens_per_stage() else "")
            overlay.write(demo_frame(res, caption, est.kpt_thr))
            if len(frames) - 1 == preview_at or preview_result is None:
                preview_result, preview_index = res, len(frames) - 1
            t_2d += t1 - t0
            t_draw += time.perf_counter() - t1
            bar.update(1)
    except PrunePoseError as exc:  # e.g. VideoReadError after the frames read so far
        failure = exc
    finally:
        bar.close()
        stream.close()
        overlay.close()
    n = len(frames)
    summary: dict[str, Any] = {
        "source": str(src), "video": {k: info[k] for k in ("width", "height", "fps")}, "frames": n,
        "first_box": None if first_box is None else [float(v) for v in first_box],
        "boxes": ("--box on frame 0, then tracked from keypoints" if first_box is not None
                  else "whole frame on frame 0, then tracked from keypoints" if est.detector is None
                  else f"person detector every {est.det_every} frames, keypoint tracking between"),
        "model2d": weights2d, "kpt_thr": round(est.kpt_thr, 5),
        "people_per_frame": {"mean": float(np.mean(people)) if people else 0.0, "max": max(people, default=0),
                             "frames_without_person": int(sum(p == 0 for p in people))},
        "tracks": {"ids": len(tracks), "frames_per_id": {str(t): len(f) for t, f in sorted(tracks.items())}},
        "tokens_per_stage": _mean_tokens(est, tokens),
        "outputs": {"overlay": str(out / "overlay.mp4"), "results": str(out / "results.json")},
    }
    result_json: dict[str, Any] = {"summary": summary, "frames": frames}
    if failure is not None or n == 0 or not any(people):
        why = (str(failure) if failure is not None else "the video has no frames" if n == 0
               else f"no person found in any of the {n} frames (every keypoint score < {est.kpt_thr:g})")
        summary["error"] = why
        _write_json(out / "results.json", result_json)
        if n == 0 and failure is not None:
            raise failure
        raise DataError(f"{why} -- the 2D results of the {n} frame(s) read are in {out / 'results.json'}")

    _write_json(out / "results.json", result_json)  # the 2D results are safe even if the lifting fails
    t0 = time.perf_counter()
    lifter = _lifter()
    if not tracks:  # persons found, but never confidently enough to start a track
        summary["error"] = "no person could be tracked (no pose with 3 keypoints above the threshold)"
        _write_json(out / "results.json", result_json)
        raise DataError(f"{summary['error']} -- the 2D results are in {out / 'results.json'}")
    lifted = _lift_tracks(lifter, tracks, est.skeleton.name, (info["width"], info["height"]))
    t_lift = time.perf_counter() - t0
    main_id = max(lifted, key=lambda t: len(tracks[t])) if lifted else min(tracks, key=lambda t: -len(tracks[t]))
    if main_id not in lifted:  # every track is short: lift the longest anyway, the demo shows one 3D view
        lifted.update(_lift_tracks(lifter, {main_id: tracks[main_id]}, est.skeleton.name,
                                   (info["width"], info["height"]), min_frames=1))
    first_frame, res3d = lifted[main_id]
    t0 = time.perf_counter()
    _write_3d_pictures(out, res3d, fps, preview_result, preview_index, est.kpt_thr, first_frame, main_id)
    t_draw3d = time.perf_counter() - t0
    summary["model3d"] = {"model": lifter.config.name, "weights": "bundled lifter3d_default",
                          "trained_on": "Human3.6M (non-commercial research licence)",
                          "tracks_lifted": sorted(lifted), "track_shown": main_id,
                          "frames_filled": int(res3d.filled.any(axis=1).sum())}
    summary["cost"] = {"2d": _cost(est.config), "3d": _cost(lifter.config)}
    summary["time_s"] = {"pose2d": round(t_2d, 2), "overlay_drawing": round(t_draw, 2), "lifting": round(t_lift, 2),
                         "pose3d_pictures": round(t_draw3d, 2), "total": round(time.perf_counter() - t_start, 2)}
    summary["ms_per_frame"] = {"pose2d": round(1000 * t_2d / n, 1), "lifting": round(1000 * t_lift / n, 1)}
    summary["outputs"].update({"pose3d": str(out / "pose3d.mp4"), "demo": str(out / "demo.mp4"),
                               "preview": str(out / "preview.png")})
    result_json["pose3d"] = {**res3d.to_json(), "track_id": main_id, "first_frame": first_frame}
    result_json["pose3d_tracks"] = {str(t): {**r.to_json(), "first_frame": f} for t, (f, r) in sorted(lifted.items())}
    _write_json(out / "results.json", result_json)
    return summary


def _lift_tracks(lifter: Any, tracks: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]], skeleton: str,
                 image_size: tuple[int, int], min_frames: int = MIN_TRACK_FRAMES) -> dict[int, tuple[int, Any]]:
    """Track id -> (first frame, Results3D) for every track found on >= ``min_frames`` frames, lifted over the
    frames from its first to its last appearance (frames in between without it: NaN, interpolated)."""
    out = {}
    for tid, per_frame in tracks.items():
        if len(per_frame) < min_frames:
            continue
        first, last = min(per_frame), max(per_frame)
        k = next(iter(per_frame.values()))[0].shape[0]
        span = [per_frame.get(t, (np.full((k, 2), np.nan), np.zeros(k))) for t in range(first, last + 1)]
        kpts, scores, layout = _track_arrays(span, skeleton)
        out[tid] = (first, lifter(kpts, image_size=image_size, layout=layout, scores=scores))
    return out


def _lifter():  # noqa: ANN202
    from prunepose.api.lifter3d import Lifter3D

    return Lifter3D()


def _mean_tokens(est: Any, tokens: list[list[float]]) -> list[float]:
    """Visual tokens at the input and after each pruning stage, mean over the frames with a person."""
    rows = [t for t in tokens if t]
    full = float(est.token_grid[0] * est.token_grid[1])
    return [full] + [round(float(v), 1) for v in np.mean(rows, axis=0)] if rows else [full]


def _write_3d_pictures(out: Path, res3d: Any, fps: float, preview_result: Any, preview_index: int,
                       kpt_thr: float, first_frame: int = 0, track_id: int | None = None) -> None:
    """pose3d.mp4 (the lifted track's frames), demo.mp4 (every overlay frame | that frame's 3D, a blank panel
    where the track is not in view) and preview.png; ``res3d`` frame ``i`` is video frame ``first_frame + i``."""
    import cv2

    from prunepose.viz.draw3d import iter_rendered_poses, render_pose3d
    from prunepose.viz.panels import demo_frame, side_by_side
    from prunepose.viz.video import Mp4Writer

    who = "" if track_id is None else f"track #{track_id}  "
    titles = [f"3D {who}(camera frame, m)  frame {first_frame + i}" for i in range(len(res3d))]
    # demo.mp4 = overlay | 3D: the overlay frames are read back from overlay.mp4, so nothing is held in memory
    overlay = cv2.VideoCapture(str(out / "overlay.mp4"))
    try:
        with Mp4Writer(out / "pose3d.mp4", fps) as anim, Mp4Writer(out / "demo.mp4", fps) as both:
            blank = None
            for i, frame3d in enumerate(iter_rendered_poses(res3d.poses3d, "h36m17", titles=titles)):
                anim.write(frame3d)
                blank = np.full_like(frame3d, 255)
                for _ in range(first_frame if i == 0 else 0):  # the track is not in view yet
                    ok, left = overlay.read()
                    if not ok:
                        break
                    both.write(side_by_side(left, blank))
                ok, left = overlay.read()
                if ok:
                    both.write(side_by_side(left, frame3d))
            while blank is not None:  # frames after the track left the view
                ok, left = overlay.read()
                if not ok:
                    break
                both.write(side_by_side(left, blank))
    finally:
        overlay.release()
    left = demo_frame(preview_result, f"frame {preview_result.frame_index}", kpt_thr)
    i3d = int(np.clip(preview_index - first_frame, 0, len(res3d) - 1))
    right = render_pose3d(res3d.poses3d[i3d], size=(480, 480), title=f"3D {who}frame {first_frame + i3d}")
    cv2.imwrite(str(out / "preview.png"), side_by_side(left, right))


# ---------------------------------------------------------------------------------------------------- image


def _run_image(out: Path, path: Path, model: str | None, checkpoint: str | Path | None,
               box: tuple[float, ...] | None, kpt_thr: float | None) -> dict[str, Any]:
    """One picture: 2D (``--box`` or the whole image), the kept tokens, and the one-frame 3D lift."""
    import cv2

    from prunepose.api.sources import read_image
    from prunepose.viz.draw3d import render_pose3d
    from prunepose.viz.panels import demo_frame, side_by_side

    t_start = time.perf_counter()
    img = read_image(path)
    est, weights2d = _estimator(model, checkpoint, kpt_thr)
    t0 = time.perf_counter()
    res = est.predict_image(img, None if box is None else np.asarray([box], dtype=np.float64))
    t_2d = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    thr = est.kpt_thr
    picture = demo_frame(res, f"{path.name}  {est.config.name}", thr)
    summary: dict[str, Any] = {
        "source": str(path), "frames": 1, "model2d": weights2d, "kpt_thr": round(thr, 5),
        "people_per_frame": {"mean": float(res.found(thr).sum()), "max": int(res.found(thr).sum()),
                             "frames_without_person": int(not res.found(thr).any())},
        "tokens_per_stage": _mean_tokens(est, [res.tokens_per_stage()]),
        "outputs": {"preview": str(out / "preview.png"), "results": str(out / "results.json")},
        "cost": {"2d": _cost(est.config)},
    }
    result_json: dict[str, Any] = {"summary": summary, "frames": [{"frame_index": None, "people": res.to_json(),
                                                                   "tokens_kept": res.tokens_per_stage()}]}
    if res.found(thr).any():
        kpts, scores, layout = _track_arrays([(res.keypoints[0], res.scores[0])], est.skeleton.name)
        res3d = _lifter()(kpts, image_size=(img.shape[1], img.shape[0]), layout=layout, scores=scores)
        picture = side_by_side(picture, render_pose3d(res3d.poses3d[0], size=(480, 480), title="3D (one frame)"))
        result_json["pose3d"] = res3d.to_json()
    else:
        summary["error"] = f"no person found (every keypoint score < {thr:g})"
    cv2.imwrite(str(out / "preview.png"), picture)
    summary["time_s"] = {"pose2d": round(t_2d, 3), "total": round(time.perf_counter() - t_start, 2)}
    summary["ms_per_frame"] = {"pose2d": round(1000 * t_2d, 1)}
    _write_json(out / "results.json", result_json)
    return summary


# ---------------------------------------------------------------------------------------------------- output


def _giga(macs: int) -> str:
    return f"{macs / 1e9:.3f}"


def print_summary(s: dict[str, Any]) -> None:
    """The human-readable summary of :func:`run_demo`."""
    m2 = s["model2d"]
    print(f"prunepose demo: {s['source']}  ({s['frames']} frame(s))")
    print(f"  2D model        {m2['model']} from {m2['weights']}"
          + (f" (trained on {m2['trained_on']})" if m2.get("trained_on") else ""))
    if "boxes" in s:
        print(f"  person boxes    {s['boxes']}")
    if "tracks" in s:
        lifted = s.get("model3d", {}).get("tracks_lifted", [])
        print(f"  tracks          {s['tracks']['ids']} person id(s); {len(lifted)} lifted to 3D "
              f"(seen on >= {MIN_TRACK_FRAMES} frames): {', '.join(f'#{t}' for t in lifted)}")
    ppl = s["people_per_frame"]
    print(f"  people          {ppl['mean']:.2f} per frame on average (max {ppl['max']}), "
          f"{ppl['frames_without_person']} frame(s) without a person")
    union = " (GTPT: union of its per-group token sets)" if m2.get("family") == "gtpt" else ""
    print(f"  visual tokens   {' -> '.join(f'{v:g}' for v in s['tokens_per_stage'])} per stage (mean per person)"
          + union)
    for key in ("2d", "3d"):
        c = s.get("cost", {}).get(key)
        if c:
            unit = "per person crop" if key == "2d" else f"per {c['input_shape'][1]}-frame clip"
            print(f"  compute {key}      {_giga(c['macs_pruned'])} GMACs pruned vs {_giga(c['macs_unpruned'])} "
                  f"unpruned twin ({100 * c['saved']:.0f}% saved, {unit}; true MACs incl. attention)")
    if "model3d" in s:
        print(f"  3D lifter       {s['model3d']['model']} ({s['model3d']['trained_on']})")
    ms = s.get("ms_per_frame", {})
    t = s.get("time_s", {})
    print(f"  time            2D {ms.get('pose2d', 0):.1f} ms/frame"
          + (f", lifting {ms['lifting']:.1f} ms/frame" if "lifting" in ms else "")
          + f"; total {t.get('total', 0):.1f} s (incl. drawing and video encoding)")
    for name, path in s["outputs"].items():
        print(f"  {name:<15} {path}")
    if s.get("error"):
        print(f"  error           {s['error']}")


def cmd_demo(args: argparse.Namespace) -> int:
    run_demo(out_dir=args.out, video=args.video, image=args.image, model=args.model, checkpoint=args.checkpoint,
             box=tuple(args.box) if args.box else None, max_frames=args.max_frames, progress=not args.quiet,
             quiet=args.quiet, kpt_thr=args.kpt_thr)
    return 0


def add_demo_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="bundled video -> 2D keypoints -> 3D poses: overlay video, 3D animation, JSON, summary",
        description="Runs the bundled 2D model and 3D lifter on a bundled real video (or --video/--image) and "
                    "writes overlay.mp4, pose3d.mp4, preview.png and results.json to --out. Never opens a window.")
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--video", help="video to use instead of the bundled clip")
    p.add_argument("--image", help="a single image instead of a video (2D + one-frame 3D)")
    p.add_argument("--model", help="registry name of the 2D model (with --checkpoint weights that have no JSON)")
    p.add_argument("--checkpoint", help="2D weights (.safetensors/.pt/.onnx) instead of the bundled ones")
    p.add_argument("--box", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                   help="person box on the first frame in px, followed by its keypoints (default: the bundled "
                        "person detector finds and tracks everyone)")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--kpt-thr", type=float, help="keypoint score threshold for drawing, tracking and 'no person' "
                                                 "(default: the estimator's default for the model)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=cmd_demo)
