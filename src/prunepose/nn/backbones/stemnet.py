"""TokenPose-S's stem-net: two stride-2 3x3 convs then HRNet's ``layer1`` (4 bottlenecks, 64 -> 256).

Output: (B, 256, H/4, W/4). The same stem opens HRNet, which is why :class:`HRNetStage3` reuses it.
"""
from __future__ import annotations

import torch
from torch import nn

from prunepose.nn.backbones.resnet_blocks import BN_MOMENTUM, Bottleneck, make_layer


class StemNet(nn.Module):
    out_channels = 256

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(Bottleneck, 64, 64, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.layer1(x)
