"""GTPT through the CLI on real images: COCO body training with EMA, then the body-first curriculum stage on
COCO-WholeBody labels, each evaluated end to end (pycocotools; per part for WholeBody)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from prunepose.cli import main
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
pytestmark = [pytest.mark.skipif(DATA is None, reason="shared data folder (../shared/data) not available"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_gtpt_body_then_wholebody_curriculum(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mini = DATA / "coco-mini"
    split = {"ann_file": str(mini / "annotations/person_keypoints_train2017.json"),
             "image_root": str(mini / "train2017"), "skip_missing_images": True}
    body = {"model": "gtpt_t", "data": {"format": "coco", "train": split, "val": split},
            "train": {"epochs": 1, "batch_size": 16, "lr": 0.001, "lr_steps": [100], "log_every": 1},
            "test": {"batch_size": 32}}
    work = tmp_path / "body"
    assert main(["train", str(_write(tmp_path / "body.yaml", body)), "--work-dir", str(work)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["global_step"] == 5 and all(x == x for x in summary["epoch_losses"])  # 81 persons / 16
    state = torch.load(work / "last.pt", weights_only=True)
    ema = state["extra"]["ema"]
    assert ema["updates"] == 5
    # the EMA moved away from the initial weights but is not the student
    key = "keypoint_tokens"
    assert not torch.equal(ema["module"][key], state["model"][key])

    wb_dir = DATA / "mmpose-testdata" / "coco"
    wb_split = {"ann_file": str(wb_dir / "test_coco_wholebody.json"), "image_root": str(wb_dir)}
    wholebody = {"model": "gtpt_t_wholebody", "data": {"format": "coco_wholebody", "train": wb_split, "val": wb_split},
                 "train": {"epochs": 1, "batch_size": 4, "lr": 0.001, "lr_steps": [100]},
                 "init": {"checkpoint": str(work / "last.pt"), "strict": False}, "test": {"batch_size": 16}}
    work2 = tmp_path / "wholebody"
    assert main(["train", str(_write(tmp_path / "wb.yaml", wholebody)), "--work-dir", str(work2)]) == 0
    capsys.readouterr()
    out = tmp_path / "test"
    assert main(["test", str(tmp_path / "wb.yaml"), "--checkpoint", str(work2 / "last.pt"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for part in ("body", "foot", "face", "lefthand", "righthand"):
        assert 0.0 <= metrics[f"{part}_AP"] <= 1.0
    assert 0.0 <= metrics["AP"] <= 1.0
    results = json.loads((out / "keypoints_results.json").read_text())
    assert {"foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"} <= set(results[0])


def test_wrong_keypoint_count_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wb_dir = DATA / "mmpose-testdata" / "coco"
    split = {"ann_file": str(wb_dir / "test_coco.json"), "image_root": str(wb_dir)}
    cfg = {"model": "gtpt_t_wholebody", "data": {"format": "coco", "train": split},
           "train": {"epochs": 1, "batch_size": 4}}
    assert main(["train", str(_write(tmp_path / "bad.yaml", cfg)), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "133" in err and "17" in err and "Traceback" not in err
