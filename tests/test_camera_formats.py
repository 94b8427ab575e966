"""Campus / Shelf / CMU Panoptic calibration readers, checked against the 2D and 3D data shipped with them
(mmpose test fixtures in ../shared/data/mmpose-testdata), plus the small MAT v5 reader."""
from __future__ import annotations

import collections
import importlib
import itertools
import json
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from prunepose.data.matv5 import load_actors_gt, read_mat_v5
from prunepose.errors import DataError
from prunepose.geometry import Camera, project, world_to_camera
from prunepose.geometry.camera_formats import (
    load_campus_calibration,
    load_panoptic_bodies,
    load_panoptic_calibration,
    load_shelf_calibration,
)
from prunepose.geometry.triangulation import camera_centers, projection_matrices, triangulate_cameras
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
MM = None if DATA is None else DATA / "mmpose-testdata"
needs_fixtures = pytest.mark.skipif(MM is None or not (MM / "shelf" / "calibration_shelf.json").is_file(),
                                    reason="mmpose test fixtures (../shared/data/mmpose-testdata) not available")


def _actor2d(path: Path) -> np.ndarray:
    """``actor2D`` of actorsGT.mat -> (actors, frames, views, 14, 2) px, NaN where absent."""
    cells = read_mat_v5(path)["actor2D"].ravel()
    frames = [a.ravel() for a in cells]
    views = max(np.asarray(f[0], dtype=object).size for f in frames)
    out = np.full((len(frames), len(frames[0]), views, 14, 2), np.nan)
    for i, fr in enumerate(frames):
        for t, per_view in enumerate(fr):
            for v, pose in enumerate(np.asarray(per_view, dtype=object).ravel()):
                pose = np.asarray(pose, dtype=np.float64)
                if pose.size:
                    out[i, t, v] = pose
    return out


def _projection_errors(cams: list[Camera], gt3d: np.ndarray, gt2d: np.ndarray) -> np.ndarray:
    errs = []
    for a, t in zip(*np.nonzero(np.isfinite(gt3d[..., 0, 0]))):
        for v, cam in enumerate(cams):
            errs.append(np.linalg.norm(project(world_to_camera(gt3d[a, t], cam), cam) - gt2d[a, t, v], axis=-1))
    return np.concatenate(errs)


@needs_fixtures
def test_shelf_calibration_projects_the_3d_ground_truth_onto_its_2d() -> None:
    assert MM is not None
    cams = list(load_shelf_calibration(MM / "shelf" / "calibration_shelf.json").values())
    assert len(cams) == 5 and (cams[0].width, cams[0].height) == (1032, 776)
    gt3d = load_actors_gt(MM / "shelf" / "actorsGT.mat")
    gt2d = _actor2d(MM / "shelf" / "actorsGT.mat")
    errs = _projection_errors(cams, gt3d, gt2d)
    assert errs.size >= 5 * 14 and errs.max() < 0.1  # measured 0.044 px
    # The test can fail: reading T as a translation (x_cam = R X + T) instead of the centre is far off.
    wrong = [Camera(R_world_to_cam=c.R_world_to_cam, center_world_mm=-c.R_world_to_cam.T @ c.center_world_mm,
                    f=c.f, c=c.c, k=c.k, p=c.p, width=c.width, height=c.height) for c in cams]
    assert np.median(_projection_errors(wrong, gt3d, gt2d)) > 100.0
    # and the 2D ground truth triangulates back onto the 3D ground truth through these cameras
    a, t = np.argwhere(np.isfinite(gt3d[..., 0, 0]))[0]
    res = triangulate_cameras(cams, gt2d[a, t])
    np.testing.assert_allclose(res.points, gt3d[a, t], atol=0.1)  # measured 0.046 mm


@needs_fixtures
def test_campus_calibration_projects_the_3d_ground_truth_onto_its_2d() -> None:
    assert MM is not None
    cams = list(load_campus_calibration(MM / "campus" / "calibration_campus.json").values())
    assert len(cams) == 3 and (cams[0].width, cams[0].height) == (360, 288)
    gt3d = load_actors_gt(MM / "campus" / "actorsGT.mat")
    gt2d = _actor2d(MM / "campus" / "actorsGT.mat")
    errs = _projection_errors(cams, gt3d, gt2d)
    # measured: camera 2 exact, cameras 0 and 1 within 2.3-2.7 px (the released json differs slightly from
    # the calibration the 2D GT was made with); a wrong convention gives hundreds of px.
    assert errs.size >= 3 * 14 and errs.max() < 3.0
    assert np.all(np.stack([world_to_camera(gt3d[0, 0], c)[:, 2] for c in cams]) > 0)


