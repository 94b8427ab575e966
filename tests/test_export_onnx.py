"""ONNX export: onnxruntime reproduces PyTorch (outputs within 1e-4, same pruning indices) on real inputs.

Real inputs: person crops of COCO-mini cut with the dataset's own affine code, and Human3.6M
Stacked-Hourglass 2D clips normalised as in training. Weights are random (seeded) except for the bundled
lifter; graphs are exported at batch 2 and run at other batch sizes. The frame-selection tie-break that
exported lifters use is checked by hand on a 1-D example.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from _numerics import RecordingBackend, assert_keypoints_within, heatmap_delta, keypoint_tolerance
from prunepose.errors import ConfigError, PrunePoseError
from prunepose.paths import shared_data_dir
from prunepose.registry import create_model, get_config

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from prunepose.export.onnx import export_onnx, frame_tie_break  # noqa: E402
from prunepose.export.runtime import OnnxPoseRunner  # noqa: E402
from prunepose.export.samples import h36m_clips  # noqa: E402
from prunepose.export.verify import torch_outputs  # noqa: E402

DATA = shared_data_dir()
MINI = DATA / "coco-mini" if DATA is not None else None
ANN = MINI / "annotations" / "person_keypoints_train2017.json" if MINI is not None else None
H36M = DATA / "h36m" if DATA is not None else None
LIFTER_DEFAULT = Path(__file__).resolve().parents[1] / "src/prunepose/assets/weights/lifter3d_default.safetensors"
ATOL = 1e-4

needs_coco = pytest.mark.skipif(ANN is None or not ANN.is_file(), reason="shared data coco-mini not found "
                                                                        "(set PRUNEPOSE_DATA)")
needs_h36m = pytest.mark.skipif(H36M is None or not (H36M / "h36m_sh2d_16j_px_S9_S11.npz").is_file(),
                                reason="shared data h36m not found (set PRUNEPOSE_DATA)")


def _seeded(name: str, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **overrides).eval()


def coco_crops(config: object, indices: range) -> np.ndarray:
    """Real person crops (N, 3, H, W) from COCO-mini at the model's input size, via the test-time dataset."""
    from prunepose.data.coco import CocoTopDownDataset

    assert MINI is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # coco-mini lists images it does not ship: one summary warning
        ds = CocoTopDownDataset(ANN, MINI / "train2017", input_size=config.input_size, train=False,
                                heatmap_size=(config.input_size[0] // 4, config.input_size[1] // 4),
                                skip_missing_images=True)
    return np.stack([ds[i]["image"].numpy() for i in indices]).astype(np.float32)


def lifter_clips(config: object, batch: int) -> np.ndarray:
    clips = h36m_clips(config, batch, root=H36M)
    assert clips is not None
    return clips


def assert_matches(model: torch.nn.Module, onnx_path: Path, x: np.ndarray, ordered_kept: bool) -> dict:
    """Outputs within ATOL, kept indices equal (as sets per row; also in order when ``ordered_kept``)."""
    got = OnnxPoseRunner(onnx_path)(x)
    ref = dict(zip(got, torch_outputs(model, x)))
    for name, r in ref.items():
        g = got[name]
        assert g.shape == r.shape, name
        if name.startswith("kept_"):
            assert g.dtype == np.int64
            assert np.array_equal(np.sort(g, axis=-1), np.sort(r, axis=-1)), name
            if ordered_kept:
                assert np.array_equal(g, r), name
        else:  # float32 rounding is relative: 1e-4 of the output's magnitude (>= 1) is ~100x what is seen
            tol = ATOL * max(1.0, float(np.abs(r).max()))
            assert np.abs(g - r).max() <= tol, (name, float(np.abs(g - r).max()), tol)
    return got


def topk_count(path: Path) -> int:
    return sum(node.op_type == "TopK" for node in onnx.load(str(path)).graph.node)


# --------------------------------------------------------------------------------------------- 2D models
@needs_coco
def test_tokenpose_t_matches_pytorch_on_coco_crops(tmp_path: Path) -> None:
    model = _seeded("tokenpose_t")
    path = export_onnx(model, tmp_path / "tokenpose_t.onnx")
    x = coco_crops(model.config, range(3))  # exported at batch 2, run at 3
    got = assert_matches(model, path, x, ordered_kept=True)
    assert list(got) == ["heatmaps"] and got["heatmaps"].shape == (3, 17, 64, 48)
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["name"] == "tokenpose_t" and info["output_names"] == ["heatmaps"]
    assert info["input_shape"] == ["batch", 3, 256, 192]


@pytest.fixture(scope="module")
def ppt_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A 6-layer PPT-S (the real stem and token grid, fewer layers) pruning at 3 layers with keep 0.7."""
    model = _seeded("ppt_s", depth=6, prune_layers=(1, 3, 5))
    return model, export_onnx(model, tmp_path_factory.mktemp("ppt") / "ppt.onnx")


@needs_coco
def test_ppt_pruning_runs_in_the_graph(ppt_export: tuple) -> None:
    model, path = ppt_export
    assert topk_count(path) == 3  # attention rows -> TopK -> Gather, once per pruning layer
    runner = OnnxPoseRunner(path)
    assert runner.output_names == ["heatmaps", "kept_0", "kept_1", "kept_2"]
    x = coco_crops(model.config, range(4))
    got = assert_matches(model, path, x, ordered_kept=False)  # near-equal scores may swap order, not sets
    sizes = [math.ceil(model.num_tokens * 0.7)]  # 256 -> 180 -> 126 -> 89
    for _ in range(2):
        sizes.append(math.ceil(sizes[-1] * 0.7))
    assert [got[f"kept_{i}"].shape for i in range(3)] == [(4, s) for s in sizes]
    # the selection depends on the crop (not baked into the trace) and only ever narrows
    kept = got["kept_2"]
    assert any(set(kept[0]) != set(kept[i]) for i in range(1, 4))
    for b in range(4):
        assert set(got["kept_2"][b]) <= set(got["kept_1"][b]) <= set(got["kept_0"][b])
    single = runner(x[1:2])  # batch 1 gives the same answer as inside a batch of 4
    assert np.array_equal(np.sort(single["kept_2"][0]), np.sort(kept[1]))


@needs_coco
def test_gtpt_t_simcc_and_group_pruning(tmp_path: Path) -> None:
    model = _seeded("gtpt_t")
    path = export_onnx(model, tmp_path / "gtpt_t.onnx")
    x = coco_crops(model.config, range(3, 6))
    got = assert_matches(model, path, x, ordered_kept=False)
    assert list(got) == ["simcc_x", "simcc_y", "kept_0", "kept_1", "kept_2"]
    assert got["simcc_x"].shape == (3, 17, 384) and got["simcc_y"].shape == (3, 17, 512)
    assert [got[f"kept_{i}"].shape for i in range(3)] == [(3, 179), (3, 3, 76), (3, 3, 25)]
    assert json.loads(path.with_suffix(".json").read_text())["pruning"] is True


def test_pose_estimator_runs_the_onnx_file(ppt_export: tuple, tmp_path: Path) -> None:
    """PoseEstimator2D on the exported file gives PyTorch's keypoints and kept tokens (bundled real image)."""
    import cv2

    from prunepose import PoseEstimator2D
    from prunepose.export.samples import ASSET_IMAGE
    from prunepose.weights import save_weights

    model, path = ppt_export
    weights = save_weights(model, tmp_path / "ppt.safetensors")
    image = cv2.imread(str(ASSET_IMAGE))
    est, est_onnx = PoseEstimator2D(checkpoint=weights), PoseEstimator2D(checkpoint=path)
    rec, rec_onnx = RecordingBackend(est), RecordingBackend(est_onnx)
    a, b = est.predict_image(image), est_onnx.predict_image(image)
    heatmaps = rec.calls[0][1]["heatmaps"]
    np.testing.assert_array_equal(rec_onnx.calls[0][0], rec.calls[0][0])  # the same crop
    np.testing.assert_allclose(rec_onnx.calls[0][1]["heatmaps"], heatmaps, rtol=0, atol=heatmap_delta(heatmaps))
    # keypoints: not a fixed px figure; DARK amplifies float32 rounding by the inverse heatmap curvature, without
    # bound on most of these flat random-weight maps (_numerics.py), so only the bounded joints are compared
    tol = keypoint_tolerance(heatmaps, a.crop_affines, est.codec)
    assert_keypoints_within(b.keypoints, a.keypoints, tol, min_bounded=0.0)
    assert np.abs(a.scores - b.scores).max() <= heatmap_delta(heatmaps)
    assert [set(k.tolist()) for k in a.kept_tokens[0]] == [set(k.tolist()) for k in b.kept_tokens[0]]


# --------------------------------------------------------------------------------------------- lifters
@needs_h36m
def test_hot_mixste_matches_pytorch_on_h36m_clips(tmp_path: Path) -> None:
    overrides = {"num_frames": 27, "dim": 32, "depth": 2, "heads": 4, "token_num": 9, "layer_index": 1}
    model = _seeded("hot_mixste_243", **overrides)
    path = export_onnx(model, tmp_path / "hot.onnx")
    x = lifter_clips(model.config, 5)
    got = assert_matches(model, path, x, ordered_kept=True)  # frames are sorted: order must match too
    assert got["pose3d"].shape == (5, 27, 17, 3) and got["kept_0"].shape == (5, 9)
    assert all(np.all(np.diff(k) > 0) for k in got["kept_0"])
    runner = OnnxPoseRunner(path)
    assert runner.model_config == get_config("hot_mixste_243", **overrides)
    assert runner.input_size is None and runner.input_shape == ("batch", 27, 17, 2)


@needs_h36m
def test_mixste_without_pruning_matches(tmp_path: Path) -> None:
    model = _seeded("mixste_243", num_frames=27, dim=32, depth=2, heads=4)
    path = export_onnx(model, tmp_path / "mixste.onnx")
    got = assert_matches(model, path, lifter_clips(model.config, 3), ordered_kept=True)
    assert list(got) == ["pose3d"]


_SMALL = {"num_frames": 27, "dim": 32, "depth": 3, "heads": 4}
_VARIANTS = {  # the other HoT settings: recovery by interpolation, hierarchy, baseline selectors, TPC
    "linear-recovery": ("hot_mixste_243", {"token_num": 9, "layer_index": 1, "recovery": "linear",
                                           "token_pos_embed": False}),
    "tra-linear-recovery": ("hot_mixste_243", {"token_num": 9, "layer_index": 1, "recovery": "tra_linear"}),
    "hierarchical": ("hot_mixste_243", {"token_num": None, "layer_index": None, "hierarchical": ((1, 15), (2, 7))}),
    "attention-selector": ("hot_mixste_243", {"token_num": 9, "layer_index": 1, "selector": "attention"}),
    "motion-selector": ("hot_mixste_243", {"token_num": 9, "layer_index": 1, "selector": "motion"}),
    "tpc-seq2frame": ("tpc_mixste_243", {"token_num": 7, "layer_index": 2}),
}


@needs_h36m
@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_hot_variants_match(variant: str, tmp_path: Path) -> None:
    name, overrides = _VARIANTS[variant]
    model = _seeded(name, **_SMALL, **overrides)
    path = export_onnx(model, tmp_path / "v.onnx")
    got = assert_matches(model, path, lifter_clips(model.config, 3), ordered_kept=True)
    stages = model.config.stages
    assert [got[f"kept_{i}"].shape for i in range(len(stages))] == [(3, n) for _, n in stages]
    if variant == "tpc-seq2frame":  # outputs only the kept frames, the centre always among them
        assert got["pose3d"].shape == (3, 7, 17, 3) and (got["kept_0"] == 13).any(axis=1).all()


@needs_h36m
def test_hot_motionbert_with_confidence_channel(tmp_path: Path) -> None:
    model = _seeded("hot_motionbert_tiny")
    path = export_onnx(model, tmp_path / "hot_mb.onnx")
    x = lifter_clips(model.config, 3)
    assert x.shape[-1] == 3
    assert_matches(model, path, x, ordered_kept=True)


@needs_h36m
@pytest.mark.skipif(not LIFTER_DEFAULT.is_file(), reason="bundled lifter weights not present")
def test_bundled_lifter_selects_the_same_frames_in_onnx(tmp_path: Path) -> None:
    """The trained lifter on 12 real clips: every kept frame equal, poses within 1e-4 m."""
    from prunepose.weights import model_from_weights

    model = model_from_weights(LIFTER_DEFAULT).eval()
    path = export_onnx(model, tmp_path / "lifter.onnx")
    assert_matches(model, path, lifter_clips(model.config, 12), ordered_kept=True)


def test_index_tie_break_by_hand() -> None:
    """1-D frames at 0, 1, 5, 6, 20 (k = 2): frames 0-3 share density e^-0.5 (mutual nearest pairs), frame 4
    has e^-98. Ties go to the lower index, so delta = [max D = 20, 1, min(5, 4) = 4, 1, 14]."""
    from prunepose.pruning.temporal import dpc_knn_scores, dpc_knn_select

    feats = torch.tensor([0.0, 1.0, 5.0, 6.0, 20.0]).reshape(1, 5, 1)
    want = torch.tensor([20.0, 1.0, 4.0, 1.0, 14.0]) * torch.exp(-torch.tensor([0.5, 0.5, 0.5, 0.5, 98.0]))
    got = dpc_knn_scores(feats, k=2, tie_break="index")
    assert torch.allclose(got[0], want, rtol=1e-6, atol=0)
    assert dpc_knn_select(feats + 1000.0, 2, tie_break="index").tolist() == [[0, 2]]  # translation-invariant
    with pytest.raises(ValueError, match="tie_break"):
        dpc_knn_scores(feats, tie_break="coin")


def test_frame_tie_break_restores_the_rule() -> None:
    model = create_model("hot_mixste_tiny")
    assert model.pruning.selector.tie_break == "random"
    with frame_tie_break(model, "index"):
        assert model.pruning.selector.tie_break == "index"
    assert model.pruning.selector.tie_break == "random"


# --------------------------------------------------------------------------------------------- files, errors
@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    model = _seeded("hot_mixste_tiny")
    return model, export_onnx(model, tmp_path_factory.mktemp("tiny") / "tiny.onnx")


def test_runner_rejects_missing_and_corrupt_files(tmp_path: Path, tiny_export: tuple) -> None:
    _, path = tiny_export
    with pytest.raises(PrunePoseError, match="not found"):
        OnnxPoseRunner(tmp_path / "absent.onnx")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(path.read_bytes())
    with pytest.raises(PrunePoseError, match=r"lone\.json: no model description"):
        OnnxPoseRunner(lone)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a protobuf" * 10)
    bad.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(PrunePoseError, match="not a loadable ONNX model"):
        OnnxPoseRunner(bad)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(path.read_bytes())
    broken.with_suffix(".json").write_text('{"name": "hot_mixste_tiny", ')
    with pytest.raises(PrunePoseError, match="not valid JSON"):
        OnnxPoseRunner(broken)
    other = tmp_path / "other.onnx"
    other.write_bytes(path.read_bytes())
    info = json.loads(path.with_suffix(".json").read_text())
    other.with_suffix(".json").write_text(json.dumps(info | {"output_names": ["heatmaps"]}))
    with pytest.raises(PrunePoseError, match="does not describe other.onnx"):
        OnnxPoseRunner(other)


def test_runner_rejects_wrong_input_shape(tiny_export: tuple) -> None:
    _, path = tiny_export
    runner = OnnxPoseRunner(path)
    with pytest.raises(ConfigError, match=r"expects input of shape \('B', 27, 17, 2\)"):
        runner(np.zeros((1, 26, 17, 2), np.float32))
    with pytest.raises(ConfigError, match="float32"):
        runner(np.zeros((1, 27, 17, 2), np.int32))


def test_static_batch_export(tmp_path: Path) -> None:
    model = _seeded("hot_mixste_tiny")
    runner = OnnxPoseRunner(export_onnx(model, tmp_path / "static.onnx", dynamic_batch=False))
    x = np.random.default_rng(0).uniform(-1, 1, (1, 27, 17, 2)).astype(np.float32)
    assert runner(x)["pose3d"].shape == (1, 27, 17, 3)
    with pytest.raises(ConfigError, match=r"\(1, 27, 17, 2\)"):
        runner(np.concatenate([x, x]))


def test_export_argument_errors(tmp_path: Path) -> None:
    model = create_model("hot_mixste_tiny")
    with pytest.raises(ConfigError, match=r"must end in \.onnx"):
        export_onnx(model, tmp_path / "m.pt")
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(model, tmp_path / "m.onnx", opset=11)
    with pytest.raises(PrunePoseError, match="cannot export Linear"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "m.onnx")
    with pytest.raises(PrunePoseError, match="collide with config fields"):
        export_onnx(model, tmp_path / "m.onnx", metadata={"dim": 3})
    with pytest.raises(PrunePoseError, match="collide"):
        export_onnx(model, tmp_path / "m.onnx", metadata={"output_names": ["x"]})
    assert not (tmp_path / "m.onnx").exists()
    model.train()
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training  # the caller's mode is restored


@pytest.mark.slow  # importing torch.compile's machinery takes ~10 s
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_compiled_model_is_refused(tmp_path: Path) -> None:
    compiled = create_model("hot_mixste_tiny")
    compiled.head = torch.compile(compiled.head)  # wrapping only; nothing is compiled until called
    with pytest.raises(PrunePoseError, match="before torch.compile"):
        export_onnx(compiled, tmp_path / "m.onnx")


# --------------------------------------------------------------------------------------------- CLI
def test_cli_export_from_weights_with_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prunepose.cli import main
    from prunepose.weights import save_weights

    model = _seeded("hot_mixste_tiny")
    weights = save_weights(model, tmp_path / "w.safetensors", metadata={"trained_on": "nothing (test)"})
    out = tmp_path / "cli.onnx"
    assert main(["export", "onnx", "--checkpoint", str(weights), "--out", str(out), "--check"]) == 0
    printed = capsys.readouterr().out
    assert "check passed" in printed and "max |onnx - torch|" in printed
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["trained_on"] == "nothing (test)" and info["weights"] == str(weights)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 27, 17, 2)).astype(np.float32)
    with torch.no_grad(), frame_tie_break(model):
        ref = model(torch.from_numpy(x)).pose3d.numpy()
    assert np.abs(OnnxPoseRunner(out)(x)["pose3d"] - ref).max() <= ATOL  # the file's weights, not random ones


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from prunepose.cli import main

    assert main(["export", "onnx"]) == 2
    assert "give a MODEL name" in capsys.readouterr().err
    assert main(["export", "onnx", "no_such_model", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "unknown model 'no_such_model'" in capsys.readouterr().err
    assert main(["export", "onnx", "--checkpoint", str(tmp_path / "missing.safetensors")]) == 2
    assert "weights file not found" in capsys.readouterr().err
