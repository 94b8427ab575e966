"""Person detector, box/OKS NMS, multi-person tracking ids, COCO results round trip, empty images.

References are independent of the code under test: GT boxes of real COCO val2017 images (pycocotools
annotations), hand-computed IoU / decoding / OKS cases, a synthetic two-person crossing with known identities.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from prunepose.detect import PersonDetector, box_iou, box_nms, detector_available
from prunepose.detect.person import decode_yolox, letterbox
from prunepose.detect.tracking import DetectionTracker, greedy_match
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
COCO_DIR = DATA / "mmpose-testdata" / "coco" if DATA is not None else None
needs_coco = pytest.mark.skipif(COCO_DIR is None or not (COCO_DIR / "test_coco.json").is_file(),
                                reason="shared data (mmpose-testdata/coco) not available")
needs_detector = pytest.mark.skipif(not detector_available(), reason="onnxruntime or detector weights missing")


def _gt(file_name: str) -> tuple[np.ndarray, dict]:
    gt = json.loads((COCO_DIR / "test_coco.json").read_text())
    im = next(i for i in gt["images"] if i["file_name"] == file_name)
    anns = [a for a in gt["annotations"] if a["image_id"] == im["id"] and a["num_keypoints"] > 0]
    xyxy = np.array([a["bbox"] for a in anns], dtype=np.float64)
    xyxy[:, 2:] += xyxy[:, :2]
    return xyxy, gt


# ---------------------------------------------------------------- box maths, hand-computed
def test_box_iou_hand_computed():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 10]])
    # overlap 5x5 = 25, union 100 + 100 - 25 = 175
    np.testing.assert_allclose(box_iou(a, b), [[25 / 175, 0.0, 1.0]])


def test_box_nms_keeps_highest_and_disjoint():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0, 0, 10, 10.5]])
    scores = np.array([0.5, 0.9, 0.4, 0.3])
    # box 1 (0.9) suppresses 0 (IoU 90/110 = 0.82) and 3 (IoU 90/115 = 0.78) at 0.6; box 2 is disjoint
    assert box_nms(boxes, scores, 0.6).tolist() == [1, 2]
    # at 0.8: box 0 (IoU 0.818 with box 1) is still suppressed, box 3 (0.783) survives
    assert box_nms(boxes, scores, 0.8).tolist() == [1, 2, 3]


def test_decode_yolox_hand_computed():
    """One cell of each stride with known raw values -> the box the YOLOX formula gives."""
    h, w = 64, 96  # grids 8x12, 4x6, 2x3 -> 96 + 24 + 6 cells
    raw = np.zeros((126, 85), np.float32)
    # stride 8, cell (gx=3, gy=2): index 2*12 + 3 = 27; tx=0.5, ty=0.25, tw=log 2, th=0 -> centre (28, 18), 16x8
    raw[27, :4] = [0.5, 0.25, np.log(2.0), 0.0]
    raw[27, 4], raw[27, 5] = 0.8, 0.5
    # stride 32, cell (gx=1, gy=1): index 96 + 24 + 1*3 + 1 = 124; centre (1*32, 1*32), size 32x64
    raw[124, :4] = [0.0, 0.0, 0.0, np.log(2.0)]
    raw[124, 4], raw[124, 5] = 1.0, 0.25
    boxes, scores = decode_yolox(raw, h, w)
    np.testing.assert_allclose(boxes[27], [20, 14, 36, 22], atol=1e-5)
    np.testing.assert_allclose(boxes[124], [16, 0, 48, 64], atol=1e-5)
    np.testing.assert_allclose(scores[[27, 124]], [0.4, 0.25], atol=1e-6)
    with pytest.raises(Exception, match="cells"):
        decode_yolox(raw[:100], h, w)


def test_letterbox_pads_to_multiples_of_32():
    img = np.zeros((300, 500, 3), np.uint8)
    x, ratio = letterbox(img, 416)
    assert x.shape == (3, 256, 416) and ratio == pytest.approx(416 / 500)
    assert x[0, -1, 0] == 114.0  # bottom padding is YOLOX's grey


@needs_detector
def test_small_images_are_enlarged_at_most_twice():
    det = PersonDetector()  # input_size 640
    # 2 x long side, rounded up to a multiple of 32, never above input_size
    assert det.long_side_for(128, 128) == 256
    assert det.long_side_for(100, 30) == 224
    assert det.long_side_for(300, 500) == 640 and det.long_side_for(1080, 1920) == 640


@needs_detector
def test_detector_finds_the_person_of_a_small_frame():
    """A 128 px frame of one person: letterboxed to 640 (5x) YOLOX-Nano misses it on most shifts."""
    img = cv2.imread(str(Path(__file__).resolve().parents[1] / "src" / "prunepose" / "assets" / "astronaut.jpg"))
    det = PersonDetector()
    for shift in range(0, 64, 8):
        frame = cv2.resize(np.roll(img, shift, axis=1), (128, 128))
        boxes, _ = det(frame)
        assert len(boxes) >= 1, f"shift {shift}: no person found"


# ---------------------------------------------------------------- the real detector on real images
@needs_coco
@needs_detector
@pytest.mark.parametrize("file_name", ["000000196141.jpg", "000000040083.jpg", "000000000785.jpg"])
def test_detector_finds_the_labelled_persons(file_name):
    gt_xyxy, _ = _gt(file_name)
    image = cv2.imread(str(COCO_DIR / file_name))
    boxes, scores = PersonDetector()(image)
    assert len(boxes) >= len(gt_xyxy)
    assert np.all(np.diff(scores) <= 0) and np.all(scores >= 0.3)
    # every labelled person is covered by a detection at IoU >= 0.5 (the recall criterion of docs/results-2d.md)
    assert np.all(box_iou(gt_xyxy, boxes).max(axis=1) >= 0.5)


@needs_detector
def test_detector_options_and_empty_image():
    det = PersonDetector(max_people=1)
    boxes, scores = det(np.zeros((240, 320, 3), np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    with pytest.raises(Exception, match="multiple of 32"):
        PersonDetector(input_size=400)
    with pytest.raises(Exception, match="not found"):
        PersonDetector("/nonexistent/detector.onnx")


# ---------------------------------------------------------------- OKS-NMS on results
def _results(keypoints: np.ndarray, box_scores: np.ndarray, boxes: np.ndarray):
    from prunepose.api.results import Results2D

    p, k = keypoints.shape[:2]
    return Results2D(keypoints=keypoints.astype(np.float32), scores=np.full((p, k), 0.9, np.float32),
                     boxes=boxes.astype(np.float32), box_scores=box_scores.astype(np.float32),
                     kept_tokens=[[] for _ in range(p)], token_grid=(1, 1), crop_affines=np.zeros((p, 2, 3)),
                     input_size=(192, 256), skeleton="coco", track_ids=np.arange(p))


def test_oks_nms_hand_computed():
    """Poses 0 and 1 differ by 1 px on every keypoint of a 100x200 box: OKS = mean exp(-1 / (2 s^2 k^2)) with
    s^2 = 20000, i.e. > 0.99 -> the lower-scoring one goes; pose 2 is 300 px away (OKS ~ 0) and stays."""
    from prunepose.detect.posenms import suppress_duplicate_poses
    from prunepose.metrics.coco_eval import COCO_SIGMAS

    base = np.stack([np.linspace(100, 200, 17), np.linspace(100, 300, 17)], axis=1)
    kpts = np.stack([base, base + [1.0, 0.0], base + [300.0, 0.0]])
    boxes = np.array([[100, 100, 200, 300]] * 2 + [[400, 100, 500, 300]], dtype=np.float64)
    res = _results(kpts, np.array([0.6, 0.8, 0.5]), boxes)
    expected_oks = np.mean(np.exp(-1.0 / (2 * 20000.0 * (2 * COCO_SIGMAS) ** 2)))
    assert expected_oks > 0.9
    out = suppress_duplicate_poses(res, COCO_SIGMAS)
    assert len(out) == 2 and out.track_ids.tolist() == [1, 2]
    np.testing.assert_array_equal(out.keypoints[0], kpts[1].astype(np.float32))
    # a threshold above the pair's OKS keeps all three
    assert len(suppress_duplicate_poses(res, COCO_SIGMAS, thr=min(0.9999, expected_oks + 1e-4))) == 3


# ---------------------------------------------------------------- tracking ids
def test_greedy_match():
    iou = np.array([[0.9, 0.6], [0.8, 0.1], [0.0, 0.2]])
    assert greedy_match(iou, 0.3) == [(0, 0)]  # row 1's best column is taken; 0.1 and 0.2 are under 0.3
    assert greedy_match(iou, 0.05) == [(0, 0), (2, 1)]


def _pose_in_box(box: np.ndarray) -> np.ndarray:
    """17 keypoints spread over a box, a fixed layout (head at the top, feet at the bottom)."""
    u = np.array([.5, .45, .55, .4, .6, .3, .7, .25, .75, .2, .8, .4, .6, .4, .6, .4, .6])
    v = np.array([.08, .06, .06, .08, .08, .25, .25, .4, .4, .55, .55, .55, .55, .75, .75, .95, .95])
    x1, y1, x2, y2 = box
    return np.stack([x1 + u * (x2 - x1), y1 + v * (y2 - y1)], axis=1)


def test_tracker_keeps_ids_through_a_crossing():
    """Two people walk towards each other, cross (boxes overlapping up to IoU ~0.5) and part. The fake detector
    returns their true boxes in a shuffled order; poses are exact. Each person must keep one id throughout."""
    from prunepose.metrics.coco_eval import COCO_SIGMAS

    frames = 41
    truth = {"A": lambda t: np.array([60 + 10 * t, 100, 140 + 10 * t, 300], float),
             "B": lambda t: np.array([460 - 10 * t, 170, 540 - 10 * t, 370], float)}
    clock = {"t": 0}
    rng = np.random.default_rng(1)

    def detect(image):
        boxes = np.stack([truth["A"](clock["t"]), truth["B"](clock["t"])])
        order = rng.permutation(2)
        return boxes[order], np.array([0.9, 0.8])[order]

    image = np.zeros((480, 640, 3), np.uint8)
    tracker = DetectionTracker(detect, det_every=5, sigmas=tuple(COCO_SIGMAS))
    seen: dict[str, set[int]] = {"A": set(), "B": set()}
    max_iou = 0.0
    for t in range(frames):
        clock["t"] = t
        pb = tracker.boxes(t, image)
        # the pose model: each box's pose is the person whose true box it overlaps most
        who = [max(truth, key=lambda n: box_iou(b[None], truth[n](t)[None])[0, 0]) for b in pb.xyxy]
        kpts = np.stack([_pose_in_box(truth[n](t)) for n in who])
        ids = tracker.update(kpts, np.full(kpts.shape[:2], 0.9))
        for n, i in zip(who, ids):
            seen[n].add(int(i))
        max_iou = max(max_iou, float(box_iou(truth["A"](t)[None], truth["B"](t)[None])[0, 0]))
        assert len(pb) == 2
    assert max_iou > 0.45  # they did overlap a lot at the crossing (80x130 of 21,600 px^2: IoU 0.48)
    assert len(seen["A"]) == 1 and len(seen["B"]) == 1 and seen["A"] != seen["B"]


def test_tracker_merges_two_tracks_on_one_person_and_drops_lost_tracks():
    from prunepose.metrics.coco_eval import COCO_SIGMAS

    box = np.array([100, 100, 200, 300], float)
    dets = {"boxes": np.stack([box, box + [40, 0, 40, 0]]), "scores": np.array([0.9, 0.5])}
    tracker = DetectionTracker(lambda im: (dets["boxes"], dets["scores"]), det_every=2, dup_iou=0.9,
                               sigmas=tuple(COCO_SIGMAS))
    image = np.zeros((400, 400, 3), np.uint8)
    pb = tracker.boxes(0, image)
    assert len(pb) == 2
    # both boxes show the same person (same pose): the younger track (id 1) is dropped
    ids = tracker.update(np.stack([_pose_in_box(box)] * 2), np.full((2, 17), 0.9))
    assert ids.tolist() == [0, 1] and [t.track_id for t in tracker.tracks] == [0]
    # the detector stops seeing anyone: the track survives max_det_misses detection frames, then goes
    dets["boxes"], dets["scores"] = np.zeros((0, 4)), np.zeros(0)
    alive = []
    for t in range(1, 12):
        pb = tracker.boxes(t, image)
        alive.append(len(pb))
        if len(pb):
            tracker.update(np.stack([_pose_in_box(box)] * len(pb)), np.full((len(pb), 17), 0.9))
    assert alive[:4] == [1, 1, 1, 1] and alive[-1] == 0  # frames 2 and 4 miss; dropped on frame 6


# ---------------------------------------------------------------- pipeline: COCO JSON, empty images, CLI
@needs_coco
@needs_detector
def test_coco_results_round_trip_through_pycocotools(tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from prunepose import PoseEstimator2D

    est = PoseEstimator2D()
    res = est(str(COCO_DIR / "000000196141.jpg"))[0]
    assert res.box_origin == "person detector" and len(res) >= 4
    records = res.to_json()
    assert {"image_id", "category_id", "bbox", "keypoints", "score"} <= set(records[0])
    assert records[0]["image_id"] == 196141  # COCO file names give the COCO image id
    path = tmp_path / "results.json"
    res.save(path)
    coco = COCO(str(COCO_DIR / "test_coco.json"))
    loaded = coco.loadRes(str(path))
    assert len(loaded.getAnnIds()) == len(res)
    ev = COCOeval(coco, loaded, "keypoints")
    ev.params.imgIds = [196141]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert 0.0 <= ev.stats[0] <= 1.0


@needs_detector
def test_no_person_is_an_empty_result():
    from prunepose import PoseEstimator2D

    est = PoseEstimator2D()
    res = est.predict_image(np.full((240, 320, 3), 127, np.uint8))
    assert len(res) == 0 and res.to_json() == [] and res.keypoints.shape == (0, 17, 2)
    assert res.plot().shape == (240, 320, 3)


@needs_detector
def test_cli_no_person_exit_0_with_note(tmp_path, capsys):
    from prunepose.cli import main

    img = tmp_path / "empty.png"
    cv2.imwrite(str(img), np.full((240, 320, 3), 127, np.uint8))
    out = tmp_path / "out"
    assert main(["predict", str(img), "--out", str(out)]) == 0
    assert json.loads((out / "predictions.json").read_text()) == []
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images_without_person"] == ["empty"]
    assert "no person" in capsys.readouterr().out


def test_whole_image_without_detector():
    from prunepose import PoseEstimator2D

    est = PoseEstimator2D(detector=None)
    res = est.predict_image(np.full((240, 320, 3), 127, np.uint8))
    assert len(res) == 1 and res.box_origin == "whole image"


def test_bad_detector_argument():
    from prunepose import PoseEstimator2D

    with pytest.raises(Exception, match="detector must be"):
        PoseEstimator2D(detector=3)
    with pytest.raises(Exception, match="det_every"):
        PoseEstimator2D(det_every=0)
    _ = Path  # (keeps the import used when shared data is absent)


@needs_coco
@needs_detector
def test_cli_csv_matches_the_json(tmp_path):
    import csv

    from prunepose.cli import main

    out = tmp_path / "out"
    assert main(["predict", str(COCO_DIR / "000000040083.jpg"), "--out", str(out), "--csv", "--no-images",
                 "--quiet", "--max-people", "1"]) == 0
    records = json.loads((out / "predictions.json").read_text())
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(records) == len(rows) == 1  # --max-people 1 (the image has 2 labelled people)
    row, rec = rows[0], records[0]
    assert int(row["image_id"]) == rec["image_id"] == 40083 and row["track_id"] == ""
    assert float(row["nose_x"]) == pytest.approx(rec["keypoints"][0], abs=0.01)
    assert float(row["right_ankle_score"]) == pytest.approx(rec["keypoints"][-1], abs=1e-3)  # JSON: 3 decimals
    x, y, w, h = rec["bbox"]
    assert float(row["box_x2"]) == pytest.approx(x + w, abs=0.01)


@needs_detector
def test_real_street_video_gives_distinct_stable_ids():
    """The bundled street clip (7-10 pedestrians): every frame's people carry distinct ids, detector boxes on
    detection frames; the people of frame 0 that are still tracked on frame 5 kept their ids (no renumbering)."""
    from prunepose import PoseEstimator2D
    from prunepose.demo import BUNDLED_VIDEO

    est = PoseEstimator2D(det_every=3)
    results = []
    for res in est.stream(BUNDLED_VIDEO, keep_images=False):
        results.append(res)
        if len(results) == 6:
            break
    assert all(r.track_ids is not None and len(set(r.track_ids.tolist())) == len(r) for r in results)
    assert len(results[0]) >= 5
    first = set(results[0].track_ids.tolist())
    later = set(results[5].track_ids.tolist())
    assert len(first & later) >= 4  # most people of frame 0 are still followed under the same id


def test_lift_takes_a_track_id(tmp_path):
    """predict JSON with two tracks over different frames: ``lift --track 1`` lifts exactly track 1's frames."""
    from prunepose.cli import main

    records = []
    for track, frames, x0 in ((0, range(0, 12), 100.0), (1, range(3, 9), 400.0)):
        for t in frames:
            kps = np.concatenate([_pose_in_box(np.array([x0 + 2 * t, 100, x0 + 2 * t + 80, 300])),
                                  np.full((17, 1), 0.9)], axis=1)
            records.append({"image_id": t, "category_id": 1, "keypoints": kps.reshape(-1).tolist(), "score": 0.9,
                            "track_id": track})
    src = tmp_path / "predictions.json"
    src.write_text(json.dumps(records))
    out = tmp_path / "lift"
    assert main(["lift", str(src), "--track", "1", "--image-size", "640", "480", "--out", str(out)]) == 0
    lifted = json.loads((out / "poses3d.json").read_text())
    assert lifted["frame_ids"] == list(range(3, 9)) and lifted["person"] == 1
    assert np.load(out / "poses3d.npy").shape == (6, 17, 3)
