"""Distillation pieces: MoveNet teacher geometry on a real image, pseudo-label JSON, held-out set, shipped student."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from prunepose.distill.pseudo_labels import build_coco_json, person_annotation, repeat_sources
from prunepose.distill.teacher import COCO17_FLIP_PAIRS, SquareCrop, keypoint_box

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "src/prunepose/assets/astronaut.jpg"
DATA = ROOT.parent / "shared/data"
THUNDER = DATA / "movenet/movenet-thunder.onnx"
WEIGHTS = ROOT / "src/prunepose/assets/weights/pose2d_default.safetensors"

needs_teacher = pytest.mark.skipif(not THUNDER.is_file(), reason="MoveNet ONNX not in ../shared/data/movenet")
needs_heldout = pytest.mark.skipif(not (DATA / "mmpose-testdata/coco/test_coco.json").is_file(),
                                   reason="mmpose-testdata not in ../shared/data")


def test_square_crop_hand_computed() -> None:
    # box 40x80 at (100, 50): side 1.25 * 80 = 100, centred on (120, 90) -> corner (70, 40)
    crop = SquareCrop.from_box([100, 50, 40, 80], size=256)
    assert (crop.x0, crop.y0, crop.side) == pytest.approx((70.0, 40.0, 100.0))
    # crop centre (normalised 0.5) -> image pixel-centre coordinate corner + 50 - 0.5
    assert crop.normalised_to_image(np.array([0.5, 0.5])) == pytest.approx([119.5, 89.5])
    assert crop.normalised_to_image(np.array([0.0, 1.0])) == pytest.approx([69.5, 139.5])


def test_crop_to_image_round_trip() -> None:
    crop = SquareCrop.from_box([13.3, 27.9, 151.0, 96.5], size=256, padding=1.3)
    pts = np.random.default_rng(0).uniform(0, 300, size=(50, 2))
    mat = crop.image_to_crop_matrix()
    in_crop = pts @ mat[:, :2].T + mat[:, 2]
    normalised = (in_crop + 0.5) / crop.size  # crop pixel centre -> corner-based fraction
    assert crop.normalised_to_image(normalised) == pytest.approx(pts, abs=1e-9)


def test_crop_pixels_on_real_image() -> None:
    image = cv2.imread(str(ASTRONAUT))
    # side = 1.0 * 256 = size: a pure integer translation, so pixels must match exactly (RGB order)
    crop = SquareCrop.from_box([100, 60, 256, 256], size=256, padding=1.0)
    rgb = crop.cut(image)
    assert rgb.shape == (256, 256, 3)
    np.testing.assert_array_equal(rgb, image[60:316, 100:356, ::-1])


@needs_teacher
def test_teacher_finds_astronaut_face_and_is_mirror_consistent() -> None:
    from prunepose.distill.teacher import MoveNetTeacher

    image = cv2.imread(str(ASTRONAUT))
    teacher = MoveNetTeacher(THUNDER)
    kpts, scores = teacher(image, [0, 0, 512, 512], padding=1.0)
    box = keypoint_box(kpts, scores)
    assert box is not None
    kpts, scores = teacher(image, box)
    # hand-measured on the photo: nose (224, 124), right eye (202, 102), left eye (248, 102)
    for k, ref in ((0, (224, 124)), (2, (202, 102)), (1, (248, 102))):
        assert scores[k] > 0.5
        assert np.hypot(*(kpts[k] - ref)) < 12.0, (k, kpts[k])
    # the mirrored image with the mirrored box gives the mirrored pose, left/right swapped
    w = image.shape[1]
    mbox = [w - box[0] - box[2], box[1], box[2], box[3]]
    mk, _ = teacher(np.ascontiguousarray(image[:, ::-1]), mbox)
    perm = np.arange(17)
    for i, j in COCO17_FLIP_PAIRS:
        perm[i], perm[j] = j, i
    back = mk[perm].copy()
    back[:, 0] = w - 1 - back[:, 0]
    confident = scores > 0.5
    err = np.hypot(*(back[confident] - kpts[confident]).T)
    assert np.median(err) < 6.0, err


def _astronaut_json(tmp_path: Path) -> Path:
    kpts = np.array([[224, 124], [248, 102], [202, 102], [273, 120], [175, 114], [327, 268], [94, 256],
                     [333, 400], [64, 421], [315, 482], [146, 502], [270, 509], [132, 509], [0, 0], [0, 0],
                     [0, 0], [0, 0]], dtype=float)
    scores = np.array([0.8] * 9 + [0.2] + [0.5] * 3 + [0.0] * 4)
    ann = person_annotation(1, 1, [26.5, 42.2, 330.2, 466.0], kpts, scores, score_thr=0.3)
    coco = build_coco_json([{"id": 1, "file_name": ASTRONAUT.name, "width": 512, "height": 512,
                             "source": "astronaut"}], [ann], "test")
    path = tmp_path / "pseudo.json"
    path.write_text(json.dumps(coco))
    return path


def test_pseudo_label_json_loads_in_pycocotools_and_dataset(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    from prunepose.data.coco import CocoTopDownDataset

    path = _astronaut_json(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    ann = coco.loadAnns(coco.getAnnIds())[0]
    vis = np.asarray(ann["keypoints"]).reshape(17, 3)[:, 2]
    assert ann["num_keypoints"] == 12 and vis[9] == 0 and vis[0] == 2  # score 0.2 < 0.3 -> unlabelled
    data = CocoTopDownDataset(path, ASTRONAUT.parent, train=True)
    sample = data[0]
    weight = sample["target_weight"][:, 0].numpy()
    np.testing.assert_array_equal(weight > 0, vis > 0)
    # without augmentation the crop-space targets sit where the affine puts the labels
    plain = CocoTopDownDataset(path, ASTRONAUT.parent, train=False)[0]
    assert plain["image"].shape == (3, 256, 192)


def test_repeat_sources_copies_only_named_sources() -> None:
    images = [{"id": 1, "source": "a"}, {"id": 2, "source": "b"}]
    anns = [{"id": 1, "image_id": 1}, {"id": 2, "image_id": 2}, {"id": 3, "image_id": 2}]
    out = repeat_sources({"images": images, "annotations": anns}, {"a": 3})
    assert [a["image_id"] for a in out["annotations"]] == [1, 1, 1, 2, 2]
    assert [a["id"] for a in out["annotations"]] == [1, 2, 3, 4, 5]


@needs_heldout
def test_heldout_mapping() -> None:
    from prunepose.distill.heldout import build_heldout

    coco = build_heldout(DATA)
    src = {im["id"]: im["source"] for im in coco["images"]}
    counts: dict[str, int] = {}
    for a in coco["annotations"]:
        counts[src[a["image_id"]]] = counts.get(src[a["image_id"]], 0) + 1
    assert counts == {"coco": 12, "ochuman": 5, "posetrack18": 14, "crowdpose": 4, "mpii": 5}
    raw = json.loads((DATA / "mmpose-testdata/crowdpose/test_crowdpose.json").read_text())["annotations"][0]
    first = next(a for a in coco["annotations"] if src[a["image_id"]] == "crowdpose")
    kp = np.asarray(first["keypoints"]).reshape(17, 3)
    assert kp[6, :2].tolist() == raw["keypoints"][3:5]  # CrowdPose right_shoulder -> COCO 6
    assert kp[:5, 2].sum() == 0  # no face keypoints in CrowdPose
    for a in coco["annotations"]:  # PoseTrack slots 1, 2 hold head bottom / top, never eyes
        if src[a["image_id"]] == "posetrack18":
            assert np.asarray(a["keypoints"]).reshape(17, 3)[1:5, 2].sum() == 0


@needs_heldout
@pytest.mark.skipif(not WEIGHTS.is_file(), reason="bundled pose2d_default weights not present")
def test_shipped_student_beats_mean_pose(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    from prunepose.distill.evaluate import mean_pose_baseline, predict_student, score_predictions
    from prunepose.distill.heldout import build_heldout
    from prunepose.weights import model_from_weights

    path = tmp_path / "heldout.json"
    path.write_text(json.dumps(build_heldout(DATA)))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
    model = model_from_weights(WEIGHTS).eval()
    ids, kpts, scores = predict_student(model, str(path), str(DATA), flip=False)
    student = score_predictions(gt, ids, kpts, scores)
    base = score_predictions(gt, ids, mean_pose_baseline(gt, ids), np.ones_like(scores))
    assert student["persons"] == base["persons"] == 40
    assert student["mean_oks"] > base["mean_oks"] + 0.1, (student["mean_oks"], base["mean_oks"])


def test_color_augment_off_is_identity_and_gray_is_gray() -> None:
    from prunepose.data.transforms import AugmentConfig, color_augment

    image = cv2.imread(str(ASTRONAUT))[:64, :48]
    rng = np.random.default_rng(0)
    assert color_augment(image, rng, AugmentConfig()) is image
    assert rng.random() == np.random.default_rng(0).random()  # nothing was drawn when disabled
    gray = color_augment(image, rng, AugmentConfig(gray_prob=1.0))
    assert gray.dtype == np.uint8 and gray.shape == image.shape
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    jittered = color_augment(image, np.random.default_rng(1), AugmentConfig(color_jitter=0.4))
    assert jittered.shape == image.shape and not np.array_equal(jittered, image)
