"""Top-down 2D pose: datasets from an experiment config, losses, flip-test inference, evaluation.

Two head families share everything else: heatmap models (TokenPose, PPT: UDP Gaussian heatmaps, MSE,
DARK decoding) and SimCC models (GTPT: 1D bin classification, the KL global-perceived loss over a pruned
and an unpruned pass, argmax decoding, standard affine). Why a separate module: the engine is
task-agnostic and the CLI must stay thin, so everything that knows both about pose heads and about
COCO / COCO-WholeBody / MPII evaluation lives here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prunepose.codecs.heatmap import HeatmapCodec, flip_heatmaps, input_to_image
from prunepose.codecs.simcc import SimCCCodec, flip_test_logits
from prunepose.engine.losses import heatmap_focal_loss, joints_mse_loss, kl_global_perceived_loss
from prunepose.errors import ConfigError
from prunepose.skeletons import get_skeleton

SIMCC_SIGMA = 4.0  # GTPT: sigma 4 in bins (2 px at split ratio 2)


def uses_simcc(model_config: Any) -> bool:
    """True for models with SimCC heads (GTPT), False for heatmap heads (TokenPose, PPT)."""
    return getattr(model_config, "family", "") == "gtpt"


def make_codec(model_config: Any) -> HeatmapCodec | SimCCCodec:
    """The target/decoding codec a model was trained with (UDP heatmaps, or non-UDP SimCC for GTPT)."""
    if uses_simcc(model_config):
        return SimCCCodec(model_config.input_size, model_config.simcc_split_ratio, SIMCC_SIGMA, use_udp=False)
    return HeatmapCodec(model_config.input_size, model_config.heatmap_size, model_config.sigma)


def build_dataset(cfg: dict[str, Any], model_config: Any, split: str) -> Dataset:
    """The train or val dataset of an experiment config, sized and encoded for ``model_config``."""
    data = cfg["data"]
    part = data.get(split)
    if not part:
        raise ConfigError(f"{cfg.get('_path', 'config')}: data.{split} is not set")
    train = split == "train"
    codec = make_codec(model_config)
    common: dict[str, Any] = dict(input_size=model_config.input_size, skeleton=model_config.skeleton, train=train,
                                  seed=int(cfg["train"].get("seed", 0)), codec=codec,
                                  skip_missing_images=bool(part.get("skip_missing_images", False)))
    if train and part.get("augment"):  # e.g. {color_jitter: 0.3, rotation_factor: 40}: AugmentConfig fields
        from prunepose.data.transforms import AugmentConfig

        try:
            common["aug"] = AugmentConfig(**part["augment"])
        except TypeError as exc:
            raise ConfigError(f"{cfg.get('_path', 'config')}: bad data.train.augment ({exc})") from None
    if isinstance(codec, HeatmapCodec):
        common.update(heatmap_size=model_config.heatmap_size, sigma=model_config.sigma)
    if data["format"] == "mpii":
        from prunepose.data.mpii import MpiiDataset

        if not isinstance(common.pop("codec"), HeatmapCodec):
            raise ConfigError(f"{cfg.get('_path', 'config')}: MPII data is supported for heatmap models only")
        return MpiiDataset(part["ann_file"], part["image_root"], headboxes=part.get("head_boxes"), **common)
    det = None if train else part.get("det_file")
    extra = dict(det_file=det, det_score_thr=float(cfg["test"].get("det_score_thr", 0.0)))
    if data["format"] == "coco_wholebody":
        from prunepose.data.coco_wholebody import CocoWholeBodyDataset as DatasetClass
    else:
        from prunepose.data.coco import CocoTopDownDataset as DatasetClass
    dataset = DatasetClass(part["ann_file"], part["image_root"], **extra, **common)
    dataset.check_num_keypoints(model_config.num_keypoints, f"model {model_config.name}")
    return dataset


def heatmap_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """JointsMSELoss between the model's heatmaps and the dataset's Gaussian targets."""
    out = model(batch["image"])
    loss = joints_mse_loss(out.heatmaps, batch["target"], batch["target_weight"])
    logs = {}
    if out.kept:
        logs["tokens_kept"] = float(out.kept[-1].shape[1])
    return loss, logs


def focal_heatmap_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """CenterNet focal loss on the heatmap logits (models with a pretrained sigmoid head, e.g. ppt_movenet192)."""
    out = model(batch["image"])
    if out.logits is None:
        raise ConfigError(f"{model.config.name}: the focal heatmap loss needs the model's heatmap logits")
    loss = heatmap_focal_loss(out.logits, batch["target"], batch["target_weight"])
    logs = {}
    if out.kept:
        logs["tokens_kept"] = float(out.kept[-1].shape[1])
    return loss, logs


def simcc_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """GTPT's global-perceived loss: a pruned and an unpruned pass sharing the weights and the backbone;
    KL(gt||full) + KL(gt||pruned) + KL(full.detach()||pruned)."""
    pruned, full = model(batch["image"], pair=True)
    weight = batch["target_weight"].reshape(batch["target_weight"].shape[0], -1)
    loss = kl_global_perceived_loss(full.simcc_x, full.simcc_y, pruned.simcc_x, pruned.simcc_y,
                                    batch["target_x"], batch["target_y"], weight)
    return loss, {}


def loss_for(model_config: Any):  # noqa: ANN201  (returns one of the two loss functions)
    """The training loss of a model family."""
    if uses_simcc(model_config):
        return simcc_loss
    return focal_heatmap_loss if getattr(model_config, "conv_head", "none") != "none" else heatmap_loss


@torch.no_grad()
def predict_crops(model: nn.Module, images: torch.Tensor, flip: bool,
                  refine: str = "dark") -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of a batch of crops: ``coords`` (B, K, 2) in model-input px and ``scores`` (B, K).

    Heatmap models average the flipped image's heatmaps (no shift: UDP) and decode with DARK; SimCC
    models average flipped logits (with GTPT's 1-bin shift) and take the argmax.
    """
    cfg = model.config
    codec = make_codec(cfg)
    pairs = get_skeleton(cfg.skeleton).flip_pairs
    out = model(images)
    if uses_simcc(cfg):
        x, y = out.simcc_x, out.simcc_y
        if flip:
            mirrored = model(torch.flip(images, dims=[3]))
            x, y = flip_test_logits(x, y, mirrored.simcc_x, mirrored.simcc_y, pairs, shift=True)
        return codec.decode(x.float().cpu(), y.float().cpu())
    heatmaps = out.heatmaps
    if flip:
        mirrored = model(torch.flip(images, dims=[3])).heatmaps
        heatmaps = (heatmaps + flip_heatmaps(mirrored, pairs, shift=cfg.flip_shift)) * 0.5
    return codec.decode(heatmaps.float().cpu().numpy(), refine=refine)


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset: Dataset, *, flip: bool = True, refine: str = "dark",
                    batch_size: int = 32, num_workers: int = 0, device: str | torch.device = "cpu",
                    progress: bool = True) -> dict[str, np.ndarray]:
    """Run a model over every sample: keypoints in original-image px and per-person meta arrays.

    Returns ``preds`` (N, K, 2) image px, ``scores`` (N, K), ``box_scores``, ``areas`` (crop w*h, used by
    OKS-NMS), ``image_ids`` and ``index`` (dataset index), each of length N. ``refine`` applies to
    heatmap models only.
    """
    from tqdm import tqdm

    model.eval().to(device)
    codec = make_codec(model.config)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in ("preds", "scores", "box_scores", "areas",
                                                             "image_ids", "index")}
    for batch in tqdm(loader, desc="predict", disable=not progress, mininterval=1.0):
        coords, scores = predict_crops(model, batch["image"].to(device), flip, refine)
        meta = batch["meta"]
        centers, scales = meta["center"].numpy(), meta["scale"].numpy()
        chunks["preds"].append(input_to_image(coords, centers, scales, model.config.input_size,
                                              meta["rotation"].numpy(), udp=codec.use_udp).astype(np.float32))
        chunks["scores"].append(scores)
        chunks["box_scores"].append(meta["score"].numpy())
        chunks["areas"].append(scales[:, 0] * scales[:, 1])
        chunks["image_ids"].append(meta["image_id"].numpy())
        chunks["index"].append(meta["index"].numpy())
    return {k: np.concatenate(v) for k, v in chunks.items()}


