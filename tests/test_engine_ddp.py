"""Real 2-process DDP runs (gloo on CPU) launched through torchrun.

What they prove: ranks stay in sync, gradients are averaged (2 x batch b == 1 x batch 2b), and an
interrupted DDP run resumes bit-exactly with every rank's own RNG stream.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _engine_script import main as script_main
from _engine_script import make_model
from prunepose.engine import load_checkpoint

TESTS_DIR = Path(__file__).resolve().parent
SRC_DIR = TESTS_DIR.parent / "src"
SCRIPT = TESTS_DIR / "_engine_script.py"


def _torchrun(*args: str, nproc: int = 2, timeout: float = 120) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC_DIR), str(TESTS_DIR), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun would set it anyway, with a warning
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--standalone",
           str(SCRIPT), *args]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"torchrun did not finish within {timeout} s (hung collective?): {exc.stderr!r}")
    assert done.returncode == 0, done.stderr.decode()[-4000:]


def _load(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted 2-process run of the BN + dropout model; returns its folder."""
    root = tmp_path_factory.mktemp("ddp")
    _torchrun("--work-dir", str(root / "run"), "--epochs", "2", "--out", str(root / "final"))
    return root


def test_ddp_ranks_end_identical(ddp_run: Path) -> None:
    rank0, rank1 = _load(f"{ddp_run / 'final'}.rank0.pt"), _load(f"{ddp_run / 'final'}.rank1.pt")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{key} differs between ranks"
    state = load_checkpoint(ddp_run / "run" / "last.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["global_step"] == 2 * 8
    assert (ddp_run / "run" / "train.log").read_text().count("start training") == 1, "only rank 0 logs"


def test_ddp_resume_is_exact(ddp_run: Path, tmp_path: Path) -> None:
    work = tmp_path / "run"
    _torchrun("--work-dir", str(work), "--epochs", "2", "--max-steps", "11")  # epoch 1, step 3 of 8
    assert load_checkpoint(work / "last.pt")["step_in_epoch"] == 3
    _torchrun("--work-dir", str(work), "--epochs", "2", "--out", str(tmp_path / "final"))
    expected = _load(f"{ddp_run / 'final'}.rank0.pt")
    for rank in (0, 1):
        got = _load(f"{tmp_path / 'final'}.rank{rank}.pt")
        for key in expected:
            assert torch.equal(expected[key], got[key]), f"rank {rank}: {key} differs after resume"


def test_ddp_averages_gradients(tmp_path: Path) -> None:
    """BN/dropout-free model, mean loss: 2 ranks x batch 4 must match 1 process x batch 8."""
    common = ["--model", "linear", "--epochs", "2", "--num-samples", "64"]
    ddp_dir, single_dir = str(tmp_path / "ddp"), str(tmp_path / "single")
    _torchrun("--work-dir", ddp_dir, "--batch-size", "4", "--out", ddp_dir, *common)
    script_main(["--work-dir", single_dir, "--batch-size", "8", "--out", single_dir, *common])
    ddp, single = _load(f"{tmp_path / 'ddp'}.rank0.pt"), _load(f"{tmp_path / 'single'}.rank0.pt")
    initial = make_model("linear").state_dict()
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=0, atol=1e-6)
        assert not torch.allclose(single[key], initial[key], atol=1e-3), f"{key} barely trained"
