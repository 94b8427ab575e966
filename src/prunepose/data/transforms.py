"""Geometry of top-down pose crops: box -> (center, scale), affine warps, flips and TokenPose augmentation.

Why one module: the same affine convention must be used to cut the model input out of the image, to
place the heatmap targets, and to map predictions back to the image. Any mismatch between these shows
up as a systematic sub-pixel bias that costs AP, so every path goes through `get_affine_transform`.

Conventions (see docs/architecture.md):

* ``center`` (2,) is ``(x, y)`` in original-image pixels; ``scale`` (2,) is the crop's ``(w, h)`` in
  original-image pixels (after aspect-ratio padding and enlargement; no /200 factor).
* Sizes are ``(width, height)``; pixel ``i`` has its centre at coordinate ``i`` (so a row of ``W`` pixels
  spans ``[0, W-1]`` in pixel-centre coordinates), as OpenCV's ``warpAffine`` assumes.

The UDP affine (``udp=True``, Huang et al. "Unbiased Data Processing", used by TokenPose/HRNet-UDP) is::

    dst = diag((W-1)/scale_w, (H-1)/scale_h) @ R(-rot) @ (src - center) + ((W-1)/2, (H-1)/2)

with ``R(a) = [[cos a, -sin a], [sin a, cos a]]`` and ``(W, H) = output_size``. In y-down image coordinates
a positive ``rot`` (degrees) turns the crop's content counter-clockwise, as ``cv2.getRotationMatrix2D``
does. The crop's ``scale`` therefore spans ``W-1`` output pixel *intervals*, so the first and last output
pixel centres sit exactly on the crop's borders; because of that the same crop rendered at two sizes
(input 192x256, heatmap 48x64) differ by exactly ``(W_in-1)/(W_hm-1)``, the UDP feature stride.

With ``udp=False`` (classic HRNet/SimpleBaseline) the factor is ``W/scale_w`` and the centre goes to
``(W/2, H/2)``; then the input->heatmap stride is ``W_in/W_hm`` and the two grids are half a pixel apart.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

#: ImageNet statistics for RGB images scaled to [0, 1] (TokenPose/HRNet input normalisation).
PIXEL_MEAN_RGB = np.array([0.485, 0.456, 0.406], dtype=np.float32)
PIXEL_STD_RGB = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def pad_to_aspect(wh: Sequence[float] | np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow the shorter side of a ``(w, h)`` box so that ``w / h == aspect_ratio`` (never shrinks).

    Why: the model input has a fixed aspect ratio; padding instead of stretching keeps the person's
    proportions and keeps the whole box inside the crop.
    """
    w, h = float(wh[0]), float(wh[1])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return np.array([w, h], dtype=np.float64)


