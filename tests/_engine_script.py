"""Tiny training job for the engine tests, importable and runnable as a script (also under torchrun).

Why a script: a real SIGKILL and a real multi-process DDP run both need a separate process; the tests
import the same model/dataset/loss from here so in-process reference runs are built identically.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prunepose.engine import TrainConfig, Trainer, cleanup, init_distributed

IN_DIM = 8
OUT_DIM = 2


class ToyDataset(torch.utils.data.Dataset):
    """Fixed inputs plus noise seeded from (seed, epoch, index), like the real pose datasets' augmentation."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(12345)
        self.x = rng.standard_normal((n, IN_DIM)).astype(np.float32)
        self.w = rng.standard_normal((IN_DIM, OUT_DIM)).astype(np.float32)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        x = self.x[index] + 0.1 * rng.standard_normal(IN_DIM).astype(np.float32)
        y = np.tanh(x @ self.w)
        return {"x": torch.from_numpy(x), "y": torch.from_numpy(y.astype(np.float32)), "index": index}


def make_model(kind: str = "bn_dropout", seed: int = 0) -> nn.Module:
    """``bn_dropout`` exercises buffers and RNG; ``linear`` (no BN/dropout) is for the DDP equivalence."""
    torch.manual_seed(seed)
    if kind == "bn_dropout":
        return nn.Sequential(nn.Linear(IN_DIM, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3),
                             nn.Linear(16, OUT_DIM))
    if kind == "linear":
        return nn.Sequential(nn.Linear(IN_DIM, 16), nn.Tanh(), nn.Linear(16, OUT_DIM))
    raise ValueError(f"unknown model kind {kind!r}")


def mse_loss(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
    pred = model(batch["x"])
    err = pred - batch["y"]
    return (err**2).mean(), {"mae": float(err.detach().abs().mean())}


def evaluate(model: nn.Module, epoch: int) -> dict[str, float]:
    """Deliberately draws from the global RNG: the trainer must shield training from it."""
    noise = torch.rand(3)
    data = ToyDataset(16, seed=99)
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    loss, _ = mse_loss(model, batch)
    return {"score": -float(loss), "noise": float(noise.sum())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--work-dir", required=True)
    p.add_argument("--model", default="bn_dropout")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--num-samples", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--step-sleep", type=float, default=0.0, help="seconds per step, so a test can kill us")
    p.add_argument("--out", default=None, help="save the final state dict to OUT.rank{R}.pt")
    p.add_argument("--no-resume", action="store_true")
    args = p.parse_args(argv)

    info = init_distributed()
    model = make_model(args.model)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-2, lr_steps=(2,),
                      num_workers=args.num_workers, checkpoint_every=args.checkpoint_every, log_every=5,
                      work_dir=args.work_dir, max_steps=args.max_steps)
    callbacks = [lambda *_: time.sleep(args.step_sleep)] if args.step_sleep > 0 else []
    data = ToyDataset(args.num_samples)
    trainer = Trainer(model, data, mse_loss, cfg, evaluate_fn=evaluate, step_callbacks=callbacks)
    trainer.fit(resume=not args.no_resume)
    if args.out:
        torch.save(model.state_dict(), Path(f"{args.out}.rank{info.rank}.pt"))
    del trainer  # its DDP wrapper holds gloo work: release it before the group goes
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
