"""Person boxes for top-down prediction, without any detector weights.

A top-down pose model needs one box per person. Four sources, in order of precedence:

1. **Explicit boxes** (``boxes=`` / ``--box X1 Y1 X2 Y2``): ``xyxy`` image pixels, used as given. On a video
   with tracking they seed the tracker on the first frame; without tracking they are used on every frame.
2. **A COCO detection JSON** (``det_file=`` / ``--det-file``): a list of ``{"image_id", "bbox": [x, y, w, h],
   "score", "category_id"}`` (the format of COCO_val2017_detections_AP_H_56_person.json). A record is
   matched to an image by a ``file_name`` field when the record has one (file name or stem), else by
   ``image_id`` against the image's id (``int(stem)`` for COCO-style names, the stem otherwise) and, for
   videos, the frame index. Records with ``category_id != 1`` or ``score < score_thr`` are dropped.
3. **Tracking on video** (default for videos): each person's box on frame ``t`` comes from that person's
   keypoints on frame ``t-1`` (see :class:`KeypointBoxTracker`), so one pose model follows people without a
   detector. When the previous pose was not confident, the last good box is reused for up to ``max_misses``
   frames, then the tracker falls back to the whole frame. Tracked boxes are clipped to the frame.
4. **The whole image** (default for still images, and the tracker's fallback): one box covering the image,
   cropped *without* the 1.25 enlargement (the image border is already the box).

Boxes are ``xyxy`` in this module (what users type); the crop code converts to COCO ``xywh``.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import DataError

#: Box enlargement applied around the confident keypoints' extent. Heads and feet stick out beyond the eye
#: and ankle keypoints; together with the crop's 1.25 padding this gives 1.5x the keypoint extent, the
#: factor HRNet/TokenPose use for half-body crops built the same way.
TRACK_ENLARGE = 1.2


@dataclass
class PersonBoxes:
    """Boxes of one image: ``xyxy`` (P, 4) float64 image px, ``scores`` (P,), ``padding`` (P,) crop enlargement
    (1.25 for person boxes, 1.0 for the whole-image box) and where they came from (for summaries)."""

    xyxy: np.ndarray
    scores: np.ndarray
    padding: np.ndarray
    origin: str
    track_ids: np.ndarray | None = None  # (P,) int64 stable ids of tracked persons on video, else None

    def __len__(self) -> int:
        return len(self.xyxy)


def whole_image_box(width: int, height: int) -> PersonBoxes:
    """One box spanning the image's pixel centres ``(0, 0)..(W-1, H-1)``, score 1, no enlargement."""
    return PersonBoxes(np.array([[0.0, 0.0, width - 1.0, height - 1.0]]), np.ones(1), np.ones(1), "whole image")


def check_boxes(boxes: Any, where: str = "boxes") -> np.ndarray:
    """User boxes -> (P, 4) float64 ``xyxy``; refuses non-finite values and boxes with ``x2 <= x1`` or ``y2 <= y1``."""
    try:
        arr = np.asarray(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: boxes must be numbers [x1, y1, x2, y2]") from None
    if arr.ndim == 1 and arr.size == 4:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4 or len(arr) == 0:
        raise DataError(f"{where}: expected boxes of shape (P, 4) as x1 y1 x2 y2, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{where}: boxes contain NaN or infinite values")
    bad = np.flatnonzero((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1]))
    if bad.size:
        raise DataError(f"{where}: box #{int(bad[0])} {arr[bad[0]].tolist()} needs x2 > x1 and y2 > y1 (xyxy order)")
    return arr


def explicit_boxes(boxes: Any, width: int, height: int, where: str = "boxes") -> PersonBoxes:
    """Explicit ``xyxy`` boxes; a box lying completely outside the ``width`` x ``height`` image is an error."""
    arr = check_boxes(boxes, where)
    outside = np.flatnonzero((arr[:, 2] < 0) | (arr[:, 3] < 0) | (arr[:, 0] > width - 1) | (arr[:, 1] > height - 1))
    if outside.size:
        raise DataError(f"{where}: box #{int(outside[0])} {arr[outside[0]].tolist()} lies outside the "
                        f"{width}x{height} image")
    return PersonBoxes(arr, np.ones(len(arr)), np.full(len(arr), 1.25), "explicit")


