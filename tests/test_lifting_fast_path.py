"""The lifters' inference path (in-place kernels in `prunepose.models.lifting.layers`, TRA's queries projected
once in `prunepose.models.lifting.hourglass`) against a plain float64 re-implementation of MixSTE / MotionBERT
and their HoT versions written from the papers, and bitwise against the plain (training/export) path where
the rewrite promises it.

The reference below shares no code with the package: explicit softmax, LayerNorm from its formula, exact-erf
GELU, weights read by key from the state dict. The same reference also checks the training path (autograd on),
so the two paths are each compared with an independent computation rather than only with each other.

Tolerance (float32 model vs float64 reference). Every float32 operation rounds with relative error
``u = 2**-24``; a dot product of length ``K`` accumulates at most ``K u`` of the sum of its absolute terms,
and errors of sequential stages add (LayerNorm renormalises, so relative errors do not compound
multiplicatively through the residual stream). A tiny config has ``depth`` block pairs of 2 blocks (MotionBERT:
2 streams of 2 sub-blocks) with 6 matmul stages each (qkv, q k^T, a v, proj, fc1, fc2) plus the embedding,
recovery and head, and its longest dot product is ``K = max(hidden, frames)``. The bound
``stages * K * u`` on an output of size ~1 is 2e-4 to 5e-4 for these configs: loose against the ~1e-6 actually seen,
tight against any real mistake (a dropped bias, a wrong scale, a wrong transpose all move outputs by >1e-2).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import prunepose
from prunepose.export.onnx import frame_tie_break

U32 = 2.0**-24


def _ln(x: torch.Tensor, sd: dict, key: str, eps: float) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * sd[f"{key}.weight"] + sd[f"{key}.bias"]


def _lin(x: torch.Tensor, sd: dict, key: str) -> torch.Tensor:
    out = x @ sd[f"{key}.weight"].T
    return out + sd[f"{key}.bias"] if f"{key}.bias" in sd else out


def _softmax(s: torch.Tensor) -> torch.Tensor:
    e = torch.exp(s - s.max(dim=-1, keepdim=True).values)
    return e / e.sum(dim=-1, keepdim=True)


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, heads, c // heads).transpose(1, 2)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(B, H, N, D) each -> (B, N, H*D), softmax(q k^T / sqrt(D)) v."""
    a = _softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]))
    out = a @ v
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


def _self_attention(x: torch.Tensor, sd: dict, key: str, heads: int) -> torch.Tensor:
    c = x.shape[-1]
    qkv = _lin(x, sd, f"{key}.qkv")
    q, k, v = (_heads(qkv[..., i * c:(i + 1) * c], heads) for i in range(3))
    return _lin(_attend(q, k, v), sd, f"{key}.proj")


def _mlp(x: torch.Tensor, sd: dict, key: str) -> torch.Tensor:
    h = _lin(x, sd, f"{key}.fc1")
    return _lin(0.5 * h * (1 + torch.erf(h / math.sqrt(2))), sd, f"{key}.fc2")


def _block(x: torch.Tensor, sd: dict, key: str, heads: int, s: str = "") -> torch.Tensor:
    """Pre-norm block on (B, N, C); ``s`` is MotionBERT's ``_s``/``_t`` key suffix."""
    x = x + _self_attention(_ln(x, sd, f"{key}.norm1{s}", 1e-6), sd, f"{key}.attn{s}", heads)
    return x + _mlp(_ln(x, sd, f"{key}.norm2{s}", 1e-6), sd, f"{key}.mlp{s}")


def _over_joints(fn, x: torch.Tensor) -> torch.Tensor:
    b, f, j, c = x.shape
    return fn(x.reshape(b * f, j, c)).reshape(b, f, j, c)


def _over_frames(fn, x: torch.Tensor) -> torch.Tensor:
    b, f, j, c = x.shape
    return fn(x.transpose(1, 2).reshape(b * j, f, c)).reshape(b, j, -1, c).transpose(1, 2)


def _prune(h: torch.Tensor, sd: dict, kept: torch.Tensor) -> torch.Tensor:
    """Gather the kept frames (absolute indices of the first and only stage) and add HoT's new PE."""
    h = torch.stack([h[i, kept[i]] for i in range(h.shape[0])])
    return h + sd["pruning.pos_embed_token"][:, :, None, :] if "pruning.pos_embed_token" in sd else h


