"""GTPT models: parameter counts and thop MACs pinned to the reference table, MHGA against a per-group loop,
and the whole transformer against a plain transcription of the official forward (COCO and whole body,
pruned and unpruned)."""
from __future__ import annotations

import pytest
import torch

import prunepose
from prunepose.errors import ConfigError
from prunepose.nn.attention import GroupAttention
from prunepose.nn.backbones import build_backbone
from prunepose.profiling import count_params
from prunepose.profiling.flops import count_all
from prunepose.pruning import SoftmaxPoolTopKSelector, softmax_pool

COCO_RATES = (1.0, 0.7, 0.3, 0.1)
WB_RATES = (1.0, 0.7, 0.5, 0.3)

# name, params, thop GMACs, true GMACs (reference table: official code, eval branch, batch 1)
REFERENCE = [
    ("gtpt_t", 2_405_632, 0.663, 0.756),
    ("gtpt_s", 5_479_008, 1.626, 1.759),
    ("gtpt_b", 8_367_904, 3.647, 3.745),
    ("gtpt_t_wholebody", 2_421_120, 0.832, 0.970),
    ("gtpt_s_wholebody", 5_502_240, 1.994, 2.197),
    ("gtpt_b_wholebody", 8_391_136, 4.015, 4.183),
]


@pytest.fixture(scope="module")
def models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {name: prunepose.create_model(name).eval() for name, *_ in REFERENCE}


@pytest.mark.parametrize("name,params,thop,true", REFERENCE)
def test_params_and_macs_match_reference(models, name: str, params: int, thop: float, true: float) -> None:
    model = models[name]
    assert count_params(model, "all") == params
    assert count_params(model, "trainable") == params - model.pos_embed.numel()
    counts = count_all(model, torch.rand(1, 3, 256, 192), ("thop", "true"))
    assert counts["thop"] / 1e9 == pytest.approx(thop, rel=0.01)
    # COCO reproduces to 0.1 %; whole body is ~0.4 % above the official count because the pruning scores
    # here recompute the queries' logits (SDPA does not return the attention map the official code reuses).
    assert counts["true"] / 1e9 == pytest.approx(true, rel=0.01)


@pytest.mark.parametrize("name,params", [("gtpt_t", 44_352), ("gtpt_s", 143_360), ("gtpt_b", 3_032_256)])
def test_backbone_params_and_stride(name: str, params: int) -> None:
    module, channels, stride = build_backbone(name)
    assert sum(p.numel() for p in module.parameters()) == params
    assert stride == 4
    with torch.no_grad():
        assert module.eval()(torch.rand(1, 3, 64, 32)).shape == (1, channels, 16, 8)


def test_registry_has_gtpt() -> None:
    assert {r[0] for r in REFERENCE} <= set(prunepose.list_models("gtpt"))
    assert "tokenpose_s_v1" in prunepose.list_models()


# --------------------------------------------------------------------------------------- token counts
def _assert_valid_kept(kept: torch.Tensor, dense: tuple[int, ...]) -> None:
    for g, d in enumerate(dense):
        row = kept[0, g]
        assert (row[:d] == -1).all() and (row[d:] >= 0).all() and (row[d:] < 256).all()
        assert row[d:].unique().numel() == row.numel() - d


def test_token_counts_coco(models) -> None:
    model = models["gtpt_t"]
    with torch.no_grad():
        out = model(torch.rand(2, 3, 256, 192))
        entire = model(torch.rand(2, 3, 256, 192), pruning=False)
    assert out.simcc_x.shape == (2, 17, 384) and out.simcc_y.shape == (2, 17, 512)
    assert [tuple(k.shape) for k in out.kept] == [(2, 179), (2, 3, 76), (2, 3, 25)]
    for k in out.kept[1:]:
        _assert_valid_kept(k, (0, 0, 0))
    # group stages only choose among the tokens the coarse stage kept, and fine pruning within each group
    assert set(out.kept[1][0].flatten().tolist()) <= set(out.kept[0][0].tolist())
    for g in range(3):
        assert set(out.kept[2][0, g].tolist()) <= set(out.kept[1][0, g].tolist())
    assert entire.kept == [] and entire.simcc_x.shape == (2, 17, 384)  # unpruned: all 256 tokens everywhere