def evaluate(model: nn.Module, dataset: Dataset, test_cfg: dict[str, Any], out_dir: str | Path | None = None,
             device: str | torch.device = "cpu", progress: bool = True) -> dict[str, Any]:
    """Predict and score: OKS AP/AR through pycocotools (per part for COCO-WholeBody), PCKh for MPII.

    With ``out_dir`` the results JSON (standard COCO / COCO-WholeBody results format) is written there.
    """
    if not hasattr(dataset, "coco"):
        dataset.head_sizes()  # fail before the long prediction when PCKh cannot be computed
    pred = predict_dataset(model, dataset, flip=bool(test_cfg["flip"]), refine=test_cfg["refine"],
                           batch_size=int(test_cfg["batch_size"]), device=device, progress=progress)
    if not hasattr(dataset, "coco"):
        return evaluate_mpii(dataset, pred)
    from prunepose.metrics.coco_eval import evaluate_coco_keypoints, postprocess_topdown, write_coco_results

    skeleton = get_skeleton(model.config.skeleton)
    results = postprocess_topdown(pred["preds"], pred, sigmas=skeleton.sigmas,
                                  oks_thr=float(test_cfg["oks_nms_thr"]), in_vis_thr=float(test_cfg["in_vis_thr"]),
                                  use_nms=bool(test_cfg.get("use_nms", True)))
    if skeleton.num_keypoints == 133:
        from prunepose.metrics.wholebody_eval import evaluate_wholebody_keypoints, write_wholebody_results

        if out_dir is not None:
            write_wholebody_results(results, Path(out_dir) / "keypoints_results.json")
        metrics = evaluate_wholebody_keypoints(dataset.coco, results, image_ids=dataset.image_ids)
    else:
        if out_dir is not None:
            write_coco_results(results, Path(out_dir) / "keypoints_results.json")
        metrics = evaluate_coco_keypoints(dataset.coco, results, sigmas=skeleton.sigmas,
                                          image_ids=dataset.image_ids)
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
