"""Lifter3D: the user-facing 2D->3D API against independent references.

* real Human3.6M S9 (projected mocap through the real camera): Lifter3D must reproduce the evaluation code
  (`predict_clip` per window, and `evaluate_lifting`'s P1 on the same frames);
* windows: a short sequence equals the edge-padded clip run by hand; a long one equals its windows run by
  hand; the output does not depend on the batch size;
* the COCO -> H36M conversion on hand-computed points; the interpolation of missing joints by hand;
* every kind of bad input raises PrunePoseError with the argument named.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from prunepose.api.gaps import fill_missing
from prunepose.api.layouts import coco_scores_to_h36m, coco_to_h36m, to_h36m
from prunepose.api.lifter3d import Lifter3D, Results3D, plan_windows
from prunepose.errors import PrunePoseError
from prunepose.export.onnx import frame_tie_break
from prunepose.geometry.camera import normalize_screen
from prunepose.paths import bundled_weights, shared_data_dir
from prunepose.registry import create_model
from prunepose.skeletons import COCO17, H36M17
from prunepose.tasks.lifting import lift_clips, predict_clip

DATA = shared_data_dir()
needs_h36m = pytest.mark.skipif(DATA is None or not (DATA / "h36m" / "cameras.json").is_file(),
                                reason="shared Human3.6M data (../shared/data/h36m) not available")
W, H = 1000, 1002
#: Poses (metres, magnitude <= ~1) from two float32 runs of one lifter that differ in batch composition, window
#: batching or kernels (threads, oneDNN, CPU): rounding of ~1e-7 per op accumulated over a few transformer
#: blocks gives ~1e-6 at worst; 1e-5 m (0.01 mm) leaves margin and is still far below any error that matters.
POSE_ATOL = 1e-5


def _tiny(name: str = "hot_mixste_tiny", **overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **overrides).eval()


def _track(t: int, seed: int = 0) -> np.ndarray:
    """A smooth random 2D track (T, 17, 2) in pixels: a person drifting across a 1000 x 1002 frame."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(350, 650, size=(17, 2))
    drift = np.linspace(0, 1, t)[:, None, None] * rng.uniform(-80, 80, size=(1, 17, 2))
    return base[None] + drift + rng.normal(scale=2.0, size=(t, 17, 2))


def _by_hand(model: torch.nn.Module, px_clips: np.ndarray, flip: bool = True) -> np.ndarray:
    """predict_clip on clips (B, F, 17, 2) of pixels, normalised as in training, the lifter's tie-break rule."""
    x = torch.from_numpy(normalize_screen(px_clips.astype(np.float32), W, H).astype(np.float32))
    with frame_tie_break(model, "index"):
        pred, _ = predict_clip(model, x, flip=flip)
    return pred.numpy()


# ------------------------------------------------------------------------------ real Human3.6M


@needs_h36m
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_real_h36m_matches_the_evaluation_code() -> None:
    """S9 'Walking 1', camera 54138969, 2 full windows of the bundled model: poses == predict_clip per window,
    and P1 against the mocap == evaluate_lifting on the same frames (it builds its own clips)."""
    from prunepose.data.h36m import H36MLifting, H36MSequence, load_h36m_shared
    from prunepose.data.lifting import Seq2SeqClips
    from prunepose.tasks.lifting import evaluate_lifting

    lifter = Lifter3D()
    f = lifter.num_frames
    full = load_h36m_shared(subjects=["S9"], camera_ids=["54138969"], actions=["Walking"], warn=False)
    seq = next(s for s in full.sequences if s.sequence == "Walking 1")
    seq = H36MSequence(seq.subject, seq.sequence, seq.camera_id, seq.camera, seq.pose3d_world[: 2 * f])
    cam = seq.camera
    res = lifter(seq.pose2d_px(), image_size=(cam.width, cam.height), layout="h36m")
    assert res.poses3d.shape == (2 * f, 17, 3) and not res.filled.any()

    clips = torch.from_numpy(seq.pose2d().reshape(2, f, 17, 2))
    with frame_tie_break(lifter.model, "index"):
        ref, _ = predict_clip(lifter.model, clips, flip=True)
        gt = seq.pose3d_camera()
        gt[:, 0] = 0
        p1_mm = float(np.linalg.norm(res.poses3d - gt, axis=-1).mean() * 1000)
        test_clips = Seq2SeqClips(H36MLifting([seq], "gt"), f, train=False)
        metrics = evaluate_lifting(lifter.model, test_clips, progress=False)
    np.testing.assert_allclose(res.poses3d, ref.numpy().reshape(2 * f, 17, 3), atol=POSE_ATOL)
    assert metrics["mpjpe_mm"] == pytest.approx(p1_mm, abs=1e-3)
    # the official random tie-break: the lifter's seeded noise is predict_clip's with the same generator
    rand = Lifter3D(tie_break="random", seed=5)(seq.pose2d_px(), image_size=(cam.width, cam.height), layout="h36m")
    ref_rand, _ = predict_clip(lifter.model, clips, flip=True, generator=torch.Generator().manual_seed(5))
    np.testing.assert_allclose(rand.poses3d, ref_rand.numpy().reshape(2 * f, 17, 3), atol=POSE_ATOL)
    assert 20 < p1_mm < 400  # a trained model, not noise (the step-600 interim model scores ~176 mm on S9/S11)


