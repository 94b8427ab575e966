"""Results of 2D prediction on one image or video frame: arrays, a picture, COCO-format JSON.

Why a typed object (as Ultralytics ``Results``) rather than MMPose's dict of lists: users get numpy arrays
with documented shapes and frames, and the same object knows how to draw itself, including the tokens the
pruned transformer kept, mapped from the model-input crop back onto the image through the crop affine.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from prunepose.data.transforms import invert_affine
from prunepose.errors import PrunePoseError

#: Keypoints of heatmap models (TokenPose, PPT) scoring below this are not drawn, not tracked, and a person none of
#: whose keypoints reaches it counts as "no person found" (heatmap maxima peak near 1, as MMPose's 0.3 assumes).
#: SimCC models get a scaled threshold, see ``prunepose.api.estimator2d.default_kpt_thr``.
DEFAULT_KPT_THR = 0.3


@dataclass
class Results2D:
    """2D keypoints of the people in one image (or video frame).

    Attributes (P = persons, K = keypoints):
        keypoints: (P, K, 2) float32 ``(x, y)`` in original-image px.
        scores: (P, K) float32 keypoint confidences (heatmap maxima or SimCC probabilities).
        boxes: (P, 4) float32 ``xyxy`` image px: the person boxes the crops were cut around.
        box_scores: (P,) detector scores (1 for explicit, tracked and whole-image boxes).
        kept_tokens: per person, per pruning stage, int64 indices (row-major) into the visual-token grid of
            the tokens that stage kept; for GTPT's per-group stages the union over the groups. Empty lists
            for models that do not prune.
        token_grid: ``(rows, cols)`` of the visual-token grid over the model input.
        crop_affines: (P, 2, 3) float64 affine from image px to model-input px, per person.
        input_size: model input ``(w, h)``.
        skeleton: keypoint set name (``coco``, ``coco_wholebody``, ``mpii``, ``h36m``).
        image: the BGR image (kept for :meth:`plot`; ``None`` when the caller dropped it).
        image_size: ``(w, h)`` of the image in px (kept when the pixels are dropped; ``Lifter3D`` needs it).
        source: file path, or ``"array"``; frame_index: video frame number or ``None``; image_id: COCO id.
        box_origin: where the boxes came from (``whole image``, ``explicit``, ``detections (...)``, ``tracked``).
        kpt_thr: the estimator's keypoint score threshold, the default of :meth:`found` and :meth:`plot`.
        track_ids: (P,) int64 stable person ids on a tracked video (``None`` otherwise); written as ``track_id``.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    kept_tokens: list[list[np.ndarray]]
    token_grid: tuple[int, int]
    crop_affines: np.ndarray
    input_size: tuple[int, int]
    skeleton: str
    image: np.ndarray | None = None
    image_size: tuple[int, int] = (0, 0)
    source: str = "array"
    frame_index: int | None = None
    image_id: int | str = 0
    box_origin: str = ""
    kpt_thr: float = DEFAULT_KPT_THR
    track_ids: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def __repr__(self) -> str:
        where = self.source if self.frame_index is None else f"{self.source}#{self.frame_index}"
        return (f"Results2D({len(self)} person(s), {self.keypoints.shape[1]} keypoints, skeleton={self.skeleton!r}, "
                f"source={where!r})")

    # ------------------------------------------------------------------ numbers
    def person_scores(self, in_vis_thr: float = 0.2) -> np.ndarray:
        """(P,) pose scores as HRNet/TokenPose rescore them: box score x mean keypoint score above ``in_vis_thr``."""
        from prunepose.metrics.coco_eval import rescore

        return np.array([rescore(self.scores[p], float(self.box_scores[p]), in_vis_thr) for p in range(len(self))],
                        dtype=np.float64)

    def found(self, kpt_thr: float | None = None) -> np.ndarray:
        """(P,) bool: persons with at least one keypoint scoring ``>= kpt_thr`` (the others are "no person")."""
        kpt_thr = self.kpt_thr if kpt_thr is None else kpt_thr
        return (self.scores >= kpt_thr).any(axis=1) if len(self) else np.zeros(0, bool)

    def tokens_per_stage(self) -> list[float]:
        """Mean number of visual tokens kept per pruning stage over the persons (empty when nothing prunes)."""
        if not len(self) or not self.kept_tokens[0]:
            return []
        stages = len(self.kept_tokens[0])
        return [float(np.mean([len(k[s]) for k in self.kept_tokens])) for s in range(stages)]

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> list[dict[str, Any]]:
        """One COCO keypoint result per person: ``image_id``, ``category_id`` 1, ``keypoints`` ``[x, y, s] * K``,
        ``score`` (:meth:`person_scores`), ``bbox`` ``[x, y, w, h]`` (the crop box), and ``track_id`` on tracked
        videos. Loadable by pycocotools ``COCO.loadRes`` when ``image_id`` is the annotation's id (COCO file
        names give it)."""
        bad = [p for p in range(len(self)) if not all(np.isfinite(a[p]).all()
                                                      for a in (self.keypoints, self.scores, self.boxes))]
        if bad:  # JSON has no NaN: json.dumps would write a file no strict reader (pycocotools, JS) can load
            raise PrunePoseError(f"{self.source}: image {self.image_id!r}, person #{bad[0]}: the pose holds NaN or "
                                 "infinite values (non-finite box or model output; are the weights intact?)")
        scores = self.person_scores()
        out = []
        for p in range(len(self)):
            kps = np.concatenate([self.keypoints[p].astype(np.float64), self.scores[p, :, None].astype(np.float64)],
                                 axis=1)
            x1, y1, x2, y2 = (float(v) for v in self.boxes[p])
            out.append({"image_id": self.image_id, "category_id": 1,
                        "keypoints": [round(float(v), 3) for v in kps.reshape(-1)],
                        "score": round(float(scores[p]), 6), "bbox": [round(v, 3) for v in (x1, y1, x2 - x1, y2 - y1)]})
            if self.track_ids is not None:
                out[-1]["track_id"] = int(self.track_ids[p])
        return out

    # ------------------------------------------------------------------ pictures
    def kept_mask_image(self, stage: int = -1) -> tuple[np.ndarray, np.ndarray] | None:
        """Masks over the image (H, W) bool: ``(inside any crop, inside a kept token of any person)`` at pruning
        ``stage`` (default the last); ``None`` when nothing was pruned or there is no image.

        Each token is a cell of the model input (``input_size / token_grid`` px); its mask is warped back to the
        image with the inverse of that person's crop affine (nearest neighbour), so cells appear rotated and
        scaled exactly as the crop was cut.
        """
        if self.image is None or not len(self) or not self.kept_tokens[0]:
            return None
        h, w = self.image.shape[:2]
        in_w, in_h = self.input_size
        rows, cols = self.token_grid
        crop_any = np.zeros((h, w), bool)
        kept_any = np.zeros((h, w), bool)
        for p in range(len(self)):
            grid = np.zeros(rows * cols, np.uint8)
            idx = np.asarray(self.kept_tokens[p][stage], dtype=np.int64).reshape(-1)
            grid[idx[(idx >= 0) & (idx < rows * cols)]] = 1
            cell = cv2.resize(grid.reshape(rows, cols), (in_w, in_h), interpolation=cv2.INTER_NEAREST)
            back = invert_affine(self.crop_affines[p])
            flags = cv2.INTER_NEAREST
            kept_any |= cv2.warpAffine(cell, back, (w, h), flags=flags, borderValue=0).astype(bool)
            crop_any |= cv2.warpAffine(np.ones((in_h, in_w), np.uint8), back, (w, h), flags=flags,
                                       borderValue=0).astype(bool)
        return crop_any, kept_any

    def plot(self, kept_mask: bool = True, kpt_thr: float | None = None, stage: int = -1, dim: float = 0.35,
             draw_boxes: bool = True) -> np.ndarray:
        """The image (BGR copy) with skeletons, person boxes and, when ``kept_mask`` and the model prunes, the
        image regions of the tokens pruned at ``stage`` darkened (factor ``dim``); kept regions keep their colour.
        """
        from prunepose.skeletons import get_skeleton
        from prunepose.viz.draw2d import draw_skeleton

        if self.image is None:
            raise PrunePoseError("Results2D.plot: no image stored (predicted with keep_images=False)")
        kpt_thr = self.kpt_thr if kpt_thr is None else kpt_thr
        out = self.image.copy()
        masks = self.kept_mask_image(stage) if kept_mask else None
        if masks is not None:
            crop_any, kept_any = masks
            pruned = crop_any & ~kept_any
            out[pruned] = (out[pruned].astype(np.float32) * dim).astype(np.uint8)
        skeleton = get_skeleton(self.skeleton)
        for p in range(len(self)):
            if draw_boxes and np.isfinite(self.boxes[p]).all():
                x1, y1, x2, y2 = (int(round(float(v))) for v in self.boxes[p])
                cv2.rectangle(out, (x1, y1), (x2, y2), (0, 200, 255), 1, cv2.LINE_AA)
                if self.track_ids is not None and int(self.track_ids[p]) >= 0:  # the person's stable id
                    cv2.putText(out, f"#{int(self.track_ids[p])}", (x1 + 2, max(12, y1 - 3)),
                                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 200, 255), 1, cv2.LINE_AA)
            kpts = np.asarray(self.keypoints[p], dtype=np.float64)
            # untrained or confused models can put keypoints at absurd places: draw only what OpenCV can take
            sane = np.all(np.isfinite(kpts) & (np.abs(kpts) < 4 * max(out.shape[:2])), axis=1)
            scores = np.where(sane, self.scores[p], -np.inf)
            out = draw_skeleton(out, np.where(sane[:, None], kpts, 0.0), scores, skeleton, score_thr=kpt_thr)
        return out

    def save(self, path: str | Path, **plot_kwargs: Any) -> Path:
        """``.jpg``/``.jpeg``/``.png``: write :meth:`plot`; ``.json``: write :meth:`to_json` (atomically)."""
        from prunepose.atomic import atomic_write

        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            data = json.dumps(self.to_json()).encode()
            return atomic_write(path, lambda f: f.write(data))
        if suffix in (".jpg", ".jpeg", ".png"):
            ok, buf = cv2.imencode(suffix, self.plot(**plot_kwargs))
            if not ok:
                raise PrunePoseError(f"{path}: OpenCV could not encode the picture")
            return atomic_write(path, lambda f: f.write(buf.tobytes()))
        raise PrunePoseError(f"{path}: Results2D.save writes .jpg, .png or .json, not {suffix or '(no extension)'!r}")
