"""CNN backbones that turn an image into the feature map that is cut into visual tokens."""
from __future__ import annotations

from torch import nn

from prunepose.nn.backbones.hrnet import HRNetStage3
from prunepose.nn.backbones.movenet import MoveNetLightningBackbone
from prunepose.nn.backbones.shufflenet import GTPTShuffleNet, GTPTShuffleNetB
from prunepose.nn.backbones.stemnet import StemNet

BACKBONES = ("none", "stemnet", "hrnet_w32", "hrnet_w48", "gtpt_t", "gtpt_s", "gtpt_b", "movenet_lightning")


def build_backbone(name: str) -> tuple[nn.Module, int, int]:
    """Return ``(module, out_channels, stride)`` for a backbone name.

    ``none`` feeds raw RGB pixels to the tokenizer (TokenPose-T), ``stemnet`` is TokenPose-S's stem,
    ``hrnet_w32`` / ``hrnet_w48`` are HRNet up to stage 3, highest-resolution branch only, ``gtpt_t`` /
    ``gtpt_s`` / ``gtpt_b`` are GTPT's ShuffleNetV2-style backbones (128 / 256 / 256 channels),
    ``movenet_lightning`` is MoveNet Lightning's MobileNetV2-FPN (24 channels), meant to carry weights
    converted from the teacher's ONNX graph (scripts/distill/convert_movenet_backbone.py).
    """
    if name == "none":
        return nn.Identity(), 3, 1
    if name == "stemnet":
        return StemNet(), StemNet.out_channels, 4
    if name in ("hrnet_w32", "hrnet_w48"):
        width = int(name[-2:])
        return HRNetStage3(width), width, 4
    if name in ("gtpt_t", "gtpt_s"):
        width = 128 if name == "gtpt_t" else 256
        return GTPTShuffleNet(width), width, 4
    if name == "gtpt_b":
        return GTPTShuffleNetB(), GTPTShuffleNetB.out_channels, 4
    if name == "movenet_lightning":
        return MoveNetLightningBackbone(), MoveNetLightningBackbone.out_channels, MoveNetLightningBackbone.stride
    raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(BACKBONES)}")


__all__ = ["BACKBONES", "build_backbone", "GTPTShuffleNet", "GTPTShuffleNetB", "HRNetStage3",
           "MoveNetLightningBackbone", "StemNet"]
