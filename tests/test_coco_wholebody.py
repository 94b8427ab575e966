"""CocoWholeBodyDataset (133 keypoints) and SimCC targets from the top-down datasets, on mmpose test data."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from torch.utils.data import default_collate

from prunepose.codecs import HeatmapCodec, SimCCCodec
from prunepose.data.coco import CocoTopDownDataset
from prunepose.data.coco_wholebody import CocoWholeBodyDataset
from prunepose.data.transforms import affine_points, get_affine_transform
from prunepose.errors import ConfigError, DataError
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
MMPOSE_COCO = DATA / "mmpose-testdata" / "coco" if DATA is not None else None
WB_ANN = MMPOSE_COCO / "test_coco_wholebody.json" if MMPOSE_COCO is not None else None
pytestmark = pytest.mark.skipif(
    WB_ANN is None or not WB_ANN.is_file(), reason="shared data mmpose-testdata/coco not found"
)
PARTS = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")


def _wb(**kwargs: Any) -> CocoWholeBodyDataset:
    return CocoWholeBodyDataset(WB_ANN, MMPOSE_COCO, **kwargs)  # type: ignore[arg-type]


def _raw() -> dict[str, Any]:
    return json.loads(WB_ANN.read_text())  # type: ignore[union-attr]


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "wb.json"
    path.write_text(json.dumps(data))
    return path


def test_records_concatenate_parts_in_native_order() -> None:
    ds = _wb(train=False)
    raw = _raw()
    # 14 annotations, 2 of them without any labelled body keypoint (num_keypoints 0): 12 samples
    assert len(ds) == 12 and ds.num_keypoints == 133 and ds.skeleton.name == "coco_wholebody"
    by_id = {a["id"]: a for a in raw["annotations"]}
    for rec in ds._records:
        ann = by_id[rec["ann_id"]]
        full = np.concatenate([np.asarray(ann[f], dtype=np.float64).reshape(-1, 3) for f in PARTS])
        assert full.shape == (133, 3)
        np.testing.assert_array_equal(rec["keypoints"], full[:, :2])
        np.testing.assert_array_equal(rec["visible"], (full[:, 2] > 0).astype(np.float32))
    rec = next(r for r in ds._records if r["ann_id"] == 442619)
    assert rec["part_valid"] == {"foot": True, "face": True, "lefthand": False, "righthand": True}
    assert rec["part_boxes"]["lefthand"] is None and rec["part_boxes"]["face"] == pytest.approx(
        [358.2, 69.86, 26.36, 25.85])
    # the face of ann 442619 (face_valid) is labelled, its left hand (not valid) is not
    assert np.all(rec["visible"][23:91] == 1) and np.all(rec["visible"][91:112] == 0)


def test_simcc_targets_peak_at_warped_keypoints() -> None:
    codec = SimCCCodec()
    ds = _wb(train=False, codec=codec)
    batch = default_collate([ds[0], ds[3]])
    assert "target" not in batch
    assert batch["target_x"].shape == (2, 133, 384) and batch["target_y"].shape == (2, 133, 512)
    assert batch["target_weight"].shape == (2, 133, 1) and batch["image"].shape == (2, 3, 256, 192)
    checked = 0
    for index in range(len(ds)):
        sample = ds[index]
        meta = sample["meta"]
        rec = ds._records[index]
        # GTPT: classic (non-UDP) affine, bins = 2 * input px
        mat = get_affine_transform(meta["center"].numpy(), meta["scale"].numpy(), 0.0, (192, 256), udp=False)
        kp_in = affine_points(rec["keypoints"], mat)
        tx, ty = sample["target_x"].numpy(), sample["target_y"].numpy()
        weight = sample["target_weight"].numpy()[:, 0]
        assert np.all(weight[rec["visible"] == 0] == 0)
        for j in np.flatnonzero(weight > 0):
            if 0 <= kp_in[j, 0] <= 191.5 and 0 <= kp_in[j, 1] <= 255.5:
                assert abs(tx[j].argmax() - 2 * kp_in[j, 0]) <= 0.5 + 1e-4
                assert abs(ty[j].argmax() - 2 * kp_in[j, 1]) <= 0.5 + 1e-4
                checked += 1
        # decoding the targets and mapping back lands on the annotation (to half a bin)
        coords, _ = codec.decode_to_image(np.log(tx + 1e-30)[None], np.log(ty + 1e-30)[None],
                                          meta["center"].numpy()[None], meta["scale"].numpy()[None])
        inside = (weight > 0) & (kp_in[:, 0] >= 0) & (kp_in[:, 0] <= 191.5) & (kp_in[:, 1] >= 0) & (
            kp_in[:, 1] <= 255.5)
        px_per_input = float(meta["scale"][0]) / 192
        err = np.abs(coords[0][inside] - rec["keypoints"][inside])
        assert np.all(err <= 0.25 * px_per_input + 1e-3)
    assert checked > 500


def test_heatmap_default_and_training_augmentation() -> None:
    ds = _wb(train=True, seed=1)
    assert isinstance(ds.codec, HeatmapCodec) and ds.codec.use_udp
    sample = ds[2]
    assert sample["target"].shape == (133, 64, 48) and sample["target_weight"].shape == (133, 1)
    simcc = _wb(train=True, seed=1, codec=SimCCCodec())
    s = simcc[2]
    assert s["target_x"].shape == (133, 384) and s["meta"]["flipped"] == sample["meta"]["flipped"]


def test_simcc_on_plain_coco() -> None:
    ds = CocoTopDownDataset(MMPOSE_COCO / "test_coco.json", MMPOSE_COCO, train=False,  # type: ignore[operator]
                            codec=SimCCCodec())
    sample = ds[0]
    assert sample["target_x"].shape == (17, 384) and sample["target_y"].shape == (17, 512)


def test_codec_contradictions_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="use_udp"):
        _wb(codec=SimCCCodec(), use_udp=True)
    with pytest.raises(ConfigError, match="input_size"):
        _wb(codec=SimCCCodec(input_size=(288, 384)))
    assert _wb(codec=SimCCCodec(), use_udp=False).codec.use_udp is False


def test_keypoint_count_mismatch_is_clear() -> None:
    with pytest.raises(ConfigError, match=r"133 keypoints but skeleton 'coco' has 17"):
        _wb(skeleton="coco")
    ds = _wb(train=False)
    with pytest.raises(ConfigError, match=r"predicts 17 keypoints .*test_coco_wholebody\.json.* has 133"):
        ds.check_num_keypoints(17)
    ds.check_num_keypoints(133)


@pytest.mark.parametrize("field", ["foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"])
def test_missing_part_array_names_file_annotation_and_field(tmp_path: Path, field: str) -> None:
    data = _raw()
    del data["annotations"][1][field]
    ann_id = data["annotations"][1]["id"]
    with pytest.raises(DataError) as info:
        CocoWholeBodyDataset(_write(tmp_path, data), MMPOSE_COCO)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "wb.json" in msg and f"annotations[id={ann_id}].{field}" in msg and "missing" in msg, msg


def test_wrong_part_length(tmp_path: Path) -> None:
    data = _raw()
    data["annotations"][0]["lefthand_kpts"] = data["annotations"][0]["lefthand_kpts"][:-3]
    with pytest.raises(DataError, match=r"wb\.json.*annotations\[id=442619\]\.lefthand_kpts.*expected 63"):
        CocoWholeBodyDataset(_write(tmp_path, data), MMPOSE_COCO)  # type: ignore[arg-type]


def test_detections_give_133_zero_targets(tmp_path: Path) -> None:
    dets = [{"image_id": 785, "bbox": [280.0, 44.0, 218.0, 346.0], "score": 0.9, "category_id": 1}]
    det_file = tmp_path / "dets.json"
    det_file.write_text(json.dumps(dets))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = _wb(train=False, det_file=det_file, codec=SimCCCodec())
    sample = ds[0]
    assert sample["target_x"].shape == (133, 384) and float(sample["target_weight"].sum()) == 0.0
    assert sample["meta"]["score"] == pytest.approx(0.9)
