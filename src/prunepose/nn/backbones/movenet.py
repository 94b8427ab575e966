"""MoveNet SinglePose Lightning's feature extractor (MobileNetV2 + FPN to stride 4) as a plain torch module.

Why: training a pose transformer from scratch on a CPU with ~1,300 pseudo-labelled persons does not beat a
mean pose; MoveNet's *pretrained* convolutional features (Apache-2.0, the distillation teacher itself) give
the transformer a localisation signal for free. This module reproduces, op for op, the part of
``movenet-lightning.onnx`` (tf2onnx export of the TF.js graph) that ends at the 24-channel stride-4 tensor
``model_1/re_lu_2/Relu`` feeding the four CenterNet heads; ``scripts/distill/convert_movenet_backbone.py``
copies the ONNX initializers into it and checks it against onnxruntime.

Graph facts reproduced here: BatchNorm is folded into every conv (so each conv has a bias and there is no
BN); MobileNetV2 blocks use ReLU6 (ONNX ``Clip(0, 6)``); stride-2 3x3 convs use TF ``SAME`` padding, which
for even sizes is 0 before / 1 after (ONNX pads ``[0, 0, 1, 1]``), not torch's symmetric 1; the FPN
upsamples with ``Resize(linear, half_pixel, x2)`` (= bilinear, ``align_corners=False``), adds a 1x1 lateral
conv of the MobileNet feature, then a separable conv (depthwise 3x3 without bias, pointwise with bias) and
ReLU. The graph's preprocessing is ``x * 0.00784302 - 1`` on 0-255 RGB (``Cast``, ``Sub 0``, ``Mul``,
``Sub 1``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# prunepose.data.transforms.normalize_image: (rgb / 255 - mean) / std, RGB order.
_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# The ONNX graph's input scaling (float32 constant of node ``truediv_1``: 1/127.5 as TF.js stored it).
_MOVENET_SCALE = 0.007843017578125
# Name of the stride-4 feature tensor (input of all four heads) in movenet-lightning.onnx.
FEATURE_TENSOR = ("StatefulPartitionedCall/center_net_mobile_net_v2fpn_feature_extractor/model_1/re_lu_2/"
                  "Relu_Relu__101:0")
# MobileNetV2 inverted residual settings (expansion t, output channels c, repeats n, first stride s).
_MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                  (6, 320, 1, 1))


def _tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad like TensorFlow ``SAME``: total ``max((ceil(n/s)-1)*s + k - n, 0)``, the extra pixel after."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim (W) first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads) if any(pads) else x


class _SameConv(nn.Conv2d):
    """3x3 conv with TF ``SAME`` padding; stride 2 needs the asymmetric pad a fixed torch padding cannot give.

    At stride 1 ``SAME`` is the symmetric ``k // 2``, so the conv pads itself: no separate pad op (in an ONNX
    export a ``Pad`` node costs a copy and a layout reorder).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if self.stride[0] == 1 and self.stride[1] == 1:
            self.padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1 and self.stride[1] == 1:
            return super().forward(x)
        return super().forward(_tf_same_pad(x, self.kernel_size[0], self.stride[0]))


class _InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand + ReLU6] -> 3x3 depthwise + ReLU6 -> 1x1 project (linear), [+ input]."""

    def __init__(self, cin: int, cout: int, expand: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = nn.Conv2d(cin, hidden, 1) if expand != 1 else None
        self.depthwise = _SameConv(hidden, hidden, 3, stride=stride, groups=hidden)
        self.project = nn.Conv2d(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def convs(self) -> list[nn.Conv2d]:
        """The block's convs in the ONNX graph's node order (for the weight converter)."""
        return ([self.expand] if self.expand is not None else []) + [self.depthwise, self.project]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class _SeparableConv(nn.Module):
    """Keras ``SeparableConv2D`` + ReLU as in MoveNet's FPN: depthwise 3x3 (no bias), pointwise 1x1 (bias)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.pointwise(self.depthwise(x)))


