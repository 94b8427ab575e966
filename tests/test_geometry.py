"""Camera model and Procrustes alignment: round trips, the real calibration against real detections, and
recovery of known transforms."""
from __future__ import annotations

import json

import numpy as np
import pytest

from prunepose.errors import DataError
from prunepose.geometry import (
    Camera,
    camera_to_world,
    denormalize_screen,
    load_cameras,
    normalize_screen,
    procrustes_align,
    procrustes_transform,
    project,
    world_to_camera,
)
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
H36M = None if DATA is None else DATA / "h36m"
needs_h36m = pytest.mark.skipif(H36M is None or not (H36M / "cameras.json").is_file(),
                                reason="shared Human3.6M data (../shared/data/h36m) not available")


def _rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def _camera(**overrides: object) -> Camera:
    fields = dict(R_world_to_cam=_rotation(0), center_world_mm=[100.0, -4000.0, 1500.0], f=[1100.0, 1100.0],
                  c=[500.0, 500.0], k=[-0.2, 0.2, 0.0], p=[-0.001, 0.001], width=1000, height=1002, name="t")
    fields.update(overrides)
    return Camera(**fields)  # type: ignore[arg-type]


def test_camera_validates_fields() -> None:
    with pytest.raises(DataError, match="'f'.*non-finite"):
        _camera(f=[np.nan, 1.0])
    with pytest.raises(DataError, match="'k'.*shape"):
        _camera(k=[0.1, 0.2])
    with pytest.raises(DataError, match="'width'"):
        _camera(width=0)


def test_world_camera_round_trip_in_both_units() -> None:
    cam = _camera()
    pts_mm = np.random.default_rng(1).normal(scale=800.0, size=(5, 17, 3))
    back = camera_to_world(world_to_camera(pts_mm, cam), cam)
    np.testing.assert_allclose(back, pts_mm, atol=1e-9)
    # metres: same geometry, every coordinate scaled by 1e-3
    np.testing.assert_allclose(world_to_camera(pts_mm / 1000, cam, units="m"), world_to_camera(pts_mm, cam) / 1000,
                               atol=1e-12)


def test_projection_without_distortion_is_pinhole() -> None:
    cam = _camera(k=[0.0, 0.0, 0.0], p=[0.0, 0.0])
    pts = np.array([[0.2, -0.1, 2.0], [0.0, 0.0, 5.0]])
    expected = cam.f * pts[:, :2] / pts[:, 2:] + cam.c
    np.testing.assert_allclose(project(pts, cam), expected)


def test_projection_distortion_formula() -> None:
    cam = _camera()
    x, y = 0.3, -0.2
    r2 = x * x + y * y
    radial = 1 - 0.2 * r2 + 0.2 * r2**2
    tan = -0.001 * y + 0.001 * x
    u = 1100 * (x * (radial + tan) + 0.001 * r2) + 500
    v = 1100 * (y * (radial + tan) - 0.001 * r2) + 500
    np.testing.assert_allclose(project(np.array([x * 4, y * 4, 4.0]), cam), [u, v])


def test_screen_normalisation_round_trip() -> None:
    px = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0]])
    norm = normalize_screen(px, 1000, 1002)
    np.testing.assert_allclose(norm[0], [-1.0, -1.002])
    np.testing.assert_allclose(norm[2], [0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(denormalize_screen(norm, 1000, 1002), px)


def test_load_cameras_names_bad_field(tmp_path) -> None:
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps({"S1": {"54138969": {"R_world_to_cam": np.eye(3).tolist()}}}))
    with pytest.raises(DataError, match="S1.54138969.*lacks"):
        load_cameras(path)


@needs_h36m
def test_real_projection_lands_on_sh_detections() -> None:
    """S9, camera 54138969: projected mocap vs Stacked-Hourglass detections (mapped to 17 joints)."""
    from prunepose.data.h36m import sh16_to_h36m17

    cam = load_cameras(H36M / "cameras.json")["S9"]["54138969"]
    poses = np.load(H36M / "h36m_positions3d_17j_world_m.npz")
    sh = np.load(H36M / "h36m_sh2d_16j_px_S9_S11.npz")
    errors = []
    for seq in ("Walking 1", "Eating", "Posing"):
        px = project(world_to_camera(poses[f"S9/{seq}"], cam, units="m"), cam)
        det = sh16_to_h36m17(sh[f"S9/{seq.replace(' ', '_')}.54138969"])
        errors.append(np.linalg.norm(px - det, axis=-1).ravel())
    assert np.median(np.concatenate(errors)) < 15.0


def test_procrustes_recovers_similarity() -> None:
    rng = np.random.default_rng(3)
    src = rng.normal(size=(4, 17, 3))
    rot = np.stack([_rotation(s) for s in range(4)])
    scale = np.array([0.5, 1.0, 2.0, 3.3])
    shift = rng.normal(size=(4, 3))
    dst = scale[:, None, None] * (src @ rot) + shift[:, None, :]
    s, r, t = procrustes_transform(src, dst)
    np.testing.assert_allclose(s, scale, rtol=1e-10)
    np.testing.assert_allclose(r, rot, atol=1e-10)
    np.testing.assert_allclose(t, shift, atol=1e-10)
    np.testing.assert_allclose(procrustes_align(src, dst), dst, atol=1e-10)


def test_procrustes_never_reflects() -> None:
    rng = np.random.default_rng(4)
    src = rng.normal(size=(17, 3))
    mirrored = src * np.array([-1.0, 1.0, 1.0])  # best orthogonal fit is a reflection
    _, r, _ = procrustes_transform(src, mirrored)
    assert np.linalg.det(r) == pytest.approx(1.0)
    aligned = procrustes_align(src, mirrored)
    assert np.linalg.norm(aligned - mirrored) > 1e-3  # a rotation cannot undo a mirror
