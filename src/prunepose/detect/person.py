"""The bundled person detector: YOLOX-Nano (COCO-trained, Apache-2.0) run by onnxruntime on CPU.

Why this network: it is the smallest permissively licensed COCO detector whose exported weights could be
obtained without a download at run time (3.7 MB float32 ONNX, 0.9 M parameters), it is anchor-free (one box
per grid cell, nothing to tune per dataset) and its graph accepts any input size that is a multiple of 32,
so the image is letterboxed to its own aspect ratio instead of a padded square. Source, licence, the one
graph edit (dynamic input height and width) and measured recall / AP / speed: ``assets/README.md``,
``scripts/make_person_detector.py`` and ``docs/results-2d.md``.

Decoding follows the YOLOX paper's head (Ge et al. 2021, "YOLOX: Exceeding YOLO Series in 2021"): for the
grid cell ``(gx, gy)`` of stride ``s`` the network outputs ``(tx, ty, tw, th, obj, cls_0..cls_79)`` with
the objectness and class scores already passed through a sigmoid in the exported graph; the box centre is
``((tx + gx) s, (ty + gy) s)`` and its size ``(exp(tw) s, exp(th) s)`` in letterboxed-input pixels. The
person score is ``obj * cls_0`` (COCO class 0 = person). Input: BGR, 0..255 floats, no mean/std, padded
with grey 114 on the right and bottom (YOLOX's own preprocessing, which its weights were trained with).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from prunepose.detect.nms import box_nms
from prunepose.errors import ConfigError, PrunePoseError

#: The bundled detector weights (see ``assets/README.md`` for source and licence).
DEFAULT_DETECTOR = Path(__file__).resolve().parents[1] / "assets" / "weights" / "person_detector_yolox_nano.onnx"

#: YOLOX's output strides (P3, P4, P5), in the order the exported graph concatenates them.
STRIDES = (8, 16, 32)
PAD_VALUE = 114


def detector_available(path: str | Path | None = None) -> bool:
    """Whether the detector weights exist and onnxruntime can be imported (both are needed to detect)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return Path(path or DEFAULT_DETECTOR).is_file()


#: Default letterbox long side of the pipeline (`PoseEstimator2D`, `prunepose predict --det-size`).
DEFAULT_DET_SIZE = 640
#: The detector never enlarges an image more than this many times (see `PersonDetector.long_side_for`).
MAX_UPSCALE = 2.0


