"""GTPT's ShuffleNetV2-style backbones (T, S and the top-down B).

Why a separate ShuffleNet here rather than a stock one: GTPT's published parameter counts and thop MACs
(T 44,352 / S 143,360 / B 3,032,256 backbone parameters) come from the official code's own variant, which
differs from torchvision/MMPose ShuffleNetV2 in ways that change the numbers: every convolution keeps its
bias, the stem is a single stride-2 3x3 conv with no max-pool, and there is a single stage (T/S) or a
small encoder-decoder with PixelShuffle upsampling (B). Module names and ``nn.Sequential`` positions follow
the official layout so that a checkpoint converter can map keys one to one.

All three return a stride-4 feature map: (B, C, H/4, W/4) with C = 128 (T) or 256 (S, B).
"""
from __future__ import annotations

import torch
from torch import nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of ``groups`` equal channel groups (ShuffleNet's cross-branch mixing).

    Written with ``reshape``/``flatten`` rather than ``view`` so it also works on channels-last tensors, and
    with an explicit 5-D ``reshape`` rather than ``unflatten``: the ONNX exporter loses the rank of
    ``unflatten``'s output and then freezes the batch size of everything downstream.
    """
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).flatten(1, 2)


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """Conv with ``padding = kernel // 2`` and a bias (the official GTPT convs never drop it)."""
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups)


class InvertedResidual(nn.Module):
    """ShuffleNetV2 unit.

    stride 1: split channels in half, transform the second half with ``branch2`` (1x1+BN+ReLU, dw3x3+BN,
    1x1+BN+ReLU), concatenate, shuffle. stride > 1: both branches see the whole input; ``branch1`` is
    dw3x3(stride)+BN, 1x1+BN+ReLU, ``branch2`` as above with the stride in its depthwise conv; the two
    halves are concatenated (channels double or change) and shuffled.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels % 2:
            raise ValueError(f"InvertedResidual needs even out_channels, got {out_channels}")
        half = out_channels // 2
        if stride == 1 and in_channels != out_channels:
            raise ValueError(f"stride-1 InvertedResidual keeps the width: got {in_channels} -> {out_channels}")
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                _conv(in_channels, in_channels, 3, stride, groups=in_channels),
                nn.BatchNorm2d(in_channels),
                _conv(in_channels, half, 1),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
            )
        self.branch2 = nn.Sequential(
            _conv(in_channels if stride > 1 else half, half, 1),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            _conv(half, half, 3, stride, groups=half),
            nn.BatchNorm2d(half),
            _conv(half, half, 1),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        else:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        return channel_shuffle(out, 2)


def _stem() -> nn.Sequential:
    """conv3x3 s2 3->64 (+bias) + BN + ReLU, no max-pool (stride 2)."""
    return nn.Sequential(_conv(3, 64, 3, stride=2), nn.BatchNorm2d(64), nn.ReLU(inplace=True))


def _down_stage(in_channels: int, out_channels: int, blocks: int = 4) -> nn.Sequential:
    """``blocks`` InvertedResiduals, the first with stride 2 (halves the resolution)."""
    return nn.Sequential(*(
        InvertedResidual(in_channels if i == 0 else out_channels, out_channels, stride=2 if i == 0 else 1)
        for i in range(blocks)
    ))


class GTPTShuffleNet(nn.Module):
    """GTPT-T/S backbone: stem (s2) + one stage of 4 InvertedResiduals (s4), 64 -> ``out_channels``."""

    def __init__(self, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = _stem()
        self.layer = _down_stage(64, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(self.conv1(x))


def _upsample(in_channels: int, out_channels: int) -> nn.Sequential:
    """x2 upsampling: 1x1 conv to 4x channels, PixelShuffle(2), BN, ReLU."""
    return nn.Sequential(
        _conv(in_channels, out_channels * 4, 1), nn.PixelShuffle(2), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


def _up_stage(channels: int, blocks: int = 2) -> nn.Sequential:
    """Fuse [skip, upsampled] (2x channels) with a 1x1 conv+BN+ReLU, then ``blocks`` stride-1 units."""
    fuse = nn.Sequential(_conv(channels * 2, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
    return nn.Sequential(fuse, *(InvertedResidual(channels, channels) for _ in range(blocks)))


class GTPTShuffleNetB(nn.Module):
    """GTPT-B backbone: a 3-level ShuffleNet encoder (s4/s8/s16, 256/384/512 ch) and a top-down decoder.

    The decoder upsamples s16 -> s8 and s8 -> s4 with PixelShuffle, concatenating the encoder feature of
    the same stride each time; the output is the stride-4 map with 256 channels.
    """

    out_channels = 256

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _stem()
        self.down_layer1 = _down_stage(64, 256)
        self.down_layer2 = _down_stage(256, 384)
        self.down_layer3 = _down_stage(384, 512)
        self.upsample1 = _upsample(512, 384)
        self.upsample2 = _upsample(384, 256)
        self.up_layer1 = _up_stage(384)
        self.up_layer2 = _up_stage(256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.down_layer1(self.conv1(x))
        x2 = self.down_layer2(x1)
        x3 = self.down_layer3(x2)
        x2 = self.up_layer1(torch.cat((x2, self.upsample1(x3)), dim=1))
        return self.up_layer2(torch.cat((x1, self.upsample2(x2)), dim=1))


def init_gtpt_backbone(module: nn.Module) -> None:
    """The official GTPT initialisation of the CNN: conv weights ~ N(0, 0.001), BN weight 1 / bias 0.

    Conv biases keep PyTorch's default (the official ``init_weights`` does not touch them).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.001)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
