"""Multi-view PPT: equivalences with single-view PPT and the unpruned fusion baseline, ray geometry checked by
hand, token counts, view-permutation equivariance, bad input, the H36M-Toolbox loader and the task helpers."""
from __future__ import annotations

import dataclasses
import math
import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from prunepose.data.h36m_toolbox import ToolboxCamera, group_views, read_h36m_toolbox
from prunepose.errors import ConfigError, DataError
from prunepose.geometry.camera import Camera, project, world_to_camera
from prunepose.geometry.rays import pixel_rays, token_centers, token_rays
from prunepose.models.multiview_ppt import MultiViewPPT
from prunepose.models.tokenpose import TokenPose, TokenPoseConfig
from prunepose.paths import shared_data_dir
from prunepose.registry import create_model, get_config
from prunepose.tasks.multiview import triangulate_predictions

J = 17


def _rot(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return {"x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def _geometry(b: int, v: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct plausible cameras per view: crop affine (scale ~8 px per crop px), K, rotation."""
    g = torch.Generator().manual_seed(seed)
    crop = torch.zeros(b, v, 2, 3, dtype=torch.float64)
    crop[..., 0, 0] = crop[..., 1, 1] = 6 + 4 * torch.rand(b, v, generator=g, dtype=torch.float64)
    crop[..., :, 2] = 200 + 400 * torch.rand(b, v, 2, generator=g, dtype=torch.float64)
    k = torch.tensor([[1145.0, 0, 512.5], [0, 1143.8, 515.5], [0, 0, 1]], dtype=torch.float64).expand(b, v, 3, 3)
    rots = [torch.from_numpy(_rot("z", 90 * i + 10) @ _rot("x", -100)) for i in range(v)]
    rot = torch.stack(rots).expand(b, v, 3, 3)
    return crop, k.clone(), rot.clone()


def _inputs(name: str, b: int = 2, v: int = 3, seed: int = 0):
    cfg = get_config(name)
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, v, 3, cfg.input_size[1], cfg.input_size[0], generator=g)
    return (images, *_geometry(b, v, seed))


def _model(name: str, seed: int = 0, **overrides) -> MultiViewPPT:
    torch.manual_seed(seed)
    model = create_model(name, **overrides).eval()
    if model.ray_embed is not None:  # make the 3D PE matter, so tests that ignore it would fail
        torch.nn.init.normal_(model.ray_embed.weight, std=1.0)
    return model


# ------------------------------------------------------------------------------------------------- model


def test_no_fusion_equals_single_view_ppt_per_view():
    mv = _model("mvppt_tiny_nofusion")
    fields = {f.name for f in dataclasses.fields(TokenPoseConfig)}
    single_cfg = TokenPoseConfig(**{k: v for k, v in dataclasses.asdict(mv.config).items() if k in fields})
    single = TokenPose(single_cfg).eval()
    single.load_state_dict(mv.ppt.state_dict())
    images, crop, k, rot = _inputs("mvppt_tiny_nofusion", b=2, v=3)
    with torch.no_grad():
        out = mv(images, crop, k, rot)
        for view in range(3):
            ref = single(images[:, view])
            torch.testing.assert_close(out.heatmaps[:, view], ref.heatmaps, rtol=1e-5, atol=1e-6)
            for stage, kept in enumerate(ref.kept):
                assert torch.equal(out.kept[stage][:, view], kept)
    assert out.num_fused_tokens == 0


def test_keep_ratio_one_equals_unpruned_fusion_baseline():
    pruned = _model("mvppt_tiny")
    baseline = create_model("mvtokenpose_tiny_fusion").eval()
    baseline.load_state_dict(pruned.state_dict())
    args = _inputs("mvppt_tiny", b=2, v=4)
    with torch.no_grad():
        ref = baseline(*args)
        differs = pruned(*args)  # keep 0.7: a different computation (guards against a vacuous equality)
        pruned.keep_ratio = 1.0
        same = pruned(*args)
    torch.testing.assert_close(same.heatmaps, ref.heatmaps, rtol=1e-5, atol=1e-6)
    assert same.num_fused_tokens == ref.num_fused_tokens == 4 * (J + 64)
    assert not torch.allclose(differs.heatmaps, ref.heatmaps, atol=1e-4)


@pytest.mark.parametrize("views", [2, 3, 5])
def test_fused_token_count_is_views_times_keypoints_plus_kept(views):
    model = _model("mvppt_tiny")
    with torch.no_grad():
        out = model(*_inputs("mvppt_tiny", b=1, v=views))
    # 64 tokens; keep ceil(0.7 * 64) = 45 at layer 1, then ceil(0.7 * 45) = 32 at layer 3
    assert [k.shape for k in out.kept] == [(1, views, 45), (1, views, 32)]
    assert out.num_fused_tokens == views * (J + 32)
    assert out.heatmaps.shape == (1, views, J, 16, 16)


def test_view_permutation_permutes_outputs():
    model = _model("mvppt_tiny")
    images, crop, k, rot = _inputs("mvppt_tiny", b=2, v=4, seed=3)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        out = model(images, crop, k, rot)
        permuted = model(images[:, perm], crop[:, perm], k[:, perm], rot[:, perm])
        cameras_not_permuted = model(images[:, perm], crop, k, rot)
    torch.testing.assert_close(permuted.heatmaps, out.heatmaps[:, perm], rtol=1e-4, atol=1e-5)
    for a, b in zip(permuted.kept, out.kept):
        assert torch.equal(a, b[:, perm])
    # the 3D PE travels with its view: swapping images but not cameras changes the answer
    assert not torch.allclose(cameras_not_permuted.heatmaps, out.heatmaps[:, perm], atol=1e-4)


def test_paper_sized_configs_build_with_expected_token_counts():
    cfg = get_config("mvppt_s")
    assert (cfg.input_size, cfg.patch_size, cfg.prune_layers, cfg.fusion_layers) == ((256, 256), (4, 4), (3, 6, 9), 2)
    model = MultiViewPPT(cfg)
    assert model.ppt.num_tokens == 256 and model.split == 10
    # PPT-S + the ray embedding Linear(3, dim) is the only added parameter (3 * 192 + 192)
    nofusion = create_model("mvppt_s_nofusion")
    assert sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in nofusion.parameters()) == 3 * 192 + 192


