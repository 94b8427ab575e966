"""Is a HoT lifter's recovery local in time? TRA attention sharpness and error vs distance to a kept frame.

Why: a HoT model whose Token Recovering Attention is still uniform outputs (almost) the clip mean of the
kept tokens for every frame, which costs tens of mm on Human3.6M while looking like slow convergence.
This prints, on projected-2D clips of S9/S11 (one camera, a seeded sample):

* TRA attention entropy per query (uniform = ln f) and its largest weight, the RMS of the learnt queries
  ``x_token`` and of their frame-to-frame differences;
* MPJPE by distance (in frames) to the nearest kept frame (a local recovery is best at distance 0) and
  by position in the clip.

    python scripts/h36m_tra_diagnostics.py configs/h36m/hot_mixste_compact.yaml \
        work_dirs/h36m_hot_mixste_compact/last.pt

The committed ``artifacts/h36m/*_tra_diagnostics.json`` were made with ``OMP_NUM_THREADS=1``; other thread
counts change float rounding, which can flip near-tied DPC-kNN frame choices (last digits move).
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch

from prunepose.config import load_config
from prunepose.data.h36m import TEST_SUBJECTS, load_h36m_shared
from prunepose.data.lifting import Seq2SeqClips
from prunepose.registry import create_model
from prunepose.tasks.lifting import lift_clips
from prunepose.weights import load_weights


def record_tra_attention(model: torch.nn.Module,
                         captured: dict[str, torch.Tensor]) -> torch.utils.hooks.RemovableHandle:
    """Hook that stores TRA's softmax weights (B*J, heads, F, f) of every forward in ``captured["attn"]``.

    Why a hook: TRA runs on ``scaled_dot_product_attention``, which never forms the weights, so they are
    recomputed from its own projections during the normal forward (no second model pass).
    """
    ca = model.recovery.cross_attention

    def hook(_mod: torch.nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], _out: torch.Tensor) -> None:
        q, k = ca._split(ca.linear_q(inputs[0])), ca._split(ca.linear_k(inputs[1]))
        captured["attn"] = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(-1)

    return ca.register_forward_hook(hook)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("checkpoint")
    ap.add_argument("--clips", type=int, default=160)
    ap.add_argument("--camera", default="54138969")
    args = ap.parse_args()
    cfg = load_config(args.config)
    model = create_model(cfg["model"], **cfg["model_overrides"])
    load_weights(model, args.checkpoint)
    model.eval()
    if model.recovery is None:
        raise SystemExit(f"{args.config}: the model has no TRA (recovery={model.config.recovery!r})")
    num_frames = model.config.num_frames
    data = load_h36m_shared(cfg["data"].get("root"), TEST_SUBJECTS, keypoints="gt", camera_ids=[args.camera],
                            warn=False)
    clips = Seq2SeqClips(data, num_frames, train=False)
    pick = np.random.default_rng(0).choice(len(clips), min(args.clips, len(clips)), replace=False)
    errors, distances, entropy, top = [], [], [], []
    captured: dict[str, torch.Tensor] = {}
    handle = record_tra_attention(model, captured)
    for i in range(0, len(pick), 16):
        batch = [clips[int(j)] for j in pick[i:i + 16]]
        x = torch.stack([s["pose2d"] for s in batch])
        target = torch.stack([s["pose3d"] for s in batch]).numpy()
        target[:, :, 0] = 0  # dataset 3D: root absolute, other joints root-relative
        out = lift_clips(model, x, flip=False, generator=torch.Generator().manual_seed(0))
        attn = captured["attn"]
        entropy.append(float(-(attn * attn.clamp_min(1e-12).log()).sum(-1).mean()))
        top.append(float(attn.max(-1).values.mean()))
        errors.append(np.linalg.norm(out.pose3d.numpy() - target, axis=-1).mean(-1) * 1000)  # (B, F) mm
        k = out.kept[0].numpy()
        distances.append(np.abs(np.arange(num_frames)[None, :, None] - k[:, None, :]).min(-1))
    handle.remove()
    err, dist = np.concatenate(errors), np.concatenate(distances)
    kept_num = model.config.stages[0][1]
    x_token = model.recovery.x_token.detach()[0]
    report = {
        "tra_entropy": float(np.mean(entropy)), "uniform_entropy": math.log(kept_num),
        "tra_max_weight": float(np.mean(top)), "uniform_weight": 1 / kept_num,
        "x_token_rms": float(x_token.pow(2).mean().sqrt()),
        "x_token_step_rms": float((x_token[1:] - x_token[:-1]).pow(2).mean().sqrt()),
        "mpjpe_mm": float(err.mean()),
        "mpjpe_by_distance_mm": {f"{lo}-{hi}": round(float(err[(dist >= lo) & (dist <= hi)].mean()), 1)
                                 for lo, hi in ((0, 0), (1, 1), (2, 2), (3, 4), (5, num_frames))
                                 if ((dist >= lo) & (dist <= hi)).any()},
        "mpjpe_edges_vs_middle_mm": [round(float(err[:, :5].mean()), 1),
                                     round(float(err[:, num_frames // 2 - 2:num_frames // 2 + 3].mean()), 1)],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