# ------------------------------------------------------------------------------ windows


def test_plan_windows_cover_every_frame_once() -> None:
    for length in (1, 5, 27, 28, 54, 60, 100):
        into = np.concatenate([w.into for w in plan_windows(length, 27)])
        np.testing.assert_array_equal(np.sort(into), np.arange(length))
        for w in plan_windows(length, 27):
            assert len(w.frames) == 27 and np.array_equal(w.frames[w.take], w.into)
    last = plan_windows(60, 27)[-1]  # aligned to the end, only its new frames used
    np.testing.assert_array_equal(last.frames, np.arange(33, 60))
    np.testing.assert_array_equal(last.into, np.arange(54, 60))


def test_short_sequence_equals_padded_clip_by_hand() -> None:
    model = _tiny()
    px = _track(10)
    res = Lifter3D(model=model)(px, (W, H), layout="h36m")
    # F = 27: 17 padding frames, 8 before (copies of frame 0) and 9 after (copies of frame 9)
    padded = np.pad(px, ((8, 9), (0, 0), (0, 0)), mode="edge")
    ref = _by_hand(model, padded[None])[0, 8:18]
    np.testing.assert_allclose(res.poses3d, ref, atol=POSE_ATOL)
    np.testing.assert_allclose(res.poses3d[:, 0], 0.0)  # root-relative
    assert res.kept_frames is not None and len(res.kept_frames) == 1 and res.kept_frames[0].shape == (9,)


def test_single_frame_is_lifted() -> None:
    res = Lifter3D(model=_tiny())(_track(1), (W, H), layout="h36m")
    assert res.poses3d.shape == (1, 17, 3) and np.isfinite(res.poses3d).all()


def test_long_sequence_equals_windows_by_hand_and_ignores_batch_size() -> None:
    model = _tiny()
    px = _track(60)
    res = Lifter3D(model=model)(px, (W, H), layout="h36m")
    clips = np.stack([px[0:27], px[27:54], px[33:60]])
    ref = _by_hand(model, clips)
    np.testing.assert_allclose(res.poses3d[:54], ref[:2].reshape(54, 17, 3), atol=POSE_ATOL)
    np.testing.assert_allclose(res.poses3d[54:], ref[2, 21:], atol=POSE_ATOL)
    one_by_one = Lifter3D(model=model, batch_size=1)(px, (W, H), layout="h36m")
    np.testing.assert_allclose(one_by_one.poses3d, res.poses3d, atol=POSE_ATOL)
    np.testing.assert_array_equal(res.kept_frames[2], one_by_one.kept_frames[2])
    assert res.kept_frames[2].min() >= 33  # sequence frame indices of the last (end-aligned) window


def test_flip_off_is_the_plain_forward_pass() -> None:
    model = _tiny("mixste_tiny")
    px = _track(27)
    res = Lifter3D(model=model, flip=False)(px, (W, H), layout="h36m")
    x = torch.from_numpy(normalize_screen(px.astype(np.float32), W, H).astype(np.float32))[None]
    with torch.no_grad():
        plain = model(x).pose3d[0].numpy()
    plain[:, 0] = 0
    np.testing.assert_allclose(res.poses3d, plain, atol=POSE_ATOL)
    assert res.kept_frames is None  # unpruned model