# ------------------------------------------------------------------------------------------------- rays


def test_ray_through_principal_point_is_the_optical_axis():
    R = _rot("x", 90)  # world-to-camera; its third row is the optical axis in the world frame
    assert np.allclose(R[2], [0, 1, 0])
    k = torch.tensor([[1000.0, 0, 500.0], [0, 900.0, 400.0], [0, 0, 1]], dtype=torch.float64)
    # token (0, 0) of an 8x8 grid on a 64x64 crop is centred at crop px (3.5, 3.5); map it onto (cx, cy)
    crop = torch.tensor([[2.0, 0, 500.0 - 7.0], [0, 2.0, 400.0 - 7.0]], dtype=torch.float64)
    rays = token_rays((8, 8), (64, 64), crop, k, torch.from_numpy(R))
    assert torch.allclose(token_centers((8, 8), (64, 64))[0], torch.tensor([3.5, 3.5]))
    torch.testing.assert_close(rays[0], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    # by hand: pixel (cx + fx, cy) looks along camera (1, 0, 1)/sqrt(2), i.e. world R^T (1, 0, 1)/sqrt(2)
    # = (1, 1, 0)/sqrt(2); crop px x = (1500 - 493) / 2 maps to image px 1500 = cx + fx
    px = torch.tensor([[(500.0 + 1000.0 - 500.0 + 7.0) / 2, 3.5]], dtype=torch.float64)
    ray = pixel_rays(px, crop, k, torch.from_numpy(R))
    torch.testing.assert_close(ray[0], torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64) / math.sqrt(2))
    assert torch.allclose(rays.norm(dim=-1), torch.ones(64, dtype=torch.float64))


def test_ray_geometry_rejects_bad_cameras():
    crop = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=torch.float64)
    k = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ConfigError, match="non-finite"):
        token_rays((2, 2), (8, 8), crop, k * float("nan"), torch.eye(3, dtype=torch.float64))
    with pytest.raises(ConfigError, match="singular"):
        token_rays((2, 2), (8, 8), crop * 0, k, torch.eye(3, dtype=torch.float64))
    with pytest.raises(ConfigError, match="focal"):
        token_rays((2, 2), (8, 8), crop, -k, torch.eye(3, dtype=torch.float64))


# ------------------------------------------------------------------------------------------------- bad input


def test_bad_view_input_is_a_clear_error():
    model = _model("mvppt_tiny")
    images, crop, k, rot = _inputs("mvppt_tiny", b=1, v=2)
    with pytest.raises(ConfigError, match="view 1 has shape"):
        model([images[:, 0], images[:, 1, :, :32]], crop, k, rot)
    with pytest.raises(ConfigError, match="at least 2 views"):
        model(images[:, :1], crop[:, :1], k[:, :1], rot[:, :1])
    with pytest.raises(ConfigError, match="3D positional encoding"):
        model(images)
    with pytest.raises(ConfigError, match="rotation must have shape"):
        model(images, crop, k, rot[:, :1])
    with pytest.raises(ConfigError, match="built for 64x64"):
        model(images[..., :48], crop, k, rot)
    with pytest.raises(ConfigError, match="prune_layers"):
        create_model("mvppt_tiny", prune_layers=(1, 4))


