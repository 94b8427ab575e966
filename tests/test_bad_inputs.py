"""Bad inputs that used to crash or give silently wrong output (issue 15), each through the CLI as a user runs
it: exit 2 with one line naming the file and field, or a one-line warning; never NaN in an output file."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from prunepose.api.results import Results2D
from prunepose.cli import main
from prunepose.errors import PrunePoseError
from prunepose.registry import create_model
from prunepose.weights import read_state_dict, save_weights

ASTRONAUT = Path(__file__).resolve().parents[1] / "src" / "prunepose" / "assets" / "astronaut.jpg"
W, H = 640, 480


@pytest.fixture(scope="module")
def ppt(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    model = create_model("ppt_s", dim=32, depth=4, heads=2, prune_layers=(1, 2))
    return str(save_weights(model, tmp_path_factory.mktemp("w") / "ppt.safetensors"))


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunepose: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def person_track(t: int) -> np.ndarray:
    """(T, 17, 2) COCO-17 pixels of a frontal person in a 640x480 frame, drifting."""
    base = np.array([[320, 100], [328, 92], [312, 92], [336, 96], [304, 96], [360, 150], [280, 150], [370, 210],
                     [270, 210], [376, 260], [264, 260], [345, 270], [295, 270], [348, 350], [292, 350],
                     [350, 430], [290, 430]], dtype=np.float64)
    return base[None] + np.linspace(0, 20, t)[:, None, None]


# ------------------------------------------------------------------------- 1. detection files
@pytest.mark.parametrize("bbox,score,needle", [
    ("[NaN, 10, 100, 200]", "0.9", "'[1].bbox'"),
    ("[10, 10, Infinity, 200]", "0.9", "'[1].bbox'"),
    ("[10, 10, -100, 200]", "0.9", "negative width"),
    ("[10, 10, 100, 200]", "NaN", "'[1].score'"),
])
def test_det_file_non_finite_or_negative_box_exits_2(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     bbox: str, score: str, needle: str) -> None:
    det = tmp_path / "dets.json"  # Python's json module reads NaN/Infinity, as a user's detector may write them
    det.write_text('[{"image_id": "astronaut", "bbox": [100, 50, 250, 400], "score": 0.8, "category_id": 1}, '
                   f'{{"image_id": "astronaut", "bbox": {bbox}, "score": {score}, "category_id": 1}}]')
    out = tmp_path / "out"
    for extra in ([], ["--no-images"]):  # both used to fail differently: traceback / NaN in predictions.json
        code, printed, err = run(["predict", str(ASTRONAUT), "--checkpoint", ppt, "--det-file", str(det),
                                  "--out", str(out), *extra], capsys)
        assert code == 2 and printed == ""
        one_error_line(err, str(det), needle)
        assert not (out / "predictions.json").exists()


def test_det_file_zero_size_box_is_skipped_with_a_warning(ppt: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    det = tmp_path / "dets.json"
    det.write_text(json.dumps([{"image_id": "astronaut", "bbox": [100, 50, 250, 400], "score": 0.8},
                               {"image_id": "astronaut", "bbox": [10, 10, 0, 200], "score": 0.9}]))
    code, _, err = run(["predict", str(ASTRONAUT), "--checkpoint", ppt, "--det-file", str(det),
                        "--out", str(tmp_path / "o"), "--no-images"], capsys)
    assert code == 0
    assert err.strip() == f"prunepose: warning: {det}: skipped 1 detection(s) of zero width or height ([1])"
    records = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert [r["bbox"] for r in records] == [[100.0, 50.0, 250.0, 400.0]]


@pytest.mark.parametrize("flag", ["--kpt-thr", "--det-thr"])
def test_nan_threshold_exits_2(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    code, _, err = run(["predict", str(ASTRONAUT), "--checkpoint", ppt, flag, "nan", "--out", str(tmp_path / "o")],
                       capsys)
    assert code == 2
    one_error_line(err, flag, "finite")


def test_nan_pose_never_reaches_json(tmp_path: Path) -> None:
    kpts = np.zeros((1, 17, 2), np.float32)
    kpts[0, 3] = np.nan  # e.g. weights holding NaN
    res = Results2D(keypoints=kpts, scores=np.ones((1, 17), np.float32), boxes=np.array([[0, 0, 10, 10.0]]),
                    box_scores=np.ones(1), kept_tokens=[[]], token_grid=(16, 12), crop_affines=np.zeros((1, 2, 3)),
                    input_size=(192, 256), skeleton="coco", image_id=7)
    with pytest.raises(PrunePoseError, match="image 7, person #0: the pose holds NaN"):
        res.to_json()
    with pytest.raises(PrunePoseError):
        res.save(tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


# ------------------------------------------------------------------------- 2. lifting
def test_lift_far_outside_the_frame(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    track = person_track(12)
    track[3, 9] = 1e30  # used to overflow float32 to all-NaN poses, exit 0, no warning
    np.save(tmp_path / "x.npy", track)
    code, printed, err = run(["lift", str(tmp_path / "x.npy"), "--image-size", str(W), str(H), "--layout", "coco",
                              "--no-flip", "--out", str(tmp_path / "o")], capsys)
    assert code == 0  # one wild joint (as an unconfident 2D model gives): missing, interpolated, warned about
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"prunepose: warning: {tmp_path / 'x.npy'}: keypoints2d: 1 of")
    assert "frame 3, joint 'left_wrist'" in lines[0] and "640x480" in lines[0] and "interpolated" in lines[0]
    assert "1 frames had interpolated joints" in printed
    assert np.isfinite(np.load(tmp_path / "o" / "poses3d.npy")).all()
    np.save(tmp_path / "y.npy", track * 1e3)  # most joints far out: not pixels of this frame
    code, _, err = run(["lift", str(tmp_path / "y.npy"), "--image-size", str(W), str(H), "--layout", "coco",
                        "--out", str(tmp_path / "o2")], capsys)
    assert code == 2
    one_error_line(err, str(tmp_path / "y.npy"), "frame 0", "640x480", "--image-size")
    assert not (tmp_path / "o2" / "poses3d.json").exists()


def test_lift_all_zero_keypoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "zeros.npy", np.zeros((12, 17, 2)))
    code, _, err = run(["lift", str(tmp_path / "zeros.npy"), "--image-size", str(W), str(H), "--layout", "coco",
                        "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    one_error_line(err, str(tmp_path / "zeros.npy"), "every frame", "all zeros")
    track = person_track(12)
    track[4:6] = 0.0  # two undetected frames written as zeros
    np.save(tmp_path / "some.npy", track)
    code, _, err = run(["lift", str(tmp_path / "some.npy"), "--image-size", str(W), str(H), "--layout", "coco",
                        "--no-flip", "--out", str(tmp_path / "o")], capsys)
    assert code == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"prunepose: warning: {tmp_path / 'some.npy'}: keypoints2d: 2 of 12")
    assert "[4, 5]" in lines[0]
    poses = np.load(tmp_path / "o" / "poses3d.npy")
    assert np.isfinite(poses).all()


# ------------------------------------------------------------------------- 3./6. weight files
@pytest.mark.parametrize("kind", ["truncated", "random"])
def test_broken_safetensors_named(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    data = Path(ppt).read_bytes()
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(data[: len(data) // 2] if kind == "truncated" else np.random.default_rng(0).bytes(4096))
    with pytest.raises(PrunePoseError, match="not a readable safetensors file") as info:
        read_state_dict(bad)
    assert str(bad) in str(info.value)
    code, _, err = run(["predict", str(ASTRONAUT), "--checkpoint", str(bad), "--model", "ppt_s",
                        "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    one_error_line(err, str(bad), "safetensors")


def test_pickled_model_pt_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "whole_model.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a whole module, not a state dict
    code, _, err = run(["predict", str(ASTRONAUT), "--checkpoint", str(path), "--model", "ppt_s",
                        "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    one_error_line(err, str(path), "pickled Python objects", "torch.nn.modules.linear.Linear")
    assert "\x1b" not in err and "weights_only=False" not in err


# ------------------------------------------------------------------------- 5. output paths
def test_out_is_a_file_exits_2(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    code, _, err = run(["predict", str(ASTRONAUT), "--checkpoint", ppt, "--out", str(afile)], capsys)
    assert code == 2
    one_error_line(err, f"--out {afile}: is a file")
    np.save(tmp_path / "x.npy", person_track(5))
    code, _, err = run(["lift", str(tmp_path / "x.npy"), "--image-size", str(W), str(H), "--layout", "coco",
                        "--out", str(afile / "sub")], capsys)
    assert code == 2
    one_error_line(err, f"{afile} is a file")


def test_export_out_is_a_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["export", "onnx", "tokenpose_t", "--out", str(tmp_path)], capsys)
    assert code == 2
    one_error_line(err, f"--out {tmp_path}: is a folder", ".onnx")


def test_read_only_out_exits_2(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder without write permission (unprivileged user), or as root a place the kernel refuses (sysfs)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked.chmod(0o500)
        target = locked / "o"
    elif Path("/sys/kernel").is_dir():
        target = Path("/sys/prunepose-test-out")  # sysfs: even root cannot create folders there
        if target.exists():
            pytest.skip("/sys accepted a folder on this system")
    else:
        pytest.skip("running as root without sysfs: no unwritable place to test with")
    try:
        code, _, err = run(["predict", str(ASTRONAUT), "--checkpoint", ppt, "--out", str(target)], capsys)
        assert code == 2
        one_error_line(err, f"--out {target}")
        code, _, err = run(["export", "onnx", "tokenpose_t", "--out", str(target / "m.onnx")], capsys)
        assert code == 2
        one_error_line(err, f"--out {target / 'm.onnx'}")
    finally:
        locked.chmod(0o700)


def test_unwritable_path_elsewhere_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path without an up-front check (`prunepose demo --out` under a file: its mkdir raises OSError after the
    model ran) still ends in one line naming the path, exit 2, via the CLI's OSError handler."""
    from prunepose.api.backends import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("bundled default 2D weights not installed")
    afile = tmp_path / "afile"
    afile.write_text("")
    code, _, err = run(["demo", "--image", str(ASTRONAUT), "--out", str(afile / "x"), "--quiet"], capsys)
    assert code == 2
    one_error_line(err, str(afile))


# ------------------------------------------------------------------------- 7. summary wording
def test_summary_counts_written_poses(ppt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    # kpt_thr 2: no heatmap maximum of random weights reaches it, so no person is "found"; the pose is still written
    code, printed, _ = run(["predict", str(ASTRONAUT), "--checkpoint", ppt, "--kpt-thr", "2", "--out", str(out),
                            "--box", "120", "60", "400", "500", "--no-images"], capsys)
    assert code == 0
    records = json.loads((out / "predictions.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert len(records) == 1 and summary["poses_written"] == 1 and summary["persons_found"] == 0
    assert "1 pose(s) written, 0 with a keypoint scoring >= 2" in printed.splitlines()[0]
    assert "still in predictions.json" in printed
