"""Exact resume: an interrupted-and-resumed run must end with bit-identical weights.

The toy model has dropout (global RNG), BatchNorm (buffers) and Adam (optimizer state), the dataset has
per-(epoch, index) noise, and evaluate_fn draws random numbers: every state a resume could get wrong.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from _engine_script import ToyDataset, evaluate, make_model, mse_loss
from prunepose.engine import (
    NonFiniteLossError,
    ResumableShardedSampler,
    TrainConfig,
    Trainer,
    load_checkpoint,
)

TESTS_DIR = Path(__file__).resolve().parent
SRC_DIR = TESTS_DIR.parent / "src"
N, BATCH, EPOCHS = 64, 4, 3  # 16 steps per epoch


def _cfg(work_dir: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = dict(epochs=EPOCHS, batch_size=BATCH, lr=1e-2, lr_steps=(2,), checkpoint_every=5,
                                log_every=5, work_dir=str(work_dir))
    base.update(kw)
    return TrainConfig(**base)


def _run(work_dir: Path, resume: bool | str = True, **kw: Any) -> tuple[torch.nn.Module, dict, list]:
    """Train a fresh toy model; returns the model, fit's summary, and the step-callback calls seen."""
    model = make_model("bn_dropout")
    calls: list[tuple[int, int, int, int]] = []

    def record(_model: torch.nn.Module, epoch: int, step: int, global_step: int, per_epoch: int) -> None:
        calls.append((epoch, step, global_step, per_epoch))

    trainer = Trainer(model, ToyDataset(N), mse_loss, _cfg(work_dir, **kw), evaluate_fn=evaluate,
                      step_callbacks=[record])
    return model, trainer.fit(resume=resume), calls


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], dict]:
    """One uninterrupted run shared by the resume tests (num_workers does not change results)."""
    model, summary, calls = _run(tmp_path_factory.mktemp("ref"))
    assert [c[2] for c in calls] == list(range(EPOCHS * N // BATCH))
    return {k: v.clone() for k, v in model.state_dict().items()}, summary


# -------------------------------------------------------------------------------------------- sampler


def test_sampler_shards_partition_padded_permutation() -> None:
    single = ResumableShardedSampler(10, seed=5)
    single.set_epoch(2)
    perm = list(single)
    assert sorted(perm) == list(range(10))
    padded = perm + perm[:2]  # padded to a multiple of 3 with the head of the permutation
    for rank in range(3):
        shard = ResumableShardedSampler(10, num_replicas=3, rank=rank, seed=5)
        shard.set_epoch(2)
        assert list(shard) == padded[rank::3] and len(shard) == 4
    single.set_epoch(3)
    assert list(single) != perm, "each epoch must get its own permutation"


def test_sampler_start_index_skips_exactly() -> None:
    s = ResumableShardedSampler(20, num_replicas=2, rank=1, seed=0)
    s.set_epoch(4)
    full = list(s)
    s.set_start_index(6)
    assert list(s) == full[6:] and len(s) == len(full) - 6


# -------------------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("num_workers", [0, 2])
def test_exact_resume_mid_epoch(tmp_path: Path, reference: tuple[dict, dict], num_workers: int) -> None:
    ref_weights, ref_summary = reference
    stop_at = 16 + 7  # epoch 1 (the second), step 7
    _, first, _ = _run(tmp_path, num_workers=num_workers, max_steps=stop_at)
    assert first["stopped_early"] and first["global_step"] == stop_at
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 7, stop_at)

    model, summary, calls = _run(tmp_path, num_workers=num_workers)  # a new Trainer picks up last.pt
    assert calls[0] == (1, 7, stop_at, 16), "resume must continue exactly after the last done step"
    _assert_same_weights(ref_weights, model.state_dict())
    assert summary["epoch_losses"] == ref_summary["epoch_losses"]
    assert summary["history"] == ref_summary["history"]


def test_resume_at_epoch_boundary_and_finished_run(tmp_path: Path, reference: tuple[dict, dict]) -> None:
    _run(tmp_path, max_steps=16)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    model, _, calls = _run(tmp_path)
    assert calls[0] == (1, 0, 16, 16)
    _assert_same_weights(reference[0], model.state_dict())
    # Resuming a finished run trains nothing and reports the same summary.
    _, summary, calls = _run(tmp_path)
    assert calls == [] and summary["epochs_done"] == EPOCHS


def test_checkpoint_contents_and_logs(tmp_path: Path) -> None:
    _, summary, _ = _run(tmp_path, epochs=2)
    state = load_checkpoint(tmp_path / "last.pt")
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "cfg", "history"} <= state.keys()
    assert state["cfg"]["batch_size"] == BATCH and state["epoch"] == 2 and state["global_step"] == 32
    assert (tmp_path / "best.pt").is_file()
    assert summary["best_score"] == max(r["eval"]["score"] for r in summary["history"])
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    iters = [r for r in records if r["type"] == "iter"]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert len(iters) == 32 // 5 and {"loss", "lr", "time_per_iter", "mae"} <= iters[0].keys()
    assert [r["epoch"] for r in epochs] == [0, 1] and "score" in epochs[0]["eval"]
    assert math.isclose(epochs[0]["loss"], summary["epoch_losses"][0])
    assert "epoch 1 done" in (tmp_path / "train.log").read_text()
    assert not list(tmp_path.glob("*.tmp"))


