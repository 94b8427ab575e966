"""HRNet up to stage 3, returning only the highest-resolution branch (TokenPose-B/L, PPT-B/L).

Layout (width W = 32 or 48): stem (as :class:`StemNet`) -> transition1 -> stage2 (1 module, branches
[W, 2W], 4 basic blocks each) -> transition2 -> stage3 (4 modules, branches [W, 2W, 4W]); the last
stage-3 module fuses into the highest-resolution branch only (``multi_scale_output=False``).
Module names follow the HRNet code base so ImageNet HRNet weights (``conv1`` .. ``stage3``) load as is.
"""
from __future__ import annotations

import torch
from torch import nn

from prunepose.nn.backbones.resnet_blocks import BN_MOMENTUM, BasicBlock, conv3x3
from prunepose.nn.backbones.stemnet import StemNet


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks followed by all-to-all multi-resolution fusion."""

    def __init__(self, channels: list[int], num_blocks: int, multi_scale_output: bool) -> None:
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(num_blocks)]) for c in channels
        )
        num_out = self.num_branches if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse(channels, j, i) for j in range(self.num_branches)) for i in range(num_out)
        )
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse(channels: list[int], j: int, i: int) -> nn.Module:
        """Map branch j onto branch i's resolution and width (identity when i == j)."""
        if j == i:
            return nn.Identity()
        if j > i:  # lower resolution -> upsample after a 1x1 projection
            return nn.Sequential(
                nn.Conv2d(channels[j], channels[i], 1, bias=False),
                nn.BatchNorm2d(channels[i], momentum=BN_MOMENTUM),
                nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
            )
        steps: list[nn.Module] = []
        for k in range(i - j):  # higher resolution -> strided 3x3 convs
            last = k == i - j - 1
            cout = channels[i] if last else channels[j]
            layers: list[nn.Module] = [conv3x3(channels[j], cout, 2), nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)]
            if not last:
                layers.append(nn.ReLU(inplace=True))
            steps.append(nn.Sequential(*layers))
        return nn.Sequential(*steps)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        outs = []
        for fuse_row in self.fuse_layers:
            total = fuse_row[0](xs[0])
            for j in range(1, self.num_branches):
                total = total + fuse_row[j](xs[j])
            outs.append(self.relu(total))
        return outs


def _transition(cin: list[int], cout: list[int]) -> nn.ModuleList:
    """Adapt branch widths; new lower-resolution branches come from the last existing one by a s2 conv."""
    layers = nn.ModuleList()
    for i, c in enumerate(cout):
        if i < len(cin):
            if cin[i] == c:
                layers.append(nn.Identity())
            else:
                layers.append(nn.Sequential(conv3x3(cin[i], c), nn.BatchNorm2d(c, momentum=BN_MOMENTUM),
                                            nn.ReLU(inplace=True)))
        else:  # nested one level deeper, as HRNet does (keys transitionK.i.0.0.*), so its weights load
            layers.append(nn.Sequential(nn.Sequential(conv3x3(cin[-1], c, 2), nn.BatchNorm2d(c, momentum=BN_MOMENTUM),
                                                      nn.ReLU(inplace=True))))
    return layers


class HRNetStage3(StemNet):
    """HRNet-W{width} through stage 3; output (B, width, H/4, W/4)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        c2 = [width, width * 2]
        c3 = [width, width * 2, width * 4]
        self.transition1 = _transition([256], c2)
        self.stage2 = nn.Sequential(HighResolutionModule(c2, 4, multi_scale_output=True))
        self.transition2 = _transition(c2, c3)
        self.stage3 = nn.Sequential(*[HighResolutionModule(c3, 4, multi_scale_output=i < 3) for i in range(4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        xs = [t(x) for t in self.transition1]
        for module in self.stage2:
            xs = module(xs)
        xs = [self.transition2[i](xs[i] if i < len(xs) else xs[-1]) for i in range(len(self.transition2))]
        for module in self.stage3:
            xs = module(xs)
        return xs[0]


__all__ = ["HRNetStage3", "HighResolutionModule"]
