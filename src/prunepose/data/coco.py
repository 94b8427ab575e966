"""COCO-format top-down keypoint dataset (one sample per person box), TokenPose/HRNet pipeline.

Why this shape: top-down pose models see one person crop at a time; training crops come from the
ground-truth boxes of annotated people, test crops from GT boxes or from a person detector's boxes
(COCO results JSON), exactly as HRNet/TokenPose evaluate. `TopDownDataset` holds what every top-down
dataset shares (augmentation, cropping, targets, determinism) and is reused by `prunepose.data.mpii`.

Sample dict (``default_collate`` stacks it):

* ``image`` float32 (3, H, W): RGB crop normalised with ImageNet mean/std, ``(W, H) = input_size``;
* ``target`` float32 (K, Hh, Wh): UDP Gaussian heatmaps, ``(Wh, Hh) = heatmap_size``;
* ``target_weight`` float32 (K, 1): 1 for joints that carry a target, else 0;
* ``meta``: ``center`` / ``scale`` float32 (2,) image px of the crop actually used (after augmentation;
  mirrored centre when flipped), ``rotation`` float degrees, ``flipped`` bool, ``image_id`` int,
  ``ann_id`` int (-1 for detections), ``score`` float (detector score, 1 for GT), ``area`` float
  (annotation area for GT, box w*h for detections; image px^2), ``index`` int (sample index).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from prunepose.codecs.heatmap import HeatmapCodec
from prunepose.data.transforms import (
    AugmentConfig,
    box_to_center_scale,
    get_affine_transform,
    normalize_image,
    random_augment,
    warp_image,
)
from prunepose.errors import ConfigError, DataError


class SkeletonLike(Protocol):
    """What the datasets need from a keypoint set (`prunepose.skeletons.Skeleton` provides it)."""

    num_keypoints: int
    flip_pairs: Sequence[tuple[int, int]]
    upper_body_ids: Sequence[int]
    lower_body_ids: Sequence[int]


def resolve_skeleton(skeleton: str | SkeletonLike) -> SkeletonLike:
    """Name -> skeleton via `prunepose.skeletons.get_skeleton`; objects are passed through."""
    if isinstance(skeleton, str):
        from prunepose.skeletons import get_skeleton  # lazy: keeps data importable on its own

        return get_skeleton(skeleton)
    return skeleton


def read_image_bgr(path: Path, image_id: object, source: Path | str) -> np.ndarray:
    """Read an image as uint8 BGR (H, W, 3), ignoring EXIF orientation as COCO annotations do.

    Raises `DataError` naming the image path, its id and the annotation file that listed it.
    """
    if not path.is_file():
        raise DataError(f"{path}: image file not found (image id {image_id}, listed in {source})")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DataError(f"{path}: image file unreadable by OpenCV (image id {image_id}, listed in {source})")
    return image


class TopDownDataset(Dataset):
    """Shared top-down machinery: per-sample RNG, augmentation, crop, targets.

    Subclasses fill ``self._records``: dicts with ``image_path`` (Path), ``image_id``, ``keypoints``
    (K, 2) float64 image px, ``visible`` (K,) float32, ``center`` (2,), ``scale`` (2,) image px, and the
    meta fields ``ann_id``, ``score``, ``area``.
    """

    source: Path

    def __init__(
        self,
        *,
        input_size: Sequence[int],
        heatmap_size: Sequence[int],
        sigma: float,
        skeleton: str | SkeletonLike,
        train: bool,
        seed: int,
        aug: AugmentConfig | None,
        use_udp: bool = True,
        use_joint_weights: bool = False,
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.codec = HeatmapCodec(self.input_size, self.heatmap_size, float(sigma), use_udp=use_udp)
        self.skeleton = resolve_skeleton(skeleton)
        self.train = bool(train)
        self.seed = int(seed)
        self.epoch = 0
        self.aug = aug if aug is not None else AugmentConfig()
        self.use_joint_weights = use_joint_weights
        self._records: list[dict[str, Any]] = []

    @property
    def num_keypoints(self) -> int:
        return int(self.skeleton.num_keypoints)

    @property
    def aspect_ratio(self) -> float:
        return self.input_size[0] / self.input_size[1]

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream: sample ``i`` of epoch ``e`` uses rng ``(seed, e, i)``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._records)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, int(index)))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self._records):
            raise IndexError(f"index {index} out of range for {len(self._records)} samples")
        rec = self._records[index]
        image = read_image_bgr(rec["image_path"], rec["image_id"], self.source)
        keypoints = np.asarray(rec["keypoints"], dtype=np.float64)
        visible = np.asarray(rec["visible"], dtype=np.float32)
        center = np.asarray(rec["center"], dtype=np.float64)
        scale = np.asarray(rec["scale"], dtype=np.float64)
        rotation, flipped = 0.0, False
        image_mat = get_affine_transform(center, scale, 0.0, self.input_size, udp=self.codec.use_udp)
        point_mat = image_mat
        if self.train:
            res = random_augment(
                keypoints,
                visible,
                center,
                scale,
                image.shape[1],
                aspect_ratio=self.aspect_ratio,
                rng=self.rng(index),
                cfg=self.aug,
                flip_pairs=self.skeleton.flip_pairs,
                upper_body_ids=self.skeleton.upper_body_ids,
                lower_body_ids=self.skeleton.lower_body_ids,
            )
            keypoints, visible, center, scale = res.keypoints, res.visible, res.center, res.scale
            rotation, flipped = res.rotation, res.flipped
            image_mat = res.image_matrix(self.input_size, udp=self.codec.use_udp)
            point_mat = res.crop_matrix(self.input_size, udp=self.codec.use_udp)

        crop = warp_image(image, image_mat, self.input_size)
        kpts_in = keypoints @ point_mat[:, :2].T + point_mat[:, 2]
        target, weight = self.codec.encode(kpts_in, visible)
        if self.use_joint_weights:
            weight = weight * np.asarray(self.skeleton.joint_weights, dtype=np.float32)  # type: ignore[attr-defined]
        meta = {
            "center": torch.as_tensor(center, dtype=torch.float32),
            "scale": torch.as_tensor(scale, dtype=torch.float32),
            "rotation": float(rotation),
            "flipped": bool(flipped),
            "image_id": int(rec["image_id"]),
            "ann_id": int(rec["ann_id"]),
            "score": float(rec["score"]),
            "area": float(rec["area"]),
            "index": int(index),
        }
        return {
            "image": torch.from_numpy(normalize_image(crop)),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight.astype(np.float32)[:, None]),
            "meta": meta,
        }


def _load_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: {what} is not valid JSON ({exc})") from exc


def _summary(ids: list[tuple[int, int]], limit: int = 10) -> str:
    shown = ", ".join(f"image {i}/ann {a}" for i, a in ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


class CocoTopDownDataset(TopDownDataset):
    """COCO keypoints JSON -> top-down samples (see module docstring for the sample dict).

    * ``train=True``: one sample per non-crowd person annotation with at least one labelled keypoint,
      with TokenPose augmentation (``aug``); ``train=False``: same boxes (or detections) without it.
    * ``det_file``: COCO results JSON of person detections (test only): one sample per detection with
      ``category_id`` 1 and ``score >= det_score_thr``; targets are zero with zero weight.
    * Crowd annotations and boxes with zero area after clipping to the image are skipped with one
      summary `warnings.warn` naming the annotation file and the (image id, annotation id) pairs.
    * ``skip_missing_images=True`` drops images absent from ``image_root`` with one summary warning;
      by default a missing image raises `DataError` when its sample is loaded.
    """

    def __init__(
        self,
        ann_file: str | os.PathLike[str],
        image_root: str | os.PathLike[str],
        input_size: Sequence[int] = (192, 256),
        heatmap_size: Sequence[int] = (48, 64),
        sigma: float = 2.0,
        skeleton: str | SkeletonLike = "coco",
        train: bool = True,
        det_file: str | os.PathLike[str] | None = None,
        det_score_thr: float = 0.0,
        seed: int = 0,
        aug: AugmentConfig | None = None,
        skip_missing_images: bool = False,
        use_udp: bool = True,
        use_joint_weights: bool = False,
    ) -> None:
        super().__init__(
            input_size=input_size,
            heatmap_size=heatmap_size,
            sigma=sigma,
            skeleton=skeleton,
            train=train,
            seed=seed,
            aug=aug,
            use_udp=use_udp,
            use_joint_weights=use_joint_weights,
        )
        if train and det_file is not None:
            raise ConfigError("det_file is for evaluation only: pass train=False with det_file")
        self.ann_file = Path(ann_file)
        self.source = self.ann_file
        self.image_root = Path(image_root)
        self.det_file = Path(det_file) if det_file is not None else None
        self.coco = self._load_coco()
        self._category_id = self._person_category()

        images = {img["id"]: img for img in self.coco.dataset["images"]}
        if skip_missing_images:
            missing = [i for i, img in images.items() if not (self.image_root / img["file_name"]).is_file()]
            if missing:
                names = ", ".join(images[i]["file_name"] for i in missing[:5])
                warnings.warn(
                    f"{self.ann_file}: {len(missing)} of {len(images)} images listed in the file are not in "
                    f"{self.image_root} and were skipped (e.g. {names})",
                    stacklevel=2,
                )
                for i in missing:
                    del images[i]
        self.image_ids: list[int] = sorted(images)
        if self.det_file is None:
            self._records = self._gt_records(images)
        else:
            self._records = self._det_records(images, float(det_score_thr))
        if not self._records:
            what = f"detections in {self.det_file}" if self.det_file else "person annotations with a labelled keypoint"
            raise DataError(f"{self.ann_file}: no usable samples: no {what} for the {len(self.image_ids)} images "
                            f"found under {self.image_root} (field 'annotations'; keypoint visibility all 0?)")

    # ------------------------------------------------------------------ loading
    def _load_coco(self) -> Any:
        from pycocotools.coco import COCO

        data = _load_json(self.ann_file, "annotation file")
        if not isinstance(data, dict):
            raise DataError(f"{self.ann_file}: top level must be a JSON object with 'images', 'annotations'")
        for key in ("images", "annotations", "categories"):
            if key not in data:
                raise DataError(f"{self.ann_file}: field '{key}' missing (not a COCO keypoints file)")
            if not isinstance(data[key], list):
                raise DataError(f"{self.ann_file}: field '{key}' must be a list")
        for n, img in enumerate(data["images"]):
            for key in ("id", "file_name"):
                if not isinstance(img, dict) or key not in img:
                    raise DataError(f"{self.ann_file}: field 'images[{n}].{key}' missing")
        coco = COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
        return coco

    def _person_category(self) -> int:
        cats = self.coco.dataset["categories"]
        person = [c for c in cats if c.get("name") == "person"] or [c for c in cats if c.get("id") == 1]
        if not person:
            raise DataError(f"{self.ann_file}: field 'categories' has no 'person' category")
        cat = person[0]
        names = cat.get("keypoints")
        if names is None:
            raise DataError(
                f"{self.ann_file}: field 'categories[person].keypoints' missing (not a keypoints file)"
            )
        if len(names) != self.num_keypoints:
            raise DataError(
                f"{self.ann_file}: field 'categories[person].keypoints' lists {len(names)} keypoints but the "
                f"skeleton has {self.num_keypoints}"
            )
        return int(cat["id"])

    def _gt_records(self, images: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        k = self.num_keypoints
        records: list[dict[str, Any]] = []
        crowd: list[tuple[int, int]] = []
        degenerate: list[tuple[int, int]] = []
        for image_id in self.image_ids:
            img = images[image_id]
            width, height = img.get("width"), img.get("height")
            for ann in self.coco.imgToAnns.get(image_id, []):
                if ann.get("category_id") != self._category_id:
                    continue
                ann_id = int(ann.get("id", -1))
                field = f"annotations[id={ann_id}]"
                if ann.get("iscrowd", 0):
                    crowd.append((image_id, ann_id))
                    continue
                kp = ann.get("keypoints")
                if kp is None or len(kp) != 3 * k:
                    got = "missing" if kp is None else f"{len(kp)} values"
                    raise DataError(f"{self.ann_file}: field '{field}.keypoints': expected {3 * k} values "
                                    f"(3 x {k} keypoints), got {got}")
                kp = np.asarray(kp, dtype=np.float64).reshape(k, 3)
                if not np.any(kp[:, 2] > 0):
                    continue  # unlabelled person: no target to learn or evaluate
                bbox = ann.get("bbox")
                if bbox is None or len(bbox) != 4:
                    raise DataError(f"{self.ann_file}: field '{field}.bbox' must be [x, y, w, h]")
                box = _clip_box(bbox, width, height)
                if box is None:
                    degenerate.append((image_id, ann_id))
                    continue
                center, scale = box_to_center_scale(box, self.aspect_ratio)
                records.append({
                    "image_path": self.image_root / img["file_name"],
                    "image_id": image_id,
                    "ann_id": ann_id,
                    "keypoints": kp[:, :2],
                    "visible": (kp[:, 2] > 0).astype(np.float32),
                    "center": center,
                    "scale": scale,
                    "score": 1.0,
                    "area": float(ann.get("area", box[2] * box[3])),
                })
        if crowd or degenerate:
            parts = []
            if crowd:
                parts.append(f"{len(crowd)} crowd annotations ({_summary(crowd)})")
            if degenerate:
                parts.append(f"{len(degenerate)} annotations whose bbox has zero area after clipping to the "
                             f"image ({_summary(degenerate)})")
            warnings.warn(f"{self.ann_file}: skipped " + "; ".join(parts), stacklevel=3)
        return records

    def _det_records(self, images: dict[int, dict[str, Any]], thr: float) -> list[dict[str, Any]]:
        assert self.det_file is not None
        dets = _load_json(self.det_file, "detection file")
        if not isinstance(dets, list):
            raise DataError(f"{self.det_file}: detection file must be a JSON list of COCO results")
        k = self.num_keypoints
        records: list[dict[str, Any]] = []
        unknown_images = 0
        for n, det in enumerate(dets):
            if not isinstance(det, dict):
                raise DataError(f"{self.det_file}: field '[{n}]' must be an object")
            for key in ("image_id", "bbox", "score", "category_id"):
                if key not in det:
                    raise DataError(f"{self.det_file}: field '[{n}].{key}' missing")
            bbox = det["bbox"]
            numbers = isinstance(bbox, list) and all(isinstance(v, (int, float)) for v in bbox)
            if not numbers or len(bbox) != 4:
                raise DataError(f"{self.det_file}: field '[{n}].bbox' must be [x, y, w, h] numbers")
            if not isinstance(det["score"], (int, float)):
                raise DataError(f"{self.det_file}: field '[{n}].score' must be a number")
            if det["category_id"] != self._category_id or det["score"] < thr:
                continue
            if det["image_id"] not in images:
                unknown_images += 1
                continue
            if bbox[2] <= 0 or bbox[3] <= 0:
                continue
            image_id = int(det["image_id"])
            center, scale = box_to_center_scale(bbox, self.aspect_ratio)
            records.append({
                "image_path": self.image_root / images[image_id]["file_name"],
                "image_id": image_id,
                "ann_id": -1,
                "keypoints": np.zeros((k, 2)),
                "visible": np.zeros((k,), dtype=np.float32),
                "center": center,
                "scale": scale,
                "score": float(det["score"]),
                "area": float(bbox[2] * bbox[3]),
            })
        if unknown_images:
            warnings.warn(
                f"{self.det_file}: skipped {unknown_images} detections on images that are not in "
                f"{self.ann_file} (or not on disk)",
                stacklevel=3,
            )
        return records


def _clip_box(bbox: Sequence[float], width: Any, height: Any) -> list[float] | None:
    """Clip a COCO ``xywh`` box to the image as HRNet/TokenPose's ``_sanitize``; ``None`` if no area is left.

    Like HRNet the clipped box spans pixel centres ``x1..x1+w-1`` (so its width is ``w - 1``), which
    keeps crops identical to TokenPose's.
    """
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = x1 + max(0.0, w - 1.0), y1 + max(0.0, h - 1.0)
    if width is not None and height is not None:
        x2, y2 = min(float(width) - 1.0, x2), min(float(height) - 1.0, y2)
    if x2 > x1 and y2 > y1:
        return [x1, y1, x2 - x1, y2 - y1]
    return None
