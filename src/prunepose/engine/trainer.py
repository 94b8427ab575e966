"""A generic training loop: the task supplies a loss function, the engine does everything else.

Why task-agnostic: 2D pose (TokenPose, PPT) and 3D lifting (HoT) share the same needs (AMP, DDP,
schedules, checkpoints, exact resume) but differ in targets and losses. Keeping pose knowledge out of
here means one loop to test. A task provides ``loss_fn(model, batch) -> (loss, logs)``; batches are the
default-collated dicts of tensors from its Dataset.

Why so much care for exact resume: long runs get pre-empted, and a resumed run that silently diverges from
an uninterrupted one makes results irreproducible. The loop therefore keeps every source of randomness
either derived from ``(seed, epoch, index)`` (sampling, data augmentation, loader worker seeds) or saved
in the checkpoint (the global RNGs used by dropout, per rank), and skips exactly the batches already done.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset
from tqdm import tqdm

from prunepose.engine.checkpoint import load_checkpoint, save_checkpoint
from prunepose.engine.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_mean,
    broadcast_object,
    broadcast_tensors_,
    init_distributed,
)
from prunepose.engine.sampler import ResumableShardedSampler
from prunepose.errors import ConfigError, PrunePoseError

__all__ = ["TrainConfig", "Trainer", "NonFiniteLossError", "LossFn", "EvaluateFn", "StepCallback"]

logger = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, dict[str, Any]], tuple[torch.Tensor, Mapping[str, Any]]]
EvaluateFn = Callable[[nn.Module, int], Mapping[str, Any]]
# cb(model_unwrapped, epoch, step_in_epoch, global_step, steps_per_epoch), run before every step.
StepCallback = Callable[[nn.Module, int, int, int, int], None]

CHECKPOINT_FORMAT = 1
_AMP_MODES = ("auto", "off", "bf16", "fp16")
_OPTIMIZERS = ("adam", "adamw")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; training stops rather than writing poisoned weights to checkpoints."""


