"""End to end through the CLI on real COCO-mini images: train (single process and torchrun), test, bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from prunepose.cli import main
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="shared data folder (../shared/data) not available")
REPO = Path(__file__).resolve().parents[1]

TINY = ["--set", "model=tokenpose_t", "--set", "model_overrides={dim: 64, depth: 1, heads: 4}",
        "--set", "train.epochs=3", "--set", "train.batch_size=16", "--set", "train.lr=0.003",
        "--set", "train.lr_steps=[100]", "--set", "train.eval_every=3", "--set", "train.log_every=1"]


def _config(tmp_path: Path) -> Path:
    cfg = yaml.safe_load((REPO / "configs/smoke/coco_mini.yaml").read_text())
    cfg["data"]["data_root"] = str(DATA / "coco-mini")
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@needs_data
def test_train_then_test_on_coco_mini(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    work = tmp_path / "work"
    assert main(["train", str(cfg), "--work-dir", str(work), *TINY]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    losses = summary["epoch_losses"]
    assert len(losses) == 3 and losses[-1] < 0.7 * losses[0], losses
    assert (work / "last.pt").is_file() and (work / "config.yaml").is_file()
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert any("AP" in json.dumps(r) for r in records), "evaluation results must reach the log"

    out = tmp_path / "test"
    assert main(["test", str(cfg), "--checkpoint", str(work / "last.pt"), "--out", str(out), *TINY[:4]]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["AP"] <= 1.0 and 0.0 <= metrics["AR"] <= 1.0
    results = json.loads((out / "keypoints_results.json").read_text())
    assert results and set(results[0]) == {"image_id", "category_id", "keypoints", "score"}
    assert len(results[0]["keypoints"]) == 17 * 3


@needs_data
def test_torchrun_two_processes(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    work = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
           "prunepose.cli", "train", str(cfg), "--work-dir", str(work), *TINY[:-4],
           "--set", "train.epochs=1", "--set", "train.batch_size=8"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    # 81 persons after skipping crowds, 2 processes x 8 per step, drop_last -> 5 steps per epoch
    assert summary["global_step"] == 5
    assert (work / "last.pt").is_file()


def test_models_command_lists_registry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "ppt"]) == 0
    out = capsys.readouterr().out
    assert "ppt_s" in out and "tokenpose_b" not in out


@needs_data
def test_bad_annotation_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "not_coco.json"
    bad.write_text(json.dumps({"hello": 1}))
    cfg = yaml.safe_load(_config(tmp_path).read_text())
    cfg["data"]["train"]["ann_file"] = str(bad)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--work-dir", str(tmp_path / "w"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "not_coco.json" in err and "images" in err and "Traceback" not in err


def test_bad_config_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("model: tokenpose_t\nmodle_overrides: {}\n")
    assert main(["train", str(path)]) == 2
    assert "modle_overrides" in capsys.readouterr().err
    assert main(["test", str(tmp_path / "missing.yaml"), "--checkpoint", "x.pt"]) == 2
    assert "missing.yaml" in capsys.readouterr().err