def _toy_cameras(centers: list[list[float]]) -> list[Camera]:
    """Cameras at ``centers`` (mm) all looking at the origin, no distortion."""
    cams = []
    for i, c in enumerate(np.asarray(centers, dtype=float)):
        z = -c / np.linalg.norm(c)
        x = np.cross(z, [0.0, 0.0, 1.0])
        x = x / np.linalg.norm(x) if np.linalg.norm(x) > 1e-9 else np.array([1.0, 0, 0])
        y = np.cross(z, x)
        cams.append(Camera(R_world_to_cam=np.stack([x, y, z]), center_world_mm=c, f=[1000.0, 1000.0],
                           c=[500.0, 500.0], k=[0, 0, 0], p=[0, 0], width=1000, height=1000, name=f"cam{i}"))
    return cams


def _toy_prediction(cams: list[Camera], scores: np.ndarray) -> tuple[SimpleNamespace, dict[str, np.ndarray]]:
    pose = np.random.default_rng(0).normal(0, 300, (J, 3))
    pts = np.stack([project(world_to_camera(pose, c), c) for c in cams])
    dataset = SimpleNamespace(subject_index=np.array([0]), cameras_of=lambda i: cams)
    pred = {"pred_2d": pts[None], "scores": scores[None], "joints_3d": pose[None], "index": np.array([0])}
    return dataset, pred


def test_triangulation_of_predictions_recovers_the_pose_and_warns_on_too_few_views():
    cams = _toy_cameras([[4000, 0, 1000], [0, 4000, 1000], [-4000, 0, 1000], [0, -4000, 1000]])
    dataset, pred = _toy_prediction(cams, np.ones((4, J)))
    np.testing.assert_allclose(triangulate_predictions(dataset, pred)[0], pred["joints_3d"][0], atol=1e-6)
    scores = np.ones((4, J))
    scores[1:, :3] = 0.0  # joints 0-2: only one confident view left
    dataset, pred = _toy_prediction(cams, scores)
    with pytest.warns(RuntimeWarning, match="fewer than two usable views"):
        world = triangulate_predictions(dataset, pred)
    assert np.isnan(world[0, :3]).all() and np.isfinite(world[0, 3:]).all()


def test_degenerate_camera_set_gives_nan_with_a_warning_not_silently():
    cams = _toy_cameras([[4000, 0, 1000]] * 3)  # one position: no baseline
    dataset, pred = _toy_prediction(cams, np.ones((3, J)))
    with pytest.warns(RuntimeWarning, match="triangulation failed"):
        world = triangulate_predictions(dataset, pred)
    assert np.isnan(world).all()


# ------------------------------------------------------------------------------------------------- loader


def _toolbox_record(subject, action, subaction, image_id, cam_id, R, T, pose_world):
    x_cam = (pose_world - T) @ R.T  # Toolbox convention: x_cam = R (X - T)
    fx, fy, cx, cy = 1100.0 + cam_id, 1090.0, 500.0, 505.0
    uv = np.stack([fx * x_cam[:, 0] / x_cam[:, 2] + cx, fy * x_cam[:, 1] / x_cam[:, 2] + cy], -1)
    return {
        "image": f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{cam_id + 1:02d}/x_{image_id:06d}.jpg",
        "joints_2d": uv, "joints_3d": x_cam, "joints_3d_camera": x_cam, "joints_vis": np.ones((J, 3)),
        "center": (500.0, 500.0), "scale": (2.0, 2.0), "video_id": 0, "image_id": image_id, "subject": subject,
        "action": action, "subaction": subaction, "camera_id": cam_id, "source": "h36m",
        "camera": {"R": R, "T": T.reshape(3, 1), "fx": np.array([fx]), "fy": np.array([fy]), "cx": np.array([cx]),
                   "cy": np.array([cy]), "k": np.zeros((3, 1)), "p": np.zeros((2, 1))},
    }