def test_seq2frame_model_takes_each_window_centre() -> None:
    model = _tiny("mixste_tiny", token_num=9, layer_index=1, pipeline="seq2frame")
    px = _track(4)
    res = Lifter3D(model=model)(px, (W, H), layout="h36m")
    t = 2
    window = np.clip(np.arange(t - 13, t + 14), 0, 3)
    x = torch.from_numpy(normalize_screen(px[window].astype(np.float32), W, H).astype(np.float32))[None]
    with frame_tie_break(model, "index"):
        out = lift_clips(model, x, flip=True)
    np.testing.assert_allclose(res.poses3d[t], out.at_frame(13)[0].numpy(), atol=POSE_ATOL)


# ------------------------------------------------------------------------------ layouts


def _coco_points() -> np.ndarray:
    """A frontal COCO person with round numbers (x right, y down)."""
    pts = {"nose": (50, 20), "left_eye": (54, 16), "right_eye": (46, 16), "left_ear": (58, 18),
           "right_ear": (42, 18), "left_shoulder": (70, 50), "right_shoulder": (30, 50), "left_elbow": (75, 80),
           "right_elbow": (25, 80), "left_wrist": (78, 105), "right_wrist": (22, 105), "left_hip": (60, 110),
           "right_hip": (40, 110), "left_knee": (62, 150), "right_knee": (38, 150), "left_ankle": (63, 190),
           "right_ankle": (37, 190)}
    return np.array([pts[n] for n in COCO17.keypoint_names], dtype=np.float64)


def test_coco_to_h36m_on_hand_computed_points() -> None:
    coco = _coco_points()
    h36m = coco_to_h36m(coco)
    expected = {"pelvis": (50, 110), "thorax": (50, 50), "spine": (50, 80),
                "neck_nose": (50, 27.5),  # 50 + 0.75 * (20 - 50)
                "head": (50, 12)}  # eye centre (50, 16) + ((50, 16) - nose (50, 20))
    for name, xy in expected.items():
        np.testing.assert_allclose(h36m[H36M17.index(name)], xy, err_msg=name)
    for name in H36M17.keypoint_names:  # limbs: same name, same point
        if name not in expected:
            np.testing.assert_array_equal(h36m[H36M17.index(name)], coco[COCO17.index(name)], err_msg=name)


def test_coco_head_with_one_eye_and_nan_propagation() -> None:
    coco = _coco_points()
    coco[COCO17.index("right_eye")] = np.nan
    h36m = coco_to_h36m(coco)
    np.testing.assert_allclose(h36m[H36M17.index("head")], (58, 12))  # 2 * (54, 16) - (50, 20)
    coco[COCO17.index("left_hip")] = np.nan
    missing = ~np.isfinite(coco_to_h36m(coco)).all(axis=-1)
    assert {H36M17.keypoint_names[j] for j in np.flatnonzero(missing)} == {"pelvis", "spine", "left_hip"}


def test_coco_scores_take_the_weakest_source() -> None:
    s = np.linspace(0.1, 0.9, 17)
    h = coco_scores_to_h36m(s)
    assert h[H36M17.index("pelvis")] == pytest.approx(min(s[11], s[12]))
    assert h[H36M17.index("head")] == pytest.approx(min(s[0], max(s[1], s[2])))
    assert h[H36M17.index("left_wrist")] == pytest.approx(s[COCO17.index("left_wrist")])


def test_mpii_layout_uses_the_sh_mapping() -> None:
    from prunepose.data.h36m import sh16_to_h36m17

    sh = np.random.default_rng(3).uniform(0, 500, size=(2, 16, 2))
    np.testing.assert_allclose(to_h36m(sh, "mpii"), sh16_to_h36m17(sh))


def test_coco_input_is_converted_before_lifting() -> None:
    model = _tiny()
    coco = np.repeat(_coco_points()[None] * 4 + 300, 5, axis=0)
    res = Lifter3D(model=model)(coco, (W, H), layout="coco")
    np.testing.assert_allclose(res.keypoints2d, coco_to_h36m(coco), atol=1e-4)
    direct = Lifter3D(model=model)(coco_to_h36m(coco), (W, H), layout="h36m")
    np.testing.assert_allclose(res.poses3d, direct.poses3d, atol=POSE_ATOL)


# ------------------------------------------------------------------------------ missing joints


