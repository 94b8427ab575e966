"""Pictures from the CLI: `prunepose viz tokens` and the demo write the PNGs they promise."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from prunepose.cli import main
from prunepose.demo import BUNDLED_IMAGE, BUNDLED_VIDEO
from prunepose.viz.tokens import kept_mask, overlay_mask


def test_viz_tokens_writes_masks_and_attention(tmp_path: Path) -> None:
    assert main(["viz", "tokens", str(BUNDLED_IMAGE), "--out", str(tmp_path), "--quiet"]) == 0
    kept = cv2.imread(str(tmp_path / "kept_tokens.png"))
    att = cv2.imread(str(tmp_path / "attention.png"))
    assert kept.shape == (256, 4 * 192, 3)  # input + 3 pruning stages of PPT-S
    assert att.shape[1] == 17 * 96 and att.shape[0] % 128 == 0


def test_viz_bad_image_is_named(tmp_path: Path, capsys) -> None:
    assert main(["viz", "tokens", str(tmp_path / "nope.jpg"), "--out", str(tmp_path)]) == 2
    assert "nope.jpg" in capsys.readouterr().err


def test_kept_mask_darkens_only_pruned_patches() -> None:
    mask = kept_mask(np.array([0, 5]), (2, 3))
    assert mask.tolist() == [[True, False, False], [False, False, True]]
    crop = np.full((20, 30, 3), 200, np.uint8)
    out = overlay_mask(crop, mask)
    assert out[3, 3, 0] == 200 and out[3, 15, 0] == 50  # kept patch (0,0) intact, pruned (0,1) dimmed


@pytest.fixture(scope="module")
def random_ppt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small PPT (4 layers, pruning after layers 1 and 2) with random weights, saved self-describing.

    Why random: the demo's mechanics (frames, tokens, files) do not depend on the weights, and the test must
    not depend on the bundled 2D weights being present.
    """
    import torch

    from prunepose.registry import create_model
    from prunepose.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "ppt_tiny.safetensors"
    save_weights(create_model("ppt_s", depth=4, prune_layers=(1, 2)), path,
                 metadata={"trained_on": "nothing (random weights, test only)"})
    return path


def test_demo_writes_video_animation_and_json(tmp_path: Path, random_ppt: Path) -> None:
    from prunepose.viz.video import count_video_frames

    frames = 3
    assert main(["demo", "--checkpoint", str(random_ppt), "--out", str(tmp_path), "--max-frames", str(frames),
                 "--quiet"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    summary = res["summary"]
    assert summary["frames"] == frames and len(res["frames"]) == frames
    assert [f["frame_index"] for f in res["frames"]] == list(range(frames))
    # 16 x 16 token grid; PPT keeps ceil(0.7 n) at each of its two stages: 256 -> 180 -> 126
    assert summary["tokens_per_stage"] == [256, 180, 126]
    assert all(f["tokens_kept"] == [180, 126] for f in res["frames"])
    people = res["frames"][0]["people"]
    assert all(len(p["keypoints"]) == 17 * 3 and p["category_id"] == 1 for p in people)
    # frame 0 of the bundled street clip: one person per detector box (xywh), each with its own track id
    from prunepose.api.sources import iter_frames
    from prunepose.detect import PersonDetector

    frame0 = next(iter(iter_frames(BUNDLED_VIDEO))).image
    det, _ = PersonDetector()(frame0)
    assert len(people) == len(det) >= 3
    assert sorted(p["track_id"] for p in people) == list(range(len(det)))
    got = sorted(tuple(p["bbox"]) for p in people)
    want = sorted((x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in det.tolist())
    assert np.allclose(got, want, atol=1e-2)
    # every track is shorter than MIN_TRACK_FRAMES in 3 frames: the longest is lifted alone, as a fallback
    assert np.asarray(res["pose3d"]["poses3d"]).shape == (frames, 17, 3)
    assert summary["model3d"]["tracks_lifted"] == [res["pose3d"]["track_id"]]
    assert summary["cost"]["2d"]["macs_pruned"] < summary["cost"]["2d"]["macs_unpruned"]
    assert count_video_frames(tmp_path / "overlay.mp4") == frames
    assert count_video_frames(tmp_path / "pose3d.mp4") == frames
    assert count_video_frames(tmp_path / "demo.mp4") == frames
    cap = cv2.VideoCapture(str(tmp_path / "overlay.mp4"))
    # the 768x576 clip plus the token strip: 4 crops 192 px wide at the model's 3:4 aspect (256 px high)
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (768, 576 + 256)
    cap.release()
    assert cv2.imread(str(tmp_path / "preview.png")) is not None


def test_demo_without_bundled_weights_says_what_is_missing(tmp_path: Path, monkeypatch, capsys) -> None:
    import prunepose.api.backends as backends

    monkeypatch.setattr(backends, "DEFAULT_WEIGHTS", tmp_path / "pose2d_default.safetensors")
    assert main(["demo", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "pose2d_default.safetensors" in err and "--checkpoint" in err


def test_demo_corrupt_video_is_named(tmp_path: Path, random_ppt: Path, capsys) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    assert main(["demo", "--video", str(bad), "--checkpoint", str(random_ppt), "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
    assert "broken.mp4" in capsys.readouterr().err


def test_demo_single_image(tmp_path: Path, random_ppt: Path) -> None:
    assert main(["demo", "--image", str(BUNDLED_IMAGE), "--checkpoint", str(random_ppt), "--out", str(tmp_path),
                 "--quiet"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["summary"]["frames"] == 1 and len(res["frames"][0]["people"]) == 1
    assert cv2.imread(str(tmp_path / "preview.png")) is not None


def test_demo_keeps_partial_results_when_the_video_breaks_midway(tmp_path: Path, random_ppt: Path, monkeypatch,
                                                                  capsys) -> None:
    from prunepose.api.estimator2d import PoseEstimator2D
    from prunepose.api.sources import VideoReadError
    from prunepose.viz.video import count_video_frames

    original = PoseEstimator2D.stream

    def breaks_after_two(self, *args, **kwargs):  # noqa: ANN001, ANN202
        for i, res in enumerate(original(self, *args, **kwargs)):
            if i == 2:
                raise VideoReadError("walk.mp4: frame 2 cannot be decoded", 2)
            yield res

    monkeypatch.setattr(PoseEstimator2D, "stream", breaks_after_two)
    assert main(["demo", "--checkpoint", str(random_ppt), "--out", str(tmp_path), "--quiet"]) == 2
    assert "frame 2 cannot be decoded" in capsys.readouterr().err
    res = json.loads((tmp_path / "results.json").read_text())
    assert len(res["frames"]) == 2 and "frame 2" in res["summary"]["error"]
    assert count_video_frames(tmp_path / "overlay.mp4") == 2
