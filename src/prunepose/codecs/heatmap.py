"""Gaussian heatmap targets (UDP) and their decoding (argmax + DARK), plus heatmap flipping.

Why a codec object: the target generator and the decoder must agree on the heatmap grid and on the
input->heatmap stride; keeping both in one dataclass makes a mismatch impossible.

Frames used here:

* *input* px: pixels of the model-input crop, ``(x, y)``, pixel centres at integers, ``x in [0, W_in-1]``;
* *heatmap* px: the same crop rendered at ``heatmap_size``; with UDP ``x_hm = x_in / s`` where
  ``s = (W_in - 1) / (W_hm - 1)`` (per axis), i.e. the first and last pixel centres of both grids coincide;
  without UDP (classic HRNet) ``s = W_in / W_hm`` and the Gaussian centre is rounded to the heatmap grid;
* *image* px: the original image; `input_to_image` maps input px back with the inverse crop affine of
  `prunepose.data.transforms.get_affine_transform` (same ``udp`` flag).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np

from prunepose.data.transforms import affine_points, flip_permutation, get_affine_transform

HeatmapsT = TypeVar("HeatmapsT")


@dataclass(frozen=True)
class HeatmapCodec:
    """Encode keypoints in the model-input crop as Gaussian heatmaps and decode heatmaps back.

    ``input_size`` / ``heatmap_size`` are ``(width, height)``; ``sigma`` is in heatmap px.
    ``blur_kernel`` is DARK's Gaussian-blur kernel size; ``None`` picks the odd size for which OpenCV's
    default sigma for that kernel equals ``sigma`` (11 for sigma=2, as TokenPose's ``BLUR_KERNEL``).
    """

    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    sigma: float = 2.0
    use_udp: bool = True
    blur_kernel: int | None = None

    @property
    def feat_stride(self) -> np.ndarray:
        """(2,) float64 input px per heatmap px, ``(sx, sy)``."""
        inp = np.asarray(self.input_size, dtype=np.float64)
        hm = np.asarray(self.heatmap_size, dtype=np.float64)
        return (inp - 1.0) / (hm - 1.0) if self.use_udp else inp / hm

    @property
    def kernel_size(self) -> int:
        """DARK blur kernel size (odd)."""
        if self.blur_kernel is not None:
            return int(self.blur_kernel)
        # OpenCV default: sigma = 0.3 * ((k - 1) / 2 - 1) + 0.8  ->  k = 2 * ((sigma - 0.8) / 0.3 + 1) + 1;
        # take the nearest odd size (11 for sigma 2, 17 for sigma 3 as MMPose recommends).
        exact = 2.0 * ((self.sigma - 0.8) / 0.3 + 1.0) + 1.0
        return max(3, 2 * round((exact - 1.0) / 2.0) + 1)

    # ------------------------------------------------------------------ encode
    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (K, 2) in input px + visibility (K,) -> ``heatmaps`` (K, Hh, Wh), ``weight`` (K,).

        Both float32. UDP: each map is ``exp(-((x-mx)^2 + (y-my)^2) / (2 sigma^2))`` over the whole map
        with the sub-pixel centre ``(mx, my) = keypoint / feat_stride`` (peak 1 at the centre). The weight
        is 0 (and the map all zero) when ``visible <= 0``, the keypoint is not finite, or the 3-sigma
        window around the rounded centre lies completely off the map (HRNet-UDP/TokenPose rule); else 1.
        Without UDP the centre is rounded to the grid and the Gaussian is cut to that window (HRNet).
        """
        kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
        vis = np.asarray(visible, dtype=np.float64).reshape(-1)
        if len(vis) != len(kpts):
            raise ValueError(f"keypoints {kpts.shape} and visible {vis.shape} disagree on K")
        num = len(kpts)
        w_hm, h_hm = int(self.heatmap_size[0]), int(self.heatmap_size[1])
        heatmaps = np.zeros((num, h_hm, w_hm), dtype=np.float32)
        weight = np.zeros((num,), dtype=np.float32)

        mu = kpts / self.feat_stride  # (K, 2) heatmap px
        finite = np.all(np.isfinite(mu), axis=1)
        mu_safe = np.where(finite[:, None], mu, 0.0)
        mu_round = np.floor(mu_safe + 0.5)
        radius = self.sigma * 3.0
        ul = mu_round - radius
        br = mu_round + radius + 1.0
        on_map = (ul[:, 0] < w_hm) & (ul[:, 1] < h_hm) & (br[:, 0] >= 0) & (br[:, 1] >= 0)
        keep = (vis > 0) & finite & on_map
        weight[keep] = 1.0

        xs = np.arange(w_hm, dtype=np.float64)
        ys = np.arange(h_hm, dtype=np.float64)
        centres = mu_safe if self.use_udp else mu_round
        for k in np.flatnonzero(keep):
            gx = np.exp(-((xs - centres[k, 0]) ** 2) / (2.0 * self.sigma**2))
            gy = np.exp(-((ys - centres[k, 1]) ** 2) / (2.0 * self.sigma**2))
            if not self.use_udp:
                gx[np.abs(xs - centres[k, 0]) > radius] = 0.0
                gy[np.abs(ys - centres[k, 1]) > radius] = 0.0
            heatmaps[k] = np.outer(gy, gx)
        return heatmaps, weight

    # ------------------------------------------------------------------ decode
    def decode(self, heatmaps: np.ndarray, refine: str = "dark") -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps (B, K, Hh, Wh) -> ``coords`` (B, K, 2) in *input* px and ``scores`` (B, K), float32.

        ``refine``: ``"dark"`` (DARK: blur, log, 2nd-order Taylor step at the argmax, TokenPose's
        ``POST_PROCESS``), ``"quarter"`` (classic HRNet quarter-pixel shift towards the higher neighbour)
        or ``"none"`` (integer argmax). Scores are the raw heatmap maxima; like HRNet, joints whose
        maximum is <= 0 get heatmap coordinate (0, 0). Accepts numpy arrays or torch tensors.
        """
        hm = _to_numpy(heatmaps).astype(np.float64)
        if hm.ndim != 4:
            raise ValueError(f"heatmaps must be (B, K, H, W), got shape {hm.shape}")
        coords, scores = _argmax(hm)
        if refine == "dark":
            coords = _dark_refine(hm, coords, self.kernel_size, self.sigma)
        elif refine == "quarter":
            coords = _quarter_refine(hm, coords)
        elif refine != "none":
            raise ValueError(f"refine must be 'dark', 'quarter' or 'none', got {refine!r}")
        coords = np.where((scores > 0)[..., None], coords, 0.0)
        return (coords * self.feat_stride).astype(np.float32), scores.astype(np.float32)

    def decode_to_image(
        self,
        heatmaps: np.ndarray,
        centers: np.ndarray,
        scales: np.ndarray,
        rotations: np.ndarray | Sequence[float] | None = None,
        refine: str = "dark",
    ) -> tuple[np.ndarray, np.ndarray]:
        """`decode` then map to original-image px: ``coords`` (B, K, 2) float32, ``scores`` (B, K).

        ``centers``/``scales`` (B, 2) are the crops' centre and size in image px (the dataset's meta).
        """
        coords, scores = self.decode(heatmaps, refine=refine)
        img = input_to_image(coords, centers, scales, self.input_size, rotations, udp=self.use_udp)
        return img.astype(np.float32), scores


def input_to_image(
    coords: np.ndarray,
    centers: np.ndarray,
    scales: np.ndarray,
    input_size: Sequence[int],
    rotations: np.ndarray | Sequence[float] | float | None = None,
    udp: bool = True,
) -> np.ndarray:
    """Map model-input px back to original-image px with the inverse crop affine.

    ``coords`` (B, K, 2) with ``centers``/``scales`` (B, 2), or (K, 2) with (2,); ``rotations`` in
    degrees (B,) or scalar, default 0. Returns float64 of ``coords``' shape.
    """
    pts = np.asarray(coords, dtype=np.float64)
    single = pts.ndim == 2
    if single:
        pts = pts[None]
    ctr = np.asarray(centers, dtype=np.float64).reshape(-1, 2)
    scl = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
    if rotations is None:
        rot = np.zeros(len(pts))
    else:
        rot = np.broadcast_to(np.asarray(rotations, dtype=np.float64).reshape(-1), (len(pts),))
    if len(ctr) != len(pts) or len(scl) != len(pts):
        raise ValueError(f"got {len(pts)} crops but {len(ctr)} centers and {len(scl)} scales")
    out = np.empty_like(pts)
    for b in range(len(pts)):
        inv = get_affine_transform(ctr[b], scl[b], rot[b], input_size, udp=udp, inv=True)
        out[b] = affine_points(pts[b], inv)
    return out[0] if single else out


def flip_heatmaps(
    heatmaps: HeatmapsT, flip_pairs: Sequence[tuple[int, int]], shift: bool = False
) -> HeatmapsT:
    """Mirror heatmaps (B, K, H, W) horizontally and swap left/right joints (flip test).

    Works on numpy arrays and torch tensors and returns the same type. With UDP the heatmap of the
    mirrored input is exactly the mirrored heatmap (column ``x -> W-1-x``), so TokenPose uses no shift;
    ``shift=True`` reproduces classic HRNet's one-pixel shift to the right (for non-UDP models).
    """
    num = heatmaps.shape[1]
    perm = flip_permutation(num, flip_pairs)
    if isinstance(heatmaps, np.ndarray):
        out = heatmaps[:, perm, :, ::-1].copy()
        if shift:
            out[..., 1:] = out[..., :-1].copy()
        return out
    import torch  # local: codecs stay importable without torch for numpy-only users

    index = torch.as_tensor(perm, device=heatmaps.device)
    out = heatmaps.flip(-1).index_select(1, index)
    if shift:
        out = out.clone()
        out[..., 1:] = out[..., :-1].clone()
    return out


# ---------------------------------------------------------------------- helpers
def _to_numpy(x: object) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def _argmax(hm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax (B, K, 2) ``(x, y)`` float64 and maxima (B, K) of heatmaps (B, K, H, W)."""
    b, k, _, w = hm.shape
    flat = hm.reshape(b, k, -1)
    idx = np.argmax(flat, axis=2)
    scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float64)
    return coords, scores