class _FixtureUnpickler(pickle.Unpickler):
    """Only a defaultdict of lists of dicts of numpy arrays, as in the mmpose Shelf detection pickle."""

    ALLOWED = {("collections", "defaultdict"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} not allowed")
        if module == "collections":
            return collections.defaultdict
        if module == "numpy":
            return getattr(np, name)
        return importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else module)._reconstruct


def _fundamental(Pa: np.ndarray, Pb: np.ndarray) -> np.ndarray:
    """F with x_b^T F x_a = 0 (Hartley & Zisserman eq. 9.1: F = [e']_x P' P^+)."""
    e = Pb @ np.append(camera_centers(Pa[None])[0], 1.0)
    ex = np.array([[0, -e[2], e[1]], [e[2], 0, -e[0]], [-e[1], e[0], 0]])
    return ex @ Pb @ np.linalg.pinv(Pa)


@needs_fixtures
def test_shelf_detections_are_epipolar_consistent_under_the_calibration() -> None:
    """Real HRNet detections (unmatched across views): each person's best match in another view must lie on
    the epipolar lines the calibration predicts (a few pixels), which a wrong R/T convention breaks."""
    assert MM is not None
    with open(MM / "shelf" / "pred_shelf_maskrcnn_hrnet_coco.pkl", "rb") as fh:
        preds = _FixtureUnpickler(fh).load()
    cams = list(load_shelf_calibration(MM / "shelf" / "calibration_shelf.json").values())
    P = projection_matrices(cams)
    best = []
    for frame in range(3):
        for a, b in itertools.combinations(range(5), 2):
            F = _fundamental(P[a], P[b])
            for x in (d["pred"] for d in preds[f"{a}_{frame}"]):
                cands = []
                for y in (d["pred"] for d in preds[f"{b}_{frame}"]):
                    m = (x[:, 2] > 0.5) & (y[:, 2] > 0.5)
                    if m.sum() < 5:
                        continue
                    xa, yb = np.c_[x[m, :2], np.ones(m.sum())], np.c_[y[m, :2], np.ones(m.sum())]
                    la, lb = yb @ F, xa @ F.T  # epipolar lines in view a and in view b
                    d = (np.abs(np.sum(lb * yb, 1)) / np.linalg.norm(lb[:, :2], axis=1)
                         + np.abs(np.sum(la * xa, 1)) / np.linalg.norm(la[:, :2], axis=1)) / 2
                    cands.append(np.median(d))
                if cands:
                    best.append(min(cands))
    assert len(best) > 40
    assert np.median(best) < 8.0  # measured 4.8 px over 105 detections (images 1032x776)


@needs_fixtures
def test_panoptic_bodies_are_in_front_of_and_inside_every_hd_camera() -> None:
    assert MM is not None
    for seq in ("160906_band1", "160906_band2"):
        root = MM / "panoptic_body3d" / seq
        cams = load_panoptic_calibration(root / f"calibration_{seq}.json")
        assert len(cams) == 31 and all(c.distortion_model == "opencv" for c in cams.values())
        n_vga = sum(c["type"] == "vga" for c in json.loads((root / f"calibration_{seq}.json").read_text())["cameras"])
        assert len(load_panoptic_calibration(root / f"calibration_{seq}.json", kinds=("vga",))) == n_vga > 400
        for body_file in sorted((root / "hdPose3d_stage1_coco19").glob("*.json")):
            joints, conf = load_panoptic_bodies(body_file)
            pts = joints[conf > 0]
            assert pts.shape[0] > 19
            centroid = pts.mean(axis=0)
            for cam in cams.values():
                cam_pts = world_to_camera(pts, cam)
                assert np.all(cam_pts[:, 2] > 1000.0), cam.name  # measured >= 1.49 m in front of every camera
                axis = cam.R_world_to_cam[2]
                to_body = (centroid - cam.center_world_mm) / np.linalg.norm(centroid - cam.center_world_mm)
                assert np.degrees(np.arccos(axis @ to_body)) < 25.0, cam.name  # measured <= 17 deg
            px = np.stack([project(world_to_camera(pts, c), c) for c in cams.values()])
            inside = (px[..., 0] >= 0) & (px[..., 0] < 1920) & (px[..., 1] >= 0) & (px[..., 1] < 1080)
            assert inside.mean() > 0.8  # measured 0.86-0.88
            # the dome centre is ~ the world origin, cameras on a sphere of ~2.5-3.5 m (unit check: cm -> mm)
            radii = np.linalg.norm(np.stack([c.center_world_mm for c in cams.values()]), axis=1)
            assert 2000 < np.median(radii) < 4000


