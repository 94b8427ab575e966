"""CNN backbones that turn an image into the feature map that is cut into visual tokens."""
from __future__ import annotations

from torch import nn

from prunepose.nn.backbones.hrnet import HRNetStage3
from prunepose.nn.backbones.stemnet import StemNet


def build_backbone(name: str) -> tuple[nn.Module, int, int]:
    """Return ``(module, out_channels, stride)`` for a backbone name.

    ``none`` feeds raw RGB pixels to the tokenizer (TokenPose-T), ``stemnet`` is TokenPose-S's stem,
    ``hrnet_w32`` / ``hrnet_w48`` are HRNet up to stage 3, highest-resolution branch only.
    """
    if name == "none":
        return nn.Identity(), 3, 1
    if name == "stemnet":
        return StemNet(), StemNet.out_channels, 4
    if name in ("hrnet_w32", "hrnet_w48"):
        width = int(name[-2:])
        return HRNetStage3(width), width, 4
    raise ValueError(f"unknown backbone {name!r}; expected one of none, stemnet, hrnet_w32, hrnet_w48")


__all__ = ["build_backbone", "HRNetStage3", "StemNet"]
