"""Video pose lifters (MixSTE, MotionBERT, HoT/TPC): parameter counts and FLOPs pinned to the reference
measurements of the official code, and the pruning/recovery behaviour on tiny configs."""
from __future__ import annotations

import dataclasses

import pytest
import torch

import prunepose
from prunepose.errors import ConfigError
from prunepose.models.lifting import LiftingOutput
from prunepose.profiling import count_params
from prunepose.profiling.flops import count_macs

# name -> exact parameter count (the reference: 33.784M, 35.000M, 33.784M, 16.002M, 16.348M, 42.466M)
PARAMS = {
    "mixste_243": 33_783_811,
    "hot_mixste_243": 35_000_323,
    "tpc_mixste_243": 33_783_811,
    "motionbert_lite_243": 16_001_549,
    "hot_motionbert_243": 16_347_661,
    "motionbert_243": 42_466_317,
}
# name -> (reference FLOPs = 2 x thop MACs per 243-frame clip, exact value measured here)
FLOPS = {
    "mixste_243": (278.1e9, 278_076_976_128),
    "hot_mixste_243": (168.0e9, 168_002_989_056),
    "tpc_mixste_243": (252.0e9, 252_024_407_040),
    "motionbert_lite_243": (131.4e9, 131_441_149_440),
    "hot_motionbert_243": (63.4e9, 63_369_672_192),
}


@pytest.mark.parametrize("name", list(PARAMS))
def test_parameter_counts_match_reference(name: str) -> None:
    with torch.device("meta"):  # shapes only: skips the (slow) random initialisation of 16-42 M weights
        model = prunepose.create_model(name)
    assert count_params(model) == PARAMS[name]


_SLOW = {"tpc_mixste_243", "motionbert_lite_243", "hot_motionbert_243"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in FLOPS])
def test_thop_flops_match_reference(name: str) -> None:
    """Full-size 243-frame forward on CPU (1-2 s each on an idle 2-core machine); MixSTE and HoT-MixSTE
    run by default, the other three with ``-m slow``."""
    model = prunepose.create_model(name)
    x = torch.rand(1, 243, 17, model.config.in_channels)
    flops = 2 * count_macs(model, x, "thop")
    reference, exact = FLOPS[name]
    assert abs(flops - reference) / reference < 0.01
    assert flops == exact


