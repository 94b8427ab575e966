"""Viewing rays of token-grid cells, for multi-view PPT's 3D positional encoding.

Why: multi-view PPT fuses tokens of several cameras in one attention. A 2D positional encoding says where a
token sits in its own crop, not where it looks in the shared world; the direction of the camera ray through
the token's centre does (TransFusion's and PPT's "3D PE"). The ray depends on the crop (which part of the
image the model sees) and on the camera (intrinsics and orientation), so it is computed from both.

Frames (same as :mod:`prunepose.geometry.camera` and :mod:`prunepose.data.transforms`):

* crop px: model-input pixels, pixel centres at integers. A ``grid_h x grid_w`` token grid on a ``W x H`` crop
  has token ``(r, c)`` centred at ``((c + 0.5) * W / grid_w - 0.5, (r + 0.5) * H / grid_h - 0.5)`` (the official
  multi-view PPT uses ``grid * 16 + 8 - 0.5`` for its 16-px tokens: the same formula);
* image px: ``crop_to_image`` (2x3 affine, the inverse of the crop affine) maps crop px to original-image px;
* camera frame: ``K^-1 [u, v, 1]`` (pinhole; lens distortion is ignored here, as in the official code: the
  ray only feeds a learned ``Linear(3, dim)``, and Human3.6M's distortion moves a ray by well under one token);
* world frame: ``R_world_to_cam^T`` applied to the camera-frame direction. The result is normalised to unit
  length; the camera centre is not needed for a direction.
"""
from __future__ import annotations

import torch

from prunepose.errors import ConfigError


def token_centers(grid_hw: tuple[int, int], input_size: tuple[int, int], device: torch.device | None = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, 2) crop-px ``(x, y)`` centres of a row-major ``grid_hw`` token grid on an ``input_size`` (w, h) crop."""
    gh, gw = grid_hw
    w, h = input_size
    ys = (torch.arange(gh, device=device, dtype=dtype) + 0.5) * (h / gh) - 0.5
    xs = (torch.arange(gw, device=device, dtype=dtype) + 0.5) * (w / gw) - 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=-1)


def pixel_rays(points: torch.Tensor, crop_to_image: torch.Tensor, intrinsics: torch.Tensor,
               rotation: torch.Tensor) -> torch.Tensor:
    """Unit world-frame ray directions through crop-px ``points``.

    Args:
        points: (..., N, 2) or (N, 2) crop px ``(x, y)``.
        crop_to_image: (..., 2, 3) affine crop px -> original-image px.
        intrinsics: (..., 3, 3) camera matrix ``K`` (fx, fy > 0).
        rotation: (..., 3, 3) world-to-camera rotation ``R`` (``x_cam = R (X - C)``).

    Returns (..., N, 3) unit vectors in the world frame. Raises :class:`ConfigError` on non-finite input,
    a singular crop affine or a non-positive focal length (a NaN ray would otherwise poison every token).
    """
    for name, t, tail in (("crop_to_image", crop_to_image, (2, 3)), ("intrinsics", intrinsics, (3, 3)),
                          ("rotation", rotation, (3, 3))):
        if tuple(t.shape[-2:]) != tail:
            raise ConfigError(f"rays: {name} must have shape (..., {tail[0]}, {tail[1]}), got {tuple(t.shape)}")
        if not torch.isfinite(t).all():
            raise ConfigError(f"rays: {name} contains non-finite values")
    if (crop_to_image[..., :, :2].det().abs() < 1e-12).any():
        raise ConfigError("rays: crop_to_image is singular (zero crop scale)")
    if (intrinsics[..., 0, 0] <= 0).any() or (intrinsics[..., 1, 1] <= 0).any():
        raise ConfigError("rays: intrinsics need positive focal lengths fx, fy")
    pts = points.to(crop_to_image.dtype)
    ones = torch.ones_like(pts[..., :1])
    image_px = torch.cat((pts, ones), -1) @ crop_to_image.transpose(-1, -2)  # (..., N, 2)
    homog = torch.cat((image_px, torch.ones_like(image_px[..., :1])), -1)  # (..., N, 3)
    cam = torch.linalg.solve(intrinsics.unsqueeze(-3), homog.unsqueeze(-1)).squeeze(-1)  # K^-1 [u v 1]
    world = cam @ rotation  # row-vector form of R^T d
    return world / world.norm(dim=-1, keepdim=True)


def token_rays(grid_hw: tuple[int, int], input_size: tuple[int, int], crop_to_image: torch.Tensor,
               intrinsics: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """(..., N, 3) unit world-frame rays through the centres of every token of the grid (row-major)."""
    centers = token_centers(grid_hw, input_size, device=crop_to_image.device, dtype=crop_to_image.dtype)
    lead = crop_to_image.shape[:-2]
    return pixel_rays(centers.expand(*lead, *centers.shape), crop_to_image, intrinsics, rotation)


__all__ = ["pixel_rays", "token_centers", "token_rays"]
