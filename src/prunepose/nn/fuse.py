"""Inference-time graph simplifications that keep outputs equal (to float rounding).

Why: in TokenPose/PPT the CNN backbone cannot be pruned, so every millisecond it costs dilutes what token
pruning saves. Folding BatchNorm into the preceding convolution and running the convolutions in
channels-last layout (what oneDNN prefers on CPU) makes the backbone markedly cheaper.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every eval-mode ``BatchNorm2d`` into the ``Conv2d`` that feeds it; returns how many were folded.

    Pairs are found by the naming our backbones use: attributes ``convN``/``bnN`` of one module, and
    ``Conv2d`` directly followed by ``BatchNorm2d`` inside an ``nn.Sequential``. The BN is replaced by
    ``nn.Identity``. Only valid for inference: the module must be in eval mode.
    """
    if module.training:
        raise RuntimeError("fold_batchnorm needs a module in eval mode (BatchNorm running statistics are used)")
    folded = 0
    for child in list(module.children()):
        folded += fold_batchnorm(child)
    if isinstance(module, nn.Sequential):
        for i in range(len(module) - 1):
            if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                module[i] = fuse_conv_bn_eval(module[i], module[i + 1])
                module[i + 1] = nn.Identity()
                folded += 1
        return folded
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d) and name.startswith("conv"):
            bn = getattr(module, "bn" + name[4:], None)
            if isinstance(bn, nn.BatchNorm2d):
                setattr(module, name, fuse_conv_bn_eval(child, bn))
                setattr(module, "bn" + name[4:], nn.Identity())
                folded += 1
    return folded


@torch.no_grad()
def prepare_for_inference(model: nn.Module, compile_backbone: bool = False) -> nn.Module:
    """Eval mode, BatchNorm folded into convolutions, conv weights in channels-last layout. In place.

    ``compile_backbone=True`` also runs the CNN backbone (static shapes, the part pruning cannot shrink)
    through ``torch.compile`` with weight freezing, which fuses conv + bias + ReLU + residual adds on CPU;
    it costs a few seconds of compilation on the first call and needs a C++ compiler. The transformer
    stays eager: its pruning indices are data-dependent. Outputs stay equal up to float rounding
    (tested); the model should not be trained afterwards.
    """
    model.eval()
    fold_batchnorm(model)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
    if compile_backbone and isinstance(getattr(model, "backbone", None), nn.Module):
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        model.backbone = torch.compile(model.backbone)
    model.prepared_for_inference = True
    return model
