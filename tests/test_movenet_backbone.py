"""MoveNet Lightning backbone: the torch port must reproduce the ONNX graph's stride-4 features.

Why: ``ppt_movenet`` relies on the teacher's pretrained features; a wrong padding, resize mode or input
de-normalisation would still train, just worse, so the port is checked against onnxruntime on a real image.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from prunepose.data.transforms import normalize_image
from prunepose.nn.backbones import build_backbone
from prunepose.nn.backbones.movenet import FEATURE_TENSOR, MoveNetLightningBackbone, load_onnx_weights
from prunepose.paths import shared_data_dir
from prunepose.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "src/prunepose/assets/astronaut.jpg"
_DATA = shared_data_dir()
LIGHTNING = _DATA / "movenet/movenet-lightning.onnx" if _DATA is not None else None

needs_lightning = pytest.mark.skipif(LIGHTNING is None or not LIGHTNING.is_file(),
                                     reason="movenet-lightning.onnx not in the shared data (PRUNEPOSE_DATA or "
                                            "../shared/data/movenet)")


def _crop_192(path: Path) -> np.ndarray:
    """Centre square crop resized to MoveNet Lightning's 192x192 input (uint8 BGR)."""
    img = cv2.imread(str(path))
    assert img is not None, path
    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[y0:y0 + s, x0:x0 + s], (192, 192), interpolation=cv2.INTER_AREA)


@needs_lightning
def test_matches_onnxruntime_on_real_image() -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    module = MoveNetLightningBackbone().eval()
    assert len(load_onnx_weights(module, str(LIGHTNING))) == len(module.onnx_conv_order()) == 62
    graph = onnx.load(str(LIGHTNING))
    graph.graph.output.append(onnx.helper.make_tensor_value_info(FEATURE_TENSOR, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    images = [ASTRONAUT] + sorted((_DATA / "coco-mini/train2017").glob("*.jpg"))[:1]
    for path in images:
        crop = _crop_192(path)
        rgb = np.ascontiguousarray(crop[..., ::-1])
        ref = sess.run([FEATURE_TENSOR], {"input:0": rgb[None].astype(np.int32)})[0]
        with torch.no_grad():
            out = module(torch.from_numpy(normalize_image(crop))[None]).numpy()
        assert out.shape == ref.shape == (1, 24, 48, 48)
        scale = float(np.abs(ref).max())
        assert scale > 0.1  # real features, not an all-zero map that would match anything
        assert float(np.abs(out - ref).max()) <= 1e-3 * scale


def test_shapes_and_registry() -> None:
    module, channels, stride = build_backbone("movenet_lightning")
    assert (channels, stride) == (MoveNetLightningBackbone.out_channels, 4) == (24, 4)
    with torch.no_grad():
        assert module(torch.zeros(2, 3, 128, 96)).shape == (2, 24, 32, 24)
    with pytest.raises(ValueError, match="divisible by 32"):
        module(torch.zeros(1, 3, 120, 96))


def test_ppt_movenet_freezes_backbone() -> None:
    model = create_model("ppt_movenet").train()
    assert not model.backbone.training and model.blocks.training  # frozen backbone stays in eval mode
    assert not any(p.requires_grad for p in model.backbone.parameters())
    out = model(torch.randn(2, 3, 128, 96))
    assert out.heatmaps.shape == (2, 17, 32, 24)
    out.heatmaps.sum().backward()
    assert model.keypoint_tokens.grad is not None
    assert all(p.grad is None for p in model.backbone.parameters())
