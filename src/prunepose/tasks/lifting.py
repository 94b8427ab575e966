"""2D->3D lifting on Human3.6M: datasets from an experiment config, the MixSTE/HoT loss, flip-test evaluation.

Frames and units: inputs are 2D keypoints normalised to the screen (``x / w * 2 - [1, h / w]``); targets and
predictions are 3D joints in the camera frame, in metres, root-relative (root joint 0 set to 0).
Errors are reported in millimetres.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prunepose.errors import ConfigError
from prunepose.models.lifting.outputs import LiftingOutput
from prunepose.skeletons import get_skeleton

#: MixSTE/HoT joint weights of the weighted MPJPE and the temporal-consistency term (H36M-17 order)
JOINT_WEIGHTS = torch.tensor(get_skeleton("h36m").joint_weights, dtype=torch.float32)


def build_lifting_datasets(cfg: dict[str, Any], model_config: Any) -> tuple[Dataset, Dataset, Dataset | None]:
    """Train clips (S1,S5,S6,S7,S8), test clips (S9,S11) and, optionally, test clips on SH detections.

    ``data``: ``{format: h36m, root: null (shared data), keypoints: gt, test_keypoints: [gt, sh],
    camera_ids: null, actions: null, gt2d_prob: 0, gt2d_noise_px: 0}`` (``camera_ids``/``actions`` filter,
    e.g. for quick checks). ``keypoints: sh`` trains on the Stacked-Hourglass detections; with it,
    ``gt2d_prob`` of the training clips take the projected ground truth (+ ``gt2d_noise_px`` Gaussian pixel
    noise) instead. Seq2seq models get stride-F chunks (edge-padded); seq2frame (TPC) models get one
    centred window per frame.
    """
    from prunepose.data.h36m import TEST_SUBJECTS, TRAIN_SUBJECTS, load_h36m_shared
    from prunepose.data.lifting import Seq2FrameClips, Seq2SeqClips

    data = cfg["data"]
    if data.get("format", "h36m") != "h36m":
        raise ConfigError(f"{cfg.get('_path', 'config')}: lifting configs need data.format: h36m")
    root = data.get("root")
    kw: dict[str, Any] = {}
    if data.get("camera_ids"):
        kw["camera_ids"] = [str(c) for c in data["camera_ids"]]
    if data.get("actions"):  # e.g. a quick check on one action
        kw["actions"] = list(data["actions"])
    clips = Seq2FrameClips if model_config.pipeline == "seq2frame" else Seq2SeqClips
    seed = int(cfg["train"].get("seed", 0))
    train = load_h36m_shared(root, TRAIN_SUBJECTS, keypoints=data.get("keypoints", "gt"), **kw)
    test_gt = load_h36m_shared(root, TEST_SUBJECTS, keypoints="gt", **kw)
    f = model_config.num_frames
    mix = {"gt2d_prob": float(data.get("gt2d_prob") or 0.0), "gt2d_noise_px": float(data.get("gt2d_noise_px") or 0.0)}
    train_set = clips(train, f, train=True, seed=seed, **mix)
    test_set = clips(test_gt, f, train=False)
    sh_set = None
    if "sh" in (data.get("test_keypoints") or []):
        sh_set = clips(load_h36m_shared(root, TEST_SUBJECTS, keypoints="sh", **kw), f, train=False)
    return train_set, test_set, sh_set


def lifting_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    """MixSTE/HoT training loss: weighted MPJPE + 0.5 temporal consistency + 2.0 mean velocity error.

    Targets have the root joint set to 0 (root-relative, as the official code). Seq2frame (TPC) models
    are supervised on the frames they kept.
    """
    out = model(batch["pose2d"])
    target = batch["pose3d"].clone()
    target[:, :, 0] = 0
    if out.frames is not None and out.pose3d.shape[1] != target.shape[1]:
        target = torch.gather(target, 1, out.frames[:, :, None, None].expand(-1, -1, *target.shape[2:]))
    pred = out.pose3d
    w = JOINT_WEIGHTS.to(pred.device)
    pos = (w * torch.linalg.vector_norm(pred - target, dim=-1)).mean()
    dpred = pred[:, 1:] - pred[:, :-1]
    tc = (w[None, None, :, None] * dpred.square()).mean()
    vel = torch.linalg.vector_norm(dpred - (target[:, 1:] - target[:, :-1]), dim=-1).mean()
    loss = pos + 0.5 * tc + 2.0 * vel
    return loss, {"wmpjpe_mm": float(pos.detach()) * 1000}


@torch.no_grad()
def lift_clips(model: nn.Module, pose2d: torch.Tensor, flip: bool = True,
               generator: torch.Generator | None = None) -> LiftingOutput:
    """The model's output on normalised 2D clips (B, F, J, C) with the flip test applied: ``pose3d`` is
    averaged with the mirrored input's mirrored output and its root set to 0; ``kept``/``frames`` are those
    of the unflipped pass, which the mirrored pass reuses (as the official code). ``generator`` draws TPC's
    tie-breaking noise (pass a seeded one for repeatable selections; default: the global RNG)."""
    from prunepose.data.lifting import flip_poses

    kw = {} if generator is None else {"generator": generator}
    out = model(pose2d, **kw)
    pred = out.pose3d
    if flip:
        mirrored = model(flip_poses(pose2d), kept=out.kept or None, **kw)
        pred = (pred + flip_poses(mirrored.pose3d)) * 0.5
    pred = pred.clone()
    pred[:, :, 0] = 0
    return LiftingOutput(pose3d=pred, kept=out.kept, frames=out.frames)


def predict_clip(model: nn.Module, pose2d: torch.Tensor, flip: bool = True,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """3D poses (B, F_out, J, 3) for normalised 2D clips (B, F, J, C), and the input-frame index of each
    output pose (B, F_out) (``None`` when the model does not say); flip test and root as `lift_clips`."""
    out = lift_clips(model, pose2d, flip, generator)
    return out.pose3d, out.frames


@torch.no_grad()
def evaluate_lifting(model: nn.Module, dataset: Dataset, batch_size: int = 16, flip: bool = True,
                     device: str | torch.device = "cpu", progress: bool = True) -> dict[str, Any]:
    """P1 (MPJPE), P2 (P-MPJPE), N-MPJPE and MPJVE in mm, per action and averaged over actions.

    Padding frames of the edge-replicated chunks are excluded (each real frame counts once).
    """
    from tqdm import tqdm

    from prunepose.metrics.mpjpe import LiftingErrorMeter

    model.eval().to(device)
    meter = LiftingErrorMeter(root="zero")
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="evaluate", disable=not progress, mininterval=1.0):
        pred_t, frames = predict_clip(model, batch["pose2d"].to(device), flip)
        pred = pred_t.cpu().numpy()
        target = batch["pose3d"].numpy()
        valid = batch["valid"].numpy()
        if pred.shape[1] != target.shape[1]:  # seq2frame: score the centre frame only
            centre = np.asarray(batch["meta"]["center"]).reshape(-1)
            out_frames = frames.cpu().numpy()
            idx = np.array([int(np.flatnonzero(f == c)[0]) for f, c in zip(out_frames, centre)])
            pred = pred[np.arange(len(idx)), idx][:, None]
            target = target[np.arange(len(idx)), centre][:, None]
            valid = np.ones(target.shape[:2], bool)
        meter.update(pred, target, list(batch["meta"]["action"]), valid=valid)
    res: dict[str, Any] = {f"{k}_mm": v for k, v in meter.summary().items()}
    res["per_action"] = meter.per_action()
    res["score"] = -res["mpjpe_mm"]
    return res
