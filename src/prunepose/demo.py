"""The bundled demo (``prunepose demo`` / ``make demo``).

Interim version: no trained 2D weights ship yet, so the demo shows the *mechanics* on a bundled real
photo: one forward pass of a PPT model with random weights, the tokens each pruning stage keeps, the
keypoint-token attention, and the decoded keypoints (meaningless until the model is trained, and labelled
so in the picture). It prints the cost of the pruned model against its unpruned TokenPose twin.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from prunepose.codecs.heatmap import HeatmapCodec
from prunepose.errors import DataError
from prunepose.profiling import count_params
from prunepose.registry import create_model
from prunepose.skeletons import get_skeleton
from prunepose.viz.draw2d import draw_skeleton
from prunepose.viz.figures import crop_person, kept_tokens_figure
from prunepose.viz.tokens import label, overlay_attention

BUNDLED_IMAGE = Path(__file__).parent / "assets" / "astronaut.jpg"


def _median_ms(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def run_demo(out_dir: str | Path = "outputs/demo", model_name: str = "ppt_s", image: str | Path | None = None,
             seed: int = 0) -> dict:
    """Run the demo and write ``demo.png``; returns the printed summary as a dict."""
    path = Path(image) if image else BUNDLED_IMAGE
    img = cv2.imread(str(path))
    if img is None:
        raise DataError(f"{path}: cannot read image (missing file or unsupported format)")
    torch.manual_seed(seed)
    model = create_model(model_name).eval()
    cfg = model.config
    h, w = img.shape[:2]
    crop, x, _, _ = crop_person(img, cfg.input_size)
    with torch.no_grad():
        out = model(x, return_attention=True)
        pruned_ms = _median_ms(lambda: model(x))
        ratio = model.keep_ratio
        model.keep_ratio = 1.0
        full_ms = _median_ms(lambda: model(x))
        model.keep_ratio = ratio
    codec = HeatmapCodec(cfg.input_size, cfg.heatmap_size, cfg.sigma)
    coords, scores = codec.decode(out.heatmaps.numpy())
    skeleton = get_skeleton(cfg.skeleton)
    grid = (model.grid_h, model.grid_w)

    last_att = out.attention[-1][0].numpy()
    sheet = np.concatenate([label(draw_skeleton(crop, coords[0], None, skeleton), "keypoints (UNTRAINED)"),
                            kept_tokens_figure(crop, out.kept, grid),
                            label(overlay_attention(crop, last_att[0], grid), "nose token attention")], axis=1)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_dir / "demo.png"), sheet)
    summary = {
        "image": str(path),
        "model": model_name,
        "params": count_params(model),
        "tokens_per_stage": [model.num_tokens] + [k.shape[1] for k in out.kept],
        "ms_per_crop_pruned": round(pruned_ms, 1),
        "ms_per_crop_unpruned": round(full_ms, 1),
        "picture": str(out_dir / "demo.png"),
        "weights": "random (untrained): this demo shows the pruning mechanics, not pose accuracy",
    }
    print(f"prunepose demo: {model_name} on {path.name} ({w}x{h})")
    print(f"  parameters            {summary['params']:,}")
    print(f"  visual tokens / stage {' -> '.join(map(str, summary['tokens_per_stage']))}")
    print(f"  time per crop         {pruned_ms:.1f} ms pruned vs {full_ms:.1f} ms unpruned (batch 1, this CPU)")
    print(f"  picture               {summary['picture']}")
    print("  note: weights are random; see README for training and evaluation")
    return summary
