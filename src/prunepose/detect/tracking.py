"""Multi-person tracking on video: detector boxes every ``det_every`` frames, keypoint boxes in between.

Why this split: the detector is the expensive, reliable part (it finds people who walk in and never drifts),
the pose of frame ``t-1`` is the cheap, precise part (a box around the confident keypoints follows a person
between two detections; :func:`prunepose.api.boxes.box_from_keypoints`). Track identity is kept by matching,
on every detection frame, each track's current box to the new detections by IoU (greedy, highest IoU first,
as SORT-style trackers without a motion model do); a detection that matches no track starts a new id.

Rules, in order, on a detection frame:

1. tracks and detections are paired greedily by IoU >= ``match_iou``; a paired track takes the detection's
   box (the detector re-anchors the keypoint box, which can shrink when limbs are missed);
2. an unpaired track that overlaps a paired one by IoU > ``stale_iou`` has drifted onto someone else and is
   dropped; any other unpaired track keeps its box and counts one detector miss, and after
   ``max_det_misses`` detection frames in a row without a pair it is dropped (the person left, or the track
   drifted onto background);
3. an unpaired detection starts a new track, unless it overlaps an existing track by IoU > ``dup_iou``
   (the same person seen twice).

Between detection frames a track's box is centred on its confident keypoints but keeps the size of its last
detection, changing by at most ``max_size_step`` per frame towards the keypoints' extent: a pose model that
misses limbs on one frame would otherwise shrink the box, the next crop would cut the person, and the track
would no longer match its own person's detection. A track whose pose is not confident reuses its box for at
most ``max_misses`` frames.
Two tracks whose *poses* coincide (OKS > ``dup_oks`` with the skeleton's sigmas; box IoU > ``dup_iou`` for
skeletons without sigmas) follow one person: the younger is dropped, so one person never carries two ids.
Poses and not boxes decide this because two people crossing each other have overlapping boxes but
different keypoints; only when one hides the other completely do the poses coincide and the ids merge.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from prunepose.api.boxes import TRACK_ENLARGE, PersonBoxes, box_from_keypoints, limit_size_change
from prunepose.detect.nms import box_iou
from prunepose.metrics.coco_eval import oks_iou

#: ``detect(image) -> (xyxy (N, 4), scores (N,))``, e.g. a :class:`prunepose.detect.PersonDetector`.
Detect = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class _Track:
    box: np.ndarray  # xyxy image px
    track_id: int
    det_box: np.ndarray | None = None  # the last detection paired with this track (its size anchors the box)
    score: float = 1.0  # the detector score of the last detection paired with this track
    misses: int = 0  # frames in a row without a confident pose
    det_misses: int = 0  # detection frames in a row without a paired detection


def greedy_match(iou: np.ndarray, thr: float) -> list[tuple[int, int]]:
    """Pairs ``(row, col)`` of ``iou`` (R, C), highest IoU first, each row and column used once, IoU >= thr.

    Ties are broken by row then column (``np.argsort`` stable on the flattened matrix), so the result is
    deterministic.
    """
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    order = np.argsort(-iou, axis=None, kind="stable")
    used_r, used_c = set(), set()
    for flat in order:
        r, c = divmod(int(flat), iou.shape[1])
        if iou[r, c] < thr:
            break
        if r in used_r or c in used_c:
            continue
        pairs.append((r, c))
        used_r.add(r)
        used_c.add(c)
    return pairs


@dataclass
class DetectionTracker:
    """Boxes with stable track ids for each video frame (see the module docstring for the rules).

    Use: ``boxes = tracker.boxes(frame_index, image)``, predict poses from those boxes (same order), then
    ``ids = tracker.update(keypoints, scores)``.
    """

    detect: Detect
    det_every: int = 5
    score_thr: float = 0.3  # keypoint score for a confident keypoint (the pose model's kpt_thr)
    enlarge: float = TRACK_ENLARGE
    min_keypoints: int = 3
    max_misses: int = 5
    max_det_misses: int = 2
    match_iou: float = 0.3
    stale_iou: float = 0.5
    dup_iou: float = 0.7
    dup_oks: float = 0.9
    sigmas: tuple[float, ...] = ()  # OKS sigmas of the skeleton (prunepose.skeletons); () -> box IoU only
    max_size_step: float = 1.05
    max_people: int | None = None
    tracks: list[_Track] = field(default_factory=list)
    next_id: int = 0
    _frames_seen: int = 0

    def __post_init__(self) -> None:
        if int(self.det_every) < 1:
            raise ValueError(f"det_every must be >= 1, got {self.det_every}")

    def _new(self, box: np.ndarray, score: float) -> _Track:
        self.next_id += 1
        box = np.asarray(box, dtype=np.float64)
        return _Track(box.copy(), self.next_id - 1, box.copy(), float(score))

    def _apply_detections(self, det_boxes: np.ndarray, det_scores: np.ndarray) -> None:
        boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
        cur = np.stack([t.box for t in self.tracks]) if self.tracks else np.zeros((0, 4))
        pairs = greedy_match(box_iou(cur, boxes), self.match_iou)
        paired_t = {r for r, _ in pairs}
        paired_d = {c for _, c in pairs}
        for r, c in pairs:
            track = self.tracks[r]
            track.box, track.score, track.det_misses, track.misses = boxes[c].copy(), float(scores[c]), 0, 0
            track.det_box = boxes[c].copy()
        paired_boxes = np.stack([self.tracks[r].box for r in paired_t]) if paired_t else np.zeros((0, 4))
        kept = []
        for r, track in enumerate(self.tracks):
            if r not in paired_t:
                if len(paired_boxes) and box_iou(track.box[None], paired_boxes).max() > self.stale_iou:
                    continue  # drifted onto a person another track holds
                track.det_misses += 1
            if track.det_misses <= self.max_det_misses:
                kept.append(track)
        self.tracks = kept
        for c in np.argsort(-scores, kind="stable"):
            if int(c) in paired_d:
                continue
            cur = np.stack([t.box for t in self.tracks]) if self.tracks else np.zeros((0, 4))
            if len(cur) and box_iou(boxes[c : c + 1], cur).max() > self.dup_iou:
                continue
            if self.max_people is not None and len(self.tracks) >= self.max_people:
                break
            self.tracks.append(self._new(boxes[c], scores[c]))

    def boxes(self, frame_index: int, image: np.ndarray) -> PersonBoxes:
        """Boxes for this frame: detections matched to the tracks on a detection frame, else the tracks' boxes.

        Detection frames are the first one and every ``det_every``-th after it, plus any frame on which no track
        is left (a person walking into an empty scene is found at once). Boxes are clipped to the frame;
        a box under 2 px wide or high is dropped with its track.
        """
        h, w = image.shape[:2]
        if self._frames_seen % self.det_every == 0 or not self.tracks:
            self._apply_detections(*self.detect(image))
        self._frames_seen += 1
        lim = np.array([w - 1.0, h - 1.0, w - 1.0, h - 1.0])
        for t in self.tracks:
            t.box = np.clip(t.box, 0.0, lim)
        self.tracks = [t for t in self.tracks if t.box[2] - t.box[0] >= 2.0 and t.box[3] - t.box[1] >= 2.0]
        n = len(self.tracks)
        xyxy = np.stack([t.box for t in self.tracks]) if n else np.zeros((0, 4))
        return PersonBoxes(xyxy, np.array([t.score for t in self.tracks]), np.full(n, 1.25),
                           f"detected every {self.det_every} frame(s), tracked",
                           np.array([t.track_id for t in self.tracks], dtype=np.int64))

    def update(self, keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Feed the poses (P, K, 2) / (P, K) predicted from the last :meth:`boxes`; returns their (P,) track ids."""
        kpts, scs = np.asarray(keypoints), np.asarray(scores)
        if len(kpts) != len(self.tracks):
            raise ValueError(f"tracker has {len(self.tracks)} tracks but got {len(kpts)} poses")
        ids = np.array([t.track_id for t in self.tracks], dtype=np.int64)
        alive, poses = [], []
        for track, k, s in zip(self.tracks, kpts, scs):
            box = box_from_keypoints(k, s, self.score_thr, self.enlarge, self.min_keypoints)
            if box is not None:
                box = limit_size_change(box, track.box, self.max_size_step)
                if track.det_box is not None:  # within 1.25x of the last detection's size
                    box = limit_size_change(box, track.det_box, 1.25)
                track.box, track.misses = box, 0
            else:
                track.misses += 1
            if track.misses <= self.max_misses:
                alive.append(track)
                poses.append(np.concatenate([np.asarray(k, np.float64), np.asarray(s, np.float64)[:, None]], 1))
        self.tracks = self._drop_duplicates(alive, poses)
        return ids

    def _same_person(self, a: _Track, pa: np.ndarray, b: _Track, pb: np.ndarray) -> bool:
        if len(self.sigmas) == pa.shape[0]:
            area = lambda t: float(np.prod(np.clip(t.box[2:] - t.box[:2], 1.0, None)))  # noqa: E731
            return float(oks_iou(pa, pb[None], area(a), area(b), self.sigmas, vis_thr=self.score_thr)[0]) \
                > self.dup_oks
        return float(box_iou(a.box[None], b.box[None])[0, 0]) > self.dup_iou

    def _drop_duplicates(self, tracks: list[_Track], poses: list[np.ndarray]) -> list[_Track]:
        """Oldest track first; a younger track whose pose is the same person as a kept one's is dropped."""
        kept: list[tuple[_Track, np.ndarray]] = []
        for i in sorted(range(len(tracks)), key=lambda i: tracks[i].track_id):
            t, p = tracks[i], poses[i]
            if any(self._same_person(k, kp, t, p) for k, kp in kept):
                continue
            kept.append((t, p))
        return [t for t, _ in kept]
