"""Convert MoveNet Lightning's MobileNetV2-FPN weights from ONNX to torch and check them against onnxruntime.

Why: the ``ppt_movenet`` student reuses the teacher's pretrained features (a from-scratch transformer on
~1,300 pseudo-labelled persons stayed below a mean pose). The weights are copied by
:func:`prunepose.nn.backbones.movenet.load_onnx_weights` (shape-checked); this script then makes the
stride-4 feature tensor a graph output, runs both on real 192x192 crops (COCO train images are fine here:
nothing is evaluated, only two implementations compared) and refuses to save when they differ by more than
``--tol`` relative to the feature scale (max |feature|).

Usage: python scripts/distill/convert_movenet_backbone.py \
           [--onnx ../shared/data/movenet/movenet-lightning.onnx] \
           [--out work_dirs/distill/movenet_lightning_backbone.pt]
"""
from __future__ import annotations

import argparse
import glob
from pathlib import Path

import cv2
import numpy as np
import torch

from prunepose.data.transforms import normalize_image
from prunepose.nn.backbones.movenet import FEATURE_TENSOR, MoveNetLightningBackbone, load_onnx_weights


def square_crop_bgr(path: str, size: int = 192) -> np.ndarray:
    """Centre square crop of an image resized to ``size`` (uint8 BGR), a realistic input for the check."""
    img = cv2.imread(path)
    if img is None:
        raise FileNotFoundError(path)
    h, w = img.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    return cv2.resize(img[y0:y0 + s, x0:x0 + s], (size, size), interpolation=cv2.INTER_AREA)


def compare(module: MoveNetLightningBackbone, onnx_path: str, crops_bgr: list[np.ndarray]) -> tuple[float, float]:
    """Return (max abs diff, max |onnx feature|) of the stride-4 features over ``crops_bgr``.

    onnxruntime gets the graph's own input (int32 NHWC RGB 0-255); the module gets what the training
    pipeline feeds (ImageNet-normalised float RGB, NCHW), so the check covers the de-normalisation too.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(onnx_path)
    model.graph.output.append(onnx.helper.make_tensor_value_info(FEATURE_TENSOR, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    max_diff, scale = 0.0, 0.0
    module.eval()
    for crop in crops_bgr:
        rgb = np.ascontiguousarray(crop[..., ::-1])
        ref = sess.run([FEATURE_TENSOR], {"input:0": rgb[None].astype(np.int32)})[0]
        with torch.no_grad():
            out = module(torch.from_numpy(normalize_image(crop))[None]).numpy()
        if out.shape != ref.shape:
            raise ValueError(f"shape mismatch: torch {out.shape} vs onnx {ref.shape}")
        max_diff = max(max_diff, float(np.abs(out - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
    return max_diff, scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", default="../shared/data/movenet/movenet-lightning.onnx")
    ap.add_argument("--images", default="../shared/data/coco-mini/train2017/*.jpg")
    ap.add_argument("--num-images", type=int, default=4)
    ap.add_argument("--tol", type=float, default=1e-3, help="max abs diff / max |feature| allowed")
    ap.add_argument("--out", default="work_dirs/distill/movenet_lightning_backbone.pt")
    args = ap.parse_args()
    module = MoveNetLightningBackbone()
    names = load_onnx_weights(module, args.onnx)
    paths = sorted(glob.glob(args.images))[: args.num_images]
    if not paths:
        raise SystemExit(f"no images match {args.images}")
    max_diff, scale = compare(module, args.onnx, [square_crop_bgr(p) for p in paths])
    rel = max_diff / max(scale, 1e-12)
    print(f"{len(names)} convs copied; {len(paths)} crops: max abs diff {max_diff:.3g}, feature scale "
          f"{scale:.3g}, relative {rel:.3g}")
    if rel > args.tol:
        raise SystemExit(f"relative diff {rel:.3g} > tol {args.tol}: not saving")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
