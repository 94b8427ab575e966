"""COCO-WholeBody top-down dataset: 133 keypoints (body, feet, face, hands) from the WholeBody JSON.

Why a subclass: a COCO-WholeBody file is a COCO keypoints file whose annotations carry four more
keypoint arrays next to the usual 17 body ``keypoints``; boxes, images, augmentation, targets and
detections work exactly as for COCO, so only the reading of one annotation's keypoints differs.

Annotation fields read (each ``[x, y, v] * n`` in image px, ``v`` 0 = unlabelled):
``keypoints`` (body, 17), ``foot_kpts`` (6), ``face_kpts`` (68), ``lefthand_kpts`` (21),
``righthand_kpts`` (21), concatenated in that order: the native COCO-WholeBody order of
`prunepose.skeletons.COCO_WHOLEBODY133` (body 0-16, foot 17-22, face 23-90, left hand 91-111,
right hand 112-132). The ``*_valid`` flags and ``face_box`` / ``lefthand_box`` / ``righthand_box``
(``xywh``, all zero when absent) are kept in each record as ``part_valid`` / ``part_boxes`` but do not
change the targets: like the official GTPT/MMPose loaders, a part's unlabelled keypoints (``v = 0``)
already carry weight 0.

As in GTPT's ``COCOWholeBodyDataset`` (``max(obj['keypoints']) == 0`` is skipped) and MMPose (``num_keypoints
== 0`` is skipped), a person is used only when at least one *body* keypoint is labelled, even if a hand or
the face is.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from prunepose.data.coco import CocoTopDownDataset, SkeletonLike, TargetCodec, resolve_skeleton
from prunepose.data.transforms import AugmentConfig
from prunepose.errors import ConfigError, DataError

__all__ = ["WHOLEBODY_PART_FIELDS", "CocoWholeBodyDataset", "wholebody_keypoints"]

#: (annotation field, keypoint count, ``*_valid`` flag, part box) in native order.
WHOLEBODY_PART_FIELDS: tuple[tuple[str, int, str | None, str | None], ...] = (
    ("keypoints", 17, None, None),
    ("foot_kpts", 6, "foot_valid", None),
    ("face_kpts", 68, "face_valid", "face_box"),
    ("lefthand_kpts", 21, "lefthand_valid", "lefthand_box"),
    ("righthand_kpts", 21, "righthand_valid", "righthand_box"),
)
_NUM_WHOLEBODY = sum(n for _, n, _, _ in WHOLEBODY_PART_FIELDS)  # 133
_NUM_BODY = WHOLEBODY_PART_FIELDS[0][1]


def wholebody_keypoints(ann: dict[str, Any], source: object = "annotation file") -> np.ndarray:
    """One COCO-WholeBody annotation -> (133, 3) float64 ``(x, y, v)`` in native order, image px.

    Raises `DataError` naming ``source``, the annotation id and the field when a part array is missing,
    not a list of numbers, or has the wrong length.
    """
    ann_id = ann.get("id", "?")
    parts = []
    for field, count, _, _ in WHOLEBODY_PART_FIELDS:
        where = f"{source}: field 'annotations[id={ann_id}].{field}'"
        values = ann.get(field)
        if values is None:
            raise DataError(f"{where} missing (not a COCO-WholeBody file? it needs {count} x 3 values)")
        try:
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"{where} must be a list of numbers") from None
        if arr.size != 3 * count:
            raise DataError(f"{where}: expected {3 * count} values (3 x {count} keypoints), got {arr.size}")
        parts.append(arr.reshape(count, 3))
    return np.concatenate(parts, axis=0)


class CocoWholeBodyDataset(CocoTopDownDataset):
    """COCO-WholeBody JSON -> top-down samples with 133 keypoints (see `CocoTopDownDataset` for the rest).

    ``skeleton`` must have 133 keypoints (default ``"coco_wholebody"``); anything else is a
    `ConfigError` before the file is read. Records also hold ``part_valid`` (``{"foot": bool, ...}``)
    and ``part_boxes`` (``{"face": [x, y, w, h] | None, ...}``, ``None`` for an all-zero box).
    """

    def __init__(
        self,
        ann_file: str | os.PathLike[str],
        image_root: str | os.PathLike[str],
        input_size: Sequence[int] = (192, 256),
        heatmap_size: Sequence[int] = (48, 64),
        sigma: float = 2.0,
        skeleton: str | SkeletonLike = "coco_wholebody",
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
        skel = resolve_skeleton(skeleton)
        if int(skel.num_keypoints) != _NUM_WHOLEBODY:
            raise ConfigError(
                f"{ann_file}: COCO-WholeBody has {_NUM_WHOLEBODY} keypoints but skeleton "
                f"{getattr(skel, 'name', '?')!r} has {skel.num_keypoints}; use skeleton='coco_wholebody'"
            )
        super().__init__(
            ann_file,
            image_root,
            input_size=input_size,
            heatmap_size=heatmap_size,
            sigma=sigma,
            skeleton=skel,
            train=train,
            det_file=det_file,
            det_score_thr=det_score_thr,
            seed=seed,
            aug=aug,
            skip_missing_images=skip_missing_images,
            use_udp=use_udp,
            use_joint_weights=use_joint_weights,
            codec=codec,
        )

    def _category_keypoint_count(self) -> int:
        # The WholeBody files name only the 17 body keypoints in categories[person].keypoints.
        return _NUM_BODY

    def _annotation_keypoints(self, ann: dict[str, Any], field: str) -> np.ndarray:
        return wholebody_keypoints(ann, self.ann_file)

    def _is_labelled(self, kp: np.ndarray) -> bool:
        return bool(np.any(kp[:_NUM_BODY, 2] > 0))

    def _gt_records(self, images: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
        records = super()._gt_records(images)
        for rec in records:
            ann = self.coco.anns.get(rec["ann_id"], {})
            rec["part_valid"] = {
                field.split("_")[0]: bool(ann.get(flag, True)) for field, _, flag, _ in WHOLEBODY_PART_FIELDS if flag
            }
            rec["part_boxes"] = {
                box.split("_")[0]: _part_box(ann.get(box)) for _, _, _, box in WHOLEBODY_PART_FIELDS if box
            }
        return records


def _part_box(box: Any) -> list[float] | None:
    """A part box ``[x, y, w, h]`` as floats, or ``None`` when absent or all zero (the file's "no box")."""
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return None
    try:
        vals = [float(v) for v in box]
    except (TypeError, ValueError):
        return None
    return vals if vals[2] > 0 and vals[3] > 0 else None
