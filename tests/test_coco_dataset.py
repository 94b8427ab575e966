"""CocoTopDownDataset on real COCO data (coco-mini, mmpose test data) and on broken inputs."""
from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from prunepose.data.coco import CocoTopDownDataset
from prunepose.data.transforms import affine_points, get_affine_transform, normalize_image, warp_image
from prunepose.errors import ConfigError, DataError
from prunepose.paths import shared_data_dir
from prunepose.skeletons import get_skeleton

DATA = shared_data_dir()
MINI = DATA / "coco-mini" if DATA is not None else None
ANN = MINI / "annotations" / "person_keypoints_train2017.json" if MINI is not None else None
IMAGES = MINI / "train2017" if MINI is not None else None
MMPOSE_COCO = DATA / "mmpose-testdata" / "coco" if DATA is not None else None

needs_mini = pytest.mark.skipif(
    ANN is None or not ANN.is_file(), reason="shared data coco-mini not found (set PRUNEPOSE_DATA)"
)
needs_mmpose = pytest.mark.skipif(
    MMPOSE_COCO is None or not MMPOSE_COCO.is_dir(), reason="shared data mmpose-testdata/coco not found"
)


def _mini(**kwargs: object) -> CocoTopDownDataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CocoTopDownDataset(ANN, IMAGES, skip_missing_images=True, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def train_ds() -> CocoTopDownDataset:
    return _mini(train=True, seed=3)


@pytest.fixture(scope="module")
def test_ds() -> CocoTopDownDataset:
    return _mini(train=False)


@needs_mini
def test_missing_images_one_summary_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = CocoTopDownDataset(ANN, IMAGES, skip_missing_images=True)
    missing = [w for w in caught if "not in" in str(w.message)]
    assert len(missing) == 1
    text = str(missing[0].message)
    assert "person_keypoints_train2017.json" in text and "52 of 80" in text
    crowd = [w for w in caught if "crowd" in str(w.message)]
    assert len(crowd) == 1 and "900100129648" in str(crowd[0].message)
    assert len(ds) == 86 and len(ds.image_ids) == 28 and ds.num_keypoints == 17
    assert ds.ann_file == ANN


@needs_mini
def test_sample_shapes_and_collate(train_ds: CocoTopDownDataset) -> None:
    sample = train_ds[0]
    assert sample["image"].shape == (3, 256, 192) and sample["image"].dtype == torch.float32
    assert sample["target"].shape == (17, 64, 48) and sample["target"].dtype == torch.float32
    assert sample["target_weight"].shape == (17, 1) and sample["target_weight"].dtype == torch.float32
    meta = sample["meta"]
    assert meta["center"].shape == (2,) and meta["scale"].shape == (2,)
    assert meta["image_id"] in train_ds.image_ids and meta["ann_id"] > 0 and meta["score"] == 1.0
    batch = default_collate([train_ds[0], train_ds[1]])
    assert batch["image"].shape == (2, 3, 256, 192) and batch["meta"]["center"].shape == (2, 2)
    assert batch["meta"]["image_id"].shape == (2,)


@needs_mini
def test_test_mode_crop_and_target_peaks(test_ds: CocoTopDownDataset) -> None:
    """No augmentation: the image is the warped original, and each target peaks at its warped keypoint."""
    checked = 0
    for index in (0, 5, 40):
        sample = test_ds[index]
        meta = sample["meta"]
        ann = test_ds.coco.anns[meta["ann_id"]]
        img_info = test_ds.coco.imgs[meta["image_id"]]
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        mat = get_affine_transform(meta["center"].numpy(), meta["scale"].numpy(), 0.0, (192, 256))
        original = cv2.imread(str(IMAGES / img_info["file_name"]))
        expected_image = normalize_image(warp_image(original, mat, (192, 256)))
        # meta holds float32 center/scale, so a few pixels may round to the neighbouring grey level
        diff = np.abs(sample["image"].numpy() - expected_image)
        assert diff.max() < 1.5 / 255 / 0.224 and np.mean(diff > 1e-5) < 1e-3
        kp_hm = affine_points(kp[:, :2], mat) / test_ds.codec.feat_stride
        weight = sample["target_weight"].numpy()[:, 0]
        target = sample["target"].numpy()
        for j in np.flatnonzero(weight > 0):
            assert kp[j, 2] > 0
            if 0 <= kp_hm[j, 0] <= 47 and 0 <= kp_hm[j, 1] <= 63:
                peak = np.unravel_index(target[j].argmax(), target[j].shape)
                assert abs(peak[1] - kp_hm[j, 0]) <= 0.5 + 1e-6 and abs(peak[0] - kp_hm[j, 1]) <= 0.5 + 1e-6
                checked += 1
        assert np.all(weight[kp[:, 2] == 0] == 0)
    assert checked > 20


@needs_mini
def test_augmented_targets_decode_back_to_annotation(train_ds: CocoTopDownDataset) -> None:
    """Decode the augmented target, map it to the image with meta, undo the flip: the annotation returns."""
    codec = train_ds.codec
    flip_perm = np.arange(17)
    for a, b in get_skeleton("coco").flip_pairs:
        flip_perm[a], flip_perm[b] = b, a
    seen_flip = seen_rot = checked = 0
    for index in range(0, 86, 3):
        sample = train_ds[index]
        meta = sample["meta"]
        coords, _ = codec.decode(sample["target"].numpy()[None])
        hm_xy = coords[0] / codec.feat_stride
        img_xy = codec.decode_to_image(sample["target"].numpy()[None], meta["center"].numpy()[None],
                                       meta["scale"].numpy()[None], [meta["rotation"]])[0][0]
        ann_kp = np.asarray(train_ds.coco.anns[meta["ann_id"]]["keypoints"], dtype=np.float64).reshape(17, 3)
        width = train_ds.coco.imgs[meta["image_id"]]["width"]
        if meta["flipped"]:
            seen_flip += 1
            ann_kp = ann_kp[flip_perm]
            ann_kp[:, 0] = width - 1 - ann_kp[:, 0]
        seen_rot += meta["rotation"] != 0
        tol = 0.1 * float(meta["scale"][0]) / 47  # 0.1 heatmap px in image px
        weight = sample["target_weight"].numpy()[:, 0]
        interior = (hm_xy[:, 0] > 4) & (hm_xy[:, 0] < 43) & (hm_xy[:, 1] > 4) & (hm_xy[:, 1] < 59)
        for j in np.flatnonzero((weight > 0) & interior):
            assert np.linalg.norm(img_xy[j] - ann_kp[j, :2]) < tol, (index, j)
            checked += 1
    assert seen_flip > 0 and seen_rot > 0 and checked > 100


@needs_mini
def test_determinism_per_seed_epoch_index(train_ds: CocoTopDownDataset) -> None:
    first = train_ds[4]
    again = _mini(train=True, seed=3)[4]
    for key in ("image", "target", "target_weight"):
        assert torch.equal(first[key], again[key])
    assert first["meta"]["rotation"] == again["meta"]["rotation"]
    other = _mini(train=True, seed=3)
    other.set_epoch(1)
    changed = [not torch.equal(first["image"], other[i]["image"]) for i in [4]]
    assert all(changed)
    assert not torch.equal(_mini(train=True, seed=4)[4]["image"], first["image"])
    train_ds.set_epoch(0)
    assert torch.equal(train_ds[4]["image"], first["image"])


@needs_mmpose
def test_detection_boxes_for_evaluation() -> None:
    ann, det = MMPOSE_COCO / "test_coco.json", MMPOSE_COCO / "test_coco_det_AP_H_56.json"
    dets = json.loads(det.read_text())
    thr = 0.5
    expected = [d for d in dets if d["category_id"] == 1 and d["score"] >= thr]
    ds = CocoTopDownDataset(ann, MMPOSE_COCO, train=False, det_file=det, det_score_thr=thr)
    assert len(ds) == len(expected) > 0
    sample = ds[0]
    assert sample["meta"]["ann_id"] == -1
    assert sample["meta"]["score"] == pytest.approx(expected[0]["score"])
    assert sample["target_weight"].sum() == 0 and sample["target"].abs().sum() == 0
    with pytest.raises(ConfigError):
        CocoTopDownDataset(ann, MMPOSE_COCO, train=True, det_file=det)


# ---------------------------------------------------------------------- broken inputs
def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def _tiny_coco(image_name: str = "000000000790.jpg", image_id: int = 790) -> dict:
    kp = [0.0] * 51
    kp[0:3] = [260.0, 100.0, 2]
    return {
        "images": [{"id": image_id, "file_name": image_name, "width": 640, "height": 480}],
        "annotations": [{"id": 1, "image_id": image_id, "category_id": 1, "iscrowd": 0, "num_keypoints": 1,
                         "bbox": [200.0, 50.0, 120.0, 200.0], "area": 20000.0, "keypoints": kp}],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(17)]}],
    }


