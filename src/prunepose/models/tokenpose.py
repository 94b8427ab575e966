"""TokenPose (and PPT, which is TokenPose plus token pruning) as one configurable model.

Faithful to the official code (see the project's reference notes): keypoint tokens are prepended to the
visual tokens; the fixed sine PE is stored as a frozen parameter, added to visual tokens at the input
and re-added before every layer after the first (restarting per stack for the L variants); patches
are flattened channel-last; TokenPose-S uses the ``dim ** -0.5`` attention scale; the T/S/B head is
LN-Linear-LN-Linear without activation, the L head LN-Linear over the 3 stacks' concatenated keypoint
tokens. PPT prunes visual tokens after the attention residual and before the FFN at ``prune_layers``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from prunepose.errors import ConfigError
from prunepose.models.checks import check_images
from prunepose.models.outputs import PoseOutput
from prunepose.nn.backbones import build_backbone
from prunepose.nn.blocks import PreNormBlock
from prunepose.nn.posenc import sine_position_encoding_2d
from prunepose.pruning.selectors import AttentionTopKSelector, gather_tokens
from prunepose.registry import register_model


@dataclass
class TokenState:
    """Tokens between two layers of :class:`TokenPose` (see :meth:`TokenPose.run_layer`).

    x: (B, Q + N_cur, C), the Q query (keypoint) tokens first; pos: (1 or B, N_cur, C) the PE of the
    current visual tokens; grid_index: (B, N_cur) their absolute row-major positions on the token grid.
    """

    x: torch.Tensor
    pos: torch.Tensor
    grid_index: torch.Tensor
    num_queries: int
    kept: list[torch.Tensor] = field(default_factory=list)
    attention: list[torch.Tensor] | None = None
    stack_outputs: list[torch.Tensor] = field(default_factory=list)
    features: torch.Tensor | None = None  # backbone output, kept only for a convolutional base head


@dataclass(frozen=True)
class TokenPoseConfig:
    """Architecture of a TokenPose / PPT variant. Sizes are (width, height)."""

    name: str
    backbone: str  # a name of prunepose.nn.backbones.BACKBONES
    patch_size: tuple[int, int]  # (w, h) on the backbone feature map
    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    num_keypoints: int = 17
    skeleton: str = "coco"
    dim: int = 192
    depth: int = 12  # layers per stack
    num_stacks: int = 1  # 3 for the L variants (keypoint tokens of the stacks concatenated)
    heads: int = 8
    mlp_ratio: float = 3.0
    attn_scale: str = "head"  # "head": head_dim**-0.5 ; "dim": dim**-0.5 (TokenPose-S quirk)
    prune_layers: tuple[int, ...] = ()  # 0-based global layer indices where PPT prunes
    keep_ratio: float = 1.0  # fraction of the current visual tokens kept at each pruning layer
    sigma: float = 2.0  # heatmap Gaussian sigma used for training targets
    flip_shift: bool = False  # TokenPose (UDP) averages flipped heatmaps without a 1-px shift
    family: str = "tokenpose"
    # Pretrained backbone kept fixed: no gradients (saves the CPU the backward pass) and always in eval mode.
    freeze_backbone: bool = False
    # Learning-rate multiplier of the backbone's parameters (a pretrained backbone fine-tuned gently).
    backbone_lr_mult: float = 1.0
    # "none": heatmaps come from the keypoint tokens alone (TokenPose). "movenet": MoveNet Lightning's
    # pretrained heatmap head on the backbone features gives base logits, each keypoint token adds a residual
    # (its projection dotted with projected per-pixel features; zero at init) and the output is
    # sigmoid(base + residual), so training starts at the teacher family's accuracy and the transformer (with
    # PPT pruning) learns the correction.
    conv_head: str = "none"
    # With conv_head "movenet": also MoveNet's centre + regression heads, whose regressed keypoint positions
    # damp each heatmap away from the person in the middle of the crop (MoveNetPersonPrior).
    person_prior: bool = False

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (rows, cols)."""
        stride = 1 if self.backbone == "none" else 4
        return (self.input_size[1] // stride // self.patch_size[1], self.input_size[0] // stride // self.patch_size[0])


class TokenPose(nn.Module):
    """TokenPose / PPT. Call on (B, 3, H, W) normalised RGB; returns :class:`PoseOutput`."""

    def __init__(self, config: TokenPoseConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.input_size[0] // c.heatmap_size[0] != 4 or c.input_size[1] // c.heatmap_size[1] != 4:
            raise ConfigError(f"{c.name}: heatmap_size {c.heatmap_size} must be input_size {c.input_size} / 4")
        self.backbone, channels, stride = build_backbone(c.backbone)
        fw, fh = c.input_size[0] // stride, c.input_size[1] // stride
        pw, ph = c.patch_size
        if fw % pw or fh % ph:
            raise ConfigError(f"{c.name}: feature map {fw}x{fh} (w x h) is not divisible by patch {pw}x{ph}")
        self.grid_h, self.grid_w = fh // ph, fw // pw
        self.num_tokens = self.grid_h * self.grid_w
        self.patch_embed = nn.Linear(channels * pw * ph, c.dim)
        self.keypoint_tokens = nn.Parameter(torch.zeros(1, c.num_keypoints, c.dim))
        self.pos_embed = nn.Parameter(
            sine_position_encoding_2d(self.grid_h, self.grid_w, c.dim), requires_grad=False
        )
        scale = (c.dim // c.heads) ** -0.5 if c.attn_scale == "head" else c.dim**-0.5
        self.blocks = nn.ModuleList(
            PreNormBlock(c.dim, c.heads, c.mlp_ratio, scale) for _ in range(c.depth * c.num_stacks)
        )
        hm_pixels = c.heatmap_size[0] * c.heatmap_size[1]
        head_in = c.dim * c.num_stacks
        hidden = hm_pixels // 8
        if c.conv_head != "none":
            # Residual as a dot product of each keypoint token with per-pixel features (a dynamic 1x1 conv):
            # a dense token -> H*W map would learn a mean-pose position prior from few persons, this cannot.
            self.head = nn.Sequential(nn.LayerNorm(head_in), nn.Linear(head_in, c.dim))
            self.pixel_proj = nn.Conv2d(channels, c.dim, 1)
        elif head_in <= hidden * 0.5:
            self.head = nn.Sequential(nn.LayerNorm(head_in), nn.Linear(head_in, hidden), nn.LayerNorm(hidden),
                                      nn.Linear(hidden, hm_pixels))
        else:
            self.head = nn.Sequential(nn.LayerNorm(head_in), nn.Linear(head_in, hm_pixels))
        self.selector = AttentionTopKSelector()
        self.keep_ratio = c.keep_ratio  # mutable: the training schedule changes it (validated on set)
        self.conv_head: nn.Module | None = None
        self.person_prior: nn.Module | None = None
        if c.conv_head == "movenet":
            if c.backbone != "movenet_lightning":
                raise ConfigError(f"{c.name}: conv_head 'movenet' needs backbone 'movenet_lightning'")
            from prunepose.nn.backbones.movenet import MoveNetHeatmapHead, MoveNetPersonPrior

            self.conv_head = MoveNetHeatmapHead(channels, num_keypoints=c.num_keypoints)
            grid = c.input_size[1] // stride
            self.person_prior = MoveNetPersonPrior(channels, num_keypoints=c.num_keypoints, grid=grid) \
                if c.person_prior else None
            if self.person_prior is not None:  # read at an argmax: no gradient ever reaches it
                self.person_prior.requires_grad_(False)
        elif c.conv_head != "none":
            raise ConfigError(f"{c.name}: conv_head must be 'none' or 'movenet', got {c.conv_head!r}")
        self._init_weights()
        if self.conv_head is not None:  # the residual starts at zero: output = the pretrained head's heatmaps
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)
        if c.freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
            if self.conv_head is not None:  # the pretrained head belongs to the frozen features
                self.conv_head.requires_grad_(False)

    def train(self, mode: bool = True) -> TokenPose:
        """Switch train/eval mode; a frozen backbone stays in eval mode (its statistics are pretrained)."""
        super().train(mode)
        if self.config.freeze_backbone:
            self.backbone.eval()
        return self

    @property
    def keep_ratio(self) -> float:
        """Fraction of the current visual tokens each pruning layer keeps (1.0 = no pruning)."""
        return self._keep_ratio

    @keep_ratio.setter
    def keep_ratio(self, value: float) -> None:
        value = float(value)
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{self.config.name}: keep_ratio must be in (0, 1], got {value}")
        self._keep_ratio = value

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.keypoint_tokens, std=0.02)
        for name, m in self.named_modules():
            if name.startswith("backbone"):
                if isinstance(m, nn.Conv2d) and self.config.backbone.startswith("hrnet"):
                    nn.init.normal_(m.weight, std=0.001)
                continue
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def optimizer_groups(self, lr: float) -> list[dict]:
        """Parameter groups for the optimizer: the pretrained parts (backbone and, when present, the
        convolutional head) at ``lr * backbone_lr_mult``, the transformer at ``lr``.

        Each group carries its ``lr_mult`` so a resumed run can rebuild the schedule per group.
        """
        mult = float(self.config.backbone_lr_mult)
        pretrained = [self.backbone] + [m for m in (self.conv_head, self.person_prior) if m is not None]
        backbone = [p for m in pretrained for p in m.parameters() if p.requires_grad]
        ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest, "lr": lr, "lr_mult": 1.0}]
        if backbone:
            groups.append({"params": backbone, "lr": lr * mult, "lr_mult": mult})
        return groups

    def _check_input(self, images: torch.Tensor) -> None:
        check_images(images, self.config.name, self.config.input_size)

    def tokenize(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) feature map -> (B, N, dim) tokens, patches flattened channel-last (p1 p2 c)."""
        b, ch, h, w = features.shape
        pw, ph = self.config.patch_size
        x = features.reshape(b, ch, h // ph, ph, w // pw, pw).permute(0, 2, 4, 3, 5, 1)
        return self.patch_embed(x.reshape(b, (h // ph) * (w // pw), ph * pw * ch))

    def forward(self, images: torch.Tensor, return_attention: bool = False) -> PoseOutput:
        state = self.embed(images, return_attention)
        for idx in range(len(self.blocks)):
            self.run_layer(idx, state)
        return self.decode(state)

    # The forward pass in three stages, so that multi-view PPT (models/multiview_ppt.py) can run the first
    # layers per view, fuse the views' tokens for the last layers and decode per view with these same
    # methods instead of a copy of the loop.

    def embed(self, images: torch.Tensor, return_attention: bool = False) -> TokenState:
        """Backbone + patch embedding + keypoint tokens: the state before layer 0."""
        self._check_input(images)
        if self.config.backbone != "none":  # oneDNN convolutions are faster on channels-last input
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.backbone(images)
        visual = self.tokenize(features) + self.pos_embed
        b = visual.shape[0]
        x = torch.cat((self.keypoint_tokens.expand(b, -1, -1), visual), dim=1)
        grid_index = torch.arange(self.num_tokens, device=images.device).expand(b, -1)
        return TokenState(x=x, pos=self.pos_embed, grid_index=grid_index, num_queries=self.config.num_keypoints,
                          attention=[] if return_attention else None,
                          features=features if self.conv_head is not None else None)

    def run_layer(self, idx: int, state: TokenState) -> None:
        """Run block ``idx`` on ``state`` in place: PE re-add, attention, PPT pruning, FFN.

        The first ``state.num_queries`` tokens are queries that are never pruned (J keypoint tokens; V*J
        when several views' tokens are fused); ``state.pos`` is the PE of the current visual tokens.
        """
        c = self.config
        j = state.num_queries
        x = state.x
        if idx % c.depth != 0:  # PE re-added before every layer but the first of each stack
            x = torch.cat((x[:, :j], x[:, j:] + state.pos), dim=1)
        prune = self.keep_ratio < 1.0 and idx in c.prune_layers
        need_rows = prune or state.attention is not None
        block = self.blocks[idx]
        x, rows = block.attend(x, query_rows=j if need_rows else 0)
        if state.attention is not None:
            state.attention.append(self._scatter_attention(rows, state.grid_index, j))
        if prune:
            keep = self.selector.select(rows, j, self.keep_ratio)
            x = torch.cat((x[:, :j], gather_tokens(x[:, j:], keep)), dim=1)
            state.pos = gather_tokens(state.pos, keep)
            state.grid_index = torch.gather(state.grid_index, 1, keep)
            state.kept.append(state.grid_index)
        state.x = block.feed_forward(x)
        if idx % c.depth == c.depth - 1:
            state.stack_outputs.append(state.x[:, :j])

    def decode(self, state: TokenState) -> PoseOutput:
        """Keypoint tokens of the last layer of every stack -> heatmaps (B, J, H_hm, W_hm)."""
        c = self.config
        tokens = torch.cat(state.stack_outputs, dim=-1) if c.num_stacks > 1 else state.stack_outputs[-1]
        if self.conv_head is None:
            heatmaps = self.head(tokens).reshape(tokens.shape[0], c.num_keypoints, c.heatmap_size[1],
                                                 c.heatmap_size[0])
            return PoseOutput(heatmaps=heatmaps, kept=state.kept, attention=state.attention)
        if state.features is None:
            raise ConfigError(f"{c.name}: decode needs the backbone features for its convolutional head")
        pixels = self.pixel_proj(state.features)  # (B, dim, h, w)
        b, d, h, w = pixels.shape
        residual = torch.bmm(self.head(tokens), pixels.reshape(b, d, h * w)) * d**-0.5
        logits = self.conv_head(state.features) + residual.reshape(b, c.num_keypoints, h, w)
        heatmaps = torch.sigmoid(logits)
        if self.person_prior is not None:
            heatmaps = heatmaps * self.person_prior(state.features)
        return PoseOutput(heatmaps=heatmaps, kept=state.kept, attention=state.attention, logits=logits)

    def _scatter_attention(self, rows: torch.Tensor, grid_index: torch.Tensor, j: int) -> torch.Tensor:
        """Head-averaged keypoint->visual attention (B, J, N_cur) placed on the full grid (B, J, N)."""
        vis = rows[..., j:].mean(dim=1)
        full = vis.new_zeros(vis.shape[0], j, self.num_tokens)
        return full.scatter(2, grid_index.unsqueeze(1).expand(-1, j, -1), vis)


def build_tokenpose(config: TokenPoseConfig) -> TokenPose:
    return TokenPose(config)


_VARIANTS = [
    TokenPoseConfig("tokenpose_t", backbone="none", patch_size=(12, 16), heads=16),
    TokenPoseConfig("tokenpose_s_v1", backbone="stemnet", patch_size=(3, 4), attn_scale="dim"),
    TokenPoseConfig("tokenpose_s_v2", backbone="stemnet", patch_size=(2, 2), attn_scale="dim"),
    TokenPoseConfig("tokenpose_b", backbone="hrnet_w32", patch_size=(3, 4)),
    TokenPoseConfig("tokenpose_l_d24", backbone="hrnet_w48", patch_size=(3, 4), depth=8, num_stacks=3, heads=12),
    TokenPoseConfig("tokenpose_l_d6_mpii", backbone="hrnet_w48", patch_size=(4, 4), depth=2, num_stacks=3,
                    input_size=(256, 256), heatmap_size=(64, 64), num_keypoints=16, skeleton="mpii"),
    # PPT: the same architectures with Human Token Identification at layers 3, 6, 9 (keep 0.7).
    TokenPoseConfig("ppt_s", backbone="stemnet", patch_size=(3, 4), attn_scale="dim", prune_layers=(3, 6, 9),
                    keep_ratio=0.7, family="ppt"),
    TokenPoseConfig("ppt_b", backbone="hrnet_w32", patch_size=(3, 4), prune_layers=(3, 6, 9), keep_ratio=0.7,
                    family="ppt"),
    # PPT-L/D6 as the official code builds it: the TB architecture (one 6-layer stack) on HRNet-W48; the
    # hard-coded pruning layers [3, 6, 9] mean it prunes only once (256 -> 180 tokens).
    # PPT on MoveNet Lightning's pretrained, frozen MobileNetV2-FPN (24 ch at stride 4) at 128x96: 8x8 tokens,
    # 6 layers, pruning at layers 2 and 4. Why: the distilled default model cannot learn features from ~1,300
    # pseudo-labelled persons on a CPU; the teacher's own features come pretrained (Apache-2.0).
    TokenPoseConfig("ppt_movenet", backbone="movenet_lightning", patch_size=(3, 4), input_size=(96, 128),
                    heatmap_size=(24, 32), depth=6, prune_layers=(2, 4), keep_ratio=0.7, family="ppt",
                    freeze_backbone=True),
    # The second default-model design: the same pretrained MobileNetV2-FPN at MoveNet's own 192x192 with its
    # own heatmap head as the base and its person prior (centre + regression heads), a small PPT (dim 96,
    # 4 layers, 12x12 tokens of 4x4 feature patches, pruning at layers 1 and 2) adding a heatmap residual.
    # The pretrained parts stay frozen: fine-tuning them even at lr 6e-6 (backbone_lr_mult 0.02) lost 0.05
    # validation mean OKS within 35 steps on the ~540 training persons available here.
    # Why: on real COCO persons the 128x96 transformer-only student stayed far below Lightning itself.
    TokenPoseConfig("ppt_movenet192", backbone="movenet_lightning", patch_size=(4, 4), input_size=(192, 192),
                    heatmap_size=(48, 48), dim=96, depth=4, heads=4, mlp_ratio=2.0, prune_layers=(1, 2),
                    keep_ratio=0.7, family="ppt", freeze_backbone=True, conv_head="movenet", person_prior=True),
    TokenPoseConfig("ppt_l_d6", backbone="hrnet_w48", patch_size=(3, 4), depth=6, prune_layers=(3, 6, 9),
                    keep_ratio=0.7, family="ppt"),
]
for _cfg in _VARIANTS:
    register_model(_cfg, build_tokenpose)
