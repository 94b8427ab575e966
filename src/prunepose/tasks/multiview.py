"""Multi-view 2D pose + triangulation: the training loss, prediction and evaluation of multi-view PPT.

Why a task module: the engine trains anything given a loss; this module knows what a multi-view batch holds
(see :mod:`prunepose.data.multiview_synthetic`), how per-view heatmaps become original-image pixels, and how
those are triangulated (:mod:`prunepose.geometry.triangulation`) and scored (JDR and world MPJPE,
:mod:`prunepose.metrics.multiview`).

Triangulation follows multi-view PPT's ``estimate_tri.py``: every view's decoded joint with its heatmap
maximum as confidence, all views, DLT -- here weighted by the confidence (a view whose maximum is <= 0 is
dropped) -- plus the project's RANSAC variant. Points are undistorted before the DLT (the official code uses
pymvg, which also models distortion).
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from torch import nn

from prunepose.codecs.heatmap import HeatmapCodec
from prunepose.engine.losses import joints_mse_loss
from prunepose.errors import DataError
from prunepose.geometry.triangulation import triangulate_cameras
from prunepose.metrics.multiview import WorldMPJPEMeter, joint_detection_rate, mean_jdr, official_head_size

GEOMETRY_KEYS = ("crop_to_image", "intrinsics", "rotation")


def multiview_forward(model: nn.Module, batch: dict[str, Any]) -> Any:
    """``model(images, crop_to_image, intrinsics, rotation)`` on a multi-view batch (moved to the model's device)."""
    device = next(model.parameters()).device
    return model(*(batch[k].to(device) for k in ("images", *GEOMETRY_KEYS)))


def multiview_heatmap_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """JointsMSELoss over every view (the official multi-view PPT loss), for ``Trainer``."""
    out = multiview_forward(model, batch)
    hm = out.heatmaps.flatten(0, 1)
    loss = joints_mse_loss(hm, batch["heatmaps"].flatten(0, 1).to(hm.dtype), batch["weights"].flatten(0, 1))
    return loss, {"mse": float(loss.detach())}


@torch.no_grad()
def predict_multiview(model: nn.Module, dataset: Any, batch_size: int = 32, refine: str = "dark",
                      ) -> dict[str, np.ndarray]:
    """Run ``model`` over ``dataset``; returns ``pred_2d`` (N, V, J, 2) original-image px, ``scores`` (N, V, J),
    and the dataset's ``joints_2d``, ``occluded``, ``joints_3d`` and ``index`` stacked the same way."""
    cfg = model.config
    codec = HeatmapCodec(cfg.input_size, cfg.heatmap_size, cfg.sigma)
    was_training = model.training
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    keep = ("joints_2d", "occluded", "joints_3d", "index")
    acc: dict[str, list[np.ndarray]] = defaultdict(list)
    try:
        for batch in loader:
            hm = multiview_forward(model, batch).heatmaps.float()
            b, v = hm.shape[:2]
            coords, scores = codec.decode(hm.flatten(0, 1).cpu().numpy(), refine=refine)
            affine = batch["crop_to_image"].flatten(0, 1).numpy()  # (B*V, 2, 3)
            image_px = np.einsum("nij,nkj->nki", affine[:, :, :2], coords.astype(np.float64)) + affine[:, None, :, 2]
            acc["pred_2d"].append(image_px.reshape(b, v, -1, 2))
            acc["scores"].append(scores.reshape(b, v, -1))
            for k in keep:
                acc[k].append(batch[k].numpy())
    finally:
        model.train(was_training)
    return {k: np.concatenate(v) for k, v in acc.items()}


def triangulate_predictions(dataset: Any, pred: dict[str, np.ndarray], method: str = "dlt") -> np.ndarray:
    """(N, J, 3) world mm from ``pred`` (see `predict_multiview`): per sample, its cameras, its views' joints
    weighted by their heatmap maxima (views with maximum <= 0 dropped; NaN + warning where < 2 remain)."""
    out = np.full(pred["joints_3d"].shape, np.nan)
    weights = np.clip(pred["scores"], 0.0, None)
    groups: dict[int, list[int]] = defaultdict(list)  # samples sharing one camera set, solved in one call
    for n, idx in enumerate(pred["index"]):
        groups[int(dataset.subject_index[int(idx)])].append(n)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for rows in groups.values():
            cams = dataset.cameras_of(int(pred["index"][rows[0]]))
            pts = np.moveaxis(pred["pred_2d"][rows], 1, 0)  # (V, n, J, 2)
            w = np.moveaxis(weights[rows], 1, 0)
            try:
                out[rows] = triangulate_cameras(cams, pts, w, method=method).points
            except DataError as exc:
                warnings.warn(f"triangulation failed for {len(rows)} samples: {exc}", RuntimeWarning, stacklevel=2)
    for w in caught:  # re-emit once each (the geometry warns per call)
        if issubclass(w.category, RuntimeWarning):
            warnings.warn(str(w.message), RuntimeWarning, stacklevel=2)
    return out


def evaluate_multiview(model: nn.Module, dataset: Any, batch_size: int = 32, head_image_size: float = 256.0,
                       ) -> dict[str, Any]:
    """JDR (paper threshold: 0.5 x 256/10 = 12.8 original-image px; also at 2x that), JDR of the joints hidden
    by an occluder, and triangulated world MPJPE (mm; weighted DLT and RANSAC), overall and per action."""
    pred = predict_multiview(model, dataset, batch_size)
    gt2d, occ = pred["joints_2d"], pred["occluded"].astype(bool)
    head = official_head_size(head_image_size)
    result: dict[str, Any] = {"num_samples": int(len(gt2d)), "num_views": int(gt2d.shape[1])}
    for name, hs in (("jdr", head), ("jdr_2x", 2 * head)):
        per_joint = joint_detection_rate(pred["pred_2d"], gt2d, head_size=hs)
        result[name] = 100 * mean_jdr(per_joint)
        if occ.any():
            result[f"{name}_occluded"] = 100 * mean_jdr(joint_detection_rate(pred["pred_2d"], gt2d, hs, visible=occ))
            result[f"{name}_visible"] = 100 * mean_jdr(joint_detection_rate(pred["pred_2d"], gt2d, hs, visible=~occ))
    result["occluded_fraction"] = float(occ.mean())
    result["error_2d_px"] = float(np.nanmean(np.linalg.norm(pred["pred_2d"] - gt2d, axis=-1)))
    actions = [dataset.actions[int(i)] for i in pred["index"]]
    for method in ("dlt", "ransac"):
        world = triangulate_predictions(dataset, pred, method)
        meter = WorldMPJPEMeter(scale=1.0)
        by_action: dict[str, list[int]] = defaultdict(list)
        for n, act in enumerate(actions):
            by_action[act].append(n)
        for act, rows in by_action.items():
            meter.update(world[rows], pred["joints_3d"][rows], act)
        summary = meter.summary()
        result[f"mpjpe_{method}"] = summary["mpjpe"]
        result[f"mpjpe_{method}_failed"] = summary["failed"]
        result[f"mpjpe_{method}_per_action"] = {a: r["mpjpe"] for a, r in meter.per_action().items()}
    return result


__all__ = ["evaluate_multiview", "multiview_forward", "multiview_heatmap_loss", "predict_multiview",
           "triangulate_predictions"]
