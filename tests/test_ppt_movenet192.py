"""``ppt_movenet192``: MoveNet Lightning's heatmap head as the base of a PPT model, its optimizer groups, and the
bundled default's ONNX export that ``PoseEstimator2D()`` runs on CPU.

Why: the model must start exactly at Lightning's heatmaps (checked against onnxruntime on a real image, not
against itself), the pretrained parts must train at their own lower rate also after a resume, and the two
backends of the default model must give the same keypoints.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from prunepose.data.transforms import normalize_image
from prunepose.engine.trainer import TrainConfig, _build_optimizer, _build_scheduler
from prunepose.errors import ConfigError
from prunepose.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "src/prunepose/assets/astronaut.jpg"


def test_residual_starts_at_zero_and_pruning_changes_nothing_then() -> None:
    torch.manual_seed(0)
    model = create_model("ppt_movenet192").eval()
    x = torch.randn(2, 3, 192, 192)
    with torch.no_grad():
        out = model(x)
        base = torch.sigmoid(model.conv_head(model.backbone(x))) * model.person_prior(model.backbone(x))
        model.keep_ratio = 1.0
        unpruned = model(x)
    assert out.heatmaps.shape == (2, 17, 48, 48)
    # zero residual head: the convolutional head's sigmoid (the model runs its convs channels-last, hence not
    # bit-equal: float32 sums in another order, values in [0, 1])
    torch.testing.assert_close(out.heatmaps, base, rtol=0, atol=1e-5)
    assert torch.equal(unpruned.heatmaps, out.heatmaps)  # pruning only touches the (zero) residual
    assert [k.shape[1] for k in out.kept] == [101, 71]  # 144 tokens, keep 0.7 twice (floor as PPT)


def test_frozen_backbone_freezes_the_pretrained_head_too() -> None:
    model = create_model("ppt_movenet192")
    assert model.config.freeze_backbone
    frozen = [model.backbone, model.conv_head, model.person_prior]
    assert not any(p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_conv_head_needs_the_movenet_backbone() -> None:
    with pytest.raises(ConfigError, match="conv_head"):
        create_model("ppt_movenet192", backbone="stemnet")
    with pytest.raises(ConfigError, match="conv_head"):
        create_model("ppt_movenet192", conv_head="resnet")


def test_optimizer_groups_keep_their_rate_through_the_schedule_and_a_rebuild() -> None:
    model = create_model("ppt_movenet192", backbone_lr_mult=0.1, freeze_backbone=False)
    cfg = TrainConfig(epochs=4, batch_size=2, lr=1e-3, optimizer="adamw", lr_steps=(2,))
    opt = _build_optimizer(model, cfg)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-4])
    pretrained = {id(p) for m in (model.backbone, model.conv_head) for p in m.parameters()}
    assert not any(p.requires_grad for p in model.person_prior.parameters())  # read at an argmax: frozen
    assert {id(p) for p in opt.param_groups[1]["params"]} == pretrained
    assert len(opt.param_groups[0]["params"]) + len(pretrained) == sum(p.requires_grad for p in model.parameters())
    sched = _build_scheduler(opt, cfg)
    for _ in range(2):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-4, 1e-5])  # both x0.1 at the milestone
    # what Trainer._rebuild_scheduler does on resume: per-group base rate from the config and lr_mult
    for group in opt.param_groups:
        group["lr"] = cfg.lr * float(group.get("lr_mult", 1.0))
        group.pop("initial_lr", None)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3, 1e-4])


def _lightning() -> Path | None:
    from prunepose.paths import shared_data_dir

    data = shared_data_dir()
    path = data / "movenet/movenet-lightning.onnx" if data is not None else None
    return path if path is not None and path.is_file() else None


@pytest.mark.skipif(_lightning() is None, reason="movenet-lightning.onnx not in the shared data")
def test_ported_heads_and_person_prior_match_onnxruntime_on_a_real_image() -> None:
    import cv2

    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from prunepose.nn.backbones.movenet import (
        REGRESS_DISTANCE_OFFSET,
        load_onnx_heatmap_head,
        load_onnx_person_prior,
        load_onnx_weights,
    )

    path = str(_lightning())
    model = create_model("ppt_movenet192").eval()
    load_onnx_weights(model.backbone, path)
    assert len(load_onnx_heatmap_head(model.conv_head, path)) == 3
    assert len(load_onnx_person_prior(model.person_prior, path)) == 6
    graph = onnx.load(path)
    # the graph's sigmoid keypoint heatmaps (NCHW) and the distance-weighted ones its decoder takes argmax of (NHWC)
    names = ["StatefulPartitionedCall/Sigmoid:0", "StatefulPartitionedCall/truediv_3:0"]
    for name in names:
        graph.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    img = cv2.imread(str(ASTRONAUT))
    crop = cv2.resize(img[:, 40:472], (192, 192), interpolation=cv2.INTER_AREA)
    sigmoid, weighted = sess.run(names, {"input:0": np.ascontiguousarray(crop[..., ::-1])[None].astype(np.int32)})
    x = torch.from_numpy(normalize_image(crop))[None]
    with torch.no_grad():
        base = torch.sigmoid(model.conv_head(model.backbone(x))).numpy()
        out = model(x).heatmaps.numpy()
    assert sigmoid.shape == base.shape == out.shape == (1, 17, 48, 48)
    assert float(sigmoid.max()) > 0.3  # a real person: peaked maps, not a flat field that anything would match
    # values in [0, 1]; float32 conv sums of two runtimes differ by ~1e-6
    assert float(np.abs(base - sigmoid).max()) < 1e-4
    ref = weighted.transpose(0, 3, 1, 2) * REGRESS_DISTANCE_OFFSET  # ours keep the value 1 at distance 0
    assert float(np.abs(out - ref).max()) < 1e-4
    assert float(np.abs(out - base).max()) > 0.01  # the prior does change something on this image


def test_default_checkpoint_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import prunepose.api.backends as backends

    weights, onnx_file = tmp_path / "pose2d_default.safetensors", tmp_path / "pose2d_default_cpu.onnx"
    monkeypatch.setattr(backends, "DEFAULT_WEIGHTS", weights)
    monkeypatch.setattr(backends, "DEFAULT_ONNX", onnx_file)
    onnx_file.write_bytes(b"x")
    onnx_file.with_suffix(".json").write_text("{}")
    assert backends.default_checkpoint("cpu") is None  # an export without its weights does not count
    weights.write_bytes(b"x")
    pytest.importorskip("onnxruntime")
    assert backends.default_checkpoint("cpu") == onnx_file
    assert backends.default_checkpoint("cuda") is None
    onnx_file.with_suffix(".json").unlink()
    assert backends.default_checkpoint("cpu") is None


def test_bundled_onnx_matches_bundled_weights() -> None:
    """The shipped ONNX export and the shipped safetensors give the same keypoints on a real photo."""
    pytest.importorskip("onnxruntime")
    from prunepose import PoseEstimator2D
    from prunepose.api.backends import DEFAULT_ONNX, DEFAULT_WEIGHTS
    from prunepose.weights import read_weights_info

    if not (DEFAULT_ONNX.is_file() and DEFAULT_WEIGHTS.is_file()):
        pytest.skip("bundled default 2D weights or their ONNX export not installed")
    if read_weights_info(DEFAULT_WEIGHTS)["name"] != "ppt_movenet192":
        pytest.skip("the bundled weights are not ppt_movenet192")
    boxes = np.array([[140.0, 20.0, 400.0, 511.0]])
    import cv2

    image = cv2.imread(str(ASTRONAUT))
    a = PoseEstimator2D(checkpoint=DEFAULT_WEIGHTS).predict_image(image, boxes)
    default = PoseEstimator2D()
    assert default.backend.name == "onnxruntime"
    b = default.predict_image(image, boxes)
    assert b.kpt_thr == a.kpt_thr
    confident = a.scores[0] > 0.3
    assert confident.sum() >= 8  # a real, visible person
    # float32 rounding of two runtimes through DARK: a heatmap cell is 512 * 1.25 / 48 = 13 px here; 0.5 px bound
    np.testing.assert_allclose(b.keypoints[0][confident], a.keypoints[0][confident], atol=0.5)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-3)


def test_focal_loss_by_hand() -> None:
    from prunepose.engine.losses import heatmap_focal_loss

    logits = torch.zeros(1, 2, 1, 3)  # p = 0.5 everywhere
    target = torch.tensor([[[[1.0, 0.5, 0.0]], [[0.2, 0.9, 0.0]]]])
    # keypoint 0: positive at x=0: (1-p)^2 * -log p; negatives: (1-y)^4 p^2 * -log(1-p)
    l2 = float(np.log(2.0))
    k0 = 0.25 * l2 + (0.5**4) * 0.25 * l2 + 1.0 * 0.25 * l2
    # keypoint 1: its peak 0.9 is its positive (targets whose centre falls between pixels peak below 1)
    k1 = 0.25 * l2 + (0.8**4) * 0.25 * l2 + 1.0 * 0.25 * l2
    both = heatmap_focal_loss(logits, target, torch.ones(1, 2))
    assert float(both) == pytest.approx((k0 + k1) / 2, rel=1e-6)
    only0 = heatmap_focal_loss(logits, target, torch.tensor([[1.0, 0.0]]))
    assert float(only0) == pytest.approx(k0, rel=1e-6)
    assert float(heatmap_focal_loss(logits, target, torch.zeros(1, 2))) == 0.0


def test_models_with_a_sigmoid_head_train_with_the_focal_loss() -> None:
    from prunepose.registry import get_config
    from prunepose.tasks.topdown import focal_heatmap_loss, heatmap_loss, loss_for

    assert loss_for(get_config("ppt_movenet192")) is focal_heatmap_loss
    assert loss_for(get_config("ppt_movenet")) is heatmap_loss