class MoveNetLightningBackbone(nn.Module):
    """MoveNet Lightning's MobileNetV2-FPN: (B, 3, H, W) ImageNet-normalised RGB -> (B, 24, H/4, W/4).

    H and W must be divisible by 32 (the FPN adds stride-32 features upsampled x2 three times to the
    stride-16/8/4 ones). The input is first mapped back to 0-255 RGB and then through the graph's own
    ``x / 127.5 - 1``, so the pretrained weights see exactly what they were trained on.
    """

    out_channels = 24
    stride = 4

    def __init__(self) -> None:
        super().__init__()
        mean = torch.tensor(_IMAGENET_MEAN_RGB).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD_RGB).view(1, 3, 1, 1)
        # normalised -> MoveNet input in one affine map: ((x * std + mean) * 255) * s - 1
        self.register_buffer("in_scale", std * 255.0 * _MOVENET_SCALE, persistent=False)
        self.register_buffer("in_shift", mean * 255.0 * _MOVENET_SCALE - 1.0, persistent=False)
        self.conv1 = _SameConv(3, 32, 3, stride=2)
        blocks = []
        cin = 32
        for t, c, n, s in _MBV2_SETTINGS:
            for i in range(n):
                blocks.append(_InvertedResidual(cin, c, t, s if i == 0 else 1))
                cin = c
        self.blocks = nn.ModuleList(blocks)  # blocks[k] is Keras "block_k" (blocks[0] = "expanded_conv")
        self.conv_last = nn.Conv2d(320, 1280, 1)  # Keras "Conv_1" + "out_relu"
        # FPN: lateral 1x1 convs on blocks 9 / 5 / 2 (stride 16 / 8 / 4), separable convs after each add.
        self.top = nn.Conv2d(1280, 64, 1)
        self.lateral16 = nn.Conv2d(64, 64, 1)
        self.smooth16 = _SeparableConv(64, 32)
        self.lateral8 = nn.Conv2d(32, 32, 1)
        self.smooth8 = _SeparableConv(32, 24)
        self.lateral4 = nn.Conv2d(24, 24, 1)
        self.smooth4 = _SeparableConv(24, 24)

    def onnx_conv_order(self) -> list[nn.Conv2d]:
        """Every conv in the order its ONNX ``Conv`` node appears in ``movenet-lightning.onnx``."""
        convs: list[nn.Conv2d] = [self.conv1]
        for block in self.blocks:
            convs += block.convs()
        convs += [self.conv_last, self.top, self.lateral16, self.smooth16.depthwise, self.smooth16.pointwise,
                  self.lateral8, self.smooth8.depthwise, self.smooth8.pointwise, self.lateral4,
                  self.smooth4.depthwise, self.smooth4.pointwise]
        return convs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2] % 32 or images.shape[-1] % 32:
            raise ValueError(f"MoveNet backbone needs H, W divisible by 32, got {tuple(images.shape[-2:])}")
        x = F.relu6(self.conv1(images * self.in_scale + self.in_shift))
        taps = {}
        for k, block in enumerate(self.blocks):
            x = block(x)
            if k in (2, 5, 9):
                taps[k] = x
        x = self.top(F.relu6(self.conv_last(x)))
        x = self.smooth16(_up2(x) + self.lateral16(taps[9]))
        x = self.smooth8(_up2(x) + self.lateral8(taps[5]))
        return self.smooth4(_up2(x) + self.lateral4(taps[2]))


