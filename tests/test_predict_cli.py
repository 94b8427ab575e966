"""`prunepose predict`: files written, COCO results, video overlay, partial results on failure, exit codes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from prunepose.cli import main
from prunepose.paths import shared_data_dir
from prunepose.registry import create_model
from prunepose.weights import save_weights

ASTRONAUT = Path(__file__).resolve().parents[1] / "src" / "prunepose" / "assets" / "astronaut.jpg"


@pytest.fixture(scope="module")
def ppt(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    model = create_model("ppt_s", dim=32, depth=4, heads=2, prune_layers=(1, 2))
    return str(save_weights(model, tmp_path_factory.mktemp("w") / "ppt.safetensors"))


@pytest.fixture(scope="module")
def gtpt(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(1)
    model = create_model("gtpt_t", dim=32, coarse_depth=2, fine_depth=2, h2k_layer=0, heads=2)
    return str(save_weights(model, tmp_path_factory.mktemp("w") / "gtpt.safetensors"))


def make_video(path: Path, frames: int, fourcc: str = "mp4v", size: tuple[int, int] = (128, 128)) -> None:
    img = cv2.imread(str(ASTRONAUT))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, size)
    for i in range(frames):
        writer.write(cv2.resize(np.roll(img, 8 * i, axis=1), size))
    writer.release()


def count_frames(path: Path) -> int:
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    return n


def test_predict_folder_of_real_images(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = shared_data_dir()
    if root is None or not (root / "coco-mini" / "train2017").is_dir():
        pytest.skip("shared data coco-mini not available (set PRUNEPOSE_DATA)")
    src = tmp_path / "imgs"
    src.mkdir()
    names = sorted(p.name for p in (root / "coco-mini" / "train2017").glob("*.jpg"))[:3]
    for name in names:
        shutil.copy(root / "coco-mini" / "train2017" / name, src / name)
    out = tmp_path / "out"
    assert main(["predict", str(src), "--checkpoint", ppt, "--out", str(out), "--batch-size", "2"]) == 0
    records = json.loads((out / "predictions.json").read_text())
    assert sorted({r["image_id"] for r in records}) == sorted(int(Path(n).stem) for n in names)  # COCO ids
    assert all(len(r["keypoints"]) == 51 and r["category_id"] == 1 for r in records)
    for name in names:
        shown = cv2.imread(str(out / f"{Path(name).stem}_pose.jpg"))
        assert shown is not None and shown.shape == cv2.imread(str(src / name)).shape
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 3 and summary["tokens_per_stage"] == [256, 180, 126]
    assert summary["images_smaller_than_input"] == []
    assert "3 image(s)" in capsys.readouterr().out


def test_predict_boxes_and_no_images(ppt: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["predict", str(ASTRONAUT), "--checkpoint", ppt, "--out", str(out), "--no-images", "--quiet",
            "--box", "100", "50", "400", "500", "--box", "0", "0", "200", "200"]
    assert main(args) == 0
    records = json.loads((out / "predictions.json").read_text())
    assert [r["bbox"] for r in records] == [[100, 50, 300, 450], [0, 0, 200, 200]]
    assert [r["image_id"] for r in records] == ["astronaut"] * 2
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json", "summary.json"]


def test_predict_video_writes_overlay_video(ppt: str, tmp_path: Path) -> None:
    make_video(tmp_path / "walk.mp4", 8)
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "walk.mp4"), "--checkpoint", ppt, "--out", str(out), "--quiet"]) == 0
    records = json.loads((out / "predictions.json").read_text())
    assert sorted({r["image_id"] for r in records}) == list(range(8))
    assert all("track_id" in r for r in records)
    assert count_frames(out / "walk_pose.mp4") == 8


def test_video_without_person_is_reported_not_an_error(gtpt: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    make_video(tmp_path / "empty.mp4", 5)
    out = tmp_path / "out"
    # random GTPT weights give SimCC probabilities ~1/384: no keypoint reaches the 0.3 threshold
    assert main(["predict", str(tmp_path / "empty.mp4"), "--checkpoint", gtpt, "--out", str(out),
                 "--no-images"]) == 0
    printed = capsys.readouterr().out
    assert "no person found in    5 frame(s): 0, 1, 2, 3, 4" in printed
    assert json.loads((out / "summary.json").read_text())["frames_without_person"] == [0, 1, 2, 3, 4]


def test_truncated_video_keeps_partial_results(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_video(tmp_path / "full.avi", 30, "MJPG", (64, 64))
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out"
    assert main(["predict", str(tmp_path / "cut.avi"), "--checkpoint", ppt, "--out", str(out), "--quiet",
                 "--no-detector"]) == 2  # synthetic frames hold no person for the detector: whole-frame poses
    err = capsys.readouterr().err
    assert "cut.avi: video broke off after" in err and "predictions.json" in err
    done = int(err.split("broke off after ")[1].split(" ")[0])
    records = json.loads((out / "predictions.json").read_text())
    assert 0 < done < 30 and sorted({r["image_id"] for r in records}) == list(range(done))
    assert count_frames(out / "cut_pose.mp4") == done  # the overlay video was finalised too
    summary = json.loads((out / "summary.json").read_text())
    assert "broke off" in summary["error"]
    assert summary["frames_smaller_than_input"] == list(range(done))  # 64x64 frames < 192x256 input


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "missing.jpg", "missing.jpg: no such file"),
    (lambda d: (d / "notes.txt").write_text("x") and d / "notes.txt", "unsupported file type"),
    (lambda d: (d / "broken.png").write_bytes(b"\x89PNG garbage") and d / "broken.png", "broken.png: cannot decode"),
    (lambda d: (d / "void.mp4").write_bytes(b"") or d / "void.mp4", "void.mp4: file is empty"),
])
def test_bad_sources_exit_2_naming_the_file(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture,
                                            make, message: str) -> None:
    src = make(tmp_path)
    assert main(["predict", str(src), "--checkpoint", ppt, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err


def test_bad_options_exit_2(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = str(tmp_path / "out")
    assert main(["predict", str(ASTRONAUT), "--checkpoint", ppt, "--out", out, "--box", "50", "50", "10", "90"]) == 2
    assert "x2 > x1" in capsys.readouterr().err
    det = tmp_path / "det.json"
    det.write_text(json.dumps([{"image_id": "astronaut", "category_id": 1, "bbox": "oops", "score": 1}]))
    assert main(["predict", str(ASTRONAUT), "--checkpoint", ppt, "--out", out, "--det-file", str(det)]) == 2
    assert "det.json: field '[0].bbox'" in capsys.readouterr().err
    assert main(["predict", str(ASTRONAUT), "--model", "ppt_s", "--out", out]) == 2
    assert "needs checkpoint" in capsys.readouterr().err


def test_docs_commands_parse() -> None:
    """Every `prunepose predict` line in docs/predict.md is accepted by the real parser (docs stay true)."""
    import shlex

    from prunepose.cli import build_parser

    doc = Path(__file__).resolve().parents[1] / "docs" / "predict.md"
    lines = [ln.split("#")[0].strip() for ln in doc.read_text().splitlines() if ln.startswith("prunepose predict ")]
    assert len(lines) >= 5
    parser = build_parser()
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])
        assert args.func.__name__ == "cmd_predict", line


def test_corrupt_image_in_folder_keeps_earlier_results(ppt: str, tmp_path: Path, capsys) -> None:
    src = tmp_path / "imgs"
    src.mkdir()
    shutil.copy(ASTRONAUT, src / "a.jpg")
    (src / "b.jpg").write_bytes(b"\xff\xd8 not really a jpeg" * 4)
    out = tmp_path / "out"
    assert main(["predict", str(src), "--checkpoint", ppt, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "b.jpg: cannot decode image" in err and "1 image(s) done before" in err
    assert [r["image_id"] for r in json.loads((out / "predictions.json").read_text())] == ["a"]