def test_token_counts_wholebody(models) -> None:
    model = models["gtpt_t_wholebody"]
    with torch.no_grad():
        out = model(torch.rand(1, 3, 256, 192))
        entire = model(torch.rand(1, 3, 256, 192), pruning=False)
    assert out.simcc_x.shape == (1, 133, 384) and out.simcc_y.shape == (1, 133, 512)
    assert [tuple(k.shape) for k in out.kept] == [(1, 179), (1, 3, 128), (1, 3, 76)]
    for k in out.kept[1:]:
        _assert_valid_kept(k, (68, 42, 6))  # face 68 + 60 visual, hands 42 + 86, feet 6 + 122; then 8/34/70
    # the unpruned pass still gives the dense tokens room in each 256-token group budget
    assert [tuple(k.shape) for k in entire.kept] == [(1, 3, 256)]
    _assert_valid_kept(entire.kept[0], (68, 42, 6))


# ------------------------------------------------------------------------------------ MHGA vs a loop
def _loop_group_attention(attn: GroupAttention, x: torch.Tensor, blocked: tuple[int, ...]) -> torch.Tensor:
    """Per batch item and group: keys = [all groups' sparse tokens, own tokens], blocked keys masked, explicit
    softmax. Written independently of GroupAttention's batched layout."""
    b, g, n, c = x.shape
    s, h = attn.num_sparse, attn.heads
    d = c // h
    out = torch.zeros_like(x)
    for bi in range(b):
        sparse = x[bi, :, :s].reshape(g * s, c)
        for gi in range(g):
            own = x[bi, gi]
            kv_in = torch.cat((sparse, own[s:]), dim=0)
            q = attn.qkv(own)[:, :c]
            k = attn.qkv(kv_in)[:, c:2 * c]
            v = attn.qkv(kv_in)[:, 2 * c:]
            heads = []
            for hi in range(h):
                sl = slice(hi * d, (hi + 1) * d)
                logits = q[:, sl] @ k[:, sl].T * attn.scale
                logits[:, list(blocked)] = float("-inf")
                heads.append(torch.softmax(logits, dim=-1) @ v[:, sl])
            out[bi, gi] = attn.proj(torch.cat(heads, dim=-1))
    return out


def test_group_attention_matches_loop() -> None:
    torch.manual_seed(0)
    attn = GroupAttention(dim=32, heads=4, scale=32**-0.5, num_sparse=6, num_groups=3, blocked_keys=(0,))
    x = torch.randn(2, 3, 6 + 11, 32)
    with torch.no_grad():
        out, logits = attn(x, query_rows=6)
        ref = _loop_group_attention(attn, x, (0,))
    assert torch.isfinite(out).all()  # the dummy's query row included
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # logits of the first 6 queries of each group over the group's own 11 tokens
    qkv = attn.qkv(x).reshape(2, 3, 17, 3, 4, 8)
    q, k = qkv[:, :, :6, 0].transpose(2, 3), qkv[:, :, 6:, 1].transpose(2, 3)  # (B, G, H, n, D)
    torch.testing.assert_close(logits, q @ k.transpose(-1, -2) * attn.scale, atol=1e-5, rtol=1e-5)
    # visual tokens of one group never reach another group's queries
    y = x.clone()
    y[:, 2, 6:] += 1.0
    with torch.no_grad():
        out2 = attn(y)[0]
    torch.testing.assert_close(out2[:, :2], out[:, :2])


def test_group_attention_rejects_bad_shapes() -> None:
    attn = GroupAttention(dim=16, heads=2, scale=0.25, num_sparse=6)
    with pytest.raises(ValueError, match="expects"):
        attn(torch.randn(1, 2, 10, 16))
    with pytest.raises(ValueError, match="blocked_keys"):
        GroupAttention(dim=16, heads=2, scale=0.25, num_sparse=1, num_groups=1, blocked_keys=(0,))