def _tra(h: torch.Tensor, sd: dict, heads: int) -> torch.Tensor:
    """HoT's TRA: learnable queries (1, F, C) cross-attend to each joint's kept tokens; -> (B, F, J, C)."""
    def recover(seqs: torch.Tensor) -> torch.Tensor:
        queries = sd["recovery.x_token"].expand(seqs.shape[0], -1, -1)
        key = "recovery.cross_attention"
        q, k, v = (_heads(_lin(t, sd, f"{key}.linear_{n}"), heads) for t, n in
                   ((queries, "q"), (seqs, "k"), (seqs, "v")))
        return queries + _lin(_attend(q, k, v), sd, f"{key}.proj")
    return _over_frames(recover, h)


def reference_mixste(model: nn.Module, x: torch.Tensor, kept: list[torch.Tensor]) -> torch.Tensor:
    cfg, sd = model.config, {k: v.double() for k, v in model.state_dict().items()}
    h = _lin(x.double(), sd, "Spatial_patch_to_embedding") + sd["Spatial_pos_embed"]
    for i in range(cfg.depth):
        if cfg.stages and i == cfg.stages[0][0]:
            h = _prune(h, sd, kept[0])
        h = _ln(_over_joints(lambda t, i=i: _block(t, sd, f"STEblocks.{i}", cfg.heads), h), sd, "Spatial_norm", 1e-6)
        if i == 0:
            h = h + sd["Temporal_pos_embed"][:, :, None, :]
        h = _ln(_over_frames(lambda t, i=i: _block(t, sd, f"TTEblocks.{i}", cfg.heads), h), sd, "Temporal_norm",
                1e-6)
    if cfg.recovery == "tra":
        h = _tra(h, sd, cfg.heads)
    return _lin(_ln(h, sd, "head.0", 1e-5), sd, "head.1")


def reference_motionbert(model: nn.Module, x: torch.Tensor, kept: list[torch.Tensor]) -> torch.Tensor:
    cfg, sd = model.config, {k: v.double() for k, v in model.state_dict().items()}
    f = x.shape[1]
    h = _lin(x.double(), sd, "joints_embed") + sd["pos_embed"] + sd["temp_embed"][:, :f]

    def stream(h: torch.Tensor, key: str, order: str) -> torch.Tensor:
        for part in order:
            if part == "s":
                h = _over_joints(lambda t: _block(t, sd, key, cfg.heads, "_s"), h)
            else:
                h = _over_frames(lambda t: _block(t, sd, key, cfg.heads, "_t"), h)
        return h

    for i in range(cfg.depth):
        if cfg.stages and i == cfg.stages[0][0]:
            h = _prune(h, sd, kept[0])
        x_st, x_ts = stream(h, f"blocks_st.{i}", "st"), stream(h, f"blocks_ts.{i}", "ts")
        alpha = _softmax(_lin(torch.cat([x_st, x_ts], dim=-1), sd, f"ts_attn.{i}"))
        h = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
    h = _ln(h, sd, "norm", 1e-6)
    if cfg.recovery == "tra":
        h = _tra(h, sd, cfg.heads)
    return _lin(torch.tanh(_lin(h, sd, "pre_logits.fc")), sd, "head")