def test_reader_errors_name_the_file_and_field(tmp_path: Path) -> None:
    good = {"R": np.eye(3).tolist(), "T": [[0.0], [0.0], [-3000.0]], "fx": 1000.0, "fy": 1000.0, "cx": 500.0,
            "cy": 400.0, "k": [[0.0], [0.0], [0.0]], "p": [[0.0], [0.0]]}
    path = tmp_path / "calibration_shelf.json"
    path.write_text(json.dumps({"0": good}))
    cam = load_shelf_calibration(path)["0"]
    np.testing.assert_allclose(cam.center_world_mm, [0, 0, -3000])
    path.write_text(json.dumps({"0": {k: v for k, v in good.items() if k != "fy"}}))
    with pytest.raises(DataError, match=r"calibration_shelf.json: camera '0': missing field 'fy'"):
        load_shelf_calibration(path)
    path.write_text(json.dumps({"0": dict(good, R=(2 * np.eye(3)).tolist())}))
    with pytest.raises(DataError, match="'R' is not a rotation"):
        load_shelf_calibration(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="cannot read calibration"):
        load_campus_calibration(path)
    pan = {"cameras": [{"name": "00_00", "type": "hd", "resolution": [1920, 1080], "K": [[1, 0.5, 0], [0, 1, 0],
                                                                                          [0, 0, 1]],
                        "distCoef": [0, 0, 0, 0, 0], "R": np.eye(3).tolist(), "t": [[0], [0], [100]]}]}
    path.write_text(json.dumps(pan))
    with pytest.raises(DataError, match="'K' has skew"):
        load_panoptic_calibration(path)
    pan["cameras"][0]["K"] = [[1000, 0, 960], [0, 1000, 540], [0, 0, 1]]
    path.write_text(json.dumps(pan))
    cam = load_panoptic_calibration(path)["00_00"]
    np.testing.assert_allclose(cam.center_world_mm, [0, 0, -1000])  # -R^T t, cm -> mm
    with pytest.raises(DataError, match=r"cameras \['00_01'\] not found"):
        load_panoptic_calibration(path, names=["00_01"])


# ------------------------------------------------------------------------------------------ MAT v5


def _mat_element(dtype: int, payload: bytes) -> bytes:
    pad = (-len(payload)) % 8
    return struct.pack("<II", dtype, len(payload)) + payload + b"\0" * pad


def _mat_double(name: str, arr: np.ndarray) -> bytes:
    body = (_mat_element(6, struct.pack("<II", 6, 0))  # array flags: class 6 = double
            + _mat_element(5, np.asarray(arr.shape, "<i4").tobytes())
            + _mat_element(1, name.encode())
            + _mat_element(9, np.asarray(arr, "<f8").tobytes(order="F")))
    return _mat_element(14, body)


def test_mat_v5_reader_on_a_hand_built_file(tmp_path: Path) -> None:
    header = b"MATLAB 5.0 MAT-file, hand-built".ljust(116, b" ") + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    arr = np.arange(6.0).reshape(2, 3)
    cell_body = (_mat_element(6, struct.pack("<II", 1, 0)) + _mat_element(5, np.asarray([1, 2], "<i4").tobytes())
                 + _mat_element(1, b"c") + _mat_double("", np.ones((1, 1))) + _mat_double("", arr))
    path = tmp_path / "x.mat"
    path.write_bytes(header + _mat_double("a", arr) + _mat_element(14, cell_body))
    out = read_mat_v5(path)
    np.testing.assert_array_equal(out["a"], arr)  # column-major storage restored to MATLAB's (2, 3)
    assert out["c"].shape == (1, 2) and out["c"][0, 1].shape == (2, 3)
    path.write_bytes(b"not a mat file" * 20)
    with pytest.raises(DataError, match="not a little-endian MATLAB v5"):
        read_mat_v5(path)