def test_interpolation_by_hand() -> None:
    x = np.zeros((6, 2, 2))
    x[:, 1, 0] = [np.nan, 2.0, np.nan, np.nan, 8.0, np.nan]
    x[:, 1, 1] = [np.nan, 1.0, np.nan, np.nan, 4.0, np.nan]
    gone = np.isnan(x).any(axis=-1)
    out = fill_missing(x, gone)
    np.testing.assert_allclose(out[:, 1, 0], [2, 2, 4, 6, 8, 8])  # nearest at the ends, linear inside
    np.testing.assert_allclose(out[:, 1, 1], [1, 1, 2, 3, 4, 4])
    np.testing.assert_array_equal(out[:, 0], 0)


def test_lifter_fills_and_reports_missing_joints() -> None:
    model = _tiny()
    px = _track(8)
    holes = px.copy()
    wrist = H36M17.index("left_wrist")
    holes[2:5, wrist] = np.nan
    holes[6, 3, 1] = np.inf
    res = Lifter3D(model=model)(holes, (W, H), layout="h36m")
    expected_filled = np.zeros((8, 17), bool)
    expected_filled[2:5, wrist] = True
    expected_filled[6, 3] = True
    np.testing.assert_array_equal(res.filled, expected_filled)
    t = np.arange(8)
    for c in range(2):
        np.testing.assert_allclose(res.keypoints2d[2:5, wrist, c],
                                   np.interp(t[2:5], [1, 5], [px[1, wrist, c], px[5, wrist, c]]), rtol=1e-6)
    np.testing.assert_allclose(res.keypoints2d[6, 3], (px[5, 3] + px[7, 3]) / 2, rtol=1e-6)
    by_hand = Lifter3D(model=model)(res.keypoints2d.astype(np.float64), (W, H), layout="h36m")
    np.testing.assert_allclose(res.poses3d, by_hand.poses3d, atol=1e-5)


def test_low_scores_count_as_missing_only_when_asked() -> None:
    model = _tiny()
    px = _track(5)
    scores = np.ones((5, 17))
    scores[1, 12] = 0.05
    assert not Lifter3D(model=model)(px, (W, H), layout="h36m", scores=scores).filled.any()
    res = Lifter3D(model=model, min_score=0.3)(px, (W, H), layout="h36m", scores=scores)
    assert res.filled.sum() == 1 and res.filled[1, 12]
    packed = np.concatenate([px, scores[..., None]], axis=-1)  # (T, J, 3) carries its scores
    np.testing.assert_array_equal(Lifter3D(model=model, min_score=0.3)(packed, (W, H), "h36m").filled, res.filled)


def test_joint_missing_in_every_frame_is_an_error() -> None:
    coco = np.repeat(_coco_points()[None], 4, axis=0)
    coco[:, COCO17.index("right_ankle")] = np.nan
    with pytest.raises(PrunePoseError, match="right_ankle.*all 4 frames"):
        Lifter3D(model=_tiny())(coco, (W, H), layout="coco")


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"keypoints2d": np.zeros((5, 16, 2))}, "layout 'coco' has 17 joints.*16.*mpii"),
    ({"keypoints2d": np.zeros((5, 18, 2)), "layout": "h36m"}, "layout 'h36m' has 17 joints"),
    ({"layout": "openpose"}, "layout must be one of"),
    ({"keypoints2d": np.zeros((17, 2))}, r"shape \(T, J, 2\).*keypoints\[None\]"),
    ({"keypoints2d": np.zeros((2, 5, 17, 2))}, r"shape \(T, J, 2\)"),
    ({"keypoints2d": np.zeros((0, 17, 2))}, "T = 0"),
    ({"keypoints2d": np.full((3, 17, 2), "a")}, "numeric array"),
    ({"image_size": (np.nan, 1000)}, "image_size must be two finite positive"),
    ({"image_size": (1000, np.inf)}, "image_size must be two finite positive"),
    ({"image_size": (0, 1000)}, "image_size must be two finite positive"),
    ({"image_size": (1000,)}, "image_size must be"),
    ({"image_size": "big"}, "image_size must be"),
    ({"scores": np.ones((3, 16))}, r"scores must have shape \(T, J\)"),
    ({"keypoints2d": np.ones((3, 17, 3)), "scores": np.ones((3, 17))}, "pass one"),
])
def test_bad_input_is_named(kwargs: dict, match: str) -> None:
    call = {"keypoints2d": _track(3), "image_size": (W, H), "layout": "coco"} | kwargs
    with pytest.raises(PrunePoseError, match=match):
        Lifter3D(model=_tiny())(**call)


