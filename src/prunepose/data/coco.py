"""COCO-format top-down keypoint dataset (one sample per person box), TokenPose/HRNet pipeline.

Why this shape: top-down pose models see one person crop at a time; training crops come from the
ground-truth boxes of annotated people, test crops from GT boxes or from a person detector's boxes
(COCO results JSON), exactly as HRNet/TokenPose evaluate. `TopDownDataset` holds what every top-down
dataset shares (augmentation, cropping, targets, determinism) and is reused by `prunepose.data.mpii`.

Sample dict (``default_collate`` stacks it):

* ``image`` float32 (3, H, W): RGB crop normalised with ImageNet mean/std, ``(W, H) = input_size``;
* with the default heatmap codec: ``target`` float32 (K, Hh, Wh): UDP Gaussian heatmaps,
  ``(Wh, Hh) = heatmap_size``;
* with a `prunepose.codecs.simcc.SimCCCodec` (``codec=SimCCCodec(...)``, GTPT): ``target_x`` float32
  (K, Wx) and ``target_y`` float32 (K, Hy) SimCC bin targets instead of ``target``;
* ``target_weight`` float32 (K, 1): 1 for joints that carry a target, else 0 (times the skeleton's joint
  weights with ``use_joint_weights``);
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
from prunepose.codecs.simcc import SimCCCodec
from prunepose.data.transforms import (
    AugmentConfig,
    box_to_center_scale,
    color_augment,
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


TargetCodec = HeatmapCodec | SimCCCodec


class TopDownDataset(Dataset):
    """Shared top-down machinery: per-sample RNG, augmentation, crop, targets.

    Subclasses fill ``self._records``: dicts with ``image_path`` (Path), ``image_id``, ``keypoints``
    (K, 2) float64 image px, ``visible`` (K,) float32, ``center`` (2,), ``scale`` (2,) image px, and the
    meta fields ``ann_id``, ``score``, ``area``.

    Targets come from ``codec``: ``None`` builds the `HeatmapCodec` of ``input_size`` / ``heatmap_size`` /
    ``sigma`` / ``use_udp`` (default UDP); a `SimCCCodec` (or any `HeatmapCodec`) is used as given, and
    then ``heatmap_size`` and ``sigma`` are not used. The crop affine always follows the codec's
    ``use_udp``; ``use_udp=None`` means "whatever the codec says", an explicit value that contradicts a
    given codec is a `ConfigError`, as is a codec whose ``input_size`` differs from ``input_size``.
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
        use_udp: bool | None = None,
        use_joint_weights: bool = False,
        codec: TargetCodec | None = None,
    ) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.codec: TargetCodec = _resolve_codec(codec, self.input_size, self.heatmap_size, sigma, use_udp)
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

    def check_num_keypoints(self, num_keypoints: int, what: str = "the model") -> None:
        """Raise `ConfigError` unless ``num_keypoints`` (e.g. a model's output count) equals the dataset's.

        Why: a 17-keypoint model trained on 133-keypoint targets fails deep inside the loss with a shape
        error; this check names both numbers and the annotation file instead.
        """
        if int(num_keypoints) != self.num_keypoints:
            source = getattr(self, "source", "the dataset")
            raise ConfigError(
                f"{what} predicts {int(num_keypoints)} keypoints but {source} (skeleton "
                f"{getattr(self.skeleton, 'name', '?')!r}) has {self.num_keypoints}"
            )

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
            rng = self.rng(index)
            res = random_augment(
                keypoints,
                visible,
                center,
                scale,
                image.shape[1],
                aspect_ratio=self.aspect_ratio,
                rng=rng,
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
        if self.train:
            crop = color_augment(crop, rng, self.aug)
        kpts_in = keypoints @ point_mat[:, :2].T + point_mat[:, 2]
        targets: dict[str, torch.Tensor] = {}
        if isinstance(self.codec, SimCCCodec):
            target_x, target_y, weight = self.codec.encode(kpts_in, visible)
            targets["target_x"] = torch.from_numpy(target_x)
            targets["target_y"] = torch.from_numpy(target_y)
        else:
            target, weight = self.codec.encode(kpts_in, visible)
            targets["target"] = torch.from_numpy(target)
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
            **targets,
            "target_weight": torch.from_numpy(weight.astype(np.float32)[:, None]),
            "meta": meta,
        }


def _resolve_codec(
    codec: TargetCodec | None,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    sigma: float,
    use_udp: bool | None,
) -> TargetCodec:
    """The dataset's target codec (see `TopDownDataset`); raises `ConfigError` on contradictions."""
    if codec is None:
        return HeatmapCodec(input_size, heatmap_size, float(sigma), use_udp=True if use_udp is None else use_udp)
    if not isinstance(codec, (HeatmapCodec, SimCCCodec)):
        raise ConfigError(f"codec must be a HeatmapCodec or SimCCCodec, got {type(codec).__name__}")
    if tuple(int(v) for v in codec.input_size) != input_size:
        raise ConfigError(f"codec input_size {tuple(codec.input_size)} differs from the dataset's {input_size}")
    if use_udp is not None and bool(use_udp) != codec.use_udp:
        raise ConfigError(f"use_udp={use_udp} contradicts the codec's use_udp={codec.use_udp}; "
                          "set use_udp on the codec (the crop affine follows it)")
    return codec


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
    * ``codec``: target codec (see `TopDownDataset`); ``codec=SimCCCodec()`` gives GTPT's SimCC targets
      (``target_x``/``target_y``) with the non-UDP affine.

    Subclasses for COCO-style files with other keypoint layouts override `_annotation_keypoints`,
    `_is_labelled` and `_category_keypoint_count` (see `prunepose.data.coco_wholebody`).
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
        use_udp: bool | None = None,
        use_joint_weights: bool = False,
        codec: TargetCodec | None = None,
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
            codec=codec,
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
        expected = self._category_keypoint_count()
        if len(names) != expected:
            raise DataError(
                f"{self.ann_file}: field 'categories[person].keypoints' lists {len(names)} keypoints but the "
                f"skeleton has {expected}"
            )
        return int(cat["id"])

    def _category_keypoint_count(self) -> int:
        """How many names the person category's ``keypoints`` list must have (``K`` for plain COCO)."""
        return self.num_keypoints

    def _annotation_keypoints(self, ann: dict[str, Any], field: str) -> np.ndarray:
        """(K, 3) float64 ``(x, y, v)`` of one annotation in image px; `DataError` naming ``field`` if bad."""
        k = self.num_keypoints
        kp = ann.get("keypoints")
        if kp is None or len(kp) != 3 * k:
            got = "missing" if kp is None else f"{len(kp)} values"
            raise DataError(f"{self.ann_file}: field '{field}.keypoints': expected {3 * k} values "
                            f"(3 x {k} keypoints), got {got}")
        return np.asarray(kp, dtype=np.float64).reshape(k, 3)

    def _is_labelled(self, kp: np.ndarray) -> bool:
        """Whether an annotation's (K, 3) keypoints give a training/evaluation target (any ``v > 0``)."""
        return bool(np.any(kp[:, 2] > 0))

    def _gt_records(self, images: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
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
                kp = self._annotation_keypoints(ann, field)
                if not self._is_labelled(kp):
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