def _randomise(model: nn.Module, seed: int) -> None:
    """Every parameter random (non-zero biases, PEs, fusion weights, LN affine), so that each rewrite of the
    inference path (dropped key bias, value bias moved into the projection) is exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                base = 1.0 if isinstance(module, nn.LayerNorm) and name == "weight" else 0.0
                p.copy_(base + 0.15 * torch.randn(p.shape, generator=gen))


CASES = {
    "mixste_tiny": reference_mixste,
    "hot_mixste_tiny": reference_mixste,
    "motionbert_tiny": reference_motionbert,
    "hot_motionbert_tiny": reference_motionbert,
}


def _tolerance(model: nn.Module, frames: int) -> float:
    cfg = model.config
    blocks = 2 * cfg.depth * (2 if cfg.name.startswith(("motionbert", "hot_motionbert")) else 1)
    stages = 6 * blocks + 8  # + embedding, stream fusion, recovery and head
    return stages * max(int(cfg.dim * cfg.mlp_ratio), frames) * U32


@pytest.mark.parametrize("name", list(CASES))
def test_inference_and_training_paths_match_float64_reference(name: str) -> None:
    model = prunepose.create_model(name).eval()
    _randomise(model, seed=1)
    cfg = model.config
    x = torch.randn(2, cfg.num_frames, cfg.num_joints, cfg.in_channels, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        fast = model(x)
    with torch.enable_grad():  # the plain path (what training and export run)
        plain = model(x, kept=fast.kept)
    assert plain.pose3d.requires_grad
    ref = CASES[name](model, x, fast.kept)
    assert ref.abs().max() > 0.1  # outputs of size ~1, so the tolerance below is a relative one
    tol = _tolerance(model, cfg.num_frames)
    assert tol < 1e-3  # far below the >1e-2 a real mistake makes
    torch.testing.assert_close(fast.pose3d.double(), ref, rtol=0, atol=tol)
    torch.testing.assert_close(plain.pose3d.detach().double(), ref, rtol=0, atol=tol)


def test_inference_path_handles_a_batch_of_one_and_shorter_motionbert_clips() -> None:
    """Batch 1 (the benchmark's shape, where some reshapes become views) and F < num_frames for MotionBERT."""
    model = prunepose.create_model("motionbert_tiny").eval()
    _randomise(model, seed=3)
    x = torch.randn(1, 20, 17, 3, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        fast = model(x).pose3d
    ref = reference_motionbert(model, x, [])
    torch.testing.assert_close(fast.double(), ref, rtol=0, atol=_tolerance(model, 20))


def test_inference_path_leaves_its_input_alone() -> None:
    """The in-place kernels write only tensors they created (MotionBERT feeds one tensor to both streams)."""
    from prunepose.models.lifting.layers import Block

    block = Block(32, 4, 64).eval()
    _randomise(block, seed=5)
    x = torch.randn(3, 9, 32)
    before = x.clone()
    with torch.no_grad():
        out, _ = block(x)
    assert torch.equal(x, before)
    assert out.data_ptr() != x.data_ptr()


def test_hooks_and_autocast_get_the_plain_path() -> None:
    """FLOP counters and attention probes hook submodules, so a hooked model must call them; autocast
    (mixed dtypes) must not reach the in-place kernels."""
    model = prunepose.create_model("hot_mixste_tiny").eval()
    x = torch.randn(1, 27, 17, 2, generator=torch.Generator().manual_seed(6))
    seen: list[tuple[int, ...]] = []
    handle = model.STEblocks[0].attn.qkv.register_forward_hook(lambda m, a, out: seen.append(tuple(out.shape)))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    assert seen == [(27, 17, 96)]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x).pose3d
    assert out.dtype == torch.bfloat16 and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name", ["mixste_tiny", "hot_mixste_tiny", "tpc_mixste_243"])
def test_inference_path_is_bitwise_the_plain_path(name: str) -> None:
    """Bitwise, because HoT's frame selection on padded clips is decided by rounding-level near-ties: the
    inference path must keep the frames the plain path keeps."""
    overrides = {"num_frames": 27, "dim": 32, "depth": 3, "heads": 4, "token_num": 7, "layer_index": 2} \
        if name == "tpc_mixste_243" else {}
    model = prunepose.create_model(name, **overrides).eval()
    _randomise(model, seed=7)
    cfg = model.config
    x = torch.randn(3, cfg.num_frames, cfg.num_joints, cfg.in_channels, generator=torch.Generator().manual_seed(8))
    seen: dict[str, list[torch.Tensor]] = {"fast": [], "plain": []}
    poses: dict[str, torch.Tensor] = {}
    for mode, ctx in (("fast", torch.inference_mode), ("plain", torch.enable_grad)):
        for block in model.TTEblocks:  # a hook on the block itself would switch it to the plain path
            block.register_forward_hook(lambda m, a, out, mode=mode: seen[mode].append(out[0].detach().clone()))
        with ctx(), frame_tie_break(model, "index"):  # the default tie-break draws random noise
            out = model(x)
        for block in model.TTEblocks:
            block._forward_hooks.clear()
        seen[mode].extend(k.clone() for k in out.kept)
        poses[mode] = out.pose3d.detach().clone()
    # the hooks on TTEblocks put those on the plain path; the STEblocks (and everything feeding the first
    # selection in hot_mixste_tiny, layer_index 1) still ran the inference kernels
    assert len(seen["fast"]) == len(seen["plain"])
    for got, want in zip(seen["fast"], seen["plain"]):
        assert torch.equal(got, want)
    if cfg.recovery is None:
        assert torch.equal(poses["fast"], poses["plain"])
    else:  # TRA projects its queries once: the same row arithmetic, bitwise only if the BLAS rounds rows alike
        torch.testing.assert_close(poses["fast"], poses["plain"], rtol=0, atol=_tolerance(model, cfg.num_frames))


def test_inference_block_is_bitwise_the_plain_block_at_full_width() -> None:
    """A MixSTE-243 block (C 512, 8 heads, MLP 1024) on a full spatial batch (243 frames x 17 joints)."""
    from prunepose.models.lifting.layers import Block

    torch.manual_seed(9)
    block = Block(512, 8, 1024).eval()
    x = torch.randn(243, 17, 512)
    with torch.inference_mode():
        fast, _ = block(x)
    with torch.enable_grad():
        plain, _ = block(x)
    assert torch.equal(fast, plain.detach())
