"""TokenPose / PPT models: parameter counts pinned to the reference table, and the forward pass checked
against a plain re-implementation of the official algorithm (explicit softmax attention, loops)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import prunepose
from prunepose.errors import ConfigError
from prunepose.nn.posenc import sine_position_encoding_2d
from prunepose.profiling import count_params

# (name, all params incl. stored sine PE, HRNet-counter params) from the reference measurements.
PARAMS = [
    ("tokenpose_t", 5_865_600, 5_802_816),
    ("tokenpose_s_v1", 6_669_888, 6_607_104),
    ("tokenpose_s_v2", 6_374_976, 6_213_888),
    ("tokenpose_b", 13_514_368, 13_451_584),
    ("tokenpose_l_d24", 27_531_552, 27_459_552),
    ("tokenpose_l_d6_mpii", 21_492_448, None),
    ("ppt_s", 6_669_888, 6_607_104),
    ("ppt_b", 13_514_368, 13_451_584),
    ("ppt_l_d6", 20_349_216, 20_291_040),
]


@pytest.mark.parametrize("name,total,hrnet", PARAMS)
def test_parameter_counts_match_reference(name: str, total: int, hrnet: int | None) -> None:
    model = prunepose.create_model(name)
    assert count_params(model, "all") == total
    assert count_params(model, "trainable") == total - model.pos_embed.numel()
    if hrnet is not None:
        assert count_params(model, "hrnet") == hrnet


def test_registry_lists_and_rejects() -> None:
    names = prunepose.list_models()
    for expected in ["tokenpose_t", "tokenpose_s_v1", "tokenpose_s_v2", "tokenpose_b", "tokenpose_l_d24",
                     "tokenpose_l_d6_mpii", "ppt_s", "ppt_b", "ppt_l_d6"]:
        assert expected in names
    with pytest.raises(ConfigError, match="unknown model"):
        prunepose.create_model("tokenpose_xxl")
    with pytest.raises(ConfigError, match="no config field"):
        prunepose.create_model("tokenpose_s_v1", not_a_field=3)


def _sine_pe_by_formula(h: int, w: int, dim: int) -> np.ndarray:
    """The reference's description transcribed literally with Python loops."""
    half = dim // 2
    out = np.zeros((h * w, dim))
    for r in range(h):
        for c in range(w):
            y = (r + 1) / (h + 1e-6) * 2 * math.pi
            x = (c + 1) / (w + 1e-6) * 2 * math.pi
            for i in range(half):
                freq = 10000 ** (2 * (i // 2) / half)
                f = math.sin if i % 2 == 0 else math.cos
                out[r * w + c, i] = f(y / freq)
                out[r * w + c, half + i] = f(x / freq)
    return out


def test_sine_pe_matches_formula() -> None:
    pe = sine_position_encoding_2d(4, 3, 16)[0].numpy()
    np.testing.assert_allclose(pe, _sine_pe_by_formula(4, 3, 16), atol=1e-5)


def _reference_forward(model, images: torch.Tensor, keep_ratio: float = 1.0) -> torch.Tensor:
    """Official TokenPose/PPT algorithm, written plainly: einsum attention with an explicit softmax, channel-last
    patch flattening, PE re-added before every layer after the first of each stack, pruning after the
    attention residual at prune layers with ceil(r * N) tokens chosen by head-mean, keypoint-sum attention."""
    c = model.config
    j = c.num_keypoints
    feat = model.backbone(images)
    b, ch, fh, fw = feat.shape
    pw, ph = c.patch_size
    patches = []
    for gy in range(fh // ph):
        for gx in range(fw // pw):
            patch = feat[:, :, gy * ph:(gy + 1) * ph, gx * pw:(gx + 1) * pw]  # (b, ch, ph, pw)
            patches.append(patch.permute(0, 2, 3, 1).reshape(b, -1))  # (p1 p2 c)
    x = model.patch_embed(torch.stack(patches, 1)) + model.pos_embed
    x = torch.cat([model.keypoint_tokens.expand(b, -1, -1), x], 1)
    pos = model.pos_embed.expand(b, -1, -1)
    outs = []
    for idx, blk in enumerate(model.blocks):
        if idx % c.depth != 0:
            x = torch.cat([x[:, :j], x[:, j:] + pos], 1)
        h = blk.norm1(x)
        qkv = blk.attn.qkv(h).chunk(3, dim=-1)
        q, k, v = (t.reshape(b, t.shape[1], c.heads, -1).transpose(1, 2) for t in qkv)
        scale = (c.dim // c.heads) ** -0.5 if c.attn_scale == "head" else c.dim ** -0.5
        attn = torch.einsum("bhid,bhjd->bhij", q, k).mul(scale).softmax(-1)
        o = torch.einsum("bhij,bhjd->bhid", attn, v).transpose(1, 2).reshape(b, -1, c.dim)
        x = x + blk.attn.proj(o)
        if idx in c.prune_layers and keep_ratio < 1:
            n = x.shape[1] - j
            kk = math.ceil(n * keep_ratio)
            score = (attn[:, :, :j, j:].sum(1) / c.heads).sum(1)
            keep = score.topk(kk, dim=1)[1]
            x = torch.cat([x[:, :j], torch.stack([x[i, j:][keep[i]] for i in range(b)])], 1)
            pos = torch.stack([pos[i][keep[i]] for i in range(b)])
        x = x + blk.mlp(blk.norm2(x))
        if idx % c.depth == c.depth - 1:
            outs.append(x[:, :j])
    tokens = torch.cat(outs, -1)
    return model.head(tokens).reshape(b, j, c.heatmap_size[1], c.heatmap_size[0])


@pytest.mark.parametrize("name,overrides", [
    ("tokenpose_s_v1", {"depth": 4}),
    ("tokenpose_t", {"depth": 3}),
    ("tokenpose_l_d24", {"depth": 2, "backbone": "none", "patch_size": (12, 16)}),
    ("ppt_s", {}),
])
def test_forward_matches_plain_reference(name: str, overrides: dict) -> None:
    torch.manual_seed(0)
    model = prunepose.create_model(name, **overrides).eval()
    images = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        out = model(images)
        ref = _reference_forward(model, images, model.keep_ratio)
    assert out.heatmaps.shape == (2, 17, 64, 48)
    torch.testing.assert_close(out.heatmaps, ref, atol=2e-5, rtol=1e-4)


def test_ppt_kept_counts_and_identity_at_ratio_one() -> None:
    torch.manual_seed(0)
    ppt = prunepose.create_model("ppt_s").eval()
    tp = prunepose.create_model("tokenpose_s_v1").eval()
    tp.load_state_dict(ppt.state_dict())
    images = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        out = ppt(images)
        assert [k.shape for k in out.kept] == [(2, 180), (2, 126), (2, 89)]
        # each stage keeps a subset of the previous stage's grid positions, all distinct and on the grid
        for prev, cur in zip(out.kept[:-1], out.kept[1:]):
            for i in range(2):
                assert set(cur[i].tolist()) <= set(prev[i].tolist())
                assert len(set(cur[i].tolist())) == cur.shape[1]
        ppt.keep_ratio = 1.0
        same = ppt(images)
        assert same.kept == []
        assert torch.equal(same.heatmaps, tp(images).heatmaps)


def test_attention_rows_match_full_attention() -> None:
    torch.manual_seed(0)
    model = prunepose.create_model("tokenpose_s_v1", depth=2).eval()
    blk = model.blocks[0]
    x = torch.randn(2, 17 + 256, 192)
    _, rows = blk.attn(x, query_rows=17)
    q, k, _ = (t.reshape(2, -1, 8, 24).transpose(1, 2) for t in blk.attn.qkv(x).chunk(3, -1))
    full = (q @ k.transpose(-1, -2) * 192 ** -0.5).softmax(-1)
    torch.testing.assert_close(rows, full[:, :, :17])
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 192), return_attention=True)
    assert len(out.attention) == 2 and out.attention[0].shape == (1, 17, 256)
    # attention over visual tokens is a part of a probability distribution: sums to < 1 per keypoint
    assert bool((out.attention[0].sum(-1) < 1).all()) and bool((out.attention[0] >= 0).all())


def test_bad_input_sizes_give_clear_errors() -> None:
    model = prunepose.create_model("tokenpose_s_v1", depth=1)
    with pytest.raises(ConfigError, match="built for 256x192"):
        model(torch.randn(1, 3, 256, 256))
    with pytest.raises(ConfigError, match=r"\(B, 3, 256, 192\)"):
        model(torch.randn(3, 256, 192))
    with pytest.raises(ConfigError, match="float"):
        model(torch.zeros(1, 3, 256, 192, dtype=torch.uint8))


def test_backward_runs_through_pruning() -> None:
    model = prunepose.create_model("ppt_s", depth=5, prune_layers=(1, 3))
    out = model(torch.randn(2, 3, 256, 192))
    out.heatmaps.square().mean().backward()
    assert model.keypoint_tokens.grad is not None and model.pos_embed.grad is None