@dataclass
class DetectionFile:
    """Person detections from a COCO results-format JSON, looked up per image or video frame."""

    path: Path
    score_thr: float = 0.0
    by_name: dict[str, list[tuple[list[float], float]]] = field(default_factory=dict)
    by_id: dict[str, list[tuple[list[float], float]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike, score_thr: float = 0.0) -> DetectionFile:
        """Read and check every record (fields named in errors as ``[n].bbox`` etc.)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: detection file not found")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: detection file is not valid JSON ({exc})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: detection file must be a JSON list of COCO results "
                            "({image_id, bbox: [x, y, w, h], score, category_id})")
        det = cls(path, float(score_thr))
        degenerate: list[int] = []
        for n, rec in enumerate(data):
            if not isinstance(rec, dict):
                raise DataError(f"{path}: field '[{n}]' must be an object")
            if "image_id" not in rec and "file_name" not in rec:
                raise DataError(f"{path}: field '[{n}].image_id' missing (or give 'file_name')")
            bbox = rec.get("bbox")
            if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
                raise DataError(f"{path}: field '[{n}].bbox' must be [x, y, w, h] numbers")
            # Python's json reads NaN/Infinity; such a box would put NaN into every keypoint and output file
            if not all(math.isfinite(v) for v in bbox):
                raise DataError(f"{path}: field '[{n}].bbox' {bbox} holds NaN or infinity")
            if bbox[2] < 0 or bbox[3] < 0:  # not a detector's output: most likely [x1, y1, x2, y2] with x2 < x1
                raise DataError(f"{path}: field '[{n}].bbox' {bbox} has a negative width or height "
                                "(COCO boxes are [x, y, w, h])")
            score = rec.get("score", 1.0)
            if not (_is_number(score) and math.isfinite(score)):
                raise DataError(f"{path}: field '[{n}].score' must be a finite number, got {score!r}")
            if rec.get("category_id", 1) != 1 or score < det.score_thr:
                continue
            if bbox[2] == 0 or bbox[3] == 0:  # a degenerate box has no pixels to crop
                degenerate.append(n)
                continue
            entry = ([float(v) for v in bbox], float(score))
            if "file_name" in rec:
                det.by_name.setdefault(Path(str(rec["file_name"])).name, []).append(entry)
            else:
                det.by_id.setdefault(str(rec["image_id"]), []).append(entry)
        if degenerate:
            shown = ", ".join(f"[{n}]" for n in degenerate[:5]) + (", ..." if len(degenerate) > 5 else "")
            warnings.warn(f"{path}: skipped {len(degenerate)} detection(s) of zero width or height ({shown})",
                          stacklevel=2)
        return det

    def lookup(self, image_id: int | str, file_name: str | None = None) -> PersonBoxes:
        """Boxes for one image (by file name or stem first, then id); empty when the file lists none."""
        entries: list[tuple[list[float], float]] = []
        if file_name is not None:
            name = Path(file_name).name
            entries = self.by_name.get(name) or self.by_name.get(Path(name).stem) or []
        if not entries:
            entries = self.by_id.get(str(image_id), [])
        if not entries:
            return PersonBoxes(np.zeros((0, 4)), np.zeros(0), np.zeros(0), f"detections ({self.path.name})")
        xywh = np.array([e[0] for e in entries], dtype=np.float64)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return PersonBoxes(xyxy, np.array([e[1] for e in entries]), np.full(len(entries), 1.25),
                           f"detections ({self.path.name})")

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_name.values()) + sum(len(v) for v in self.by_id.values())


def _is_number(value: Any) -> bool:
    """A JSON number (``True``/``False`` are ints to Python but not numbers in a detection file)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def box_from_keypoints(keypoints: np.ndarray, scores: np.ndarray, score_thr: float = 0.3,
                       enlarge: float = TRACK_ENLARGE, min_keypoints: int = 3) -> np.ndarray | None:
    """``xyxy`` box around the keypoints (K, 2) whose score exceeds ``score_thr``, grown ``enlarge`` times
    about its centre; ``None`` when fewer than ``min_keypoints`` are confident (the pose is not trusted).

    Each side is at least 1 px before enlarging, so two coincident keypoints still give a valid box.
    """
    ok = np.asarray(scores) > score_thr
    if int(ok.sum()) < min_keypoints:
        return None
    pts = np.asarray(keypoints, dtype=np.float64)[ok]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center = (lo + hi) / 2.0
    half = np.maximum(hi - lo, 1.0) * enlarge / 2.0
    return np.concatenate([center - half, center + half])


@dataclass
class _Track:
    box: np.ndarray  # xyxy image px
    track_id: int
    misses: int = 0


def limit_size_change(box: np.ndarray, previous: np.ndarray, step: float) -> np.ndarray:
    """``box`` (xyxy) with width and height clamped to [1/step, step] x those of ``previous``, same centre."""
    centre = (box[:2] + box[2:]) / 2.0
    size = box[2:] - box[:2]
    prev = previous[2:] - previous[:2]
    size = np.clip(size, prev / step, prev * step)
    return np.concatenate([centre - size / 2.0, centre + size / 2.0])


@dataclass
class KeypointBoxTracker:
    """Boxes for video frame ``t`` from the poses found on frame ``t-1``, one track (with a stable id) per person.

    ``boxes`` gives the boxes to use on the next frame; ``update`` receives the poses predicted from exactly those
    boxes, in the same order. Per track: a confident pose (``>= min_keypoints`` scores above ``score_thr``) gives
    the new box (:func:`box_from_keypoints`); otherwise the last good box is reused, for at most ``max_misses``
    frames in a row, after which the track is dropped. With no track left the whole frame is used (one box),
    and a confident pose found there starts a new track (new id), so a person who walks in later is picked up.
    A track's width and height change by at most ``max_size_step`` per frame (about the new centre): a person
    does not grow or shrink by 25% between two frames, so a pose that collapses (or explodes) on one frame
    cannot shrink the box onto a few pixels and lose the person for good.
    """

    score_thr: float = 0.3
    enlarge: float = TRACK_ENLARGE
    min_keypoints: int = 3
    max_misses: int = 5
    max_size_step: float = 1.25
    tracks: list[_Track] = field(default_factory=list)
    next_id: int = 0

    def seed(self, xyxy: np.ndarray) -> None:
        """Start one track per box (explicit boxes on the first frame); their poses are fed through ``update``."""
        self.tracks = [self._new(np.asarray(b, dtype=np.float64)) for b in xyxy]

    def _new(self, box: np.ndarray) -> _Track:
        self.next_id += 1
        return _Track(box.copy(), self.next_id - 1)

    def update(self, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Feed the poses (P, K, 2) / (P, K) predicted from the boxes :meth:`boxes` returned last.

        Returns the (P,) int64 track id of each pose: its track's id, the id of the track it just started (whole
        frame fallback), or -1 for an unconfident pose from the whole frame (no track).
        """
        kpts, scs = np.asarray(keypoints), np.asarray(scores)
        ids = np.full(len(kpts), -1, dtype=np.int64)
        if not self.tracks:  # the poses came from the whole-frame fallback: confident ones start tracks
            for p in range(len(kpts)):
                box = box_from_keypoints(kpts[p], scs[p], self.score_thr, self.enlarge, self.min_keypoints)
                if box is not None:
                    self.tracks.append(self._new(box))
                    ids[p] = self.tracks[-1].track_id
            return ids
        if len(kpts) != len(self.tracks):
            raise ValueError(f"tracker has {len(self.tracks)} tracks but got {len(kpts)} poses")
        alive = []
        for p, (track, k, s) in enumerate(zip(self.tracks, kpts, scs)):
            ids[p] = track.track_id
            box = box_from_keypoints(k, s, self.score_thr, self.enlarge, self.min_keypoints)
            if box is not None:
                track.box, track.misses = limit_size_change(box, track.box, self.max_size_step), 0
            else:
                track.misses += 1
            if track.misses <= self.max_misses:
                alive.append(track)
        self.tracks = alive
        return ids

    def boxes(self, width: int, height: int) -> PersonBoxes:
        """Boxes for the next frame: the tracks clipped to the frame, or the whole frame when there is none.

        Clipping (as HRNet sanitises detector boxes) stops a track from growing frame after frame when poses
        spread beyond the picture; a track whose clipped box is under 2 px wide or high is dropped.
        """
        lim = np.array([width - 1.0, height - 1.0, width - 1.0, height - 1.0])
        for t in self.tracks:
            t.box = np.clip(t.box, 0.0, lim)
        self.tracks = [t for t in self.tracks if t.box[2] - t.box[0] >= 2.0 and t.box[3] - t.box[1] >= 2.0]
        if not self.tracks:
            return whole_image_box(width, height)
        xyxy = np.stack([t.box for t in self.tracks])
        return PersonBoxes(xyxy, np.ones(len(xyxy)), np.full(len(xyxy), 1.25), "tracked",
                           np.array([t.track_id for t in self.tracks], dtype=np.int64))