def box_to_center_scale(
    xywh: Sequence[float] | np.ndarray, aspect_ratio: float, padding: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """COCO ``xywh`` box (original-image px) -> ``center`` (2,) and ``scale`` (2,) in px.

    ``center = (x + w/2, y + h/2)`` (as HRNet/MMPose), ``scale = pad_to_aspect((w, h)) * padding``.
    ``aspect_ratio`` is ``input_width / input_height`` (0.75 for 192x256).
    """
    x, y, w, h = (float(v) for v in xywh[:4])
    center = np.array([x + 0.5 * w, y + 0.5 * h], dtype=np.float64)
    scale = pad_to_aspect((w, h), aspect_ratio) * padding
    return center, scale


def get_affine_transform(
    center: Sequence[float] | np.ndarray,
    scale: Sequence[float] | np.ndarray,
    rot_deg: float,
    output_size: Sequence[int],
    udp: bool = True,
    inv: bool = False,
) -> np.ndarray:
    """2x3 float64 matrix mapping original-image px to crop px (or back with ``inv=True``).

    See the module docstring for the exact formula. ``output_size`` is ``(W, H)`` of the crop (model
    input or heatmap); ``scale`` is ``(w, h)`` in original-image px; ``rot_deg`` in degrees.
    """
    out_w, out_h = float(output_size[0]), float(output_size[1])
    cx, cy = float(center[0]), float(center[1])
    sw, sh = float(scale[0]), float(scale[1])
    if sw <= 0 or sh <= 0:
        raise ValueError(f"scale must be positive, got {(sw, sh)}")
    if udp:
        kx, ky = (out_w - 1.0) / sw, (out_h - 1.0) / sh
        dst_cx, dst_cy = (out_w - 1.0) / 2.0, (out_h - 1.0) / 2.0
    else:
        kx, ky = out_w / sw, out_h / sh
        dst_cx, dst_cy = out_w / 2.0, out_h / 2.0
    a = math.radians(float(rot_deg))
    cos_a, sin_a = math.cos(a), math.sin(a)
    # R(-a) = [[cos, sin], [-sin, cos]]; rows scaled by kx / ky.
    lin = np.array([[kx * cos_a, kx * sin_a], [-ky * sin_a, ky * cos_a]], dtype=np.float64)
    shift = np.array([dst_cx, dst_cy]) - lin @ np.array([cx, cy])
    mat = np.concatenate([lin, shift[:, None]], axis=1)
    return invert_affine(mat) if inv else mat


def invert_affine(mat: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine matrix (float64 2x3)."""
    mat = np.asarray(mat, dtype=np.float64)
    lin_inv = np.linalg.inv(mat[:, :2])
    return np.concatenate([lin_inv, (-lin_inv @ mat[:, 2])[:, None]], axis=1)


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 matrix of ``x -> outer(inner(x))``."""
    outer3 = np.vstack([np.asarray(outer, np.float64), [0.0, 0.0, 1.0]])
    inner3 = np.vstack([np.asarray(inner, np.float64), [0.0, 0.0, 1.0]])
    return (outer3 @ inner3)[:2]


def affine_points(points: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to ``points`` (..., 2) ``(x, y)``; returns float64 (..., 2) in the target frame."""
    pts = np.asarray(points, dtype=np.float64)
    mat = np.asarray(mat, dtype=np.float64)
    return pts @ mat[:, :2].T + mat[:, 2]


def warp_image(
    image: np.ndarray, mat: np.ndarray, output_size: Sequence[int], border_value: float = 0.0
) -> np.ndarray:
    """Resample ``image`` (H, W[, C]) into the crop frame of ``mat``; returns (out_h, out_w[, C]).

    Bilinear (``INTER_LINEAR``) with a constant border, as TokenPose/HRNet.
    """
    return cv2.warpAffine(
        image,
        np.asarray(mat, dtype=np.float64),
        (int(output_size[0]), int(output_size[1])),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )


def flip_matrix(image_width: int) -> np.ndarray:
    """2x3 horizontal mirror of an image ``image_width`` px wide: pixel column ``x -> W-1-x``."""
    return np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]], dtype=np.float64)


def flip_keypoints(
    keypoints: np.ndarray,
    visible: np.ndarray,
    image_width: int,
    flip_pairs: Sequence[tuple[int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Mirror keypoints (K, 2) px of an image ``image_width`` wide and swap left/right joints.

    Returns new ``(keypoints (K, 2), visible (K,))``; ``x -> image_width - 1 - x`` as ``flip_matrix``.
    """
    kpts = np.array(keypoints, dtype=np.float64, copy=True)
    vis = np.array(visible, copy=True)
    kpts[:, 0] = image_width - 1.0 - kpts[:, 0]
    perm = flip_permutation(len(kpts), flip_pairs)
    return kpts[perm], vis[perm]


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Index array ``p`` (K,) with ``flipped[i] = original[p[i]]`` for left/right swaps."""
    perm = np.arange(num_keypoints)
    for i, j in flip_pairs:
        perm[i], perm[j] = j, i
    return perm


def half_body_center_scale(
    keypoints: np.ndarray,
    visible: np.ndarray,
    upper_body_ids: Sequence[int],
    lower_body_ids: Sequence[int],
    aspect_ratio: float,
    rng: np.random.Generator,
    enlarge: float = 1.5,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Centre/scale of a crop around the visible upper or lower body joints (HRNet half-body aug).

    ``keypoints`` (K, 2) original-image px, ``visible`` (K,). As in HRNet/TokenPose the upper body is
    chosen when ``N(0,1) < 0.5`` (i.e. ~69% of the time, an HRNet quirk kept for parity) and it has more
    than 2 visible joints, else the lower body if it has more than 2, else the upper. The box is the
    joints' extent ``+1`` px, padded to ``aspect_ratio``, times ``enlarge``; the centre is the joints'
    mean. Returns ``None`` when fewer than 2 joints are selected.
    """
    vis = np.asarray(visible) > 0
    upper = [i for i in upper_body_ids if i < len(vis) and vis[i]]
    lower = [i for i in lower_body_ids if i < len(vis) and vis[i]]
    if rng.standard_normal() < 0.5 and len(upper) > 2:
        selected = upper
    else:
        selected = lower if len(lower) > 2 else upper
    if len(selected) < 2:
        return None
    pts = np.asarray(keypoints, dtype=np.float64)[selected]
    center = pts.mean(axis=0)
    w, h = pts.max(axis=0) - pts.min(axis=0) + 1.0
    scale = pad_to_aspect((w, h), aspect_ratio) * enlarge
    return center, scale


@dataclass(frozen=True)
class AugmentConfig:
    """TokenPose/HRNet COCO training augmentation (defaults = TokenPose COCO YAMLs)."""

    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    flip: bool = True
    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_joints: int = 8
    half_body_enlarge: float = 1.5
    # Photometric augmentation (off by default, so TokenPose/GTPT recipes are unchanged): brightness and
    # contrast factors drawn from [1 - j, 1 + j], saturation likewise, grayscale with ``gray_prob`` and a
    # 3x3/5x5 Gaussian blur with ``blur_prob``. Used for distillation on few images (see configs/distill).
    color_jitter: float = 0.0
    gray_prob: float = 0.0
    blur_prob: float = 0.0


@dataclass
class AugmentResult:
    """Outcome of `random_augment`: the crop parameters and the keypoints in the (possibly mirrored) image.

    ``keypoints`` (K, 2) px and ``visible`` (K,) are in the original image frame, mirrored when
    ``flipped`` (then joints are also swapped left/right and ``center`` is mirrored). To cut the crop from
    the *unflipped* image use `image_matrix`.
    """

    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flipped: bool
    keypoints: np.ndarray
    visible: np.ndarray
    image_width: int

    def crop_matrix(self, output_size: Sequence[int], udp: bool = True) -> np.ndarray:
        """Affine from the (possibly mirrored) image frame of ``keypoints`` to the crop."""
        return get_affine_transform(self.center, self.scale, self.rotation, output_size, udp=udp)

    def image_matrix(self, output_size: Sequence[int], udp: bool = True) -> np.ndarray:
        """Affine from the original, unflipped image to the crop (mirror folded in when ``flipped``)."""
        mat = self.crop_matrix(output_size, udp=udp)
        return compose_affine(mat, flip_matrix(self.image_width)) if self.flipped else mat


def random_augment(
    keypoints: np.ndarray,
    visible: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    image_width: int,
    *,
    aspect_ratio: float,
    rng: np.random.Generator,
    cfg: AugmentConfig,
    flip_pairs: Sequence[tuple[int, int]],
    upper_body_ids: Sequence[int],
    lower_body_ids: Sequence[int],
) -> AugmentResult:
    """Draw TokenPose's training augmentation from ``rng`` (order: half-body, scale, rotation, flip).

    * half-body with prob ``half_body_prob`` when more than ``half_body_min_joints`` joints are visible;
    * scale ``*= clip(N(1, sf), 1-sf, 1+sf)``;
    * rotation ``clip(N(0, rf), -2rf, 2rf)`` degrees with prob ``rotation_prob``, else 0;
    * horizontal flip with prob ``flip_prob``: keypoints mirrored and swapped, centre mirrored.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    vis = np.asarray(visible, dtype=np.float32)
    c = np.asarray(center, dtype=np.float64).copy()
    s = np.asarray(scale, dtype=np.float64).copy()

    if np.sum(vis > 0) > cfg.half_body_min_joints and rng.random() < cfg.half_body_prob:
        hb = half_body_center_scale(
            kpts, vis, upper_body_ids, lower_body_ids, aspect_ratio, rng, cfg.half_body_enlarge
        )
        if hb is not None:
            c, s = hb

    sf, rf = cfg.scale_factor, cfg.rotation_factor
    s = s * float(np.clip(rng.standard_normal() * sf + 1.0, 1.0 - sf, 1.0 + sf))
    rot_draw = float(np.clip(rng.standard_normal() * rf, -2.0 * rf, 2.0 * rf))
    rotation = rot_draw if rng.random() < cfg.rotation_prob else 0.0

    flipped = bool(cfg.flip and rng.random() < cfg.flip_prob)
    if flipped:
        kpts, vis = flip_keypoints(kpts, vis, image_width, flip_pairs)
        c[0] = image_width - 1.0 - c[0]
    return AugmentResult(c, s, rotation, flipped, kpts, vis, int(image_width))


def color_augment(crop_bgr: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Photometric augmentation of a uint8 BGR crop (keypoints unaffected); identity when all probs are 0.

    Why: with a few hundred training images the student would otherwise learn their lighting and
    colours. Draws happen only for enabled parts, after the geometric draws, so configs without them
    keep their exact random streams.
    """
    out = crop_bgr
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        b, c, sat = (float(rng.uniform(1.0 - j, 1.0 + j)) for _ in range(3))
        img = out.astype(np.float32)
        gray = img @ np.array([0.114, 0.587, 0.299], dtype=np.float32)  # BGR luma
        img = gray[..., None] + (img - gray[..., None]) * sat
        img = (img - gray.mean()) * c + gray.mean() * b
        out = np.clip(img, 0, 255).astype(np.uint8)
    if cfg.gray_prob > 0 and rng.random() < cfg.gray_prob:
        out = np.repeat(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)[..., None], 3, axis=2)
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        k = 3 if rng.random() < 0.5 else 5
        out = cv2.GaussianBlur(out, (k, k), 0)
    return out


def normalize_image(crop_bgr: np.ndarray) -> np.ndarray:
    """uint8 BGR crop (H, W, 3) -> float32 RGB (3, H, W) normalised with ImageNet mean/std."""
    rgb = crop_bgr[..., ::-1].astype(np.float32) / 255.0
    rgb = (rgb - PIXEL_MEAN_RGB) / PIXEL_STD_RGB
    return np.ascontiguousarray(rgb.transpose(2, 0, 1))
