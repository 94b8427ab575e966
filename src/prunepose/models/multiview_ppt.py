"""Multi-view PPT (Ma et al., ECCV 2022, Sec. 3.2): per-view token pruning, then "human area fusion".

Why this design: cross-view attention over every pixel of every view costs O(V^2 N^2). PPT already finds
the human area of each view (the visual tokens its keypoint queries attend to), so the views' *kept*
tokens are the only candidates for correspondences: fusing ``V * (J + K)`` tokens instead of ``V * (J + N)``.

What runs (the official ``TransformerMulti``; see the reference notes, section 2.7):

1. One shared-weight PPT (:class:`prunepose.models.tokenpose.TokenPose`, *not* a copy) runs its first
   ``depth - fusion_layers`` layers on every view independently (the views are folded into the batch),
   pruning at its ``prune_layers`` (PPT-S: 256 -> 180 -> 126 -> 89 tokens).
2. The keypoint tokens of all views and the kept visual tokens of all views are concatenated:
   ``[J tokens of view 1 .. view V, K tokens of view 1 .. view V]``.
3. The last ``fusion_layers`` layers of the same transformer attend over that joint sequence. Before each of
   them the visual tokens get their 2D sine PE plus, with ``pe3d``, a 3D PE ``Linear(3, dim)`` of the unit
   world-frame viewing ray through the token centre (:mod:`prunepose.geometry.rays`; crop affine + K + R,
   lens distortion ignored as in the official code).
4. The keypoint tokens are split back per view and decoded by the shared heatmap head.

``fusion_layers=0`` is the "no fusion" baseline (per-view PPT; triangulate afterwards) and ``prune_layers=()``
with fusion is "TokenPose + transformers" (PPT Table 4). Any number of views ``V >= 2``. The only parameter
added to PPT is the ray embedding. The official code fuses in the last 2 of 12 layers (layers 0-9 per view,
pruning at 3, 6, 9); the paper's text says 3; the registered configs follow the code.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from prunepose.errors import ConfigError
from prunepose.geometry.rays import token_rays
from prunepose.models.tokenpose import TokenPose, TokenPoseConfig, TokenState
from prunepose.registry import register_model


@dataclass(frozen=True)
class MultiViewPPTConfig(TokenPoseConfig):
    """A :class:`TokenPoseConfig` (the shared per-view PPT) plus the fusion stage."""

    fusion_layers: int = 2  # the last layers, run jointly over all views' tokens; 0 = no fusion
    pe3d: bool = True  # add Linear(3, dim) of each visual token's world viewing ray in the fusion layers
    num_views: int = 4  # views of the example input used for profiling; forward takes any V >= 2
    family: str = "mvppt"


@dataclass
class MultiViewPoseOutput:
    """heatmaps: (B, V, J, H_hm, W_hm); kept: per pruning stage, (B, V, K_s) absolute grid indices of each
    view's surviving visual tokens; num_fused_tokens: length of the fused sequence ``V * (J + K)`` (0 when
    the model does not fuse)."""

    heatmaps: torch.Tensor
    kept: list[torch.Tensor] = field(default_factory=list)
    num_fused_tokens: int = 0


class MultiViewPPT(nn.Module):
    """Call on images (B, V, 3, H, W) (or a list of V (B, 3, H, W)) and, for 3D PE, the views' geometry:
    ``crop_to_image`` (B, V, 2, 3), ``intrinsics`` (B, V, 3, 3), ``rotation`` (B, V, 3, 3) world-to-camera."""

    def __init__(self, config: MultiViewPPTConfig) -> None:
        super().__init__()
        c = config
        if c.num_stacks != 1:
            raise ConfigError(f"{c.name}: multi-view PPT needs a single-stack transformer, "
                              f"got num_stacks={c.num_stacks}")
        if not 0 <= c.fusion_layers < c.depth:
            raise ConfigError(f"{c.name}: fusion_layers must be in [0, depth={c.depth}), got {c.fusion_layers} "
                              "(at least one layer runs per view before the views are fused)")
        split = c.depth - c.fusion_layers
        if c.fusion_layers and any(i >= split for i in c.prune_layers):
            raise ConfigError(f"{c.name}: prune_layers {c.prune_layers} must come before the fusion layers "
                              f"(indices >= {split}); pruning inside the fusion is not defined")
        if c.num_views < 2:
            raise ConfigError(f"{c.name}: num_views must be >= 2, got {c.num_views}")
        self.config = config
        self.ppt = TokenPose(config)  # the shared-weight per-view PPT; its last layers double as fusion layers
        self.split = split
        self.ray_embed = nn.Linear(3, c.dim) if c.fusion_layers and c.pe3d else None
        if self.ray_embed is not None:
            nn.init.trunc_normal_(self.ray_embed.weight, std=0.02)
            nn.init.zeros_(self.ray_embed.bias)

    @property
    def keep_ratio(self) -> float:
        """The shared PPT's keep ratio (the training schedule and the profiler set/read it here)."""
        return self.ppt.keep_ratio

    @keep_ratio.setter
    def keep_ratio(self, value: float) -> None:
        self.ppt.keep_ratio = value

    @property
    def fuses(self) -> bool:
        return self.config.fusion_layers > 0

    def _stack_views(self, images: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        name = self.config.name
        if not torch.is_tensor(images):
            views = list(images)
            if len(views) < 2:
                raise ConfigError(f"{name}: needs at least 2 views, got {len(views)}")
            for i, v in enumerate(views):
                if not torch.is_tensor(v) or v.dim() != 4 or v.shape != views[0].shape:
                    got = tuple(v.shape) if torch.is_tensor(v) else type(v).__name__
                    raise ConfigError(f"{name}: view {i} has shape {got}, view 0 has {tuple(views[0].shape)}; "
                                      "every view must be cropped to the same (B, 3, H, W)")
            images = torch.stack(views, dim=1)
        if images.dim() != 5:
            raise ConfigError(f"{name}: expected images (B, V, 3, H, W), got shape {tuple(images.shape)}")
        if images.shape[1] < 2:
            raise ConfigError(f"{name}: needs at least 2 views, got V={images.shape[1]}")
        return images

    def forward(self, images: torch.Tensor | Sequence[torch.Tensor], crop_to_image: torch.Tensor | None = None,
                intrinsics: torch.Tensor | None = None, rotation: torch.Tensor | None = None) -> MultiViewPoseOutput:
        images = self._stack_views(images)
        b, v = images.shape[:2]
        state = self.ppt.embed(images.flatten(0, 1))  # (B*V, J + N, C); shape errors name the model
        for idx in range(self.split):
            self.ppt.run_layer(idx, state)
        num_fused = 0
        if self.fuses:
            fused = self._fuse(state, b, v, crop_to_image, intrinsics, rotation)
            num_fused = fused.x.shape[1]
            for idx in range(self.split, self.config.depth):
                self.ppt.run_layer(idx, fused)
            j = self.config.num_keypoints
            state.stack_outputs = [fused.stack_outputs[-1].reshape(b * v, j, -1)]
        out = self.ppt.decode(state)
        heatmaps = out.heatmaps.reshape(b, v, *out.heatmaps.shape[1:])
        kept = [k.reshape(b, v, -1) for k in out.kept]
        return MultiViewPoseOutput(heatmaps=heatmaps, kept=kept, num_fused_tokens=num_fused)

    def _fuse(self, state: TokenState, b: int, v: int, crop_to_image: torch.Tensor | None,
              intrinsics: torch.Tensor | None, rotation: torch.Tensor | None) -> TokenState:
        """Per-view states (B*V, J + K, C) -> one fused state (B, V*J + V*K, C) with 2D (+ 3D) PE."""
        j = self.config.num_keypoints
        x = state.x
        dim = x.shape[-1]
        k = x.shape[1] - j
        keypoints = x[:, :j].reshape(b, v * j, dim)
        visual = x[:, j:].reshape(b, v * k, dim)
        pos = state.pos.expand(b * v, -1, -1)
        if self.ray_embed is not None:
            rays = self._rays(b, v, crop_to_image, intrinsics, rotation).to(x.dtype)  # (B*V, N, 3)
            kept_rays = torch.gather(rays, 1, state.grid_index.unsqueeze(-1).expand(-1, -1, 3))
            pos = pos + self.ray_embed(kept_rays)
        return TokenState(x=torch.cat((keypoints, visual), dim=1), pos=pos.reshape(b, v * k, dim),
                          grid_index=state.grid_index.reshape(b, v * k), num_queries=v * j)

    def _rays(self, b: int, v: int, crop_to_image: torch.Tensor | None, intrinsics: torch.Tensor | None,
              rotation: torch.Tensor | None) -> torch.Tensor:
        name = self.config.name
        if crop_to_image is None or intrinsics is None or rotation is None:
            raise ConfigError(f"{name} uses a 3D positional encoding: pass crop_to_image (B, V, 2, 3), intrinsics "
                              "(B, V, 3, 3) and rotation (B, V, 3, 3), or use a config with pe3d=False")
        for arg, t, tail in (("crop_to_image", crop_to_image, (2, 3)), ("intrinsics", intrinsics, (3, 3)),
                             ("rotation", rotation, (3, 3))):
            if tuple(t.shape) != (b, v, *tail):
                raise ConfigError(f"{name}: {arg} must have shape {(b, v, *tail)} for {v} views, got {tuple(t.shape)}")
        grid = (self.ppt.grid_h, self.ppt.grid_w)
        rays = token_rays(grid, self.config.input_size, crop_to_image.double(), intrinsics.double(), rotation.double())
        return rays.flatten(0, 1)

    def profile_inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Positional arguments for one profiling forward on ``images`` (B, V, 3, H, W): with 3D PE, a
        plausible geometry (identity crop, 1000-px focal length, identity rotation; values do not change
        the counts)."""
        if self.ray_embed is None:
            return (images,)
        b, v = images.shape[:2]
        w, h = self.config.input_size
        crop = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(b, v, 2, 3)
        k = torch.tensor([[1000.0, 0.0, w / 2], [0.0, 1000.0, h / 2], [0.0, 0.0, 1.0]]).expand(b, v, 3, 3)
        return images, crop, k, torch.eye(3).expand(b, v, 3, 3)


def build_multiview_ppt(config: MultiViewPPTConfig) -> MultiViewPPT:
    return MultiViewPPT(config)


# Paper-sized: PPT-S at 256x256 (stem-net, 4x4 patches on the 64x64 map -> 256 tokens, 17 H36M joints,
# 64x64 heatmaps) as the official multi-view code builds it; fusion in the last 2 of 12 layers.
_PPT_S_256 = dict(backbone="stemnet", patch_size=(4, 4), input_size=(256, 256), heatmap_size=(64, 64),
                  skeleton="h36m", attn_scale="dim")
# Tiny: for CPU training on the synthetic set: 64x64 crops, 8x8 pixel patches (no CNN) -> 64 tokens,
# 6 layers of width 64; prune at layers 1 and 3 (64 -> 45 -> 32 tokens), fuse in the last 2.
_TINY = dict(backbone="none", patch_size=(8, 8), input_size=(64, 64), heatmap_size=(16, 16), skeleton="h36m",
             dim=64, depth=6, heads=4, mlp_ratio=2.0)
_VARIANTS = [
    MultiViewPPTConfig("mvppt_s", **_PPT_S_256, prune_layers=(3, 6, 9), keep_ratio=0.7),
    MultiViewPPTConfig("mvppt_s_no3dpe", **_PPT_S_256, prune_layers=(3, 6, 9), keep_ratio=0.7, pe3d=False),
    MultiViewPPTConfig("mvppt_s_nofusion", **_PPT_S_256, prune_layers=(3, 6, 9), keep_ratio=0.7, fusion_layers=0),
    MultiViewPPTConfig("mvtokenpose_s_fusion", **_PPT_S_256),
    MultiViewPPTConfig("mvppt_tiny", **_TINY, prune_layers=(1, 3), keep_ratio=0.7),
    MultiViewPPTConfig("mvppt_tiny_nofusion", **_TINY, prune_layers=(1, 3), keep_ratio=0.7, fusion_layers=0),
    MultiViewPPTConfig("mvtokenpose_tiny_fusion", **_TINY),
]
for _cfg in _VARIANTS:
    register_model(_cfg, build_multiview_ppt)
