"""MoveNet SinglePose (Thunder / Lightning) as an ONNX teacher: box -> square crop -> 17 COCO keypoints.

The model (see ``shared/data/movenet/README.md``) takes one int32 NHWC RGB crop (0-255) of a single
person and returns ``(y, x, score)`` per COCO-17 keypoint, normalised to the crop. We crop a square of
side ``padding * max(w, h)`` centred on the box (zero padding outside the image), as the README's
checks did (mean OKS 0.755 on COCO val2017 persons with >= 10 labelled keypoints).

Geometry (pixel-centre image coordinates, as ``prunepose.data.transforms``): the square crop has its
top-left *corner* at ``(x0, y0) = centre - side / 2`` and covers ``side`` image pixels with ``S`` crop
pixels, so a normalised output ``u`` in [0, 1] is the image coordinate ``x0 + u * side - 0.5``
(``u * S`` is a corner-based crop coordinate; subtracting 0.5 goes to pixel centres). The warp uses the
matching affine ``crop_px = (img_px + 0.5 - x0) * S / side - 0.5``, so both directions share one
convention and round-trip exactly (tests check this).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prunepose.errors import PrunePoseError

#: COCO-17 left/right pairs (0-based), used to mirror the teacher's output for flip averaging.
COCO17_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12),
                                                  (13, 14), (15, 16))


@dataclass(frozen=True)
class SquareCrop:
    """A square crop of the image: top-left corner ``(x0, y0)`` (corner coordinates), ``side`` image px,
    rendered at ``size`` x ``size`` crop px."""

    x0: float
    y0: float
    side: float
    size: int

    @classmethod
    def from_box(cls, xywh: np.ndarray | list[float], size: int, padding: float = 1.25) -> SquareCrop:
        """The square of side ``padding * max(w, h)`` centred on the COCO ``xywh`` box."""
        x, y, w, h = (float(v) for v in xywh[:4])
        if w <= 0 or h <= 0:
            raise PrunePoseError(f"box {list(xywh)} has no area")
        side = padding * max(w, h)
        return cls(x + w / 2 - side / 2, y + h / 2 - side / 2, side, int(size))

    def image_to_crop_matrix(self) -> np.ndarray:
        """2x3 affine taking image pixel centres to crop pixel centres (what ``cv2.warpAffine`` needs)."""
        k = self.size / self.side
        return np.array([[k, 0.0, (0.5 - self.x0) * k - 0.5], [0.0, k, (0.5 - self.y0) * k - 0.5]])

    def normalised_to_image(self, xy_norm: np.ndarray) -> np.ndarray:
        """(..., 2) normalised crop coordinates ``(x, y)`` in [0, 1] -> image pixel-centre coordinates."""
        xy = np.asarray(xy_norm, dtype=np.float64)
        return np.stack([self.x0 + xy[..., 0] * self.side - 0.5, self.y0 + xy[..., 1] * self.side - 0.5], -1)

    def cut(self, image_bgr: np.ndarray) -> np.ndarray:
        """The crop as uint8 RGB (size, size, 3); outside the image is black."""
        crop = cv2.warpAffine(image_bgr, self.image_to_crop_matrix(), (self.size, self.size),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return np.ascontiguousarray(crop[..., ::-1])


class MoveNetTeacher:
    """onnxruntime session of a MoveNet SinglePose ONNX file; ``__call__(image, box)`` -> keypoints, scores.

    ``flip=True`` also runs the mirrored crop and averages both predictions (left/right swapped back):
    a cheap way to make pseudo-labels less noisy, at twice the cost.
    """

    def __init__(self, onnx_path: str | Path, flip: bool = False, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise PrunePoseError(f"MoveNet ONNX file not found: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        if len(inp.shape) != 4 or inp.shape[1] != inp.shape[2]:
            raise PrunePoseError(f"{path}: expected a square NHWC input, got {inp.shape}")
        self.input_name = inp.name
        self.size = int(inp.shape[1])
        self.flip = bool(flip)
        self.path = path

    def run_crop(self, crop_rgb: np.ndarray) -> np.ndarray:
        """(17, 3) ``(x, y, score)`` normalised to the crop (note: reordered from MoveNet's ``(y, x)``)."""
        out = self._raw(crop_rgb)
        if self.flip:
            mirrored = self._raw(np.ascontiguousarray(crop_rgb[:, ::-1]))
            perm = np.arange(17)
            for i, j in COCO17_FLIP_PAIRS:
                perm[i], perm[j] = j, i
            mirrored = mirrored[perm]
            # a mirrored crop's corner coordinate u maps to 1 - u in the original crop
            mirrored[:, 0] = 1.0 - mirrored[:, 0]
            out = (out + mirrored) / 2.0
        return out

    def _raw(self, crop_rgb: np.ndarray) -> np.ndarray:
        x = crop_rgb.astype(np.int32)[None]
        y = np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float64).reshape(17, 3)
        return np.stack([y[:, 1], y[:, 0], y[:, 2]], axis=1)

    def __call__(self, image_bgr: np.ndarray, box_xywh: np.ndarray | list[float],
                 padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (17, 2) in image pixels and scores (17,) of the person in ``box_xywh``."""
        crop = SquareCrop.from_box(box_xywh, self.size, padding)
        pred = self.run_crop(crop.cut(image_bgr))
        return crop.normalised_to_image(pred[:, :2]), pred[:, 2]


def keypoint_box(keypoints: np.ndarray, scores: np.ndarray, thr: float = 0.3,
                 margin: float = 0.15) -> np.ndarray | None:
    """COCO ``xywh`` box around the keypoints scoring above ``thr``, grown by ``margin`` of its size per side.

    Why: for images without person boxes the teacher is run on the whole image first and then again on
    the box its own confident keypoints span (MoveNet's documented crop-refinement loop). ``None`` if
    fewer than 4 keypoints are confident.
    """
    pts = np.asarray(keypoints)[np.asarray(scores) > thr]
    if len(pts) < 4:
        return None
    lo, hi = pts.min(0), pts.max(0)
    w, h = hi - lo
    w, h = max(w, 0.2 * h), max(h, 0.2 * w)
    return np.array([lo[0] - margin * w, lo[1] - margin * h, w * (1 + 2 * margin), h * (1 + 2 * margin)])