# ------------------------------------------------------------------------------------------ selector
def test_softmax_pool_selector() -> None:
    sel = SoftmaxPoolTopKSelector()
    assert [sel.budget(256, r) for r in (1.0, 0.7, 0.5, 0.3, 0.1)] == [256, 179, 128, 76, 25]
    x = torch.randn(2, 8, 6, 50)
    expected = (x.flatten(1, 2) * x.flatten(1, 2).softmax(1)).sum(1)
    torch.testing.assert_close(sel.scores(x), expected)
    torch.testing.assert_close(softmax_pool(x, 1), (x * x.softmax(1)).sum(1))
    # a masked query row is the official -1e5 padding row: weight exactly 0
    mask = torch.ones(6, dtype=torch.bool)
    mask[0] = False
    padded = x.clone()
    padded[:, :, 0] = -1e5
    torch.testing.assert_close(sel.scores(x, mask), sel.scores(padded))
    torch.testing.assert_close(sel.scores(x, mask), sel.scores(x[:, :, 1:]))
    assert sel.select(x, 7).shape == (2, 7)
    with pytest.raises(ValueError):
        sel.budget(256, 0.0)


# ------------------------------------------------------------ the official forward, transcribed plainly
def _attn_official(block, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = block.attn
    b, n, c = x.shape
    q, k, v = (t.reshape(b, n, a.heads, -1).transpose(1, 2) for t in a.qkv(block.norm1(x)).chunk(3, dim=-1))
    dots = torch.einsum("bhid,bhjd->bhij", q, k) * a.scale
    out = torch.einsum("bhij,bhjd->bhid", dots.softmax(dim=-1), v).transpose(1, 2).reshape(b, n, c)
    return x + a.proj(out), dots


def _group_attn_official(block, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Official GroupAttention: 18 shared sparse keys (dummy included), mask = the dummy's key column for
    every query and the dummy's whole query row, filled with -finfo.max."""
    a = block.attn
    b, g, n, c = x.shape
    kk = 6
    q, k, v = (t.reshape(b, g, n, a.heads, -1).permute(0, 3, 1, 2, 4) for t in a.qkv(block.norm1(x)).chunk(3, -1))
    k = torch.cat((k[:, :, :, :kk].flatten(2, 3).unsqueeze(2).repeat(1, 1, g, 1, 1), k[:, :, :, kk:]), 3)
    v = torch.cat((v[:, :, :, :kk].flatten(2, 3).unsqueeze(2).repeat(1, 1, g, 1, 1), v[:, :, :, kk:]), 3)
    dots = torch.einsum("bhgid,bhgjd->bhgij", q, k) * a.scale
    mask = torch.zeros_like(dots, dtype=torch.bool)
    mask[..., 0] = True
    mask[:, :, 0, 0, :] = True
    dots = dots.masked_fill(mask, -torch.finfo(dots.dtype).max)
    out = torch.einsum("bhgij,bhgjd->bhgid", dots.softmax(-1), v).permute(0, 2, 3, 1, 4).reshape(b, g, n, c)
    return x + a.proj(out), dots


def _ffn(block, x: torch.Tensor) -> torch.Tensor:
    return x + block.mlp(block.norm2(x))


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(t, idx.dim() - 1, idx[..., None].expand(*idx.shape, t.shape[-1]))


def _reference_transformer(model, visual: torch.Tensor, rates: tuple[float, ...]) -> tuple[torch.Tensor, ...]:
    wb = model.config.num_keypoints == 133
    keep = [rates[i] for i in range(4) for _ in range(3)]
    b, n_img, c = visual.shape
    x = torch.cat((model.human_token.expand(b, -1, -1), visual), 1)
    kk = 1
    pos = model.pos_embed.repeat(b, 1, 1)
    sparse_emb = torch.cat((model.part_tokens, model.keypoint_tokens), 1) if wb else model.keypoint_tokens
    for idx, block in enumerate(model.coarse_blocks):
        if idx > 0:
            x = torch.cat((x[:, :kk], x[:, kk:] + pos), 1)
        x, dots = _attn_official(block, x)
        tgt = int(n_img * keep[idx])
        if x.shape[1] - kk != tgt:
            order = softmax_pool(dots[:, :, :kk, kk:].flatten(1, 2), 1).topk(tgt, dim=1).indices
            x, pos = torch.cat((x[:, :kk], _take(x[:, kk:], order)), 1), _take(pos, order)
        if idx == 3:
            x = torch.cat((x[:, :1] + sparse_emb, x[:, 1:]), 1)
            kk = x.shape[1] - pos.shape[1]
        x = _ffn(block, x)
    part, kp, img = (x[:, :5], x[:, 5:kk], x[:, kk:]) if wb else (None, x[:, :kk], x[:, kk:])
    kp = torch.cat((kp[:, :1], kp), 1).reshape(b, 3, 6, c)
    cm = model.group_mask(img).reshape(b, -1, 3, c).permute(0, 2, 1, 3)
    img, pos = img[:, None] * cm, pos[:, None] * cm
    now, tgt = img.shape[2], int(n_img * keep[6])
    last = dots[:, :, :kk, kk:]
    dense_nums = [68, 42, 6]
    if not wb and now != tgt:
        padded = torch.cat((-1e5 * torch.ones_like(last[:, :, :1]), last), 2)  # (B, H, 18, N)
        grouped = padded.reshape(b, -1, 3, 6, now).permute(0, 2, 1, 3, 4).flatten(2, 3)
        order = softmax_pool(grouped, 2).topk(tgt, dim=2).indices
        img, pos = _take(img, order), _take(pos, order)
    elif wb:
        pa, ka = last[:, :, :5], last[:, :, 5:]
        per_group = [torch.cat((pa[:, :, 0:1], ka[:, :, 0:5]), 2), torch.cat((pa[:, :, 1:3], ka[:, :, 5:11]), 2),
                     torch.cat((pa[:, :, 3:5], ka[:, :, 11:17]), 2)]
        score = torch.stack([softmax_pool(a.flatten(1, 2), 1) for a in per_group], 1)
        order = torch.argsort(score, dim=2, descending=True)
        img, pos = _take(img, order), _take(pos, order)
        de = model.dense_tokens
        dense = [part[:, 0:1].repeat(1, 68, 1) + de[:, :68],
                 torch.cat((part[:, 1:2].repeat(1, 21, 1), part[:, 2:3].repeat(1, 21, 1)), 1) + de[:, 68:110],
                 torch.cat((part[:, 3:4].repeat(1, 3, 1), part[:, 4:5].repeat(1, 3, 1)), 1) + de[:, 110:116]]
        cut = now - tgt
        img = torch.stack([torch.cat((dense[g], img[:, g, :now - dense_nums[g] - cut]), 1) for g in range(3)], 1)
        pos = torch.stack([torch.cat((torch.zeros_like(dense[g]), pos[:, g, :now - dense_nums[g] - cut]), 1)
                           for g in range(3)], 1)
    x = torch.cat((kp, img), 2)
    kk = 6
    for idx, block in enumerate(model.fine_blocks):
        x = torch.cat((x[:, :, :kk], x[:, :, kk:] + pos), 2)
        x, dots = _group_attn_official(block, x)
        tgt = int(n_img * keep[idx + 6])
        if x.shape[2] - kk != tgt:
            if not wb:
                order = softmax_pool(dots[:, :, :, :kk, 3 * kk:].permute(0, 2, 1, 3, 4).flatten(2, 3), 2)
                order = order.topk(tgt, dim=2).indices
                x, pos = torch.cat((x[:, :, :kk], _take(x[:, :, kk:], order)), 2), _take(pos, order)
            else:
                xs, ps = [], []
                for g, dn in enumerate(dense_nums):
                    score = softmax_pool(dots[:, :, g, :kk + dn, 3 * kk + dn:].flatten(1, 2), 1)
                    order = score.topk(tgt - dn, dim=1).indices
                    xs.append(torch.cat((x[:, g, :kk + dn], _take(x[:, g, kk + dn:], order)), 1))
                    ps.append(torch.cat((pos[:, g, :dn], _take(pos[:, g, dn:], order)), 1))
                x, pos = torch.stack(xs, 1), torch.stack(ps, 1)
        x = _ffn(block, x)
    out = x[:, :, :kk].flatten(1, 2)[:, 1:]
    if wb:
        out = torch.cat((out, x[:, 2, kk:kk + 6], x[:, 0, kk:kk + 68], x[:, 1, kk:kk + 42]), 1)
    return model.head_x(out), model.head_y(out)


@pytest.mark.parametrize("name,rates", [("gtpt_t", COCO_RATES), ("gtpt_t_wholebody", WB_RATES)])
def test_transformer_matches_official_algorithm(models, name: str, rates: tuple[float, ...]) -> None:
    model = models[name]
    torch.manual_seed(1)
    visual = torch.randn(2, 256, model.config.dim) + model.pos_embed
    with torch.no_grad():
        for pruning, r in ((True, rates), (False, (1.0,) * 4)):
            out = model.run_transformer(visual, pruning=pruning)
            ref_x, ref_y = _reference_transformer(model, visual, r)
            torch.testing.assert_close(out.simcc_x, ref_x, atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(out.simcc_y, ref_y, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- training-side behaviour
def test_forward_pair_and_backward() -> None:
    torch.manual_seed(0)
    model = prunepose.create_model("gtpt_t_wholebody").train()
    images = torch.randn(2, 3, 256, 192)
    pruned, entire = model.forward_pair(images)
    assert pruned.simcc_x.shape == entire.simcc_x.shape == (2, 133, 384)
    assert len(pruned.kept) == 3 and len(entire.kept) == 1
    loss = pruned.simcc_x.logsumexp(-1).mean() + entire.simcc_y.logsumexp(-1).mean()
    loss.backward()
    for name in ("human_token", "keypoint_tokens", "part_tokens", "dense_tokens", "group_mask.0.weight",
                 "fine_blocks.5.attn.qkv.weight", "backbone.conv1.0.weight", "head_x.1.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert model.pos_embed.grad is None


def test_pruning_flag_and_state_dict(models) -> None:
    model = models["gtpt_t"]
    images = torch.rand(1, 3, 256, 192)
    with torch.no_grad():
        default = model(images)
        model.pruning = False
        try:
            entire = model(images)
        finally:
            model.pruning = True
        torch.testing.assert_close(entire.simcc_x, model(images, pruning=False).simcc_x)
    assert len(default.kept) == 3 and entire.kept == []
    with torch.no_grad():
        pruned, unpruned = model.forward_pair(images)  # one backbone pass, both transformer passes
    torch.testing.assert_close(pruned.simcc_y, default.simcc_y)
    torch.testing.assert_close(unpruned.simcc_y, entire.simcc_y)
    assert model.config.prune_layers == (3, 6, 9)
    keys = model.state_dict().keys()
    assert not any(k.startswith("ema") for k in keys)  # one copy; the EMA lives in the engine
    assert not any("shared_keys" in k or k.startswith("_") for k in keys)  # layout buffers are not weights


def test_input_errors_are_clear(models) -> None:
    model = models["gtpt_t"]
    with pytest.raises(ConfigError, match=r"built for 256x192"):
        model(torch.rand(1, 3, 224, 224))
    with pytest.raises(ConfigError, match=r"expected images of shape \(B, 3, 256, 192\)"):
        model(torch.rand(3, 256, 192))
    with pytest.raises(ConfigError, match="float"):
        model(torch.zeros(1, 3, 256, 192, dtype=torch.uint8))


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="no room"):
        prunepose.create_model("gtpt_t_wholebody", keep_rates=(1.0, 0.7, 0.2, 0.1))
    with pytest.raises(ConfigError, match="must not increase"):
        prunepose.create_model("gtpt_t", keep_rates=(1.0, 0.5, 0.7, 0.1))
    with pytest.raises(ConfigError, match="skeleton"):
        prunepose.create_model("gtpt_t", num_keypoints=133)


def test_per_layer_schedule_pruning_at_last_coarse_layer() -> None:
    """One rate per layer: the coarse encoder prunes twice (layers 3 and 5), and the grouping then scores
    only the tokens that survived layer 5."""
    rates = (1.0, 1.0, 1.0, 0.8, 0.8, 0.7, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3)
    model = prunepose.create_model("gtpt_t", keep_rates=rates).eval()
    assert model.config.prune_layers == (3, 5, 6, 9)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 256, 192))
    assert [tuple(k.shape) for k in out.kept] == [(1, 204), (1, 179), (1, 3, 128), (1, 3, 76)]
    assert set(out.kept[1][0].tolist()) <= set(out.kept[0][0].tolist())
    assert set(out.kept[2][0].flatten().tolist()) <= set(out.kept[1][0].tolist())
