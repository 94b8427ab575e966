"""SimCC / SA-SimDR 1-D classification targets, their decoding, and flipping (GTPT, SimCC).

Why a 1-D codec: SimCC replaces the 2-D heatmap by two classifications, one over ``k * W`` x-bins and one
over ``k * H`` y-bins (``k = split_ratio``, sub-pixel by construction), so a transformer head can emit
them straight from keypoint tokens with two linear layers. Encoder and decoder share the bin grid here
so they cannot disagree.

Frames used here:

* *input* px: pixels of the model-input crop, ``(x, y)``, pixel centres at integers, ``x in [0, W_in-1]``;
* *bins*: ``bin = k * x_in`` (x) and ``k * y_in`` (y); ``(W_in * k)`` x-bins and ``(H_in * k)`` y-bins,
  bin ``b`` reads back as ``b / k`` input px. The mapping does not depend on UDP; ``use_udp`` only picks
  the crop affine used by `decode_to_image` (GTPT uses the classic, non-UDP affine);
* *image* px: the original image, reached with `prunepose.codecs.heatmap.input_to_image`.

Official behaviour reproduced (leeyegy/SimCC ``generate_sa_simdr``, GTPT ``validate_sa_simdr``):

* target per axis ``exp(-(bin - k x)^2 / (2 sigma^2)) / (sigma sqrt(2 pi))``: a normalised-pdf Gaussian
  sampled on the bins, *not* renormalised to sum 1 (it sums to ~1 only when far from the borders);
* target weight 0 when the joint is not visible, or when the window ``int(x -/+ 3 sigma)`` lies outside
  the input. Quirk kept for parity: that window is measured in *input px* although ``sigma`` is in bins
  (SimCC's ``adjust_target_weight`` receives ``tmp_size = 3 sigma`` and the joint in input px);
* decoding: softmax per axis, integer argmax, ``coord = argmax / k``, ``score = min(max_x, max_y)``;
* flip test: the flipped x-logits are mirrored along the bins, left/right joints swapped, then shifted
  one bin to the left (``SHIFT_HEATMAP``); the *logits* of both passes are averaged before the softmax.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from prunepose.codecs.heatmap import _to_numpy, input_to_image
from prunepose.data.transforms import flip_permutation

LogitsT = TypeVar("LogitsT")


@dataclass(frozen=True)
class SimCCCodec:
    """Encode keypoints in the model-input crop as SimCC bin targets and decode SimCC logits back.

    ``input_size`` is ``(width, height)`` in input px; ``split_ratio`` ``k`` is bins per input px;
    ``sigma`` is the Gaussian's standard deviation in *bins* (GTPT: ``k = 2``, ``sigma = 4``, i.e. 2 px).
    """

    input_size: tuple[int, int] = (192, 256)
    split_ratio: float = 2.0
    sigma: float = 4.0
    use_udp: bool = False

    @property
    def num_bins(self) -> tuple[int, int]:
        """``(Wx, Hy)``: number of x-bins and y-bins, ``int(W_in * k)`` and ``int(H_in * k)``."""
        return int(self.input_size[0] * self.split_ratio), int(self.input_size[1] * self.split_ratio)

    # ------------------------------------------------------------------ encode
    def encode(
        self, keypoints: np.ndarray, visible: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Keypoints (K, 2) in input px + visibility (K,) -> ``target_x`` (K, Wx), ``target_y`` (K, Hy),
        ``weight`` (K,), all float32.

        Rows of joints with weight 0 are all zero. The weight is 1 for a visible (``> 0``), finite joint
        whose window ``[int(x - 3 sigma), int(x + 3 sigma + 1)]`` (input px, ``int`` truncating towards 0
        as in the official code) overlaps ``[0, W_in)`` (and likewise in y), else 0.
        """
        kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
        vis = np.asarray(visible, dtype=np.float64).reshape(-1)
        if len(vis) != len(kpts):
            raise ValueError(f"keypoints {kpts.shape} and visible {vis.shape} disagree on K")
        num = len(kpts)
        wx, hy = self.num_bins
        target_x = np.zeros((num, wx), dtype=np.float32)
        target_y = np.zeros((num, hy), dtype=np.float32)
        weight = np.zeros((num,), dtype=np.float32)

        finite = np.all(np.isfinite(kpts), axis=1)
        safe = np.where(finite[:, None], kpts, 0.0)
        tmp = 3.0 * self.sigma
        ul = np.trunc(safe - tmp)
        br = np.trunc(safe + tmp + 1.0)
        w_in, h_in = float(self.input_size[0]), float(self.input_size[1])
        inside = (ul[:, 0] < w_in) & (ul[:, 1] < h_in) & (br[:, 0] >= 0) & (br[:, 1] >= 0)
        keep = (vis > 0) & finite & inside
        weight[keep] = 1.0

        bins_x = np.arange(wx, dtype=np.float64)
        bins_y = np.arange(hy, dtype=np.float64)
        norm = self.sigma * math.sqrt(2.0 * math.pi)
        mu = safe * self.split_ratio  # (K, 2) bins
        for k in np.flatnonzero(keep):
            target_x[k] = np.exp(-((bins_x - mu[k, 0]) ** 2) / (2.0 * self.sigma**2)) / norm
            target_y[k] = np.exp(-((bins_y - mu[k, 1]) ** 2) / (2.0 * self.sigma**2)) / norm
        return target_x, target_y, weight

    # ------------------------------------------------------------------ decode
    def decode(
        self, simcc_x: Any, simcc_y: Any, apply_softmax: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """SimCC outputs (B, K, Wx) and (B, K, Hy) -> ``coords`` (B, K, 2) input px, ``scores`` (B, K).

        Both float32. ``apply_softmax=True`` treats the inputs as logits (the model's output, or the
        averaged flip-test logits from `flip_test_logits`); pass ``False`` for probabilities. The
        coordinate is the first integer argmax divided by ``split_ratio``; the score is the smaller of
        the two axes' maximum probabilities (GTPT). Accepts numpy arrays or torch tensors.
        """
        px = _to_numpy(simcc_x).astype(np.float64)
        py = _to_numpy(simcc_y).astype(np.float64)
        if px.ndim != 3 or py.ndim != 3 or px.shape[:2] != py.shape[:2]:
            raise ValueError(f"simcc_x / simcc_y must be (B, K, Wx) / (B, K, Hy), got {px.shape} / {py.shape}")
        wx, hy = self.num_bins
        if px.shape[2] != wx or py.shape[2] != hy:
            raise ValueError(f"expected {wx} x-bins and {hy} y-bins for input_size {self.input_size} and "
                             f"split_ratio {self.split_ratio}, got {px.shape[2]} and {py.shape[2]}")
        if apply_softmax:
            px, py = _softmax(px), _softmax(py)
        ix, iy = np.argmax(px, axis=2), np.argmax(py, axis=2)
        max_x = np.take_along_axis(px, ix[..., None], axis=2)[..., 0]
        max_y = np.take_along_axis(py, iy[..., None], axis=2)[..., 0]
        coords = np.stack([ix, iy], axis=-1).astype(np.float64) / self.split_ratio
        return coords.astype(np.float32), np.minimum(max_x, max_y).astype(np.float32)

    def decode_to_image(
        self,
        simcc_x: Any,
        simcc_y: Any,
        centers: np.ndarray,
        scales: np.ndarray,
        rotations: np.ndarray | Sequence[float] | None = None,
        apply_softmax: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`decode` then map to original-image px: ``coords`` (B, K, 2) float32, ``scores`` (B, K).

        ``centers``/``scales`` (B, 2) are the crops' centre and size in image px (the dataset's meta).
        """
        coords, scores = self.decode(simcc_x, simcc_y, apply_softmax=apply_softmax)
        img = input_to_image(coords, centers, scales, self.input_size, rotations, udp=self.use_udp)
        return img.astype(np.float32), scores


def flip_simcc(
    simcc_x: LogitsT, simcc_y: LogitsT, flip_pairs: Sequence[tuple[int, int]], shift: bool = True
) -> tuple[LogitsT, LogitsT]:
    """Bring SimCC outputs of a horizontally mirrored input back to the unmirrored frame.

    ``simcc_x`` (B, K, Wx) is reversed along the bins, both axes get left/right joints swapped, and with
    ``shift=True`` the x-output is moved one bin to the *left* (``out[..., :-1] = out[..., 1:]``, the last
    bin keeps its value), GTPT/SimCC's ``SHIFT_HEATMAP``: mirroring the input maps pixel ``x`` to
    ``W-1-x`` but reversing the bins maps bin ``b`` to ``k W - 1 - b``, i.e. ``x`` to ``W - 1/k - x``,
    one bin (``1/k`` px) too far right. Numpy arrays or torch tensors; returns the same type.
    """
    num = simcc_x.shape[1]  # type: ignore[attr-defined]
    perm = flip_permutation(num, flip_pairs)
    if isinstance(simcc_x, np.ndarray):
        out_x = simcc_x[:, perm, ::-1].copy()
        out_y = np.asarray(simcc_y)[:, perm].copy()
        if shift:
            out_x[..., :-1] = out_x[..., 1:].copy()
        return out_x, out_y  # type: ignore[return-value]
    import torch  # local: codecs stay importable without torch for numpy-only users

    index = torch.as_tensor(perm, device=simcc_x.device)  # type: ignore[attr-defined]
    out_x = simcc_x.flip(-1).index_select(1, index)  # type: ignore[attr-defined]
    out_y = simcc_y.index_select(1, index)  # type: ignore[attr-defined]
    if shift:
        out_x = out_x.clone()
        out_x[..., :-1] = out_x[..., 1:].clone()
    return out_x, out_y


def flip_test_logits(
    simcc_x: LogitsT,
    simcc_y: LogitsT,
    flipped_x: LogitsT,
    flipped_y: LogitsT,
    flip_pairs: Sequence[tuple[int, int]],
    shift: bool = True,
) -> tuple[LogitsT, LogitsT]:
    """GTPT flip test: average the logits of the plain pass with the flipped-back logits of the mirrored
    pass (``flipped_*`` as the model returned them for the mirrored input). Decode the result with
    `SimCCCodec.decode` (which applies the softmax). Shapes (B, K, Wx) / (B, K, Hy); numpy or torch.
    """
    back_x, back_y = flip_simcc(flipped_x, flipped_y, flip_pairs, shift=shift)
    return (simcc_x + back_x) * 0.5, (simcc_y + back_y) * 0.5  # type: ignore[operator]


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis (float64)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
