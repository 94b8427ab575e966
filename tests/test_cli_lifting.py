"""2D->3D lifting through the CLI on the real Human3.6M data (one action, one camera, tiny models)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from prunepose.cli import main
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
pytestmark = [pytest.mark.skipif(DATA is None or not (DATA / "h36m").is_dir(),
                                 reason="shared Human3.6M data (../shared/data/h36m) not available"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.mark.parametrize("model", ["mixste_tiny", "hot_mixste_tiny"])
def test_train_and_test_lifter(tmp_path: Path, model: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = {"task": "lifting", "model": model,
           "data": {"format": "h36m", "keypoints": "gt", "test_keypoints": ["gt", "sh"],
                    "camera_ids": ["54138969"], "actions": ["Walking"]},
           "train": {"epochs": 2, "batch_size": 8, "optimizer": "adamw", "lr": 0.002, "lr_steps": [100],
                     "log_every": 5, "eval_every": 2},
           "test": {"batch_size": 32}}
    path = tmp_path / "lift.yaml"
    path.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    assert main(["train", str(path), "--work-dir", str(work)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    losses = summary["epoch_losses"]
    assert losses[-1] < losses[0], losses
    out = tmp_path / "test"
    assert main(["test", str(path), "--checkpoint", str(work / "last.pt"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for name in ("gt2d", "sh2d"):
        assert set(metrics[name]["per_action"]) == {"Walking"}
        assert 0 < metrics[name]["p_mpjpe_mm"] <= metrics[name]["mpjpe_mm"] < 2000
