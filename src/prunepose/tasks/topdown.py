"""Top-down 2D pose: datasets from an experiment config, heatmap loss, flip-test inference, evaluation.

Why a separate module: the engine is task-agnostic and the CLI must stay thin, so everything that knows
both about heatmap models and about COCO/MPII evaluation lives here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prunepose.codecs.heatmap import HeatmapCodec, flip_heatmaps
from prunepose.engine.losses import joints_mse_loss
from prunepose.errors import ConfigError
from prunepose.skeletons import get_skeleton


def build_dataset(cfg: dict[str, Any], model_config: Any, split: str) -> Dataset:
    """The train or val dataset of an experiment config, sized for ``model_config``."""
    data = cfg["data"]
    part = data.get(split)
    if not part:
        raise ConfigError(f"{cfg.get('_path', 'config')}: data.{split} is not set")
    train = split == "train"
    common = dict(input_size=model_config.input_size, heatmap_size=model_config.heatmap_size,
                  sigma=model_config.sigma, skeleton=model_config.skeleton, train=train,
                  seed=int(cfg["train"].get("seed", 0)))
    if data["format"] == "coco":
        from prunepose.data.coco import CocoTopDownDataset

        det = None if train else part.get("det_file")
        return CocoTopDownDataset(part["ann_file"], part["image_root"], det_file=det,
                                  det_score_thr=float(cfg["test"].get("det_score_thr", 0.0)),
                                  skip_missing_images=bool(part.get("skip_missing_images", False)), **common)
    from prunepose.data.mpii import MpiiDataset

    return MpiiDataset(part["ann_file"], part["image_root"], headboxes=part.get("head_boxes"),
                       skip_missing_images=bool(part.get("skip_missing_images", False)), **common)


def heatmap_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """JointsMSELoss between the model's heatmaps and the dataset's Gaussian targets."""
    out = model(batch["image"])
    loss = joints_mse_loss(out.heatmaps, batch["target"], batch["target_weight"])
    logs = {}
    if out.kept:
        logs["tokens_kept"] = float(out.kept[-1].shape[1])
    return loss, logs


@torch.no_grad()
def predict_heatmaps(model: nn.Module, images: torch.Tensor, flip: bool) -> torch.Tensor:
    """Heatmaps (B, K, H, W) for a batch, averaged with the flipped image's when ``flip``."""
    heatmaps = model(images).heatmaps
    if flip:
        cfg = model.config
        pairs = get_skeleton(cfg.skeleton).flip_pairs
        flipped = model(torch.flip(images, dims=[3])).heatmaps
        heatmaps = (heatmaps + flip_heatmaps(flipped, pairs, shift=cfg.flip_shift)) * 0.5
    return heatmaps


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset: Dataset, *, flip: bool = True, refine: str = "dark",
                    batch_size: int = 32, num_workers: int = 0, device: str | torch.device = "cpu",
                    progress: bool = True) -> dict[str, np.ndarray]:
    """Run a model over every sample: keypoints in original-image px and per-person meta arrays.

    Returns ``preds`` (N, K, 2) image px, ``scores`` (N, K) heatmap maxima, ``box_scores``, ``areas``
    (crop w*h, used by OKS-NMS), ``image_ids`` and ``index`` (dataset index), each of length N.
    """
    from tqdm import tqdm

    model.eval().to(device)
    cfg = model.config
    codec = HeatmapCodec(cfg.input_size, cfg.heatmap_size, cfg.sigma)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in ("preds", "scores", "box_scores", "areas",
                                                             "image_ids", "index")}
    for batch in tqdm(loader, desc="predict", disable=not progress, mininterval=1.0):
        heatmaps = predict_heatmaps(model, batch["image"].to(device), flip).float().cpu().numpy()
        meta = batch["meta"]
        centers, scales = meta["center"].numpy(), meta["scale"].numpy()
        coords, scores = codec.decode_to_image(heatmaps, centers, scales, meta["rotation"].numpy(), refine=refine)
        chunks["preds"].append(coords)
        chunks["scores"].append(scores)
        chunks["box_scores"].append(meta["score"].numpy())
        chunks["areas"].append(scales[:, 0] * scales[:, 1])
        chunks["image_ids"].append(meta["image_id"].numpy())
        chunks["index"].append(meta["index"].numpy())
    return {k: np.concatenate(v) for k, v in chunks.items()}


def evaluate(model: nn.Module, dataset: Dataset, test_cfg: dict[str, Any], out_dir: str | Path | None = None,
             device: str | torch.device = "cpu", progress: bool = True) -> dict[str, Any]:
    """Predict and score: OKS AP/AR through pycocotools for COCO data, PCKh for MPII data.

    With ``out_dir`` the COCO results JSON (standard results format) is written there.
    """
    if not hasattr(dataset, "coco"):
        dataset.head_sizes()  # fail before the long prediction when PCKh cannot be computed
    pred = predict_dataset(model, dataset, flip=bool(test_cfg["flip"]), refine=test_cfg["refine"],
                           batch_size=int(test_cfg["batch_size"]), device=device, progress=progress)
    skeleton = get_skeleton(model.config.skeleton)
    if not hasattr(dataset, "coco"):
        return evaluate_mpii(dataset, pred)
    from prunepose.metrics.coco_eval import evaluate_coco_keypoints, postprocess_topdown, write_coco_results

    results = postprocess_topdown(pred["preds"], pred, sigmas=skeleton.sigmas,
                                  oks_thr=float(test_cfg["oks_nms_thr"]), in_vis_thr=float(test_cfg["in_vis_thr"]),
                                  use_nms=bool(test_cfg.get("use_nms", True)))
    if out_dir is not None:
        write_coco_results(results, Path(out_dir) / "keypoints_results.json")
    metrics = evaluate_coco_keypoints(dataset.coco, results, sigmas=skeleton.sigmas, image_ids=dataset.image_ids)
    out = dict(metrics)
    out["score"] = out["AP"]
    out["summary"] = metrics.summary
    return out


def evaluate_mpii(dataset: Any, pred: dict[str, np.ndarray]) -> dict[str, Any]:
    """PCKh@0.5 (and Mean@0.1) of MPII predictions against the dataset's joints and head boxes."""
    from prunepose.metrics.pckh import pckh

    order = np.argsort(pred["index"])
    index = pred["index"][order]
    res = pckh(pred["preds"][order], dataset.joints[index], dataset.joints_vis[index] > 0,
               dataset.head_sizes()[index], thr=0.5)
    out: dict[str, Any] = dict(res)
    out["score"] = out["Mean"]
    out["summary"] = "  ".join(f"{k} {v:.2f}" for k, v in res.items() if "/" not in k)
    return out