@dataclass
class TrainConfig:
    """Everything the loop needs besides model, data and loss. ``batch_size`` is per process."""

    epochs: int
    batch_size: int
    lr: float = 1e-3
    optimizer: str = "adam"  # "adam" | "adamw"
    weight_decay: float = 0.0
    lr_steps: tuple[int, ...] = (200, 260)  # MultiStepLR milestones in epochs
    lr_factor: float = 0.1
    lr_epoch_decay: float | None = None  # ExponentialLR gamma per epoch; replaces lr_steps when set
    num_workers: int = 0
    seed: int = 0
    amp: str = "auto"  # "auto" (bf16, else fp16, on CUDA; off on CPU) | "off" | "bf16" | "fp16"
    grad_clip: float | None = None  # max global grad norm
    checkpoint_every: int = 50  # iterations; a checkpoint is also written at the end of every epoch
    log_every: int = 10  # iterations
    eval_every: int = 1  # epochs; evaluation also runs after the last epoch
    work_dir: str = "work_dirs/run"
    max_steps: int | None = None  # stop (after checkpointing) once this many global steps are done

    def __post_init__(self) -> None:
        self.lr_steps = tuple(int(s) for s in self.lr_steps)
        self.optimizer = self.optimizer.lower()
        self.amp = self.amp.lower()
        positive = ("epochs", "batch_size", "checkpoint_every", "log_every", "eval_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.optimizer not in _OPTIMIZERS:
            raise ConfigError(f"TrainConfig.optimizer must be one of {_OPTIMIZERS}, got {self.optimizer!r}")
        if self.amp not in _AMP_MODES:
            raise ConfigError(f"TrainConfig.amp must be one of {_AMP_MODES}, got {self.amp!r}")
        if self.num_workers < 0:
            raise ConfigError(f"TrainConfig.num_workers must be >= 0, got {self.num_workers}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"TrainConfig.max_steps must be >= 1 or None, got {self.max_steps}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-types view (lists, not tuples) for checkpoints and logs."""
        d = dataclasses.asdict(self)
        d["lr_steps"] = list(self.lr_steps)
        return d


# ----------------------------------------------------------------------------------------------------------
# small pure helpers


def _resolve_amp(mode: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """Return (autocast dtype or None, use GradScaler). Only fp16 needs loss scaling; bf16 has fp32 range."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None, False
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    dtype = torch.bfloat16 if mode == "bf16" else torch.float16
    return dtype, dtype == torch.float16 and device.type == "cuda"


def _build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW/Adam over the trainable parameters; a model with ``optimizer_groups(lr)`` (per-group ``lr_mult``,
    e.g. a pretrained backbone at a lower rate) gets those groups."""
    params: Any = [p for p in model.parameters() if p.requires_grad]
    groups = getattr(model, "optimizer_groups", None)
    if callable(groups):
        params = groups(cfg.lr)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.lr_epoch_decay is not None:
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=cfg.lr_epoch_decay)
    return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.lr_steps), gamma=cfg.lr_factor)


def _to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a (nested) batch; leave strings/ids alone so tasks can carry metadata."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _to_primitive(value: Any) -> Any:
    """Make logs JSON- and ``weights_only``-safe: tensors/numpy scalars become Python numbers/lists."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.detach().cpu().tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _to_primitive(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_primitive(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _capture_rng() -> dict[str, Any]:
    """This process's global RNG states, in types that ``torch.load(weights_only=True)`` accepts."""
    py_version, py_internal, py_gauss = random.getstate()
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": [py_version, list(py_internal), py_gauss],
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
    }


def _restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = state["numpy"]
    keys = npst["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npst["pos"], npst["has_gauss"], npst["cached_gaussian"]))


def _seed_worker(worker_id: int) -> None:
    """Give each loader worker distinct numpy/python seeds (forked workers would otherwise share them)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _loader_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of the loader's own generator: fixes worker seeds per (seed, epoch, rank) and keeps the
    DataLoader from drawing on the global RNG, which would shift dropout masks after a resume."""
    return (seed * 1_000_003 + epoch * 10_007 + rank) % (2**63 - 1)


class _RunLog:
    """Appends human-readable lines to ``train.log`` and records to ``metrics.jsonl`` (rank 0 only).

    Files are opened per write so a SIGKILL never loses buffered lines and nothing needs closing.
    """

    def __init__(self, work_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.text_path = work_dir / "train.log"
        self.jsonl_path = work_dir / "metrics.jsonl"

    def text(self, message: str) -> None:
        if not self.enabled:
            return
        logger.info(message)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.text_path, "a", encoding="utf-8") as f:
            f.write(f"{stamp} {message}\n")

    def record(self, record: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.jsonl_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(_to_primitive(record), allow_nan=True) + "\n")


class _Window:
    """Running means of loss and task logs between two log records."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.loss = 0.0
        self.logs: dict[str, float] = {}
        self.start = time.perf_counter()

    def add(self, loss: float, logs: Mapping[str, float]) -> None:
        self.count += 1
        self.loss += loss
        for key, value in logs.items():
            self.logs[key] = self.logs.get(key, 0.0) + float(value)

    def summary(self) -> dict[str, float]:
        n = max(self.count, 1)
        out = {"loss": self.loss / n, "time_per_iter": (time.perf_counter() - self.start) / n}
        out.update({k: v / n for k, v in self.logs.items()})
        return out


# ----------------------------------------------------------------------------------------------------------


class Trainer:
    """Train ``model`` on ``train_set`` by minimising ``loss_fn``; see the module docstring for the why.

    Args:
        model: the bare model; it is moved to the process's device and wrapped in DDP when
            ``WORLD_SIZE > 1``. ``loss_fn`` receives the wrapped model (so gradients are synchronised);
            ``evaluate_fn`` and step callbacks receive the bare one.
        train_set: a map-style Dataset of dicts. If it has ``set_epoch(epoch)``, that is called at the
            start of every epoch on every rank (in the main process, before workers are forked).
        loss_fn: ``loss_fn(model, batch) -> (scalar loss, {name: float})``. Runs under autocast.
        cfg: the :class:`TrainConfig`.
        evaluate_fn: ``evaluate_fn(model, epoch) -> dict``, called on rank 0 in eval mode under
            ``torch.no_grad()`` every ``eval_every`` epochs and after the last one. A ``"score"`` key
            (higher is better) selects ``best.pt``.
        step_callbacks: ``cb(model, epoch, step_in_epoch, global_step, steps_per_epoch)`` before each step
            (e.g. a token keep-ratio schedule). They must be deterministic functions of their arguments for
            exact resume to hold.
        post_step_callbacks: ``cb(model, global_step)`` after each optimizer step, ``global_step`` being the
            0-based index of the step just taken (e.g. an EMA of the weights).
        extra_state: named objects with ``state_dict()`` / ``load_state_dict()`` saved in every checkpoint
            under ``extra`` and restored on resume (e.g. that EMA), so resume stays exact.
        collate_fn: passed to the DataLoader (default collate when None).
    """

    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset,
        loss_fn: LossFn,
        cfg: TrainConfig,
        evaluate_fn: EvaluateFn | None = None,
        step_callbacks: Iterable[StepCallback] = (),
        collate_fn: Callable[[list[Any]], Any] | None = None,
        post_step_callbacks: Iterable[Callable[[nn.Module, int], Any]] = (),
        extra_state: Mapping[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.dist: DistInfo = init_distributed()
        self.device = self.dist.device
        self.model = model.to(self.device)
        self.train_set = train_set
        self.loss_fn = loss_fn
        self.evaluate_fn = evaluate_fn
        self.step_callbacks: Sequence[StepCallback] = tuple(step_callbacks)
        self.post_step_callbacks = tuple(post_step_callbacks)
        self.extra_state = dict(extra_state or {})
        self.collate_fn = collate_fn
        self.work_dir = Path(cfg.work_dir)
        self.is_main = self.dist.is_main

        num_samples = len(train_set)  # type: ignore[arg-type]  # map-style datasets define __len__
        self.sampler = ResumableShardedSampler(
            num_samples, num_replicas=self.dist.world_size, rank=self.dist.rank, seed=cfg.seed
        )
        self.steps_per_epoch = self.sampler.num_samples // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(
                f"TrainConfig.batch_size={cfg.batch_size} exceeds the {self.sampler.num_samples} samples "
                f"each of {self.dist.world_size} process(es) gets per epoch; no full batch can be formed"
            )
        self.amp_dtype, use_scaler = _resolve_amp(cfg.amp, self.device)
        self.optimizer = _build_optimizer(self.model, cfg)
        self.scheduler = _build_scheduler(self.optimizer, cfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.train_model: nn.Module = self.model
        if self.dist.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(
                self.model, device_ids=device_ids, find_unused_parameters=False
            )
        self.log = _RunLog(self.work_dir, enabled=self.is_main)

        # Progress; everything here is saved in checkpoints.
        self.epoch = 0  # epoch in progress (== cfg.epochs when done)
        self.step_in_epoch = 0  # steps of `epoch` already done
        self.global_step = 0
        self.epoch_loss_sum = 0.0  # rank-averaged losses of the current epoch so far
        self.epoch_loss_count = 0
        self.history: list[dict[str, Any]] = []  # one record per finished epoch
        self.best_score: float | None = None
        self.last_eval: dict[str, Any] | None = None
        self.last_checkpoint: Path | None = None

    # ---------------------------------------------------------------------------------------- public API

    @property
    def last_path(self) -> Path:
        return self.work_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.work_dir / "best.pt"

    def fit(self, resume: bool | str = True) -> dict[str, Any]:
        """Train until ``cfg.epochs`` (or ``cfg.max_steps``) and return a summary.

        ``resume=True`` continues from ``work_dir/last.pt`` when it exists, a path continues from that
        file, ``False`` starts fresh. The summary holds ``epoch_losses`` (rank-averaged mean loss per
        epoch), ``history`` (per-epoch records incl. eval results), ``global_step``, ``stopped_early``,
        ``best_score`` and ``last_checkpoint``.
        """
        if self.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
        source = self._resume_source(resume)
        if source is not None:
            self.load_state_dict(load_checkpoint(source, map_location="cpu"))
            self.last_checkpoint = source
            self.log.text(f"resumed from {source} at epoch {self.epoch} step {self.step_in_epoch} "
                          f"(global step {self.global_step})")
        else:
            _seed_everything(self.cfg.seed + self.dist.rank)
            self.log.text(f"start training: {json.dumps(self.cfg.to_dict())}")
        self.log.text(f"world_size={self.dist.world_size} device={self.device} amp={self.amp_dtype} "
                      f"steps_per_epoch={self.steps_per_epoch}")

        stopped_early = False
        while self.epoch < self.cfg.epochs:
            if self._train_epoch():
                stopped_early = True
                break
            self._finish_epoch()
            if self._max_steps_reached() and self.epoch < self.cfg.epochs:
                stopped_early = True
                break
        if stopped_early:
            self.log.text(f"stopped at max_steps={self.cfg.max_steps} (global step {self.global_step}); "
                          f"resume from {self.last_checkpoint}")
        else:
            self.log.text(f"training finished after {self.epoch} epochs ({self.global_step} steps)")
        return self._summary(stopped_early)

    def state_dict(self) -> dict[str, Any]:
        """Full resumable state. Collective under DDP (gathers every rank's RNG): call on all ranks."""
        rng = all_gather_object(_capture_rng())
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_loss_count": self.epoch_loss_count,
            "samples_per_step": self.cfg.batch_size * self.dist.world_size,
            "world_size": self.dist.world_size,
            "history": _to_primitive(self.history),
            "best_score": self.best_score,
            "last_eval": _to_primitive(self.last_eval),
            "rng": rng,
            "cfg": self.cfg.to_dict(),
            "extra": {name: obj.state_dict() for name, obj in self.extra_state.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`; every rank loads the same file and picks its own RNG state."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        saved_lr = [group["lr"] for group in self.optimizer.param_groups]
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self._rebuild_scheduler(self.epoch)
        new_lr = [group["lr"] for group in self.optimizer.param_groups]
        if not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(saved_lr, new_lr)):
            self.log.text(f"learning-rate schedule changed on resume: checkpoint lr {saved_lr}, "
                          f"the current config gives {new_lr} at epoch {self.epoch}")
        self.global_step = int(state["global_step"])
        self.step_in_epoch = self._convert_step(int(state["step_in_epoch"]), int(state["samples_per_step"]))
        self.epoch_loss_sum = float(state["epoch_loss_sum"])
        self.epoch_loss_count = int(state["epoch_loss_count"])
        self.history = list(state.get("history", []))
        self.best_score = state.get("best_score")
        self.last_eval = state.get("last_eval")
        extra = state.get("extra", {})
        for name, obj in self.extra_state.items():
            if name not in extra:
                raise ConfigError(f"checkpoint has no saved state for {name!r} (saved: {sorted(extra)}); "
                                  "it was written by a run with a different setup")
            obj.load_state_dict(extra[name])
        rng = state["rng"]
        if len(rng) == self.dist.world_size:
            _restore_rng(rng[self.dist.rank])
        else:
            # Different process count: per-rank streams cannot be matched, so the run stays deterministic
            # but is no longer bit-identical to an uninterrupted one.
            self.log.text(f"checkpoint has RNG states for {len(rng)} ranks, running {self.dist.world_size}: "
                          "reseeding (resume is not bit-exact)")
            _seed_everything(self.cfg.seed + self.dist.rank + 7919 * self.global_step)

    # ---------------------------------------------------------------------------------------- internals

    def _rebuild_scheduler(self, epoch: int) -> None:
        """Put the learning-rate schedule at ``epoch`` as the *current* config defines it.

        Why not load the saved scheduler: the schedule is a pure function of (config, epoch), so deriving it
        gives the identical lr when nothing changed, and lets a resumed run extend or change the schedule for
        the epochs still to come (more epochs, a decay added) instead of silently keeping the old one.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * float(group.get("lr_mult", 1.0))
            group.pop("initial_lr", None)
        self.scheduler = _build_scheduler(self.optimizer, self.cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()" does not apply here
            for _ in range(epoch):
                self.scheduler.step()

    def _resume_source(self, resume: bool | str) -> Path | None:
        if resume is False:
            return None
        if resume is True:
            return self.last_path if self.last_path.is_file() else None
        path = Path(resume)
        if not path.is_file():
            raise PrunePoseError(f"resume checkpoint not found: {path}")
        return path

    def _convert_step(self, step_in_epoch: int, saved_samples_per_step: int) -> int:
        """Map a mid-epoch position to this run's batch geometry (batch size x world size may differ)."""
        samples_per_step = self.cfg.batch_size * self.dist.world_size
        if step_in_epoch == 0 or saved_samples_per_step == samples_per_step:
            return step_in_epoch
        consumed = step_in_epoch * saved_samples_per_step
        if consumed % samples_per_step:
            raise ConfigError(
                f"cannot resume mid-epoch: the checkpoint consumed {consumed} samples of epoch {self.epoch}, "
                f"not a multiple of batch_size x world_size = {samples_per_step}; resume with the original "
                "batch size / process count or from an end-of-epoch checkpoint"
            )
        return consumed // samples_per_step

    def _max_steps_reached(self) -> bool:
        return self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps

    def _make_loader(self, epoch: int) -> DataLoader:
        # A fresh loader per epoch (no persistent workers): workers fork after set_epoch(), so they see it.
        self.sampler.set_epoch(epoch)
        self.sampler.set_start_index(self.step_in_epoch * self.cfg.batch_size)
        return DataLoader(
            self.train_set,
            batch_sampler=BatchSampler(self.sampler, self.cfg.batch_size, drop_last=True),
            num_workers=self.cfg.num_workers,
            collate_fn=self.collate_fn,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_seed_worker if self.cfg.num_workers > 0 else None,
            generator=torch.Generator().manual_seed(_loader_seed(self.cfg.seed, epoch, self.dist.rank)),
        )

    def _train_epoch(self) -> bool:
        """Run the remaining steps of ``self.epoch``; True when stopped early by ``max_steps``."""
        epoch = self.epoch
        set_epoch = getattr(self.train_set, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
        loader = self._make_loader(epoch)
        self.model.train()
        window = _Window()
        bar = tqdm(total=self.steps_per_epoch, initial=self.step_in_epoch, desc=f"epoch {epoch}",
                   disable=not self.is_main, mininterval=1.0, dynamic_ncols=True, leave=False)
        try:
            for batch in loader:
                for callback in self.step_callbacks:
                    callback(self.model, epoch, self.step_in_epoch, self.global_step, self.steps_per_epoch)
                loss, logs = self._train_step(batch)
                for callback in self.post_step_callbacks:
                    callback(self.model, self.global_step)
                self.step_in_epoch += 1
                self.global_step += 1
                self.epoch_loss_sum += loss
                self.epoch_loss_count += 1
                window.add(loss, logs)
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
                if self.global_step % self.cfg.log_every == 0:
                    self._log_window(window)
                if self.step_in_epoch == self.steps_per_epoch:
                    continue  # the end-of-epoch checkpoint follows in _finish_epoch
                stop = self._max_steps_reached()
                if stop or self.global_step % self.cfg.checkpoint_every == 0:
                    self._save()
                if stop:
                    return True
        finally:
            bar.close()
        return False

    def _train_step(self, batch: Any) -> tuple[float, dict[str, float]]:
        batch = _to_device(batch, self.device)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss, logs = self.loss_fn(self.train_model, batch)
        # Averaged over ranks before backward: every rank sees the same value, so a NaN on one rank stops
        # all of them together instead of leaving the others hanging in the next collective.
        loss_value = all_reduce_mean(loss.detach().float())
        if not math.isfinite(loss_value):
            self._raise_non_finite(loss_value)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss_value, {k: float(v) for k, v in logs.items()}

    def _raise_non_finite(self, value: float) -> None:
        where = (f"epoch {self.epoch}, step {self.step_in_epoch} of {self.steps_per_epoch} "
                 f"(global step {self.global_step})")
        last = (f"last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint is not None
                else "no checkpoint was written yet")
        message = f"non-finite loss ({value}) at {where}; training stopped, {last}"
        self.log.text(message)
        raise NonFiniteLossError(message)

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _log_window(self, window: _Window) -> None:
        stats = window.summary()
        record = {"type": "iter", "epoch": self.epoch, "step": self.step_in_epoch,
                  "global_step": self.global_step, "lr": self._current_lr(), **stats}
        self.log.record(record)
        extras = " ".join(f"{k}={v:.4g}" for k, v in stats.items() if k not in ("loss", "time_per_iter"))
        self.log.text(f"epoch {self.epoch} step {self.step_in_epoch}/{self.steps_per_epoch} "
                      f"loss={stats['loss']:.5g} lr={record['lr']:.3g} "
                      f"time/iter={stats['time_per_iter']:.3f}s {extras}".rstrip())
        window.reset()

    def _finish_epoch(self) -> None:
        """Step the schedule, evaluate, record the epoch and checkpoint; the order is part of exact resume."""
        epoch = self.epoch
        lr = self._current_lr()
        self.scheduler.step()
        # Make every rank's copy identical (BatchNorm statistics) before evaluating and checkpointing.
        broadcast_tensors_(list(self.model.buffers()))
        mean_loss = self.epoch_loss_sum / max(self.epoch_loss_count, 1)
        record: dict[str, Any] = {"type": "epoch", "epoch": epoch, "global_step": self.global_step,
                                  "loss": mean_loss, "lr": lr}
        is_best = False
        last_epoch = epoch + 1 == self.cfg.epochs
        if self.evaluate_fn is not None and ((epoch + 1) % self.cfg.eval_every == 0 or last_epoch):
            results = self._evaluate(epoch)
            record["eval"] = results
            self.last_eval = results
            score = results.get("score")
            if isinstance(score, (int, float)) and math.isfinite(score):
                is_best = self.best_score is None or score > self.best_score
                if is_best:
                    self.best_score = float(score)
        self.history.append(record)
        self.epoch += 1
        self.step_in_epoch = 0
        self.epoch_loss_sum, self.epoch_loss_count = 0.0, 0
        self.log.record(record)
        self.log.text(f"epoch {epoch} done: mean loss={mean_loss:.5g} lr={lr:.3g}"
                      + (f" eval={json.dumps(record['eval'])}" if "eval" in record else ""))
        self._save(is_best=is_best)

    def _evaluate(self, epoch: int) -> dict[str, Any]:
        """Run evaluate_fn on rank 0 only; the others wait in the broadcast that shares its result."""
        results: dict[str, Any] = {}
        if self.is_main:
            assert self.evaluate_fn is not None
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            self.model.eval()
            try:
                # fork_rng: evaluation must not consume the training RNG, or eval_every would change training.
                with torch.random.fork_rng(devices=devices), torch.no_grad():
                    results = dict(_to_primitive(dict(self.evaluate_fn(self.model, epoch))))
            finally:
                self.model.train()
        return broadcast_object(results)

    def _save(self, is_best: bool = False) -> None:
        state = self.state_dict()  # collective: all ranks take part
        if self.is_main:
            save_checkpoint(self.last_path, state)
            if is_best:
                save_checkpoint(self.best_path, state)
                self.log.text(f"new best score {self.best_score:.6g}: saved {self.best_path}")
        self.last_checkpoint = self.last_path

    def _summary(self, stopped_early: bool) -> dict[str, Any]:
        return {
            "epochs_done": self.epoch,
            "global_step": self.global_step,
            "epoch_losses": [float(r["loss"]) for r in self.history],
            "history": list(self.history),
            "last_eval": self.last_eval,
            "best_score": self.best_score,
            "stopped_early": stopped_early,
            "last_checkpoint": str(self.last_checkpoint) if self.last_checkpoint is not None else None,
        }
