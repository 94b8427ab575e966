"""Human3.6M lifting data: name normalisation, SH joint mapping, the VideoPose3D and MotionBERT readers on
tiny files written here, clip datasets (chunking, padding, flip, determinism) and the real shared data."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from prunepose.data.h36m import (
    JOINTS_LEFT,
    JOINTS_RIGHT,
    H36MLifting,
    H36MSequence,
    load_h36m_shared,
    load_h36m_videopose3d,
    normalize_action,
    read_videopose3d_3d,
    sh16_to_h36m17,
)
from prunepose.data.lifting import Seq2FrameClips, Seq2SeqClips, flip_poses, seq2seq_starts
from prunepose.data.motionbert import read_motionbert_h36m
from prunepose.errors import DataError
from prunepose.geometry import Camera, world_to_camera
from prunepose.paths import shared_data_dir

DATA = shared_data_dir()
needs_h36m = pytest.mark.skipif(DATA is None or not (DATA / "h36m" / "cameras.json").is_file(),
                                reason="shared Human3.6M data (../shared/data/h36m) not available")
SYMMETRY = [list(JOINTS_LEFT), list(JOINTS_RIGHT)]


def _camera(name: str = "54138969") -> Camera:
    return Camera(R_world_to_cam=np.diag([1.0, -1.0, -1.0]), center_world_mm=[0.0, 0.0, 5000.0], f=[1000.0, 1000.0],
                  c=[500.0, 500.0], k=[0.0, 0.0, 0.0], p=[0.0, 0.0], width=1000, height=1000, name=name)


def _sequence(length: int, seed: int = 0) -> H36MSequence:
    world = np.random.default_rng(seed).normal(scale=0.3, size=(length, 17, 3)).astype(np.float32)
    world[:, :, 0] += np.arange(length, dtype=np.float32)[:, None] * 0.01  # frame t is recognisable
    return H36MSequence("S9", "Walking 1", "54138969", _camera(), world)


# ------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("raw,canonical", [
    ("Walking 1", "Walking"), ("Walking_1", "Walking"), ("TakingPhoto 1", "Photo"), ("Photo", "Photo"),
    ("WalkingDog", "WalkDog"), ("WalkDog 1", "WalkDog"), ("WalkTogether", "WalkTogether"),
    ("SittingDown 2", "SittingDown"), ("Sitting_1", "Sitting"), ("MyDance 3", "MyDance"),
])
def test_normalize_action(raw: str, canonical: str) -> None:
    assert normalize_action(raw) == canonical


def test_sh_mapping_direct_and_synthesised_joints() -> None:
    sh = np.arange(32, dtype=np.float64).reshape(16, 2)
    out = sh16_to_h36m17(sh)
    assert out.shape == (17, 2)
    np.testing.assert_array_equal(out[0], sh[6])  # pelvis <- SH "Hip"
    np.testing.assert_array_equal(out[3], sh[0])  # right ankle <- SH "RFoot"
    np.testing.assert_array_equal(out[8], sh[8])  # thorax <- SH "Thorax" (MPII upper neck)
    np.testing.assert_array_equal(out[16], sh[10])  # right wrist
    np.testing.assert_allclose(out[7], (sh[6] + sh[8]) / 2)  # spine: pelvis-thorax midpoint
    np.testing.assert_allclose(out[9], sh[8] + 0.25 * (sh[9] - sh[8]))
    np.testing.assert_allclose(out[10], sh[8] + 0.6 * (sh[9] - sh[8]))


# ------------------------------------------------------------------------------------ VideoPose3D


def _write_videopose3d(tmp_path) -> dict[str, object]:
    rng = np.random.default_rng(0)
    poses = {"S9": {"Walking 1": rng.normal(size=(20, 32, 3)).astype(np.float32),
                    "Eating": rng.normal(size=(15, 32, 3)).astype(np.float32)}}
    kp2d = {"S9": {"Walking 1": [rng.normal(size=(22, 17, 2)).astype(np.float32) for _ in range(4)],
                   "Posing": [rng.normal(size=(9, 17, 2)).astype(np.float32) for _ in range(4)]}}
    meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": SYMMETRY}
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=poses)
    np.savez(tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz", positions_2d=kp2d, metadata=meta)
    cam = {"R_world_to_cam": np.eye(3).tolist(), "cam_center_world_mm": [0, 0, -5000], "f": [1000, 1000],
           "c": [500, 500], "k_radial": [0, 0, 0], "p_tangential": [0, 0], "width": 1000, "height": 1002}
    (tmp_path / "cameras.json").write_text(json.dumps({"S9": {c: cam for c in
                                                               ("54138969", "55011271", "58860488", "60457274")}}))
    return {"poses": poses, "kp2d": kp2d}


def test_videopose3d_reader_on_synthetic_files(tmp_path) -> None:
    raw = _write_videopose3d(tmp_path)
    poses = read_videopose3d_3d(tmp_path / "data_3d_h36m.npz")
    kept17 = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
    np.testing.assert_array_equal(poses["S9"]["Eating"], raw["poses"]["S9"]["Eating"][:, kept17])
    with pytest.warns(UserWarning, match="missing"):
        data = load_h36m_videopose3d(tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz",
                                     cameras=tmp_path / "cameras.json", subjects=["S9"])
    assert data.keypoints == "data_2d_h36m_cpn_ft_h36m_dbb"
    assert len(data.sequences) == 4  # Walking 1 x 4 cameras
    assert set(data.missing) == {"S9/Eating (no 2D keypoints)", "S9/Posing (3D mocap absent)"}
    seq = data.sequences[1]
    assert seq.camera_id == "55011271" and seq.action == "Walking"
    np.testing.assert_array_equal(seq.pose2d_px(), raw["kp2d"]["S9"]["Walking 1"][1][:20])  # truncated to mocap
    pos = seq.pose3d_camera()
    cam = world_to_camera(poses["S9"]["Walking 1"], seq.camera, units="m")
    np.testing.assert_allclose(pos[:, 0], cam[:, 0], atol=1e-5)  # root keeps its camera-frame position
    np.testing.assert_allclose(pos[:, 1:], cam[:, 1:] - cam[:, :1], atol=1e-5)  # the rest root-relative


def test_videopose3d_reader_refuses_code_in_pickles(tmp_path) -> None:
    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("executed",))

    np.savez(tmp_path / "evil.npz", positions_3d=np.array([Evil()], dtype=object))
    with pytest.raises(DataError, match="could not be read safely"):
        read_videopose3d_3d(tmp_path / "evil.npz")


def test_videopose3d_2d_needs_h36m_symmetry(tmp_path) -> None:
    _write_videopose3d(tmp_path)
    np.savez(tmp_path / "bad2d.npz", positions_2d={}, metadata={"keypoints_symmetry": [[1], [2]]})
    with pytest.raises(DataError, match="keypoints_symmetry"):
        load_h36m_videopose3d(tmp_path / "data_3d_h36m.npz", tmp_path / "bad2d.npz", cameras=tmp_path / "cameras.json",
                              subjects=["S9"], warn=False)


# ------------------------------------------------------------------------------------ clip datasets


def test_seq2seq_starts_centre_the_padding() -> None:
    np.testing.assert_array_equal(seq2seq_starts(243, 243), [0])
    np.testing.assert_array_equal(seq2seq_starts(10, 4), [-1, 3, 7])  # 3 chunks, 2 padded frames split
    np.testing.assert_array_equal(seq2seq_starts(3, 7), [-2])  # shorter than a chunk


def test_seq2seq_clips_edge_pad_and_cover_every_frame() -> None:
    seq = _sequence(10)
    ds = Seq2SeqClips(H36MLifting([seq], keypoints="gt"), num_frames=4, train=False)
    assert len(ds) == 3
    first = ds[0]
    assert first["pose2d"].shape == (4, 17, 2) and first["pose3d"].shape == (4, 17, 3)
    assert first["valid"].tolist() == [False, True, True, True]
    torch.testing.assert_close(first["pose3d"][0], first["pose3d"][1])  # frame -1 replicates frame 0
    torch.testing.assert_close(first["pose3d"][1:], torch.from_numpy(seq.pose3d_camera([0, 1, 2])))
    last = ds[2]
    assert last["valid"].tolist() == [True, True, True, False]
    covered = sorted(int(ds[i]["meta"]["start"]) + k for i in range(3) for k in range(4) if ds[i]["valid"][k])
    assert covered == list(range(10))
    assert first["meta"]["action"] == "Walking" and first["meta"]["camera"] == "54138969"


def test_seq2frame_clips_centre_each_frame() -> None:
    seq = _sequence(6)
    ds = Seq2FrameClips(H36MLifting([seq], keypoints="gt"), num_frames=5, train=False, with_confidence=True)
    assert len(ds) == 6
    sample = ds[0]
    assert sample["meta"]["center"] == 2 and sample["pose2d"].shape == (5, 17, 3)
    torch.testing.assert_close(sample["pose2d"][..., 2], torch.ones(5, 17))
    torch.testing.assert_close(sample["pose3d"][2], torch.from_numpy(seq.pose3d_camera([0])[0]))
    assert sample["valid"].tolist() == [False, False, True, True, True]
    torch.testing.assert_close(ds[5]["pose3d"][2], torch.from_numpy(seq.pose3d_camera([5])[0]))


def test_flip_negates_x_and_swaps_sides() -> None:
    poses = np.random.default_rng(0).normal(size=(3, 17, 3))
    flipped = flip_poses(poses)
    np.testing.assert_allclose(flipped[:, 4, 0], -poses[:, 1, 0])  # left hip <- mirrored right hip
    np.testing.assert_allclose(flipped[:, 0, 1:], poses[:, 0, 1:])
    np.testing.assert_allclose(flip_poses(flipped), poses)  # an involution
    t = torch.from_numpy(poses)
    torch.testing.assert_close(flip_poses(t), torch.from_numpy(flipped))


def test_flip_augmentation_is_deterministic_per_seed_epoch_index() -> None:
    data = H36MLifting([_sequence(40, s) for s in range(3)], keypoints="gt")
    a = Seq2SeqClips(data, num_frames=8, train=True, seed=5)
    b = Seq2SeqClips(data, num_frames=8, train=True, seed=5)
    flips = [a[i]["meta"]["flipped"] for i in range(len(a))]
    assert flips == [b[i]["meta"]["flipped"] for i in range(len(b))]
    assert 0 < sum(flips) < len(flips)
    seen = {tuple(flips)}
    for epoch in (1, 2, 3):
        a.set_epoch(epoch)
        seen.add(tuple(a[i]["meta"]["flipped"] for i in range(len(a))))
    assert len(seen) > 1
    i = flips.index(True)
    plain = Seq2SeqClips(data, num_frames=8, train=False)[i]
    torch.testing.assert_close(a.__class__(data, num_frames=8, train=True, seed=5)[i]["pose3d"],
                               flip_poses(plain["pose3d"]))


# ----------------------------------------------------------------------------------------- MotionBERT


def _motionbert_split(n: int) -> dict[str, object]:
    rng = np.random.default_rng(n)
    return {"joint_2d": rng.uniform(0, 1000, size=(n, 17, 2)), "confidence": rng.uniform(size=(n, 17, 1)),
            "joint3d_image": rng.normal(size=(n, 17, 3)),
            "camera_name": np.array(["54138969"] * 2 + ["55011271"] * (n - 2)),
            "source": np.array(["s_09_act_02_subact_01_ca_01"] * 2 + ["s_09_act_02_subact_01_ca_02"] * (n - 2)),
            "action": np.array(["Directions"] * n), "2.5d_factor": np.ones(n)}


def test_motionbert_pickle_is_opt_in(tmp_path) -> None:
    path = tmp_path / "h36m_sh_conf_cam_source_final.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"train": _motionbert_split(5), "test": _motionbert_split(4)}, fh)
    with pytest.raises(DataError, match="allow_pickle=True"):
        read_motionbert_h36m(path)
    with pytest.warns(UserWarning, match="arbitrary code"):
        splits = read_motionbert_h36m(path, allow_pickle=True)
    test = splits["test"]
    assert test.num_frames == 4
    assert [(s, (sl.start, sl.stop)) for s, sl in test.videos()] == [
        ("s_09_act_02_subact_01_ca_01", (0, 2)), ("s_09_act_02_subact_01_ca_02", (2, 4))]
    inp = test.model_input()
    raw = test.arrays["joint_2d"]
    np.testing.assert_allclose(inp[0, :, :2], raw[0] / 1000 * 2 - [1, 1.002], rtol=1e-6)  # 1000 x 1002 camera
    np.testing.assert_allclose(inp[3, :, :2], raw[3] / 1000 * 2 - [1, 1.0], rtol=1e-6)
    np.testing.assert_allclose(inp[..., 2], test.arrays["confidence"][..., 0], rtol=1e-6)


def test_motionbert_pickle_layout_is_checked(tmp_path) -> None:
    split = _motionbert_split(3)
    del split["source"]
    path = tmp_path / "bad.pkl"
    with open(path, "wb") as fh:
        pickle.dump({"train": split, "test": _motionbert_split(3)}, fh)
    with pytest.warns(UserWarning), pytest.raises(DataError, match="'train' lacks \\['source'\\]"):
        read_motionbert_h36m(path, allow_pickle=True)


# --------------------------------------------------------------------------------------- real data


@needs_h36m
def test_shared_h36m_reports_missing_and_maps_sh() -> None:
    with pytest.warns(UserWarning, match="S9/Discussion 1"):
        sh = load_h36m_shared(subjects=["S9", "S11"], keypoints="sh", actions=["Directions", "Discussion"])
    assert "S11/Directions camera 54138969 (no SH detections)" in sh.missing
    assert "S9/Discussion 1 (3D mocap absent)" in sh.missing
    assert sh.actions == ["Directions", "Discussion"]
    seq = sh.sequences[0]
    assert seq.keypoints_px is not None and seq.keypoints_px.shape == (seq.num_frames, 17, 2)
    gt = load_h36m_shared(subjects=["S9"], keypoints="gt", actions=["Walking"], camera_ids=["54138969"], warn=False)
    assert {s.sequence for s in gt.sequences} == {"Walking", "Walking 1"}
    pose = gt.sequences[0].pose3d_camera([0])[0]
    assert 3.0 < pose[0, 2] < 7.0  # the subject stands a few metres in front of the camera
    assert np.all(np.abs(pose[1:]) < 1.0)  # the other joints are root-relative, within a metre


@needs_h36m
def test_shared_h36m_training_subjects_have_aligned_sh_detections() -> None:
    """The training subjects' SH file: frame-aligned with the mocap, so the detections land near the
    projection of the 3D through the real camera (the README measured 8-10 px medians; a one-frame shift of
    a walking subject or a wrong camera would be tens of pixels)."""
    sh = load_h36m_shared(subjects=["S1"], keypoints="sh", actions=["Walking"], camera_ids=["54138969"],
                          warn=False)
    assert sh.sequences, "S1 Walking must have SH detections"
    for seq in sh.sequences:
        gt_seq = type(seq)(seq.subject, seq.sequence, seq.camera_id, seq.camera, seq.pose3d_world, None)
        err = np.linalg.norm(seq.pose2d_px() - gt_seq.pose2d_px(), axis=-1)
        assert seq.keypoints_px.shape == (seq.num_frames, 17, 2)
        assert 2.0 < float(np.median(err)) < 20.0


def test_shared_h36m_missing_sh_file_names_it(tmp_path: Path) -> None:
    (tmp_path / "cameras.json").write_text(json.dumps({}))
    np.savez(tmp_path / "h36m_positions3d_17j_world_m.npz", **{"S1/Walking": np.zeros((2, 17, 3), np.float32)})
    with pytest.raises(DataError, match="h36m_sh2d_16j_px_S1_S5_S6_S7_S8.npz"):
        load_h36m_shared(tmp_path, subjects=["S1"], keypoints="sh")


def test_training_mixes_detections_with_projected_ground_truth() -> None:
    """``gt2d_prob`` swaps a training sample's detections for the projection of its mocap (+ noise); the flip
    decision stays the sample's first random draw, so adding the mix does not change which clips flip."""
    base = _sequence(40, 3)
    offset = np.float32(50.0)  # detections 50 px right of the projection: easy to tell apart
    seq = H36MSequence(base.subject, base.sequence, base.camera_id, base.camera, base.pose3d_world,
                       base.projected_px() + np.array([offset, 0.0], np.float32))
    data = H36MLifting([seq], keypoints="sh")
    shift = 2 * offset / seq.camera.width  # 50 px in normalised screen units
    det_only = Seq2SeqClips(data, num_frames=8, train=True, seed=5)
    gt_only = Seq2SeqClips(data, num_frames=8, train=True, seed=5, gt2d_prob=1.0)
    half = Seq2SeqClips(data, num_frames=8, train=True, seed=5, gt2d_prob=0.5, gt2d_noise_px=1.0)
    picks = []
    for i in range(len(det_only)):
        a, b, c = det_only[i], gt_only[i], half[i]
        assert a["meta"]["flipped"] == b["meta"]["flipped"] == c["meta"]["flipped"]
        sign = -1.0 if a["meta"]["flipped"] else 1.0  # mirroring negates x
        torch.testing.assert_close(a["pose2d"][..., 0] - b["pose2d"][..., 0],
                                   torch.full_like(a["pose2d"][..., 0], sign * float(shift)), atol=1e-5, rtol=0)
        torch.testing.assert_close(a["pose2d"][..., 1], b["pose2d"][..., 1], atol=1e-6, rtol=0)
        dist_gt = float((c["pose2d"] - b["pose2d"]).abs().max())
        picks.append(dist_gt < float(shift) / 2)  # 1 px noise (sd) stays far below the 50 px offset
    assert any(picks) and not all(picks)
    gt_seq_only = Seq2SeqClips(H36MLifting([base], keypoints="gt"), num_frames=8, train=True, seed=5, gt2d_prob=1.0)
    torch.testing.assert_close(gt_seq_only[0]["pose2d"], Seq2SeqClips(H36MLifting([base], keypoints="gt"),
                               num_frames=8, train=True, seed=5)[0]["pose2d"])  # no detections: nothing to swap
    with pytest.raises(Exception, match="gt2d_prob"):
        Seq2SeqClips(data, num_frames=8, train=True, gt2d_prob=1.5)