def test_toolbox_loader_groups_views_and_recovers_world_pose(tmp_path):
    rng = np.random.default_rng(1)
    cams = [(_rot("z", 90 * c) @ _rot("x", -90), np.array([4000.0 * math.sin(math.radians(90 * c)),
                                                           -4000.0 * math.cos(math.radians(90 * c)), 1500.0]))
            for c in range(4)]
    poses = {i: rng.normal(0, 300, (J, 3)) + [0, 0, 1000] for i in (1, 2, 3)}
    records = [_toolbox_record(11, 2, 1, i, c, *cams[c], poses[i]) for i in (1, 2) for c in (3, 1, 0, 2)]
    records += [_toolbox_record(11, 2, 1, 3, c, *cams[c], poses[3]) for c in (0, 1, 2)]  # camera 3 missing
    records += [_toolbox_record(9, 5, 2, 1, c, *cams[c], poses[1]) for c in range(4)]  # damaged S9 Greeting-2
    path = tmp_path / "h36m_validation.pkl"
    path.write_bytes(pickle.dumps(records))

    with pytest.raises(DataError, match="allow_pickle"):
        read_h36m_toolbox(path)
    with pytest.warns(UserWarning, match="unpickling"):
        recs = read_h36m_toolbox(path, allow_pickle=True)
    with pytest.warns(UserWarning, match="1 of 3 instants"):
        groups = group_views(recs)
    assert [g.name for g in groups] == ["s_11_act_02_subact_01_imgid_000001", "s_11_act_02_subact_01_imgid_000002"]
    for g, i in zip(groups, (1, 2)):
        assert [r.camera_id for r in g.records] == [0, 1, 2, 3]
        np.testing.assert_allclose(g.joints_world(), poses[i], atol=1e-9)
        for r in g.records:  # the Toolbox camera through prunepose.geometry reproduces the stored 2D
            cam = r.camera.to_camera()
            np.testing.assert_allclose(project(world_to_camera(r.joints_world(), cam), cam), r.joints_2d, atol=1e-9)
        np.testing.assert_allclose(g.records[0].center_scale_px()[1], [400.0, 400.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(group_views(recs, keep_damaged=True)) == 3

    bad = [dict(records[0], camera={k: v for k, v in records[0]["camera"].items() if k != "fx"})]
    path.write_bytes(pickle.dumps(bad))
    with pytest.warns(UserWarning), pytest.raises(DataError, match=r"record 0: field 'camera' lacks \['fx'\]"):
        read_h36m_toolbox(path, allow_pickle=True)


@pytest.mark.skipif(shared_data_dir() is None, reason="shared data folder not available")
def test_toolbox_camera_convention_matches_shared_calibration():
    """mmpose's cameras.pkl stores R camera-to-world and T in metres (cameras.h5 layout); in the Toolbox
    convention (R world-to-camera, T in mm) it must give the calibration of the shared cameras.json."""
    from prunepose.geometry.camera import load_cameras

    base = shared_data_dir()
    pkl = base / "mmpose-testdata" / "h36m" / "cameras.pkl"
    if not pkl.is_file():
        pytest.skip("mmpose-testdata/h36m/cameras.pkl not available")
    raw = pickle.loads(pkl.read_bytes())[("S1", "54138969")]  # trusted project fixture
    f, c = raw["f"].ravel(), raw["c"].ravel()
    tb = ToolboxCamera.from_dict({"R": raw["R"].T, "T": raw["T"] * 1000.0, "fx": f[0], "fy": f[1], "cx": c[0],
                                  "cy": c[1], "k": raw["k"], "p": raw["p"]}, "cameras.pkl")
    ref = load_cameras(base / "h36m" / "cameras.json")["S1"]["54138969"]
    cam = tb.to_camera(1000, 1002)
    pts = np.array([[0.0, 0.0, 900.0], [300.0, -200.0, 1700.0]])
    np.testing.assert_allclose(project(world_to_camera(pts, cam), cam), project(world_to_camera(pts, ref), ref),
                               atol=1e-6)


@pytest.mark.skipif(shared_data_dir() is None, reason="shared data folder not available")
def test_synthetic_set_rejects_a_camera_behind_the_subject():
    from prunepose.data.multiview_synthetic import SyntheticConfig, SyntheticMultiViewH36M

    ds = SyntheticMultiViewH36M("test", SyntheticConfig(), stride=5000, max_samples=2)
    sample = ds[0]
    assert sample["images"].shape == (4, 3, 64, 64) and torch.isfinite(sample["heatmaps"]).all()
    # the crops' ground-truth 2D (real cameras, with distortion) triangulates back to the real mocap
    pred = {"pred_2d": sample["joints_2d"].numpy()[None], "scores": np.ones((1, 4, J)),
            "joints_3d": sample["joints_3d"].numpy()[None], "index": np.array([0])}
    np.testing.assert_allclose(triangulate_predictions(ds, pred)[0], pred["joints_3d"][0], atol=1e-6)
    subject = int(ds.subject_index[0])
    cam = ds.cameras[subject][1]  # turned 180 degrees about its x axis: the subject is now behind it
    ds.cameras[subject][1] = dataclasses.replace(cam, R_world_to_cam=np.diag([1.0, -1.0, -1.0]) @ cam.R_world_to_cam)
    with pytest.raises(DataError, match="behind"):
        ds[0]
