"""``prunepose triangulate``: round trip through a calibration file, RANSAC on a corrupted view, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prunepose.cli import main
from prunepose.geometry import project, world_to_camera
from prunepose.geometry.camera_formats import load_shelf_calibration


def _look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    z = (target - center) / np.linalg.norm(target - center)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


@pytest.fixture()
def shelf_like(tmp_path: Path) -> Path:
    """A 4-camera VoxelPose-format calibration (R world-to-camera, T = centre in mm)."""
    calib = {}
    for i in range(4):
        a = np.pi / 2 * i + 0.4
        c = np.array([4000 * np.cos(a), 4000 * np.sin(a), 1600.0])
        calib[str(i)] = {"R": _look_at(c, np.array([0.0, 0.0, 900.0])).tolist(), "T": [[v] for v in c],
                         "fx": 1050.0, "fy": 1060.0, "cx": 516.0, "cy": 388.0, "k": [[0.0], [0.0], [0.0]],
                         "p": [[0.0], [0.0]]}
    path = tmp_path / "calibration_shelf.json"
    path.write_text(json.dumps(calib))
    return path


def test_cli_round_trip_with_ransac_and_weights(shelf_like: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cams = list(load_shelf_calibration(shelf_like).values())
    X = np.random.default_rng(0).uniform([-300, -300, 100], [300, 300, 1700], size=(3, 14, 3))
    px = np.stack([project(world_to_camera(X, c), c) for c in cams])
    px[2, :, 5] += 120.0  # one view wrong for joint 5 in every frame
    np.save(tmp_path / "pts.npy", px)
    out = tmp_path / "out" / "X.npy"
    rc = main(["triangulate", "--format", "shelf", "--calibration", str(shelf_like), "--points",
               str(tmp_path / "pts.npy"), "--out", str(out), "--method", "ransac", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["points"] == 42 and summary["nan_points"] == 0
    np.testing.assert_allclose(np.load(out), X, atol=1e-6)
    # the same with the corrupted view weighted out through an .npz, plain DLT
    w = np.ones(px.shape[:-1])
    w[2, :, 5] = 0.0
    np.savez(tmp_path / "pts.npz", points=px, weights=w)
    assert main(["triangulate", "--format", "shelf", "--calibration", str(shelf_like), "--points",
                 str(tmp_path / "pts.npz"), "--out", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), X, atol=1e-6)


def test_cli_bad_input_is_one_line_error(shelf_like: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "pts.npy", np.zeros((3, 14, 2)))
    args = ["triangulate", "--format", "shelf", "--calibration", str(shelf_like), "--out", str(tmp_path / "o.npy")]
    assert main(args + ["--points", str(tmp_path / "pts.npy")]) == 2
    assert "--points must be (V=4, ..., 2)" in capsys.readouterr().err
    assert main(args + ["--points", str(tmp_path / "pts.npy"), "--cameras", "0", "9"]) == 2
    assert "--cameras ['9'] not in" in capsys.readouterr().err
    np.savez(tmp_path / "p.npz", pts=np.zeros((4, 2)))
    assert main(args + ["--points", str(tmp_path / "p.npz")]) == 2
    assert "no array 'points'" in capsys.readouterr().err
