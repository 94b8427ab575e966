"""PoseEstimator2D / Results2D / sources / boxes: numbers checked against hand computations.

Tiny random-weight models (saved with save_weights) keep every test fast; the checks are about geometry,
decoding, batching, bookkeeping and error messages, which do not depend on trained weights.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from _numerics import COORD_ROUNDING, RecordingBackend, assert_keypoints_within, heatmap_delta, keypoint_tolerance
from prunepose.api.boxes import DetectionFile, KeypointBoxTracker, box_from_keypoints, check_boxes
from prunepose.api.estimator2d import PoseEstimator2D
from prunepose.api.sources import VideoReadError, iter_frames, read_image
from prunepose.codecs.heatmap import HeatmapCodec
from prunepose.errors import ConfigError, DataError, PrunePoseError
from prunepose.paths import shared_data_dir
from prunepose.registry import create_model
from prunepose.weights import model_from_weights, save_weights

ASTRONAUT = Path(__file__).resolve().parents[1] / "src" / "prunepose" / "assets" / "astronaut.jpg"
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])
TINY_PPT = dict(dim=32, depth=4, heads=2, prune_layers=(1, 2))
TINY_GTPT = dict(dim=32, coarse_depth=2, fine_depth=2, h2k_layer=0, heads=2)


def coco_mini() -> Path:
    root = shared_data_dir()
    if root is None or not (root / "coco-mini" / "train2017").is_dir():
        pytest.skip("shared data coco-mini not available (set PRUNEPOSE_DATA)")
    return root / "coco-mini"


@pytest.fixture(scope="module")
def ppt_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return save_weights(create_model("ppt_s", **TINY_PPT), tmp_path_factory.mktemp("w") / "ppt.safetensors")


@pytest.fixture(scope="module")
def gtpt_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    return save_weights(create_model("gtpt_t", **TINY_GTPT), tmp_path_factory.mktemp("w") / "gtpt.safetensors")


def hand_crop(image: np.ndarray, box_xyxy, size=(192, 256), udp: bool = True):
    """Crop + normalisation written out from the formulas (not through prunepose.data.transforms)."""
    x1, y1, x2, y2 = box_xyxy
    w, h = x2 - x1, y2 - y1
    cx, cy = x1 + w / 2, y1 + h / 2
    aspect = size[0] / size[1]
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    sw, sh = 1.25 * w, 1.25 * h
    if udp:
        kx, ky, ox, oy = (size[0] - 1) / sw, (size[1] - 1) / sh, (size[0] - 1) / 2, (size[1] - 1) / 2
    else:
        kx, ky, ox, oy = size[0] / sw, size[1] / sh, size[0] / 2, size[1] / 2
    mat = np.array([[kx, 0, ox - kx * cx], [0, ky, oy - ky * cy]])
    crop = cv2.warpAffine(image, mat, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    x = ((crop[..., ::-1] / 255.0 - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)

    def back(pts):  # input px -> image px
        return np.stack([(pts[..., 0] - ox) / kx + cx, (pts[..., 1] - oy) / ky + cy], axis=-1)

    return torch.from_numpy(x), mat, back


BOX = (120.0, 60.0, 400.0, 500.0)


def test_heatmap_keypoints_equal_hand_decode(ppt_weights: Path) -> None:
    """Crop, network and decoding checked one by one, each against a hand computation with its own tolerance.

    Why not one pixel tolerance on the keypoints: the estimator's (BN-folded) network and the unprepared twin
    differ by float32 rounding, and DARK's sub-pixel step amplifies that without bound on the flat heatmaps of
    random weights (tests/_numerics.py); a fixed px tolerance failed on another CPU.
    """
    image = read_image(ASTRONAUT)
    est = PoseEstimator2D(checkpoint=ppt_weights)
    rec = RecordingBackend(est)
    res = est.predict_image(image, np.array([BOX]))
    model = model_from_weights(ppt_weights).eval()  # unprepared twin: BN folding must not change the answer
    x, mat, back = hand_crop(image, BOX, udp=True)
    with torch.no_grad():
        out = model(x)
    (crop, seen), = rec.calls
    # float32 vs float64 normalisation of identical uint8 pixels: a few ulps of values |v| <= 2.7
    np.testing.assert_allclose(crop, x.numpy(), rtol=0, atol=1e-5)
    hm = out.heatmaps.numpy()
    np.testing.assert_allclose(seen["heatmaps"], hm, rtol=0, atol=heatmap_delta(hm))
    codec = HeatmapCodec((192, 256), (48, 64), 2.0)
    coords, scores = codec.decode(seen["heatmaps"])  # the estimator's own heatmaps: the same numbers exactly
    np.testing.assert_allclose(res.keypoints[0], back(coords[0]), rtol=0, atol=COORD_ROUNDING)
    np.testing.assert_array_equal(res.scores[0], scores[0])
    assert_keypoints_within(res.keypoints, back(codec.decode(hm)[0]), keypoint_tolerance(hm, mat[None], codec))
    np.testing.assert_allclose(res.crop_affines[0], mat, atol=1e-9)
    assert [k.tolist() for k in res.kept_tokens[0]] == [sorted(k[0].tolist()) for k in out.kept]
    assert [len(k) for k in res.kept_tokens[0]] == [180, 126] and res.token_grid == (16, 16)


def test_flip_test_equals_hand_average(ppt_weights: Path) -> None:
    image = read_image(ASTRONAUT)
    est = PoseEstimator2D(checkpoint=ppt_weights, flip=True)
    rec = RecordingBackend(est)
    res = est.predict_image(image, np.array([BOX]))
    model = model_from_weights(ppt_weights).eval()
    x, mat, back = hand_crop(image, BOX)
    with torch.no_grad():
        hm = model(x).heatmaps.numpy()
        hm_m = model(torch.flip(x, dims=[3])).heatmaps.numpy()
    (crop, plain), (crop_m, mirrored) = rec.calls
    np.testing.assert_array_equal(crop_m, crop[..., ::-1])
    np.testing.assert_allclose(plain["heatmaps"], hm, rtol=0, atol=heatmap_delta(hm))
    np.testing.assert_allclose(mirrored["heatmaps"], hm_m, rtol=0, atol=heatmap_delta(hm_m))
    perm = list(range(17))
    for a in range(1, 17, 2):  # COCO: (1,2), (3,4), ... (15,16) are left/right pairs
        perm[a], perm[a + 1] = a + 1, a
    codec = HeatmapCodec((192, 256), (48, 64), 2.0)
    # the hand average of the estimator's own two outputs decodes to its keypoints (float32 rounding only) ...
    coords, _ = codec.decode(0.5 * (plain["heatmaps"] + mirrored["heatmaps"][:, perm, :, ::-1]))
    np.testing.assert_allclose(res.keypoints[0], back(coords[0]), rtol=0, atol=COORD_ROUNDING)
    # ... and the twin's average within the bound DARK puts on float32 rounding of the heatmaps
    avg = 0.5 * (hm + hm_m[:, perm, :, ::-1])  # each run's rounding bound holds for the average as well
    tol = keypoint_tolerance(avg, mat[None], codec, delta=max(heatmap_delta(hm), heatmap_delta(hm_m)))
    assert_keypoints_within(res.keypoints, back(codec.decode(avg)[0]), tol)


def test_simcc_keypoints_equal_hand_argmax(gtpt_weights: Path) -> None:
    image = read_image(ASTRONAUT)
    res = PoseEstimator2D(checkpoint=gtpt_weights).predict_image(image, np.array([BOX]))
    model = model_from_weights(gtpt_weights).eval()
    x, _, back = hand_crop(image, BOX, udp=False)  # GTPT: classic (non-UDP) affine
    with torch.no_grad():
        out = model(x)
    px, py = torch.softmax(out.simcc_x, -1)[0].numpy(), torch.softmax(out.simcc_y, -1)[0].numpy()
    coords = np.stack([px.argmax(-1), py.argmax(-1)], -1) / 2.0  # split ratio 2
    np.testing.assert_allclose(res.keypoints[0], back(coords), atol=1e-3)
    np.testing.assert_allclose(res.scores[0], np.minimum(px.max(-1), py.max(-1)), rtol=1e-4)
    for got, k in zip(res.kept_tokens[0], out.kept):  # per-group stages: union of the groups, no -1 slots
        want = k[0].numpy().reshape(-1)
        assert got.tolist() == sorted(set(want[want >= 0].tolist()))


def test_batching_and_multiple_images_do_not_change_answers(ppt_weights: Path) -> None:
    image = read_image(ASTRONAUT)
    boxes = np.array([BOX, (0, 0, 300, 300), (200, 250, 511, 511)])
    est_one = PoseEstimator2D(checkpoint=ppt_weights, batch_size=1)
    rec_one = RecordingBackend(est_one)
    one = est_one(ASTRONAUT, boxes=boxes)
    many = PoseEstimator2D(checkpoint=ppt_weights, batch_size=16)([ASTRONAUT, image], boxes=boxes)
    assert len(one) == 1 and len(many) == 2 and many[1].source == "array" and many[0].image_id == "astronaut"
    assert [c[0].shape[0] for c in rec_one.calls] == [1, 1, 1]
    # batch 1 and batch 6 run different GEMM blockings: equal up to float32 rounding, amplified by DARK
    hm = np.concatenate([c[1]["heatmaps"] for c in rec_one.calls])
    tol = keypoint_tolerance(hm, one[0].crop_affines, HeatmapCodec((192, 256), (48, 64), 2.0))
    for r in many:
        assert_keypoints_within(r.keypoints, one[0].keypoints, tol)
    assert one[0].box_origin == "explicit" and one[0].boxes.shape == (3, 4)


def test_whole_image_box_without_detector_and_mask_plot(ppt_weights: Path) -> None:
    est = PoseEstimator2D(checkpoint=ppt_weights, detector=None)
    res = est(ASTRONAUT)[0]
    assert res.box_origin == "whole image" and res.boxes[0].tolist() == [0, 0, 511, 511]
    plain = res.plot(kept_mask=True, kpt_thr=math.inf, draw_boxes=False)  # no skeleton: only the mask
    # token centres in the crop -> image px through the inverse crop affine (hand: x_img = (x_in - t) / k)
    mat = res.crop_affines[0]
    rows, cols = res.token_grid
    kept_last = set(res.kept_tokens[0][-1].tolist())
    checked = {True: 0, False: 0}
    for idx in range(rows * cols):
        r, c = divmod(idx, cols)
        cx_in, cy_in = (c + 0.5) * 192 / cols, (r + 0.5) * 256 / rows
        x, y = (cx_in - mat[0, 2]) / mat[0, 0], (cy_in - mat[1, 2]) / mat[1, 1]
        xi, yi = int(round(x)), int(round(y))
        if not (0 <= xi < 512 and 0 <= yi < 512):
            continue
        orig = res.image[yi, xi].astype(np.float32)
        want = orig if idx in kept_last else (orig * 0.35).astype(np.uint8)
        np.testing.assert_array_equal(plain[yi, xi], want)
        checked[idx in kept_last] += 1
    assert checked[True] > 20 and checked[False] > 20


def test_results_json_and_save(ppt_weights: Path, tmp_path: Path) -> None:
    res = PoseEstimator2D(checkpoint=ppt_weights).predict_image(read_image(ASTRONAUT), np.array([BOX]))
    rec = res.to_json()[0]
    kps = np.array(rec["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(kps[:, :2], res.keypoints[0], atol=1e-3)
    np.testing.assert_allclose(rec["bbox"], [120, 60, 280, 440])
    confident = res.scores[0][res.scores[0] > 0.2]
    assert rec["score"] == pytest.approx(confident.mean() if confident.size else 0.0, rel=1e-5)
    assert json.loads(res.save(tmp_path / "r.json").read_text()) == res.to_json()
    assert cv2.imread(str(res.save(tmp_path / "r.png"))).shape == (512, 512, 3)
    with pytest.raises(PrunePoseError, match="r.txt"):
        res.save(tmp_path / "r.txt")
    res.image = None
    with pytest.raises(PrunePoseError, match="no image"):
        res.plot()


def test_coco_results_load_in_pycocotools(ppt_weights: Path, tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    root = coco_mini()
    ann_file = root / "annotations" / "person_keypoints_train2017.json"
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
    images = sorted((root / "train2017").glob("*.jpg"))[:3]
    ids = [int(p.stem) for p in images]
    anns = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=ids, catIds=[1])) if a["num_keypoints"] > 0]
    det = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in anns]
    det_file = tmp_path / "det.json"
    det_file.write_text(json.dumps(det))
    results = PoseEstimator2D(checkpoint=ppt_weights)(images, det_file=det_file)
    records = [r for res in results for r in res.to_json()]
    assert len(records) == len(anns)
    assert sorted(tuple(np.round(r["bbox"], 2)) for r in records) == sorted(tuple(np.round(a["bbox"], 2))
                                                                            for a in anns)
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(records)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.imgIds = ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert len(dt.getAnnIds()) == len(anns) and -1.0 <= ev.stats[0] <= 1.0


def test_detection_file_lookup(tmp_path: Path) -> None:
    path = tmp_path / "det.json"
    path.write_text(json.dumps([
        {"image_id": 7, "category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9},
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.1},  # under the threshold
        {"image_id": 7, "category_id": 2, "bbox": [0, 0, 50, 50], "score": 0.9},  # not a person
        {"file_name": "dir/walk.jpg", "image_id": 99, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.8},
    ]))
    det = DetectionFile.load(path, score_thr=0.5)
    boxes = det.lookup(7)
    assert boxes.xyxy.tolist() == [[10, 20, 40, 60]] and boxes.scores.tolist() == [0.9]
    assert det.lookup("x", "/else/walk.jpg").xyxy.tolist() == [[1, 2, 4, 6]]
    assert len(det.lookup(8)) == 0
    path.write_text(json.dumps([{"image_id": 1, "bbox": [1, 2, 3], "score": 1}]))
    with pytest.raises(DataError, match=r"det.json: field '\[0\]\.bbox'"):
        DetectionFile.load(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="det.json"):
        DetectionFile.load(path)


def test_box_from_keypoints_by_hand() -> None:
    kpts = np.array([[10, 20], [30, 60], [20, 40], [500, 500]], float)
    scores = np.array([0.9, 0.8, 0.5, 0.1])  # the far point is not confident
    # extent (10,20)-(30,60): centre (20,40), size (20,40) * 1.2 -> half (12, 24)
    assert box_from_keypoints(kpts, scores, 0.3).tolist() == [8, 16, 32, 64]
    assert box_from_keypoints(kpts, np.array([0.9, 0.9, 0.1, 0.1]), 0.3) is None  # < 3 confident


def test_tracker_follows_falls_back_and_restarts() -> None:
    tr = KeypointBoxTracker(score_thr=0.3, max_misses=2)
    b = tr.boxes(640, 480)
    assert b.origin == "whole image" and b.xyxy.tolist() == [[0, 0, 639, 479]]
    pose = np.array([[[100, 100], [140, 180], [120, 140]]], float)
    good, bad = np.full((1, 3), 0.9), np.full((1, 3), 0.1)
    assert tr.update(pose, good).tolist() == [0]  # a confident pose on the whole frame starts track 0
    assert tr.boxes(640, 480).xyxy.tolist() == [[96, 92, 144, 188]] and tr.boxes(640, 480).track_ids.tolist() == [0]
    tr.update(pose + 10, good)
    assert tr.boxes(640, 480).xyxy.tolist() == [[106, 102, 154, 198]]
    for _ in range(2):  # unconfident: keep the last good box for max_misses frames
        assert tr.update(pose, bad).tolist() == [0]
        assert tr.boxes(640, 480).xyxy.tolist() == [[106, 102, 154, 198]]
    tr.update(pose, bad)  # third miss: dropped, back to the whole frame
    assert tr.boxes(640, 480).origin == "whole image"
    assert tr.update(pose, bad).tolist() == [-1]
    assert tr.update(pose, good).tolist() == [1]  # a new person gets a new id
    edge = np.array([[[-50, -50], [30, 30], [0, 10]]], float)
    tr.update(edge, good)
    # centre -10, half 48: [-58, 38]; the width may only grow 1.25x per frame (48 -> 60): x [-40, 20]; clipped
    assert tr.boxes(640, 480).xyxy.tolist() == [[0, 0, 20, 38]]


def test_check_boxes_errors() -> None:
    with pytest.raises(DataError, match="x2 > x1"):
        check_boxes([[10, 10, 5, 20]])
    with pytest.raises(DataError, match="shape"):
        check_boxes([1, 2, 3])
    with pytest.raises(DataError, match="NaN"):
        check_boxes([[0, 0, np.nan, 1]])
    est_box = np.array([[1000, 1000, 1200, 1200]])
    with pytest.raises(DataError, match="outside"):
        from prunepose.api.boxes import explicit_boxes

        explicit_boxes(est_box, 512, 512)


@pytest.mark.parametrize("content, name, message", [
    (None, "missing.jpg", "no such file"),
    (b"hello", "notes.txt", "unsupported file type"),
    (b"", "empty.jpg", "empty"),
    (b"\xff\xd8garbage" * 10, "corrupt.jpg", "cannot decode"),
    (b"", "empty.mp4", "empty"),
    (b"not a video at all" * 20, "bad.mp4", "cannot open video"),
])
def test_bad_files_are_named(tmp_path: Path, content, name: str, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        list(iter_frames(path))
    assert name in str(info.value)


def test_truncated_jpeg_refused(tmp_path: Path) -> None:
    data = ASTRONAUT.read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    assert cv2.imread(str(tmp_path / "half.jpg")) is not None  # OpenCV alone would accept it silently
    with pytest.raises(DataError, match="half.jpg: JPEG is truncated"):
        read_image(tmp_path / "half.jpg")


def test_bad_arrays_and_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="uint8"):
        list(iter_frames(np.zeros((64, 64, 3), np.float32)))
    with pytest.raises(DataError, match="at least 16 px"):
        list(iter_frames(np.zeros((8, 64, 3), np.uint8)))
    with pytest.raises(DataError, match="holds no images"):
        list(iter_frames(tmp_path))
    grey = next(iter_frames(np.zeros((20, 30), np.uint8)))
    assert grey.image.shape == (20, 30, 3)


def write_video(path: Path, frames: int, fourcc: str = "mp4v", size=(256, 256)) -> list[np.ndarray]:
    img = read_image(ASTRONAUT)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, size)
    for i in range(frames):
        writer.write(cv2.resize(np.roll(img, 6 * i, axis=1), size))
    writer.release()
    cap, decoded = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        decoded.append(f)
    return decoded


def test_video_frames_match_single_images(ppt_weights: Path, tmp_path: Path) -> None:
    decoded = write_video(tmp_path / "clip.mp4", 6)
    est = PoseEstimator2D(checkpoint=ppt_weights, batch_size=4)
    box = np.array([[40, 20, 220, 250]])
    results = list(est.stream(tmp_path / "clip.mp4", boxes=box, track=False))
    assert [r.frame_index for r in results] == list(range(6)) == [r.image_id for r in results]
    single = PoseEstimator2D(checkpoint=ppt_weights, batch_size=1)
    rec = RecordingBackend(single)
    codec = HeatmapCodec((192, 256), (48, 64), 2.0)
    for r, frame in zip(results, decoded):  # batch 4 vs 1: float32 rounding, amplified by DARK (tests/_numerics.py)
        alone = single.predict_image(frame, box)
        tol = keypoint_tolerance(rec.calls[-1][1]["heatmaps"], alone.crop_affines, codec)
        assert_keypoints_within(r.keypoints, alone.keypoints, tol)
    # without a detector: tracked from the whole first frame
    tracked = PoseEstimator2D(checkpoint=ppt_weights, batch_size=4, detector=None)(tmp_path / "clip.mp4")
    assert len(tracked) == 6 and tracked[0].box_origin == "whole image"
    assert all(r.track_ids is not None for r in tracked)


def test_zero_frame_and_truncated_video(ppt_weights: Path, tmp_path: Path) -> None:
    writer = cv2.VideoWriter(str(tmp_path / "zero.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    writer.release()
    with pytest.raises(DataError, match="zero.avi: video has no readable frames"):
        list(iter_frames(tmp_path / "zero.avi"))
    write_video(tmp_path / "full.avi", 30, "MJPG", (64, 64))
    data = (tmp_path / "full.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) * 6 // 10])
    est = PoseEstimator2D(checkpoint=ppt_weights, batch_size=4)
    got = []
    with pytest.raises(VideoReadError, match="cut.avi: video broke off after") as info:
        for r in est.stream(tmp_path / "cut.avi", track=False):
            got.append(r.frame_index)
    assert got == list(range(info.value.frames_read)) and 0 < len(got) < 30


def test_model_and_weights_errors(ppt_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs checkpoint"):
        PoseEstimator2D(model="ppt_s")
    with pytest.raises(ConfigError, match="not 'gtpt_t'"):
        PoseEstimator2D(model="gtpt_t", checkpoint=ppt_weights)
    with pytest.raises(PrunePoseError, match="nope.safetensors"):
        PoseEstimator2D(checkpoint=tmp_path / "nope.safetensors")
    with pytest.raises(ConfigError, match="batch_size"):
        PoseEstimator2D(checkpoint=ppt_weights, batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            PoseEstimator2D(checkpoint=ppt_weights, device="cuda")
    lifter = save_weights(create_model("mixste_tiny"), tmp_path / "lift.safetensors")
    with pytest.raises(ConfigError, match="Lifter3D"):
        PoseEstimator2D(checkpoint=lifter)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(ppt_weights: Path) -> None:
    image = read_image(ASTRONAUT)
    a = PoseEstimator2D(checkpoint=ppt_weights).predict_image(image, np.array([BOX]))
    b = PoseEstimator2D(checkpoint=ppt_weights, device="cuda").predict_image(image, np.array([BOX]))
    np.testing.assert_allclose(b.keypoints, a.keypoints, atol=0.05)  # TF32/cuDNN rounding, DARK amplifies it


def test_default_score_threshold_follows_the_score_scale(ppt_weights: Path, gtpt_weights: Path) -> None:
    assert PoseEstimator2D(checkpoint=ppt_weights).kpt_thr == 0.3  # heatmap maxima peak near 1
    # SimCC: a perfect prediction equals the sigma-4-bin Gaussian pdf, peak 1/(4 sqrt(2 pi)) = 0.0997
    est = PoseEstimator2D(checkpoint=gtpt_weights)
    assert est.kpt_thr == pytest.approx(0.3 * 0.09974, rel=1e-3)
    res = est.predict_image(read_image(ASTRONAUT))
    assert res.kpt_thr == est.kpt_thr and res.found().tolist() == [bool((res.scores >= est.kpt_thr).any())]


def test_package_root_exports_estimator() -> None:
    import prunepose

    assert prunepose.PoseEstimator2D is PoseEstimator2D


def test_default_weights_missing_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import prunepose.api.backends as backends

    monkeypatch.setattr(backends, "DEFAULT_WEIGHTS", tmp_path / "pose2d_default.safetensors")
    with pytest.raises(PrunePoseError, match="bundled default 2D weights are not installed"):
        PoseEstimator2D()


def peaked(model: torch.nn.Module) -> torch.nn.Module:
    """Give a random heatmap model the sharp peaks a trained one has (a Gaussian bump in the head's bias).

    Why: on the flat heatmaps of random weights DARK's Taylor step divides by a near-zero curvature and turns
    1e-7 output differences into 1e-3 px; the backends are compared on the kind of heatmaps they will decode.
    """
    last = model.head[-1]
    ys, xs = np.mgrid[0:64, 0:48]
    bump = 4.0 * np.exp(-((xs - 20.3) ** 2 + (ys - 30.6) ** 2) / (2 * 2.0**2))
    with torch.no_grad():
        last.bias.copy_(torch.from_numpy(bump.reshape(-1)).float())
    return model


@pytest.mark.parametrize("name", ["ppt", "gtpt"])
def test_onnx_backend_matches_pytorch(name: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("prunepose.export.runtime", reason="ONNX runner not available")
    from prunepose.export.onnx import export_onnx

    torch.manual_seed(3)
    model = peaked(create_model("ppt_s", **TINY_PPT)) if name == "ppt" else create_model("gtpt_t", **TINY_GTPT)
    weights = save_weights(model.eval(), tmp_path / f"{name}.safetensors")
    onnx_path = export_onnx(model_from_weights(weights).eval(), tmp_path / f"{name}.onnx")
    image = read_image(ASTRONAUT)
    boxes = np.array([BOX, (0, 0, 511, 511)])
    est_a = PoseEstimator2D(checkpoint=weights)
    rec = RecordingBackend(est_a)
    a = est_a.predict_image(image, boxes)
    b = PoseEstimator2D(checkpoint=onnx_path).predict_image(image, boxes)
    assert b.skeleton == a.skeleton and b.token_grid == a.token_grid
    out = rec.calls[0][1]
    if name == "ppt":  # float32 rounding of two runtimes, through DARK (tests/_numerics.py)
        tol = keypoint_tolerance(out["heatmaps"], a.crop_affines, HeatmapCodec((192, 256), (48, 64), 2.0))
        assert_keypoints_within(b.keypoints, a.keypoints, tol, min_bounded=0.9)
        np.testing.assert_allclose(b.scores, a.scores, rtol=0, atol=heatmap_delta(out["heatmaps"]))
    else:  # SimCC: bin argmax / split ratio, exact unless two bins tie within rounding
        np.testing.assert_allclose(b.keypoints, a.keypoints, rtol=0, atol=COORD_ROUNDING)
        np.testing.assert_allclose(b.scores, a.scores, rtol=0, atol=1e-5)  # softmax probabilities <= 1
    for ka, kb in zip(a.kept_tokens, b.kept_tokens):
        assert [k.tolist() for k in ka] == [k.tolist() for k in kb]


def test_onnx_default_weights_match_pytorch(tmp_path: Path) -> None:
    """The bundled distilled model (when installed): both backends agree within 1e-3 px on a real photo."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("prunepose.export.runtime", reason="ONNX runner not available")
    from prunepose.api.backends import DEFAULT_WEIGHTS
    from prunepose.export.onnx import export_onnx

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip("bundled default 2D weights not installed yet")
    onnx_path = export_onnx(model_from_weights(DEFAULT_WEIGHTS).eval(), tmp_path / "default.onnx")
    est_a = PoseEstimator2D()
    rec = RecordingBackend(est_a)
    a = est_a(ASTRONAUT)[0]
    b = PoseEstimator2D(checkpoint=onnx_path)(ASTRONAUT)[0]
    hm = rec.calls[0][1]["heatmaps"]
    codec = est_a.codec
    # not a fixed px figure: DARK amplifies float32 rounding on unconfident joints (measured up to 7.6e-3 px)
    assert_keypoints_within(b.keypoints, a.keypoints, keypoint_tolerance(hm, a.crop_affines, codec), 0.9)
    np.testing.assert_allclose(b.scores, a.scores, rtol=0, atol=heatmap_delta(hm))


def test_tracked_box_size_changes_at_most_25_percent_per_frame() -> None:
    """A pose collapsed onto one spot must not shrink the track onto a few pixels (hand-computed clamp)."""
    from prunepose.api.boxes import KeypointBoxTracker, limit_size_change

    clamped = limit_size_change(np.array([10.0, 10.0, 12.0, 14.0]), np.array([0.0, 0.0, 100.0, 200.0]), 1.25)
    np.testing.assert_allclose(clamped, [11 - 40, 12 - 80, 11 + 40, 12 + 80])  # 80 x 160 about centre (11, 12)
    grown = limit_size_change(np.array([0.0, 0.0, 400.0, 200.0]), np.array([0.0, 0.0, 100.0, 200.0]), 1.25)
    np.testing.assert_allclose(grown, [200 - 62.5, 0, 200 + 62.5, 200])  # width 125 = 1.25 x 100, height kept
    tracker = KeypointBoxTracker(score_thr=0.1)
    tracker.seed(np.array([[250.0, 160.0, 350.0, 360.0]]))
    collapsed = np.tile([300.0, 260.0], (17, 1)) + np.linspace(0, 1, 17)[:, None]
    tracker.update(collapsed[None], np.ones((1, 17)))
    box = tracker.boxes(640, 480).xyxy[0]
    np.testing.assert_allclose(box[2:] - box[:2], [80.0, 160.0])


def test_weights_may_carry_a_calibrated_threshold(tmp_path: Path) -> None:
    """A ``kpt_thr`` in the weights' JSON replaces the generic default; a bad value is named."""
    path = save_weights(create_model("tokenpose_t"), tmp_path / "w.safetensors", metadata={"kpt_thr": 0.05})
    assert PoseEstimator2D(checkpoint=path).kpt_thr == 0.05
    assert PoseEstimator2D(checkpoint=path, kpt_thr=0.2).kpt_thr == 0.2
    info = json.loads(path.with_suffix(".json").read_text())
    info["kpt_thr"] = "high"
    path.with_suffix(".json").write_text(json.dumps(info))
    with pytest.raises(ConfigError, match="kpt_thr"):
        PoseEstimator2D(checkpoint=path)
