"""MpiiDataset on the real MMPose MPII fixture (5 people) and on broken inputs."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from prunepose.data.mpii import MpiiDataset
from prunepose.data.transforms import affine_points, get_affine_transform
from prunepose.errors import DataError
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
MPII = DATA / "mmpose-testdata" / "mpii" if DATA is not None else None
ANN = MPII / "test_mpii.json" if MPII is not None else None

pytestmark = pytest.mark.skipif(
    ANN is None or not ANN.is_file(), reason="shared data mmpose-testdata/mpii not found (set PRUNEPOSE_DATA)"
)


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return json.loads(ANN.read_text())  # type: ignore[union-attr]


def test_center_scale_joints_conversion(records: list[dict]) -> None:
    ds = MpiiDataset(ANN, MPII, train=False)
    assert len(ds) == 5 and ds.num_keypoints == 16
    rec = records[0]
    s = rec["scale"]
    np.testing.assert_allclose(ds.centers[0], [rec["center"][0] - 1, rec["center"][1] + 15 * s - 1])
    np.testing.assert_allclose(ds.scales[0], [s * 200 * 1.25, s * 200 * 1.25])
    np.testing.assert_allclose(ds.joints[0], np.asarray(rec["joints"]) - 1)
    np.testing.assert_array_equal(ds.joints_vis[0], rec["joints_vis"])
    assert ds.joints.shape == (5, 16, 2) and ds.joints_vis.shape == (5, 16)
    assert ds.image_names[0] == rec["image"] and ds[0]["meta"]["image_id"] == int(Path(rec["image"]).stem)
    # a non-square input pads the square MPII box to the input's aspect ratio
    wide = MpiiDataset(ANN, MPII, input_size=(192, 256), heatmap_size=(48, 64), train=False)
    np.testing.assert_allclose(wide.scales[0], [s * 250, s * 250 / 0.75])


def test_sample_targets_peak_at_warped_joints() -> None:
    ds = MpiiDataset(ANN, MPII, train=False)
    checked = 0
    for index in range(len(ds)):
        sample = ds[index]
        assert sample["image"].shape == (3, 256, 256) and sample["target"].shape == (16, 64, 64)
        assert sample["target_weight"].shape == (16, 1)
        meta = sample["meta"]
        assert meta["ann_id"] == index
        mat = get_affine_transform(meta["center"].numpy(), meta["scale"].numpy(), 0.0, (256, 256))
        kp_hm = affine_points(ds.joints[index], mat) / ds.codec.feat_stride
        coords, _ = ds.codec.decode(sample["target"].numpy()[None])
        weight = sample["target_weight"].numpy()[:, 0]
        interior = np.all((kp_hm > 4) & (kp_hm < 59), axis=1)
        for j in np.flatnonzero((weight > 0) & interior):
            np.testing.assert_allclose(coords[0, j] / ds.codec.feat_stride, kp_hm[j], atol=0.05)
            checked += 1
        assert np.all(weight[ds.joints_vis[index] == 0] == 0)
    assert checked > 40


def test_train_augmentation_is_deterministic() -> None:
    a = MpiiDataset(ANN, MPII, train=True, seed=1)
    b = MpiiDataset(ANN, MPII, train=True, seed=1)
    assert torch.equal(a[2]["image"], b[2]["image"]) and torch.equal(a[2]["target"], b[2]["target"])
    b.set_epoch(5)
    assert not torch.equal(a[2]["image"], b[2]["image"])


def test_head_sizes_need_headboxes(tmp_path: Path) -> None:
    ds = MpiiDataset(ANN, MPII, train=False)
    with pytest.raises(DataError, match="headboxes") as info:
        ds.head_sizes()
    assert "test_mpii.json" in str(info.value)
    boxes = np.array([[[10.0, 20.0], [40.0, 60.0]]] * 5)  # 30 x 40 box: diagonal 50
    path = tmp_path / "headboxes.npy"
    np.save(path, boxes.transpose(1, 2, 0))  # gt_valid.mat layout (2, 2, N)
    np.testing.assert_allclose(MpiiDataset(ANN, MPII, train=False, headboxes=path).head_sizes(), [30.0] * 5)
    jpath = tmp_path / "headboxes.json"
    jpath.write_text(json.dumps(boxes[:3].tolist()))
    with pytest.raises(DataError, match="headboxes") as info:
        MpiiDataset(ANN, MPII, train=False, headboxes=jpath)
    assert "headboxes.json" in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.pop("scale"), "[1].scale"),
        (lambda r: r.update(joints=r["joints"][:15]), "[1].joints"),
        (lambda r: r.update(center=[1.0]), "[1].center"),
    ],
)
def test_malformed_records(
    tmp_path: Path, records: list[dict], mutate: Callable[[dict], object], field: str
) -> None:
    bad = json.loads(json.dumps(records))
    mutate(bad[1])
    path = tmp_path / "bad_mpii.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(DataError) as info:
        MpiiDataset(path, MPII)
    assert "bad_mpii.json" in str(info.value) and field in str(info.value)


def test_missing_images(tmp_path: Path, records: list[dict]) -> None:
    extra = [*json.loads(json.dumps(records)), dict(records[0], image="not_there.jpg")]
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(extra))
    with pytest.warns(UserWarning, match="1 images"):
        ds = MpiiDataset(path, MPII, skip_missing_images=True)
    assert len(ds) == 5
    ds = MpiiDataset(path, MPII)
    with pytest.raises(DataError, match=r"not_there\.jpg"):
        ds[5]
