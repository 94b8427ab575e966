"""Non-finite camera parameters and image sizes: errors that name the camera, the field (and the file)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from prunepose.errors import DataError
from prunepose.geometry.camera import Camera, denormalize_screen, load_cameras, normalize_screen

GOOD = {"R_world_to_cam": np.eye(3).tolist(), "center_world_mm": [0.0, -4000.0, 1500.0], "f": [1100.0, 1100.0],
        "c": [500.0, 500.0], "k": [-0.2, 0.2, 0.0], "p": [-0.001, 0.001], "width": 1000, "height": 1002}


@pytest.mark.parametrize("field", ["R_world_to_cam", "center_world_mm", "f", "c", "k", "p"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_non_finite_parameter_names_camera_and_field(field: str, bad: float) -> None:
    values = np.array(GOOD[field], dtype=np.float64)
    values.flat[-1] = bad
    with pytest.raises(DataError, match=f"camera 'S9/54138969': field '{field}' contains non-finite"):
        Camera(**(GOOD | {field: values.tolist()}), name="S9/54138969")


@pytest.mark.parametrize("field", ["width", "height"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 0, -5])
def test_non_finite_or_non_positive_size_names_the_field(field: str, bad: float) -> None:
    with pytest.raises(DataError, match=f"camera 'cam': field '{field}'"):
        Camera(**(GOOD | {field: bad}), name="cam")


def test_cameras_json_with_nan_names_file_camera_and_field(tmp_path) -> None:
    rec = {"R_world_to_cam": GOOD["R_world_to_cam"], "cam_center_world_mm": GOOD["center_world_mm"],
           "f": [1100.0, float("nan")], "c": GOOD["c"], "k_radial": GOOD["k"], "p_tangential": GOOD["p"],
           "width": 1000, "height": 1002}
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps({"S9": {"54138969": rec}}))  # JSON's NaN literal, as Python writes it
    with pytest.raises(DataError, match=r"cameras\.json: camera 'S9/54138969': field 'f' contains non-finite"):
        load_cameras(path)


@pytest.mark.parametrize("size", [(np.nan, 1000), (1000, np.inf), (0, 1000), (1000, -1), (None, 1000)])
def test_screen_normalisation_rejects_bad_image_size(size: tuple) -> None:
    with pytest.raises(DataError, match="image size"):
        normalize_screen(np.zeros((3, 2)), *size)
    with pytest.raises(DataError, match="image size"):
        denormalize_screen(np.zeros((3, 2)), *size)