def _raises(match_file: str, field: str, fn: Callable[..., object], *args: object, **kwargs: object) -> None:
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert match_file in msg and field in msg, msg


def test_missing_and_non_json_annotation_file(tmp_path: Path) -> None:
    _raises("nope.json", "annotation file", CocoTopDownDataset, tmp_path / "nope.json", tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _raises("bad.json", "not valid JSON", CocoTopDownDataset, bad, tmp_path)


@pytest.mark.parametrize("key", ["images", "annotations", "categories"])
def test_not_coco_keypoints(tmp_path: Path, key: str) -> None:
    data = _tiny_coco()
    del data[key]
    ann = _write(tmp_path / "ann.json", data)
    _raises("ann.json", f"'{key}'", CocoTopDownDataset, ann, tmp_path)


def test_keypoint_array_length(tmp_path: Path) -> None:
    data = _tiny_coco()
    data["annotations"][0]["keypoints"] = data["annotations"][0]["keypoints"][:-3]
    ann = _write(tmp_path / "ann.json", data)
    _raises("ann.json", "annotations[id=1].keypoints", CocoTopDownDataset, ann, tmp_path)


def test_skeleton_mismatch(tmp_path: Path) -> None:
    ann = _write(tmp_path / "ann.json", _tiny_coco())
    _raises("ann.json", "categories[person].keypoints", CocoTopDownDataset, ann, tmp_path, skeleton="mpii")


def test_missing_and_unreadable_image(tmp_path: Path) -> None:
    ann = _write(tmp_path / "ann.json", _tiny_coco("missing.jpg", 42))
    ds = CocoTopDownDataset(ann, tmp_path, train=False)
    _raises("missing.jpg", "image id 42", ds.__getitem__, 0)
    (tmp_path / "broken.jpg").write_bytes(b"this is not a jpeg")
    ann = _write(tmp_path / "ann2.json", _tiny_coco("broken.jpg", 43))
    ds = CocoTopDownDataset(ann, tmp_path, train=False)
    _raises("broken.jpg", "image id 43", ds.__getitem__, 0)


@needs_mini
def test_crowd_and_degenerate_boxes_warn_once(tmp_path: Path) -> None:
    data = _tiny_coco()
    crowd = dict(data["annotations"][0], id=2, iscrowd=1)
    outside = dict(data["annotations"][0], id=3, bbox=[700.0, 10.0, 50.0, 50.0])
    data["annotations"] += [crowd, outside]
    ann = _write(tmp_path / "ann.json", data)
    with pytest.warns(UserWarning) as record:
        ds = CocoTopDownDataset(ann, IMAGES, train=False)
    assert len(record) == 1
    msg = str(record[0].message)
    assert "ann.json" in msg and "image 790/ann 2" in msg and "image 790/ann 3" in msg
    assert len(ds) == 1 and ds[0]["meta"]["ann_id"] == 1


@needs_mini
@pytest.mark.parametrize(
    ("dets", "field"),
    [
        ({"image_id": 790}, "detection file must be a JSON list"),
        ([{"image_id": 790, "bbox": [1, 2, 3], "score": 0.9, "category_id": 1}], "[0].bbox"),
        ([{"image_id": 790, "bbox": [1, 2, 3, 4], "category_id": 1}], "[0].score"),
    ],
)
def test_malformed_detection_file(tmp_path: Path, dets: object, field: str) -> None:
    ann = _write(tmp_path / "ann.json", _tiny_coco())
    det = _write(tmp_path / "dets.json", dets)
    _raises("dets.json", field, CocoTopDownDataset, ann, IMAGES, train=False, det_file=det)


def test_all_invisible_keypoints_give_a_clear_error(tmp_path) -> None:
    import json

    import cv2
    import numpy as np

    from prunepose.errors import DataError

    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((40, 30, 3), np.uint8))
    ann = {"images": [{"id": 1, "file_name": "a.jpg", "width": 30, "height": 40}],
           "categories": [{"id": 1, "name": "person", "keypoints": [str(i) for i in range(17)], "skeleton": []}],
           "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": [1, 1, 20, 30],
                            "area": 600, "num_keypoints": 0, "keypoints": [0] * 51}]}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    with pytest.raises(DataError, match=r"ann\.json.*no usable samples"):
        CocoTopDownDataset(tmp_path / "ann.json", tmp_path)