def _x(model: torch.nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    cfg = model.config
    return torch.rand(batch, cfg.num_frames, cfg.num_joints, cfg.in_channels,
                      generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("name", ["hot_mixste_tiny", "hot_motionbert_tiny"])
def test_hot_tiny_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = prunepose.create_model(name)
    model.train()
    out = model(_x(model))
    assert isinstance(out, LiftingOutput)
    assert out.pose3d.shape == (2, 27, 17, 3)
    assert len(out.kept) == 1 and out.kept[0].shape == (2, 9)
    assert bool((out.kept[0][:, 1:] > out.kept[0][:, :-1]).all())
    assert torch.equal(out.frames, torch.arange(27).expand(2, 27))
    out.pose3d.square().mean().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    # Zero gradients that are correct: linear_q.weight (its input, the zero-initialised queries, is 0),
    # linear_k.bias (softmax ignores a per-row constant) and, with MotionBERT's zero biases, linear_k.weight.
    for key in ("pruning.pos_embed_token", "recovery.x_token", "recovery.cross_attention.linear_v.weight"):
        assert grads[key] is not None and torch.isfinite(grads[key]).all() and grads[key].abs().sum() > 0
    assert all(g is not None for g in grads.values())


def test_kept_indices_can_be_reused_for_the_flipped_pass() -> None:
    model = prunepose.create_model("hot_mixste_tiny").eval()
    x = _x(model)
    with torch.no_grad():
        out = model(x)
        flipped = model(x * torch.tensor([-1.0, 1.0]), kept=out.kept)
    assert torch.equal(flipped.kept[0], out.kept[0])
    with pytest.raises(ConfigError, match="kept indices"):
        model(x, kept=[out.kept[0][:, :3]])


def test_tpc_mixste_keeps_the_centre_frame() -> None:
    model = prunepose.create_model("tpc_mixste_243", num_frames=27, dim=32, depth=3, heads=4, token_num=7,
                                   layer_index=2, drop_path=0.0).eval()
    assert not any("pos_embed_token" in n for n, _ in model.named_parameters())  # TPC adds no PE
    with torch.no_grad():
        out = model(_x(model, batch=3))
    assert out.pose3d.shape == (3, 7, 17, 3)
    assert bool((out.kept[0] == 13).any(dim=1).all())
    assert torch.equal(out.frames, out.kept[0])
    centre = out.at_frame(13)
    assert centre.shape == (3, 17, 3)
    pos = (out.frames == 13).int().argmax(dim=1)
    torch.testing.assert_close(centre, out.pose3d[torch.arange(3), pos])


@pytest.mark.parametrize("selector", ["uniform", "attention", "motion"])
@pytest.mark.parametrize("name", ["hot_mixste_tiny", "hot_motionbert_tiny"])
def test_ablation_selectors_run(name: str, selector: str) -> None:
    model = prunepose.create_model(name, selector=selector).eval()
    x = _x(model)
    with torch.no_grad():
        out = model(x)
    assert out.kept[0].shape == (2, 9) and out.pose3d.shape == (2, 27, 17, 3)
    if selector == "uniform":
        assert out.kept[0][0].tolist() == [1, 4, 7, 10, 13, 16, 19, 22, 25]


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_interpolation_recovery_variant(mode: str) -> None:
    model = prunepose.create_model("hot_mixste_tiny", recovery=mode, token_pos_embed=False).eval()
    assert count_params(model) == count_params(prunepose.create_model("mixste_tiny"))  # HoT table 5: no new params
    kept_only = prunepose.create_model("hot_mixste_tiny", recovery=None, token_pos_embed=False).eval()
    kept_only.load_state_dict(model.state_dict())
    x = _x(model)
    with torch.no_grad():
        out = model(x)
        ref = kept_only(x, kept=out.kept)
    assert out.pose3d.shape == (2, 27, 17, 3) and ref.pose3d.shape == (2, 9, 17, 3)
    assert torch.equal(ref.frames, out.kept[0])
    # tokens are interpolated before the per-token head, so a kept frame gets exactly its own prediction
    torch.testing.assert_close(out.pose3d[torch.arange(2)[:, None], out.kept[0]], ref.pose3d)


@pytest.mark.parametrize("name", ["hot_mixste_tiny", "hot_motionbert_tiny"])
def test_tra_linear_is_tra_plus_linear_interpolation(name: str) -> None:
    """``tra_linear`` = TRA's output + the linear interpolation of the kept tokens, with TRA's keys unchanged
    (so a ``tra`` checkpoint resumes as ``tra_linear``); with TRA silenced it is exactly linear recovery."""
    tra = prunepose.create_model(name).eval()
    hybrid = prunepose.create_model(name, recovery="tra_linear").eval()
    linear = prunepose.create_model(name, recovery="linear").eval()
    hybrid.load_state_dict(tra.state_dict())  # strict: same keys
    x = _x(tra)
    with torch.no_grad():
        out_tra = tra(x)
        out_hybrid = hybrid(x, kept=out_tra.kept)
        assert out_hybrid.pose3d.shape == out_tra.pose3d.shape
        assert not torch.allclose(out_hybrid.pose3d, out_tra.pose3d)
        # silence TRA (zero queries and output projection): tra_linear must equal linear recovery
        hybrid.recovery.x_token.zero_()
        hybrid.recovery.cross_attention.proj.weight.zero_()
        hybrid.recovery.cross_attention.proj.bias.zero_()
        state = {k: v for k, v in hybrid.state_dict().items() if not k.startswith("recovery.")}
        linear.load_state_dict(state)
        out_silent = hybrid(x, kept=out_tra.kept)
        out_linear = linear(x, kept=out_tra.kept)
    torch.testing.assert_close(out_silent.pose3d, out_linear.pose3d)
    assert out_silent.frames.shape == (2, 27)


def test_hierarchical_stages() -> None:
    model = prunepose.create_model("hot_mixste_tiny", token_num=None, layer_index=None,
                                   hierarchical=((1, 15), (2, 7))).eval()
    names = {n for n, _ in model.named_parameters()}
    assert {"pruning.pos_embed_token", "pruning.pos_embed_token_1"} <= names
    with torch.no_grad():
        out = model(_x(model))
    assert [k.shape for k in out.kept] == [(2, 15), (2, 7)]
    for b in range(2):
        assert set(out.kept[1][b].tolist()) <= set(out.kept[0][b].tolist())
    assert out.pose3d.shape == (2, 27, 17, 3)


def test_plain_models_run_and_motionbert_accepts_shorter_clips() -> None:
    mix = prunepose.create_model("mixste_tiny").eval()
    mb = prunepose.create_model("motionbert_tiny").eval()
    with torch.no_grad():
        assert mix(_x(mix)).pose3d.shape == (2, 27, 17, 3)
        assert mb(torch.rand(1, 10, 17, 3)).pose3d.shape == (1, 10, 17, 3)
        with pytest.raises(ValueError, match="built for 27 frames"):
            mix(torch.rand(1, 10, 17, 2))
        with pytest.raises(ValueError, match=r"\(B, F, 17, 2\)"):
            mix(torch.rand(1, 27, 17, 3))
    assert mb.ts_attn[0].weight.abs().sum() == 0 and torch.all(mb.ts_attn[0].bias == 0.5)


@pytest.mark.parametrize("overrides,message", [
    ({"layer_index": 0}, "pruning layers"),
    ({"token_num": 30}, "token counts"),
    ({"recovery": "cubic"}, "recovery must be"),
    ({"selector": "random"}, "selector must be"),
    ({"pipeline": "seq2frame"}, "recovery must be None"),
    ({"hierarchical": ((1, 9),)}, "either hierarchical"),
    ({"token_num": None}, "go together"),
    ({"in_channels": 4}, "in_channels"),
])
def test_config_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        prunepose.create_model("hot_mixste_tiny", **overrides)


def test_configs_are_frozen_data() -> None:
    cfg = prunepose.registry.get_config("hot_mixste_243")
    assert cfg.stages == ((3, 81),) and cfg.recovery == "tra" and cfg.num_frames == 243
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dim = 3  # type: ignore[misc]


def test_attention_received_path_matches_sdpa() -> None:
    from prunepose.models.lifting.layers import Attention

    attn = Attention(16, 4)
    x = torch.randn(3, 7, 16)
    fused, none = attn(x)
    explicit, received = attn(x, need_received=True)
    assert none is None
    torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-6)
    assert received.shape == (3, 7)
    torch.testing.assert_close(received.sum(dim=-1), torch.full((3,), 7.0))  # every query row sums to 1
