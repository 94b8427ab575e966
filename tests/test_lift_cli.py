"""``prunepose lift``: the files it reads and writes, checked against the Python API on the same input, and
one-line errors (exit 2) for every kind of bad input."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from prunepose.api.layouts import coco_to_h36m
from prunepose.api.lifter3d import Lifter3D
from prunepose.cli import main

W, H = 640, 480


def _coco_track(t: int, seed: int = 0) -> np.ndarray:
    """(T, 17, 2) COCO-17 pixels: a frontal person (the layout's geometry) drifting and jittering."""
    base = np.array([[320, 100], [328, 92], [312, 92], [336, 96], [304, 96], [360, 150], [280, 150], [370, 210],
                     [270, 210], [376, 260], [264, 260], [345, 270], [295, 270], [348, 350], [292, 350],
                     [350, 430], [290, 430]], dtype=np.float64)
    rng = np.random.default_rng(seed)
    return base[None] + np.linspace(0, 20, t)[:, None, None] + rng.normal(scale=1.5, size=(t, 17, 2))


def _lift(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["lift", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_npy_with_scores_matches_the_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kpts = _coco_track(12)
    scores = np.full((12, 17), 0.9)
    scores[3, 9] = 0.1  # left wrist weak in frame 3
    np.save(tmp_path / "track.npy", np.concatenate([kpts, scores[..., None]], axis=-1))
    code, out, err = _lift([str(tmp_path / "track.npy"), "--layout", "coco", "--image-size", str(W), str(H),
                            "--min-score", "0.3", "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    assert "lifted 12 frames" in out and "1 frames had interpolated joints" in out
    api = Lifter3D(min_score=0.3)(kpts, (W, H), layout="coco", scores=scores)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "poses3d.npy"), api.poses3d, atol=1e-6)
    record = json.loads((tmp_path / "out" / "poses3d.json").read_text())
    np.testing.assert_allclose(record["poses3d"], api.poses3d, atol=1e-6)
    assert record["frame_ids"] == list(range(12)) and record["input_layout"] == "coco"
    filled = np.array(record["filled"])
    assert filled.sum() == 1 and filled[3, 13]  # H36M left_wrist (13) <- COCO left_wrist (9)


def _predictions(kpts: np.ndarray, drop_frame: int | None = None) -> list[dict]:
    """COCO results as `prunepose predict` writes them: the person, plus a weaker second detection per frame."""
    out = []
    for t, pts in enumerate(kpts):
        if t == drop_frame:
            continue
        for score, shift in ((0.9, 0.0), (0.4, 150.0)):
            kps = np.concatenate([pts + shift, np.full((17, 1), score)], axis=1)
            out.append({"image_id": t, "category_id": 1, "keypoints": kps.reshape(-1).round(3).tolist(),
                        "score": score, "bbox": [0, 0, 10, 10]})
    return out


def test_predict_json_picks_the_best_person_and_fills_missing_frames(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    kpts = _coco_track(10).round(3)
    (tmp_path / "predictions.json").write_text(json.dumps(_predictions(kpts, drop_frame=4)))
    code, out, err = _lift([str(tmp_path / "predictions.json"), "--image-size", str(W), str(H),
                            "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert "1 of 10 frames have no detection" in out
    record = json.loads((tmp_path / "o" / "poses3d.json").read_text())
    assert np.array(record["filled"])[4].all() and np.array(record["filled"]).sum() == 17
    holes = kpts.copy()
    holes[4] = np.nan
    api = Lifter3D()(holes, (W, H), layout="coco")
    np.testing.assert_allclose(np.load(tmp_path / "o" / "poses3d.npy"), api.poses3d, atol=1e-6)
    # the second person (rank 1) is the first one shifted by 150 px: its 2D input shifts by exactly that
    assert _lift([str(tmp_path / "predictions.json"), "--image-size", str(W), str(H), "--person", "1",
                  "--out", str(tmp_path / "p1")], capsys)[0] == 0
    second = json.loads((tmp_path / "p1" / "poses3d.json").read_text())
    np.testing.assert_allclose(np.array(second["keypoints2d"]) - np.array(record["keypoints2d"]), 150.0, atol=1e-3)


def test_track_ids_pick_a_track(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kpts = _coco_track(6).round(3)
    preds = _predictions(kpts)
    for p in preds:
        p["track_id"] = 7 if p["score"] > 0.5 else 3
    (tmp_path / "pred.json").write_text(json.dumps(preds))
    common = ["--image-size", str(W), str(H), "--out", str(tmp_path / "o")]
    assert _lift([str(tmp_path / "pred.json"), *common], capsys)[0] == 0  # default: highest total score = 7
    best = json.loads((tmp_path / "o" / "poses3d.json").read_text())["keypoints2d"]
    np.testing.assert_allclose(best, coco_to_h36m(kpts), atol=1e-3)
    code, _, err = _lift([str(tmp_path / "pred.json"), *common, "--person", "5"], capsys)
    assert code == 2 and "no track_id 5" in err and "[3, 7]" in err


def test_image_size_from_the_predict_summary_of_a_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (W, H))
    for _ in range(3):
        writer.write(np.zeros((H, W, 3), np.uint8))
    writer.release()
    (tmp_path / "predictions.json").write_text(json.dumps(_predictions(_coco_track(3))))
    (tmp_path / "summary.json").write_text(json.dumps({"kind": "video", "source": str(video)}))
    code, out, err = _lift([str(tmp_path / "predictions.json"), "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert f"image size {W}x{H}" in out
    assert json.loads((tmp_path / "o" / "poses3d.json").read_text())["image_size"] == [W, H]


def test_animate_writes_a_gif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    np.save(tmp_path / "t.npy", _coco_track(3))
    code, out, err = _lift([str(tmp_path / "t.npy"), "--layout", "coco", "--image-size", str(W), str(H),
                            "--animate", "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert (tmp_path / "o" / "poses3d.gif").stat().st_size > 0


@pytest.mark.parametrize(("make", "extra", "match"), [
    (lambda d: np.save(d / "x.npy", np.zeros((5, 17, 2))), [], "pass --image-size"),
    (lambda d: np.save(d / "x.npy", np.zeros((5, 17, 2))), ["--image-size", "640", "480"], "pass --layout"),
    (lambda d: np.save(d / "x.npy", np.zeros((5, 17, 2))), ["--image-size", "640", "480", "--person", "0"],
     "--person picks a person in JSON"),
    (lambda d: np.save(d / "x.npy", np.zeros((5, 17, 2))), ["--image-size", "nan", "480", "--layout", "coco"],
     "--image-size W H must be two finite positive"),
    (lambda d: np.save(d / "x.npy", np.zeros((5, 16, 2))), ["--image-size", "640", "480", "--layout", "coco"],
     "layout 'coco' has 17 joints"),
    (lambda d: np.save(d / "x.npy", np.zeros((17, 2))), ["--image-size", "640", "480", "--layout", "coco"],
     r"x\.npy: the array must have shape \(T, J, 2\)"),
    (lambda d: np.save(d / "x.npy", np.full((5, 17, 2), np.nan)), ["--image-size", "640", "480", "--layout", "h36m"],
     "'pelvis'.*missing.*all 5 frames"),
    (lambda d: (d / "x.npy").write_bytes(b"not numpy"), ["--image-size", "640", "480", "--layout", "coco"],
     "cannot read as .npy"),
    (lambda d: np.savez(d / "x.npz", a=np.zeros((5, 17, 2)), b=np.zeros(3)), ["--image-size", "640", "480"],
     r"expected a field 'keypoints' \(or a single array\)"),
    (lambda d: (d / "x.json").write_text("{}"), ["--image-size", "640", "480"], "expected a list of COCO"),
    (lambda d: (d / "x.json").write_text('[{"image_id": 1}]'), ["--image-size", "640", "480"],
     "entry 0 lacks"),
    (lambda d: (d / "x.json").write_text('[{"image_id": 1, "keypoints": [1, 2]}]'), ["--image-size", "640", "480"],
     r"\[x, y, score\] \* J"),
    (lambda d: (d / "x.json").write_text(json.dumps([{"image_id": 0, "keypoints": [1.0] * 51},
                                                     {"image_id": 900, "keypoints": [1.0] * 51}])),
     ["--image-size", "640", "480"], "not consecutive video frames"),
    (lambda d: (d / "x.txt").write_text("1 2"), ["--image-size", "640", "480"], "unsupported 2D file type"),
    (lambda d: np.save(d / "x.npy", np.zeros((5, 17, 2))),
     ["--image-size", "640", "480", "--layout", "coco", "--animate", "a.avi"], "must be a .gif or .mp4"),
])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], make, extra: list[str],
                                         match: str) -> None:
    make(tmp_path)
    src = next(tmp_path.glob("x.*"))
    code, _, err = _lift([str(src), "--out", str(tmp_path / "o"), *extra], capsys)
    assert code == 2
    assert err.startswith("prunepose: error: ") and len(err.strip().splitlines()) == 1
    assert re.search(match, err), err
    assert not (tmp_path / "o" / "poses3d.json").exists()


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _lift([str(tmp_path / "none.npy"), "--image-size", "640", "480"], capsys)
    assert code == 2 and "no such file" in err
