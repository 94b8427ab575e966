"""Thin helpers around ``torch.distributed`` that degrade to no-ops in a single process.

Why wrappers: the trainer and evaluation code call ``barrier()``/``all_reduce_mean()`` unconditionally,
so the same code path runs under ``python train.py`` and ``torchrun --nproc_per_node N train.py`` without
``if distributed:`` branches everywhere.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "init_distributed",
    "is_dist",
    "is_main",
    "get_rank",
    "get_world_size",
    "barrier",
    "cleanup",
    "all_reduce_mean",
    "broadcast_object",
    "all_gather_object",
    "broadcast_tensors_",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job, and the device it should compute on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _pick_device(local_rank: int) -> torch.device:
    if torch.cuda.is_available():
        # Each process owns one GPU; set it now so NCCL and object collectives use the right one.
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def init_distributed() -> DistInfo:
    """Join the process group described by torchrun's env vars (RANK, WORLD_SIZE, LOCAL_RANK).

    Idempotent, so both a script and the Trainer may call it. With WORLD_SIZE unset or 1 nothing is
    initialised. The backend is NCCL when CUDA is available and gloo otherwise (CPU tests and laptops).
    """
    if is_dist():
        rank, world_size = dist.get_rank(), dist.get_world_size()
        local_rank = _env_int("LOCAL_RANK", rank)
        return DistInfo(rank, world_size, local_rank, _pick_device(local_rank))
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = _pick_device(local_rank)
    if world_size > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        atexit.register(_destroy_at_exit)
    return DistInfo(rank, world_size, local_rank, device)


def _destroy_at_exit() -> None:
    """Last resort for scripts that never call :func:`cleanup`: destroy the group while Python still lives.

    No barrier here: at exit after an error the peers may be gone, and waiting would hang the job.
    """
    if is_dist():
        dist.destroy_process_group()


def is_dist() -> bool:
    """True inside an initialised multi-process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files and prints progress."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for all ranks; no-op in a single process."""
    if is_dist():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group so the job exits cleanly.

    Why the barrier first: a rank that reaches the end early (rank 1 skips rank 0's final checkpoint write)
    must not tear its gloo pairs down while the peer still works; and why at all: a process group left for
    interpreter finalisation can abort the process (SIGABRT, "terminate called without an active
    exception") when gloo's worker threads are destroyed after Python is gone. Idempotent.
    """
    if is_dist():
        dist.barrier()
        dist.destroy_process_group()


def _collective_device() -> torch.device:
    # NCCL only reduces CUDA tensors; gloo only CPU ones.
    if is_dist() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(value: float | torch.Tensor) -> float:
    """Mean of a scalar over all ranks, as a Python float (the value itself when not distributed)."""
    if not is_dist():
        return float(value)
    t = torch.as_tensor(value, dtype=torch.float64).detach().reshape(()).to(_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Return ``src``'s picklable object on every rank (e.g. an eval result or a decision flag)."""
    if not is_dist():
        return obj
    holder: list[Any] = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def all_gather_object(obj: T) -> list[T]:
    """List of every rank's object, indexed by rank (``[obj]`` when not distributed)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_tensors_(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with ``src``'s values (no-op when not distributed).

    Used for module buffers: DDP copies rank 0's buffers at the start of each forward, so after the last
    forward every rank holds its own BatchNorm statistics until they are synchronised explicitly.
    """
    if not is_dist():
        return
    for t in tensors:
        dist.broadcast(t.data, src=src)
