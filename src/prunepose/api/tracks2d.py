"""Read one person's 2D keypoint track from a file: ``.npy``/``.npz`` arrays or ``prunepose predict`` JSON.

Why a module of its own: ``prunepose lift`` takes 2D from several producers (our ``predict``, other
detectors, saved arrays), and every way a file can be wrong must end in one message naming the file and
the field, before a model is loaded.

* ``.npy``: an array (T, J, 2) pixels or (T, J, 3) = x, y, score.
* ``.npz``: the array under ``keypoints`` (and optional ``scores`` (T, J)), or the file's only array.
* ``.json``: COCO keypoint results (a list of ``{"image_id", "keypoints": [x, y, s] * J, "score"}``) as
  ``prunepose predict`` writes them. Frames are the image ids: integer ids (video frame numbers) give
  every frame from the first to the last id, so a frame without a detection becomes a frame whose joints
  are all missing (interpolated by the lifter, reported); other ids are taken in sorted order. One person
  per frame: with ``track_id`` fields, the track ``person`` (default: the track with the highest summed
  score), over that track's own first..last frame; without, the ``person``-th highest scoring detection of
  each frame (default 0, the best).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import DataError


@dataclass
class Track2D:
    """One person's keypoints over time, as read from ``source``.

    ``keypoints`` (T, J, 2) float64 pixels, NaN where absent; ``scores`` (T, J) or None; ``frame_ids`` the
    id of every frame (image ids for JSON, 0..T-1 for arrays); ``image_size``/``fps`` when the file's
    neighbourhood says (``summary.json`` of ``prunepose predict`` on a video), else None.
    """

    keypoints: np.ndarray
    scores: np.ndarray | None
    frame_ids: list[Any]
    source: Path
    kind: str
    image_size: tuple[int, int] | None = None
    fps: float | None = None
    notes: list[str] = field(default_factory=list)


def _array_track(arr: Any, path: Path, where: str, scores: Any = None) -> Track2D:
    try:
        arr = np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {where} is not a numeric array") from None
    if arr.ndim != 3 or arr.shape[-1] not in (2, 3) or arr.shape[0] < 1:
        raise DataError(f"{path}: {where} must have shape (T, J, 2) or (T, J, 3) with T >= 1, got {arr.shape}")
    kpts, sc = arr[..., :2], (arr[..., 2] if arr.shape[-1] == 3 else None)
    if scores is not None:
        if sc is not None:
            raise DataError(f"{path}: field 'scores' given although 'keypoints' has a score channel")
        sc = np.asarray(scores, dtype=np.float64)
        if sc.shape != kpts.shape[:2]:
            raise DataError(f"{path}: field 'scores' must have shape {kpts.shape[:2]}, got {sc.shape}")
    return Track2D(kpts, sc, list(range(kpts.shape[0])), path, "array")


def _read_npz(path: Path) -> Track2D:
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = list(npz.files)
            if "keypoints" in files:
                return _array_track(npz["keypoints"], path, "field 'keypoints'",
                                    npz["scores"] if "scores" in files else None)
            if len(files) == 1:
                return _array_track(npz[files[0]], path, f"field {files[0]!r}")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as .npz without pickle ({exc})") from None
    raise DataError(f"{path}: expected a field 'keypoints' (or a single array), found {files}")


def _frame_order(ids: list[Any], path: Path) -> list[Any]:
    """Integer ids: every id from first to last (gaps = frames without a detection); else sorted."""
    unique = set(ids)
    if all(isinstance(i, int) and not isinstance(i, bool) for i in unique):
        lo, hi = min(unique), max(unique)
        if hi - lo + 1 > 2 * len(unique):
            raise DataError(f"{path}: image_ids span {lo}..{hi} but only {len(unique)} are present; these are not "
                            "consecutive video frames (lifting needs a frame sequence of one person)")
        return list(range(lo, hi + 1))
    return sorted(unique, key=str)


def _entry_score(entry: dict[str, Any], kps: np.ndarray) -> float:
    score = entry.get("score")
    return float(score) if isinstance(score, (int, float)) else float(np.nanmean(kps[:, 2]))


def _read_json(path: Path, person: int | None) -> Track2D:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read JSON ({exc})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a list of COCO keypoint results (as `prunepose predict` writes)")
    if not data:
        raise DataError(f"{path}: no detections (empty list)")
    entries, num_joints = [], None
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or "image_id" not in entry or "keypoints" not in entry:
            raise DataError(f"{path}: entry {i} lacks 'image_id' or 'keypoints'")
        try:
            kps = np.asarray(entry["keypoints"], dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{path}: entry {i}: field 'keypoints' is not a list of numbers") from None
        if kps.ndim != 1 or kps.size == 0 or kps.size % 3:
            raise DataError(f"{path}: entry {i}: field 'keypoints' must be [x, y, score] * J, got {kps.size} values")
        kps = kps.reshape(-1, 3)
        if num_joints is None:
            num_joints = kps.shape[0]
        elif kps.shape[0] != num_joints:
            raise DataError(f"{path}: entry {i} has {kps.shape[0]} keypoints, entry 0 has {num_joints}")
        entries.append((entry["image_id"], entry.get("track_id"), _entry_score(entry, kps), kps))
    chosen = _choose_person(entries, person, path)
    # a track spans its own first..last frame (people enter and leave a video at different times); without
    # track ids every frame of the file counts, so a frame where nobody was found becomes a gap
    tracked = any(e[1] is not None for e in entries)
    frames = _frame_order(list(chosen) if tracked else [e[0] for e in entries], path)
    index = {fid: t for t, fid in enumerate(frames)}
    out = np.full((len(frames), num_joints, 3), np.nan)
    for fid, kps in chosen.items():
        out[index[fid]] = kps
    absent = len(frames) - len(chosen)
    notes = [f"{absent} of {len(frames)} frames have no detection of the chosen person"] if absent else []
    track = Track2D(out[..., :2], out[..., 2], frames, path, "json", notes=notes)
    _add_video_info(track)
    return track


def _choose_person(entries: list[tuple[Any, Any, float, np.ndarray]], person: int | None,
                   path: Path) -> dict[Any, np.ndarray]:
    """image_id -> keypoints (J, 3) of the chosen person (see the module docstring)."""
    if any(e[1] is not None for e in entries):
        totals: dict[Any, float] = {}
        for _, tid, score, _ in entries:
            totals[tid] = totals.get(tid, 0.0) + score
        tid = max(totals, key=lambda k: totals[k]) if person is None else person
        if tid not in totals:
            raise DataError(f"{path}: no track_id {person}; tracks present: {sorted(totals, key=str)}")
        return {fid: kps for fid, t, _, kps in entries if t == tid}
    rank = 0 if person is None else int(person)
    if rank < 0:
        raise DataError(f"--person must be >= 0 (rank by score within a frame), got {rank}")
    per_frame: dict[Any, list[tuple[float, np.ndarray]]] = {}
    for fid, _, score, kps in entries:
        per_frame.setdefault(fid, []).append((score, kps))
    chosen = {fid: sorted(people, key=lambda p: -p[0])[rank][1] for fid, people in per_frame.items()
              if len(people) > rank}
    if not chosen:
        raise DataError(f"{path}: no frame has {rank + 1} or more persons (--person {rank})")
    return chosen


def _add_video_info(track: Track2D) -> None:
    """Frame size and rate from ``summary.json`` beside a ``prunepose predict`` output, when it ran on a video."""
    summary_path = track.source.parent / "summary.json"
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    if not isinstance(summary, dict) or summary.get("kind") != "video":
        return
    try:
        from prunepose.api.sources import video_info

        info = video_info(summary["source"])
    except Exception:  # noqa: BLE001  (moved/deleted video: the user passes --image-size instead)
        return
    if info["width"] > 0 and info["height"] > 0:
        track.image_size = (int(info["width"]), int(info["height"]))
        track.notes.append(f"image size {track.image_size[0]}x{track.image_size[1]} from {summary['source']}")
    if info["fps"] > 0:
        track.fps = float(info["fps"])


def read_track(path: str | Path, person: int | None = None) -> Track2D:
    """Read a 2D track from ``path`` (.npy, .npz or .json; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read as .npy without pickle ({exc})") from None
        return _array_track(arr, path, "the array")
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".json":
        return _read_json(path, person)
    raise DataError(f"{path}: unsupported 2D file type {suffix or '(none)'!r}; use .npy, .npz or .json")


__all__ = ["Track2D", "read_track"]