def test_bad_model_arguments() -> None:
    with pytest.raises(PrunePoseError, match="needs weights"):
        Lifter3D(model="hot_mixste_243")
    with pytest.raises(PrunePoseError, match="not found"):
        Lifter3D(model="hot_mixste_243", checkpoint="/nonexistent/x.pt")
    with pytest.raises(PrunePoseError, match="not a 2D->3D lifter"):
        Lifter3D(model=torch.nn.Linear(2, 2))
    with pytest.raises(PrunePoseError, match="batch_size"):
        Lifter3D(model=_tiny(), batch_size=0)
    with pytest.raises(PrunePoseError, match="lifts 16 joints"):
        Lifter3D(model=_tiny("mixste_tiny", num_joints=16))
    with pytest.raises(PrunePoseError, match="tie_break"):
        Lifter3D(model=_tiny(), tie_break="first")


# ------------------------------------------------------------------------------ default weights, results


def test_default_weights_are_small_and_say_where_they_come_from() -> None:
    path = bundled_weights("lifter3d_default")
    assert path.stat().st_size < 2 * 1024 * 1024
    info = json.loads(path.with_suffix(".json").read_text())
    assert "non-commercial" in info["licence"] and "Human3.6M" in info["trained_on"]
    lifter = Lifter3D()
    assert lifter.config.name == info["name"] and lifter.num_frames == info["num_frames"]
    assert lifter.config.stages  # a HoT model: prunes frames


def test_weights_with_json_and_work_dir_config_load(tmp_path) -> None:
    from prunepose.weights import save_weights

    model = _tiny()
    save_weights(model, tmp_path / "w.safetensors")
    px = _track(5)
    a = Lifter3D(checkpoint=tmp_path / "w.safetensors")(px, (W, H), layout="h36m")
    b = Lifter3D(model=model)(px, (W, H), layout="h36m")
    np.testing.assert_allclose(a.poses3d, b.poses3d, atol=POSE_ATOL)
    with pytest.raises(PrunePoseError, match="describes model 'hot_mixste_tiny'"):
        Lifter3D(model="mixste_tiny", checkpoint=tmp_path / "w.safetensors")


def test_training_checkpoint_finds_its_work_dir_config(tmp_path) -> None:
    """`prunepose train` writes work_dir/config.yaml beside last.pt; a compact override must survive."""
    import yaml

    model = _tiny("mixste_tiny", dim=16, heads=2)
    torch.save({"model": model.state_dict(), "global_step": 3}, tmp_path / "last.pt")
    cfg = {"task": "lifting", "model": "mixste_tiny", "model_overrides": {"dim": 16, "heads": 2},
           "data": {"format": "h36m"}, "train": {"epochs": 1}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    px = _track(5)
    ref = Lifter3D(model=model)(px, (W, H), layout="h36m").poses3d
    from_pt = Lifter3D(checkpoint=tmp_path / "last.pt")(px, (W, H), "h36m").poses3d
    np.testing.assert_allclose(from_pt, ref, atol=POSE_ATOL)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "config.yaml").unlink()
    with pytest.raises(PrunePoseError, match="no model description"):
        Lifter3D(checkpoint=tmp_path / "last.pt")
    by_yaml = Lifter3D(model=str(tmp_path / "exp.yaml"), checkpoint=tmp_path / "last.pt")
    np.testing.assert_allclose(by_yaml(px, (W, H), "h36m").poses3d, ref, atol=POSE_ATOL)


def test_results_save_and_json(tmp_path) -> None:
    res = Lifter3D(model=_tiny())(_track(4), (W, H), layout="h36m")
    np.testing.assert_array_equal(np.load(res.save(tmp_path / "p.npy")), res.poses3d)
    data = json.loads(res.save(tmp_path / "p.json").read_text())
    np.testing.assert_allclose(data["poses3d"], res.poses3d, atol=POSE_ATOL)
    assert data["units"] == "m" and data["joint_names"][0] == "pelvis" and data["model"] == "hot_mixste_tiny"
    with pytest.raises(PrunePoseError, match="json or .npy"):
        res.save(tmp_path / "p.csv")
    assert isinstance(res, Results3D) and len(res) == 4


def test_results_animate_writes_one_video_frame_per_pose(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import cv2

    res = Lifter3D(model=_tiny())(_track(3), (W, H), layout="h36m")
    path = res.animate(tmp_path / "a.mp4", fps=10)
    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 3