def letterbox(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """Resize so the longer side is ``long_side`` (aspect kept), pad right/bottom up to multiples of 32.

    Returns the (3, H, W) float32 network input and the resize ratio (input px per image px).
    """
    h, w = image.shape[:2]
    ratio = long_side / max(h, w)
    nh, nw = max(1, round(h * ratio)), max(1, round(w * ratio))
    ph, pw = -(-nh // STRIDES[-1]) * STRIDES[-1], -(-nw // STRIDES[-1]) * STRIDES[-1]
    canvas = np.full((ph, pw, 3), PAD_VALUE, dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1), dtype=np.float32), ratio


def decode_yolox(raw: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw head output (N, 5 + C) of one ``height`` x ``width`` input -> person boxes ``xyxy`` (N, 4), scores (N,).

    Cells are ordered stride by stride, row-major within each stride's grid, as the graph flattens them.
    """
    grids, strides = [], []
    for s in STRIDES:
        gh, gw = height // s, width // s
        gy, gx = np.mgrid[0:gh, 0:gw]
        grids.append(np.stack([gx.reshape(-1), gy.reshape(-1)], axis=1))
        strides.append(np.full(gh * gw, s, dtype=np.float64))
    grid = np.concatenate(grids).astype(np.float64)
    stride = np.concatenate(strides)[:, None]
    if len(grid) != len(raw):
        raise PrunePoseError(f"detector output has {len(raw)} cells, a {width}x{height} input needs {len(grid)}")
    raw = raw.astype(np.float64)
    centre = (raw[:, :2] + grid) * stride
    size = np.exp(np.clip(raw[:, 2:4], -20.0, 20.0)) * stride
    boxes = np.concatenate([centre - size / 2.0, centre + size / 2.0], axis=1)
    return boxes, raw[:, 4] * raw[:, 5]


class PersonDetector:
    """Person boxes for an image: ``detector(image_bgr) -> (xyxy (N, 4) float64 image px, scores (N,))``.

    Args:
        path: ONNX weights; default the bundled YOLOX-Nano.
        input_size: the letterboxed input's longer side in px (multiple of 32). 640 (default) finds more small
            (far-away) people than YOLOX-Nano's training size 416, at about twice the cost
            (``docs/results-2d.md``). Small images are never enlarged more than `MAX_UPSCALE` times: the
            input side is then the smallest multiple of 32 at or above twice the image's longer side.
        score_thr: boxes scoring below it are dropped (``obj * person`` probability).
        nms_thr: IoU above which the lower-scoring of two boxes is suppressed (high for crowds, where
            people overlap a lot).
        max_people: keep at most this many boxes (highest scores); ``None`` keeps all.
        num_threads: onnxruntime intra-op threads; 0 lets onnxruntime choose (all cores).
    """

    def __init__(self, path: str | Path | None = None, input_size: int = DEFAULT_DET_SIZE, score_thr: float = 0.3,
                 nms_thr: float = 0.6, max_people: int | None = None, num_threads: int = 0) -> None:
        if int(input_size) < 32 or int(input_size) % 32:
            raise ConfigError(f"detector input_size must be a positive multiple of 32, got {input_size}")
        if not 0.0 <= float(score_thr) <= 1.0:
            raise ConfigError(f"detector score threshold must be in [0, 1], got {score_thr}")
        if not 0.0 < float(nms_thr) <= 1.0:
            raise ConfigError(f"detector NMS IoU threshold must be in (0, 1], got {nms_thr}")
        if max_people is not None and int(max_people) < 1:
            raise ConfigError(f"max_people must be >= 1 (or None for no limit), got {max_people}")
        self.path = Path(path) if path is not None else DEFAULT_DETECTOR
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: person detector weights not found")
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError("the person detector needs onnxruntime: pip install onnxruntime") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(num_threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(os.fspath(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own exception types)
            raise ConfigError(f"{self.path}: onnxruntime cannot load the detector ({exc})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = int(input_size)
        self.score_thr = float(score_thr)
        self.nms_thr = float(nms_thr)
        self.max_people = None if max_people is None else int(max_people)

    def __repr__(self) -> str:
        return (f"PersonDetector({self.path.name}, input_size={self.input_size}, score_thr={self.score_thr}, "
                f"nms_thr={self.nms_thr}, max_people={self.max_people})")

    def long_side_for(self, height: int, width: int) -> int:
        """The letterbox long side for an image: ``input_size``, or less for a small image.

        Why the cap: enlarging a small frame several times blurs the person into something YOLOX-Nano does
        not recognise. Measured on a 128 px clip of one person: found on 8 of 8 frames at 256 px, on 3 of 8
        at 640 px (5x).
        """
        cap = -(-int(MAX_UPSCALE * max(height, width)) // STRIDES[-1]) * STRIDES[-1]
        return max(STRIDES[-1], min(self.input_size, cap))

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``xyxy`` in image px (clipped to the image) and scores, highest score first."""
        image = np.asarray(image_bgr)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape[:2]) < 1:
            raise ConfigError(f"PersonDetector: expected an (H, W, 3) uint8 BGR image, got {image.dtype} "
                              f"{image.shape}")
        h, w = image.shape[:2]
        x, ratio = letterbox(image, self.long_side_for(h, w))
        raw = self.session.run(None, {self.input_name: x[None]})[0][0]
        boxes, scores = decode_yolox(raw, x.shape[1], x.shape[2])
        ok = scores >= self.score_thr
        boxes, scores = boxes[ok] / ratio, scores[ok]
        boxes = np.clip(boxes, 0.0, np.array([w - 1.0, h - 1.0, w - 1.0, h - 1.0]))
        valid = (boxes[:, 2] - boxes[:, 0] >= 1.0) & (boxes[:, 3] - boxes[:, 1] >= 1.0)
        boxes, scores = boxes[valid], scores[valid]
        keep = box_nms(boxes, scores, self.nms_thr)
        if self.max_people is not None:
            keep = keep[: self.max_people]
        return boxes[keep], scores[keep]