def load_onnx_weights(module: MoveNetLightningBackbone, onnx_path: str) -> list[str]:
    """Copy the ONNX graph's conv initializers into ``module`` in node order; return the node names used.

    Why by order: tf2onnx renamed many depthwise weights (``const_fold_opt__585``), so names do not identify
    the layer, but the node order up to :data:`FEATURE_TENSOR` is the network's. Every weight and bias
    shape is checked, and a conv without a bias initializer must be one built with ``bias=False``.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(onnx_path).graph
    inits = {i.name: i for i in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type == "Conv":
            nodes.append(node)
        if FEATURE_TENSOR in node.output:
            break
    else:
        raise ValueError(f"{onnx_path}: no node produces {FEATURE_TENSOR}")
    convs = module.onnx_conv_order()
    if len(nodes) != len(convs):
        raise ValueError(f"{onnx_path}: {len(nodes)} Conv nodes before the feature tensor, module has {len(convs)}")
    for node, conv in zip(nodes, convs):
        weight = torch.from_numpy(numpy_helper.to_array(inits[node.input[1]]).copy())
        if weight.shape != conv.weight.shape:
            raise ValueError(f"{node.name}: weight {tuple(weight.shape)} != module {tuple(conv.weight.shape)}")
        has_bias = len(node.input) > 2 and node.input[2] != ""
        if has_bias != (conv.bias is not None):
            raise ValueError(f"{node.name}: bias presence differs from the module's conv")
        with torch.no_grad():
            conv.weight.copy_(weight)
            if has_bias:
                bias = torch.from_numpy(numpy_helper.to_array(inits[node.input[2]]).copy())
                if bias.shape != conv.bias.shape:
                    raise ValueError(f"{node.name}: bias {tuple(bias.shape)} != module {tuple(conv.bias.shape)}")
                conv.bias.copy_(bias)
    return [n.name for n in nodes]


class MoveNetHeatmapHead(nn.Module):
    """MoveNet Lightning's keypoint heatmap head on the stride-4 features: (B, 24, h, w) -> (B, 17, h, w) logits.

    Graph nodes ``kpt_heatmap_0``: a depthwise 3x3 (no bias, zero padding 1), a 1x1 conv to 96 channels + ReLU,
    a 1x1 conv to 17 channels; the graph applies a sigmoid after it. Why a port: a student that starts from
    the head the features were trained with starts at Lightning's accuracy instead of at a mean pose, and
    a transformer only has to learn a correction (see ``TokenPoseConfig.conv_head``).
    """

    def __init__(self, channels: int = 24, hidden: int = 96, num_keypoints: int = 17) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.hidden = nn.Conv2d(channels, hidden, 1)
        self.out = nn.Conv2d(hidden, num_keypoints, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(F.relu(self.hidden(self.depthwise(features))))


HEATMAP_HEAD_SCOPE = "kpt_heatmap_0"
CENTER_SCOPE, REGRESS_SCOPE = "center_0", "kpt_regress_0"
#: The graph's constant 48x48 prior on the person centre (reciprocal of the distance to the crop centre + 1).
CENTER_WEIGHT_INIT = "ConstantFolding/StatefulPartitionedCall/truediv_2_recip:0"
#: MoveNet's decoder divides each keypoint heatmap by (distance to the regressed keypoint + this), in cells.
REGRESS_DISTANCE_OFFSET = 1.7998046875


class MoveNetPersonPrior(nn.Module):
    """MoveNet's choice of *which* person a keypoint belongs to, as a (B, 17, h, w) weight in (0, 1].

    MoveNet SinglePose decodes in three steps: the person centre is the argmax of its centre heatmap times a
    fixed prior favouring the crop centre; a regression head read at that centre gives a rough position of
    every keypoint; each keypoint heatmap is then divided by ``distance to that rough position + 1.8`` before
    its argmax. Why here: without this step a top-down crop with several people lets a keypoint jump to a
    neighbour's joint (the lower tail of the per-person OKS). The weight is ``1.8 / (distance + 1.8)``, so the
    heatmap keeps its value (and score) at the regressed position and is damped far from it; no gradient flows
    through the weight (argmax), only through the heatmaps it multiplies.
    """

    def __init__(self, channels: int = 24, hidden: int = 96, num_keypoints: int = 17, grid: int = 48) -> None:
        super().__init__()
        self.center = MoveNetHeatmapHead(channels, hidden, 1)
        self.regress = MoveNetHeatmapHead(channels, hidden, 2 * num_keypoints)
        self.register_buffer("center_weight", torch.ones(grid, grid))
        self.num_keypoints = num_keypoints

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        b, _, h, w = features.shape
        if (h, w) != tuple(self.center_weight.shape):
            raise ValueError(f"MoveNet person prior is built for a {tuple(self.center_weight.shape)} feature grid, "
                             f"got {(h, w)} (the model input must be 192x192)")
        with torch.no_grad():
            center = torch.sigmoid(self.center(features))[:, 0] * self.center_weight
            idx = center.reshape(b, h * w).argmax(dim=1)
            cy, cx = (idx // w).to(features.dtype), (idx % w).to(features.dtype)
            reg = self.regress(features).reshape(b, 2 * self.num_keypoints, h * w)
            at = reg.gather(2, idx.view(b, 1, 1).expand(b, 2 * self.num_keypoints, 1))
            at = at.view(b, self.num_keypoints, 2)  # (dy, dx) per keypoint, in feature cells
            ky = (cy.view(b, 1) + at[..., 0]).view(b, self.num_keypoints, 1, 1)
            kx = (cx.view(b, 1) + at[..., 1]).view(b, self.num_keypoints, 1, 1)
            ys = torch.arange(h, dtype=features.dtype, device=features.device).view(1, 1, h, 1)
            xs = torch.arange(w, dtype=features.dtype, device=features.device).view(1, 1, 1, w)
            dist = torch.sqrt((ys - ky) ** 2 + (xs - kx) ** 2)
            return REGRESS_DISTANCE_OFFSET / (dist + REGRESS_DISTANCE_OFFSET)


def load_onnx_person_prior(prior: MoveNetPersonPrior, onnx_path: str) -> list[str]:
    """Copy the ``center_0`` and ``kpt_regress_0`` convs and the centre prior constant into ``prior``."""
    from onnx import numpy_helper

    names = _load_scoped_convs([prior.center.depthwise, prior.center.hidden, prior.center.out], onnx_path,
                               CENTER_SCOPE)
    names += _load_scoped_convs([prior.regress.depthwise, prior.regress.hidden, prior.regress.out], onnx_path,
                                REGRESS_SCOPE)
    import onnx

    inits = {i.name: i for i in onnx.load(onnx_path).graph.initializer}
    if CENTER_WEIGHT_INIT not in inits:
        raise ValueError(f"{onnx_path}: no initializer {CENTER_WEIGHT_INIT}")
    weight = torch.from_numpy(numpy_helper.to_array(inits[CENTER_WEIGHT_INIT]).copy()).reshape(
        prior.center_weight.shape)
    with torch.no_grad():
        prior.center_weight.copy_(weight)
    return names


def load_onnx_heatmap_head(head: MoveNetHeatmapHead, onnx_path: str) -> list[str]:
    """Copy the three ``kpt_heatmap_0`` convs of the ONNX graph into ``head``; return the node names used.

    The depthwise node carries the scope in its *output* name (``.../kpt_heatmap_0/separable_conv2d_4/...``),
    the two 1x1 convs in their node names, so nodes are matched by the scope appearing in name or output.
    """
    return _load_scoped_convs([head.depthwise, head.hidden, head.out], onnx_path, HEATMAP_HEAD_SCOPE)


def _load_scoped_convs(convs: list[nn.Conv2d], onnx_path: str, scope: str) -> list[str]:
    """Copy the Conv nodes whose name or output contains ``/scope/`` into ``convs`` (graph order, shape-checked)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(onnx_path).graph
    inits = {i.name: i for i in graph.initializer}
    tag = f"/{scope}/"
    nodes = [n for n in graph.node if n.op_type == "Conv" and (tag in n.name or any(tag in o for o in n.output))]
    if len(nodes) != len(convs):
        raise ValueError(f"{onnx_path}: {len(nodes)} Conv nodes in scope {scope}, expected {len(convs)}")
    for node, conv in zip(nodes, convs):
        weight = torch.from_numpy(numpy_helper.to_array(inits[node.input[1]]).copy())
        if weight.shape != conv.weight.shape:
            raise ValueError(f"{node.name}: weight {tuple(weight.shape)} != module {tuple(conv.weight.shape)}")
        has_bias = len(node.input) > 2 and node.input[2] != ""
        if has_bias != (conv.bias is not None):
            raise ValueError(f"{node.name}: bias presence differs from the module's conv")
        with torch.no_grad():
            conv.weight.copy_(weight)
            if has_bias:
                conv.bias.copy_(torch.from_numpy(numpy_helper.to_array(inits[node.input[2]]).copy()))
    return [n.name for n in nodes]


def _up2(x: torch.Tensor) -> torch.Tensor:
    """ONNX ``Resize(mode=linear, coordinate_transformation_mode=half_pixel, scales=2)``."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