def _gaussian_blur(hm: np.ndarray, kernel: int, sigma: float) -> np.ndarray:
    """Blur each (H, W) map with a zero-padded separable Gaussian, then restore each map's maximum.

    Same as TokenPose's ``gaussian_blur`` (zero border, max-preserving rescale), vectorised.
    """
    k1d = cv2.getGaussianKernel(kernel, sigma).astype(np.float64).ravel()
    r = kernel // 2
    h, w = hm.shape[-2:]
    padded = np.pad(hm, [(0, 0)] * (hm.ndim - 2) + [(r, r), (r, r)])
    tmp = sum(k1d[i] * padded[..., :, i : i + w] for i in range(kernel))
    out = sum(k1d[i] * tmp[..., i : i + h, :] for i in range(kernel))
    orig_max = hm.max(axis=(-2, -1), keepdims=True)
    new_max = out.max(axis=(-2, -1), keepdims=True)
    return out * np.divide(orig_max, new_max, out=np.zeros_like(orig_max), where=new_max != 0)


def _dark_refine(hm: np.ndarray, coords: np.ndarray, kernel: int, sigma: float) -> np.ndarray:
    """DARK: Taylor step ``-H^-1 g`` of the log of the blurred heatmap at the integer argmax.

    Finite differences exactly as the DARK/TokenPose code (first derivative with step 1, second with
    step 2); the step is taken only where the argmax is at least 2 px from every border and the
    Hessian is invertible.
    """
    b, k, h, w = hm.shape
    logm = np.log(np.maximum(_gaussian_blur(hm, kernel, sigma), 1e-10))
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    pxc = np.clip(px, 2, w - 3)
    pyc = np.clip(py, 2, h - 3)
    bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")

    def at(dy: int, dx: int) -> np.ndarray:
        return logm[bi, ki, pyc + dy, pxc + dx]

    c0 = at(0, 0)
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2.0 * c0 + at(0, -2))
    dyy = 0.25 * (at(2, 0) - 2.0 * c0 + at(-2, 0))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    ok = inside & (det != 0)
    safe_det = np.where(ok, det, 1.0)
    off_x = -(dyy * dx - dxy * dy) / safe_det
    off_y = -(-dxy * dx + dxx * dy) / safe_det
    out = coords.copy()
    out[..., 0] += np.where(ok, off_x, 0.0)
    out[..., 1] += np.where(ok, off_y, 0.0)
    return out


def _quarter_refine(hm: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Classic HRNet: move 0.25 px towards the higher neighbour, where both neighbours exist."""
    b, k, h, w = hm.shape
    px = coords[..., 0].astype(np.int64)
    py = coords[..., 1].astype(np.int64)
    bi, ki = np.meshgrid(np.arange(b), np.arange(k), indexing="ij")
    out = coords.copy()
    ix = (px > 0) & (px < w - 1)
    iy = (py > 0) & (py < h - 1)
    pxc, pyc = np.clip(px, 1, w - 2), np.clip(py, 1, h - 2)
    gx = hm[bi, ki, py, pxc + 1] - hm[bi, ki, py, pxc - 1]
    gy = hm[bi, ki, pyc + 1, px] - hm[bi, ki, pyc - 1, px]
    out[..., 0] += np.where(ix, 0.25 * np.sign(gx), 0.0)
    out[..., 1] += np.where(iy, 0.25 * np.sign(gy), 0.0)
    return out