def test_non_finite_loss_names_step_and_checkpoint(tmp_path: Path) -> None:
    def exploding(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        loss, logs = mse_loss(model, batch)
        return (loss * float("nan") if exploding.calls == 7 else loss), logs  # type: ignore[attr-defined]

    def count(*_: Any) -> None:
        exploding.calls += 1  # type: ignore[attr-defined]

    exploding.calls = -1  # type: ignore[attr-defined]
    trainer = Trainer(make_model(), ToyDataset(N), exploding, _cfg(tmp_path), step_callbacks=[count])
    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit()
    message = str(info.value)
    assert "epoch 0, step 7" in message and str(tmp_path / "last.pt") in message


def test_resume_from_explicit_missing_path_fails(tmp_path: Path) -> None:
    from prunepose.errors import PrunePoseError

    trainer = Trainer(make_model(), ToyDataset(N), mse_loss, _cfg(tmp_path))
    with pytest.raises(PrunePoseError, match="not found"):
        trainer.fit(resume=str(tmp_path / "missing.pt"))


# -------------------------------------------------------------------------------------------- real kill


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC_DIR), str(TESTS_DIR), env.get("PYTHONPATH", "")])
    return env


def test_sigkill_mid_epoch_then_resume(tmp_path: Path, reference: tuple[dict, dict]) -> None:
    work = tmp_path / "run"
    script = [sys.executable, str(TESTS_DIR / "_engine_script.py"), "--work-dir", str(work), "--epochs",
              str(EPOCHS), "--batch-size", str(BATCH), "--num-samples", str(N), "--checkpoint-every", "1"]
    proc = subprocess.Popen([*script, "--step-sleep", "0.05"], env=_script_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while True:
            assert proc.poll() is None, f"training ended before the kill: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "no mid-epoch checkpoint appeared within 60 s"
            if (work / "last.pt").is_file():
                seen = load_checkpoint(work / "last.pt")
                if seen["global_step"] >= 21 and seen["step_in_epoch"] > 0:  # mid-epoch 1
                    break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # The kill lands wherever the job happens to be (maybe inside a checkpoint write); last.pt must be usable.
    assert load_checkpoint(work / "last.pt")["epoch"] < EPOCHS

    out = tmp_path / "final"
    done = subprocess.run([*script, "--out", str(out)], env=_script_env(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert "resumed from" in (work / "train.log").read_text()
    _assert_same_weights(reference[0], torch.load(f"{out}.rank0.pt", weights_only=True))


def test_post_step_callbacks_and_extra_state_survive_resume(tmp_path: Path) -> None:
    """An EMA updated after every step is saved with the checkpoint and restored exactly on resume."""
    from prunepose.engine.ema import ModelEMA

    def run(work: Path, **kw: Any) -> ModelEMA:
        torch.manual_seed(0)
        model = make_model("bn_dropout")
        ema = ModelEMA(model, total_steps=EPOCHS * N // BATCH)
        trainer = Trainer(model, ToyDataset(N), mse_loss, _cfg(work, **kw), post_step_callbacks=[ema.update],
                          extra_state={"ema": ema})
        trainer.fit(resume=True)
        return ema

    full = run(tmp_path / "a")
    run(tmp_path / "b", max_steps=21)
    resumed = run(tmp_path / "b")
    assert full.updates == EPOCHS * N // BATCH == resumed.updates
    _assert_same_weights(full.module.state_dict(), resumed.module.state_dict())


def test_resume_takes_the_lr_schedule_from_the_current_config(tmp_path: Path) -> None:
    """A run extended on resume (more epochs, a decay added) follows the new schedule from the saved epoch."""
    _run(tmp_path, epochs=1, lr_steps=(100,))  # epoch 0 at constant lr 1e-2, checkpoint at its end
    _run(tmp_path, epochs=3, lr_epoch_decay=0.5)
    lrs: dict[int, set[float]] = {}
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("type") == "iter":
            lrs.setdefault(rec["epoch"], set()).add(rec["lr"])
    assert lrs == {0: {1e-2}, 1: {5e-3}, 2: {2.5e-3}}
