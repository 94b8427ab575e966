"""Initial weights for ``ppt_movenet192``: MoveNet Lightning's backbone, heads and person prior, a fresh PPT.

Why: the student starts exactly at MoveNet Lightning's (distance-weighted) heatmaps (the PPT residual head is
zero at init), so training on MoveNet Thunder's labels has to *improve* on Lightning rather than climb from
a mean pose. The script copies the ONNX weights (shape-checked, see ``prunepose.nn.backbones.movenet``),
then compares the model's sigmoid heatmaps with onnxruntime's ``kpt_heatmap`` output on real crops and
refuses to save when they differ by more than ``--tol``. The 17 keypoint tokens are scaled to std 1.0
(from 0.02) so that they start distinct (see scripts/distill/scale_keypoint_tokens.py for why).

Usage: python scripts/distill/init_ppt_movenet192.py [--out work_dirs/distill2/init_ppt_movenet192.pt]
"""
from __future__ import annotations

import argparse
import glob

import numpy as np
import torch

from prunepose.data.transforms import normalize_image
from prunepose.nn.backbones.movenet import (
    REGRESS_DISTANCE_OFFSET,
    load_onnx_heatmap_head,
    load_onnx_person_prior,
    load_onnx_weights,
)
from prunepose.registry import create_model

HEATMAP_OUTPUT = "StatefulPartitionedCall/Sigmoid:0"  # (1, 17, 48, 48) before the graph's transpose
# (1, 48, 48, 17): each heatmap divided by (distance to the regressed keypoint + 1.8), what MoveNet takes argmax of
WEIGHTED_OUTPUT = "StatefulPartitionedCall/truediv_3:0"


def max_heatmap_diff(model: torch.nn.Module, onnx_path: str, crops_bgr: list[np.ndarray]) -> float:
    """Largest |torch - onnxruntime| over the 17 heatmaps of ``crops_bgr`` (192x192 uint8 BGR): the sigmoid
    heatmaps, or, with the person prior, MoveNet's distance-weighted heatmaps (ours are 1.8 x those)."""
    import onnx
    import onnxruntime as ort

    prior = getattr(model, "person_prior", None) is not None
    name = WEIGHTED_OUTPUT if prior else HEATMAP_OUTPUT
    graph = onnx.load(onnx_path)
    graph.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = 0.0
    model.eval()
    for crop in crops_bgr:
        rgb = np.ascontiguousarray(crop[..., ::-1])
        ref = sess.run([name], {"input:0": rgb[None].astype(np.int32)})[0]
        if prior:
            ref = ref.transpose(0, 3, 1, 2) * REGRESS_DISTANCE_OFFSET
        with torch.no_grad():
            out = model(torch.from_numpy(normalize_image(crop))[None]).heatmaps.numpy()
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst


def main() -> None:
    from convert_movenet_backbone import square_crop_bgr  # same folder: the backbone converter's crops

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", default="../shared/data/movenet/movenet-lightning.onnx")
    ap.add_argument("--images", default="../shared/data/coco-mini/train2017/*.jpg")
    ap.add_argument("--model", default="ppt_movenet192")
    ap.add_argument("--token-std", type=float, default=1.0)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="work_dirs/distill2/init_ppt_movenet192.pt")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model = create_model(args.model)
    load_onnx_weights(model.backbone, args.onnx)
    load_onnx_heatmap_head(model.conv_head, args.onnx)
    if model.person_prior is not None:
        load_onnx_person_prior(model.person_prior, args.onnx)
    with torch.no_grad():
        tokens = model.keypoint_tokens
        tokens.mul_(args.token_std / float(tokens.std()))
    crops = [square_crop_bgr(p) for p in sorted(glob.glob(args.images))[:3]]
    if not crops:
        raise SystemExit(f"no images match {args.images}")
    diff = max_heatmap_diff(model, args.onnx, crops)
    print(f"max |heatmap torch - onnxruntime| over {len(crops)} crops: {diff:.2e}")
    if diff > args.tol:
        raise SystemExit(f"heatmaps differ by {diff:.2e} > --tol {args.tol}; not saved")
    torch.save({"model": model.state_dict()}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
