"""Official TokenPose / PPT / GTPT checkpoints -> prunepose weights.

The official key layout is generated here from the reference description (TokenPose ``tokenpose_base.py``,
HRNet ``_make_transition_layer`` / ``_make_fuse_layers`` naming, GTPT's ``pose_gtpt_*`` modules with their
ShuffleNet stem and student + EMA copies), independently of our module names, so a renaming bug in the
converter or a naming drift in our modules shows up as a failure. Where tensors land is checked through
module attributes (``model.blocks[9].attn.qkv``), not through our keys.
"""
from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import pytest
import torch

import prunepose
from prunepose.convert import convert_checkpoint, convert_official_state_dict, guess_official_architecture
from prunepose.convert.cli import add_convert_parser
from prunepose.errors import PrunePoseError
from prunepose.weights import load_weights

DIM = 192
Shapes = dict[str, tuple[int, ...]]


# ------------------------------------------------------------------------------------------------
# Official layout, written from the description
# ------------------------------------------------------------------------------------------------


def _bn(out: Shapes, name: str, c: int) -> None:
    for p in ("weight", "bias", "running_mean", "running_var"):
        out[f"{name}.{p}"] = (c,)
    out[f"{name}.num_batches_tracked"] = ()


def _stem(out: Shapes, p: str) -> None:
    """conv1/bn1/conv2/bn2 + layer1 (4 bottlenecks 64 -> 256)."""
    out[f"{p}conv1.weight"] = (64, 3, 3, 3)
    _bn(out, f"{p}bn1", 64)
    out[f"{p}conv2.weight"] = (64, 64, 3, 3)
    _bn(out, f"{p}bn2", 64)
    for b in range(4):
        cin = 64 if b == 0 else 256
        q = f"{p}layer1.{b}."
        out[q + "conv1.weight"] = (64, cin, 1, 1)
        _bn(out, q + "bn1", 64)
        out[q + "conv2.weight"] = (64, 64, 3, 3)
        _bn(out, q + "bn2", 64)
        out[q + "conv3.weight"] = (256, 64, 1, 1)
        _bn(out, q + "bn3", 256)
        if b == 0:
            out[q + "downsample.0.weight"] = (256, 64, 1, 1)
            _bn(out, q + "downsample.1", 256)


def _hr_stage(out: Shapes, p: str, channels: list[int], modules: int) -> None:
    """HRNet stage; the last module of stage 3 fuses into branch 0 only (multi_scale_output=False)."""
    for m in range(modules):
        q = f"{p}.{m}."
        for b, c in enumerate(channels):
            for k in range(4):
                r = f"{q}branches.{b}.{k}."
                out[r + "conv1.weight"] = (c, c, 3, 3)
                _bn(out, r + "bn1", c)
                out[r + "conv2.weight"] = (c, c, 3, 3)
                _bn(out, r + "bn2", c)
        outputs = len(channels) if (m < modules - 1 or len(channels) == 2) else 1
        for i in range(outputs):
            for j in range(len(channels)):
                f = f"{q}fuse_layers.{i}.{j}."
                if j > i:
                    out[f + "0.weight"] = (channels[i], channels[j], 1, 1)
                    _bn(out, f + "1", channels[i])
                elif j < i:
                    for k in range(i - j):
                        c_out = channels[i] if k == i - j - 1 else channels[j]
                        out[f"{f}{k}.0.weight"] = (c_out, channels[j], 3, 3)
                        _bn(out, f"{f}{k}.1", c_out)


def _hrnet(out: Shapes, width: int) -> None:
    p = "pre_feature."
    _stem(out, p)
    w = width
    # transition1: branch 0 changes width (flat Sequential), branch 1 is new (Sequential of Sequential).
    out[p + "transition1.0.0.weight"] = (w, 256, 3, 3)
    _bn(out, p + "transition1.0.1", w)
    out[p + "transition1.1.0.0.weight"] = (2 * w, 256, 3, 3)
    _bn(out, p + "transition1.1.0.1", 2 * w)
    _hr_stage(out, p + "stage2", [w, 2 * w], 1)
    out[p + "transition2.2.0.0.weight"] = (4 * w, 2 * w, 3, 3)
    _bn(out, p + "transition2.2.0.1", 4 * w)
    _hr_stage(out, p + "stage3", [w, 2 * w, 4 * w], 4)


def _prenorm_layer(out: Shapes, q: str, dim: int) -> None:
    """[Residual(PreNorm(Attention)), Residual(PreNorm(FeedForward))] with MLP ratio 3, qkv without bias."""
    out[q + "0.fn.norm.weight"] = out[q + "0.fn.norm.bias"] = (dim,)
    out[q + "0.fn.fn.to_qkv.weight"] = (3 * dim, dim)
    out[q + "0.fn.fn.to_out.0.weight"] = (dim, dim)
    out[q + "0.fn.fn.to_out.0.bias"] = (dim,)
    out[q + "1.fn.norm.weight"] = out[q + "1.fn.norm.bias"] = (dim,)
    out[q + "1.fn.fn.net.0.weight"] = (3 * dim, dim)
    out[q + "1.fn.fn.net.0.bias"] = (3 * dim,)
    out[q + "1.fn.fn.net.3.weight"] = (dim, 3 * dim)
    out[q + "1.fn.fn.net.3.bias"] = (dim,)


def _transformer(out: Shapes, p: str, joints: int, tokens: int, patch_dim: int, depth: int, stacks: int,
                 heatmap: int = 48 * 64) -> None:
    out[p + "keypoint_token"] = (1, joints, DIM)
    out[p + "pos_embedding"] = (1, tokens, DIM)
    out[p + "patch_to_embedding.weight"] = (DIM, patch_dim)
    out[p + "patch_to_embedding.bias"] = (DIM,)
    for s in ([""] if stacks == 1 else ["1", "2", "3"]):
        for i in range(depth):
            _prenorm_layer(out, f"{p}transformer{s}.layers.{i}.", DIM)
    if stacks == 1:
        hidden = heatmap // 8
        out[p + "mlp_head.0.weight"] = out[p + "mlp_head.0.bias"] = (DIM,)
        out[p + "mlp_head.1.weight"] = (hidden, DIM)
        out[p + "mlp_head.1.bias"] = (hidden,)
        out[p + "mlp_head.2.weight"] = out[p + "mlp_head.2.bias"] = (hidden,)
        out[p + "mlp_head.3.weight"] = (heatmap, hidden)
        out[p + "mlp_head.3.bias"] = (heatmap,)
    else:
        out[p + "mlp_head.0.weight"] = out[p + "mlp_head.0.bias"] = (3 * DIM,)
        out[p + "mlp_head.1.weight"] = (heatmap, 3 * DIM)
        out[p + "mlp_head.1.bias"] = (heatmap,)


def official_shapes(arch: str) -> Shapes:
    """Key -> shape of an official COCO 256x192 checkpoint: T, S (v1), B, L/D24 or PPT-L/D6."""
    out: Shapes = {}
    if arch == "T":
        _transformer(out, "transformer.", 17, 256, 3 * 16 * 12, 12, 1)
    elif arch == "S":
        _stem(out, "features.")
        _transformer(out, "features.", 17, 256, 256 * 4 * 3, 12, 1)
    elif arch == "B":
        _hrnet(out, 32)
        _transformer(out, "transformer.", 17, 256, 32 * 4 * 3, 12, 1)
    elif arch == "L":
        _hrnet(out, 48)
        _transformer(out, "transformer.", 17, 256, 48 * 4 * 3, 8, 3)
    elif arch == "L_D6_PPT":
        _hrnet(out, 48)
        _transformer(out, "transformer.", 17, 256, 48 * 4 * 3, 6, 1)
    else:
        raise ValueError(arch)
    return out


_CACHE: dict[str, dict[str, torch.Tensor]] = {}


def official_state(arch: str) -> dict[str, torch.Tensor]:
    """A random official-style state dict (cached; callers must not modify it in place)."""
    if arch not in _CACHE:
        g = torch.Generator().manual_seed(len(arch))
        _CACHE[arch] = {
            k: torch.randint(0, 1000, s, generator=g) if k.endswith("num_batches_tracked")
            else torch.randn(s, generator=g)
            for k, s in official_shapes(arch).items()
        }
    return _CACHE[arch]


def _loaded(model_name: str, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The model with the converted weights loaded strictly (built on meta, so no time goes to init)."""
    with torch.device("meta"):
        model = prunepose.create_model(model_name)
    model.load_state_dict(convert_official_state_dict(state, model_name), strict=True, assign=True)
    return model


# ------------------------------------------------------------------------------------------------
# Conversion
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch,model_name", [
    ("T", "tokenpose_t"), ("S", "tokenpose_s_v1"), ("S", "ppt_s"), ("B", "tokenpose_b"), ("B", "ppt_b"),
    ("L", "tokenpose_l_d24"), ("L_D6_PPT", "ppt_l_d6"),
])
def test_converts_and_loads_strictly(arch: str, model_name: str) -> None:
    src = official_state(arch)
    model = _loaded(model_name, src)
    p = "features." if arch == "S" else "transformer."
    torch.testing.assert_close(model.keypoint_tokens, src[p + "keypoint_token"], rtol=0, atol=0)
    torch.testing.assert_close(model.pos_embed, src[p + "pos_embedding"], rtol=0, atol=0)
    torch.testing.assert_close(model.patch_embed.weight, src[p + "patch_to_embedding.weight"], rtol=0, atol=0)
    last_head = "mlp_head.1.weight" if arch == "L" else "mlp_head.3.weight"
    torch.testing.assert_close(model.head[-1].weight, src[p + last_head], rtol=0, atol=0)
    torch.testing.assert_close(model.head[0].bias, src[p + "mlp_head.0.bias"], rtol=0, atol=0)
    if arch != "L":
        q = f"{p}transformer.layers.3."
        blk = model.blocks[3]
        torch.testing.assert_close(blk.attn.qkv.weight, src[q + "0.fn.fn.to_qkv.weight"], rtol=0, atol=0)
        torch.testing.assert_close(blk.attn.proj.bias, src[q + "0.fn.fn.to_out.0.bias"], rtol=0, atol=0)
        torch.testing.assert_close(blk.norm1.weight, src[q + "0.fn.norm.weight"], rtol=0, atol=0)
        torch.testing.assert_close(blk.norm2.bias, src[q + "1.fn.norm.bias"], rtol=0, atol=0)
        torch.testing.assert_close(blk.mlp.fc1.weight, src[q + "1.fn.fn.net.0.weight"], rtol=0, atol=0)
        torch.testing.assert_close(blk.mlp.fc2.weight, src[q + "1.fn.fn.net.3.weight"], rtol=0, atol=0)
    if arch == "S":
        torch.testing.assert_close(model.backbone.conv1.weight, src["features.conv1.weight"], rtol=0, atol=0)
        torch.testing.assert_close(model.backbone.layer1[0].downsample[1].running_var,
                                   src["features.layer1.0.downsample.1.running_var"], rtol=0, atol=0)
    if arch in ("B", "L", "L_D6_PPT"):
        bb = model.backbone
        torch.testing.assert_close(bb.bn2.running_mean, src["pre_feature.bn2.running_mean"], rtol=0, atol=0)
        # New transition branches are nested one level deeper in HRNet; find the conv by module type.
        conv = next(m for m in bb.transition1[1].modules() if isinstance(m, torch.nn.Conv2d))
        torch.testing.assert_close(conv.weight, src["pre_feature.transition1.1.0.0.weight"], rtol=0, atol=0)
        bn = next(m for m in bb.transition2[2].modules() if isinstance(m, torch.nn.BatchNorm2d))
        torch.testing.assert_close(bn.running_var, src["pre_feature.transition2.2.0.1.running_var"], rtol=0, atol=0)
        assert int(bn.num_batches_tracked) == int(src["pre_feature.transition2.2.0.1.num_batches_tracked"])
        fuse = bb.stage3[3].fuse_layers[0][2][1]  # last module: branch 2 -> 0 (1x1 conv, BN, upsample)
        torch.testing.assert_close(fuse.weight, src["pre_feature.stage3.3.fuse_layers.0.2.1.weight"], rtol=0, atol=0)
        torch.testing.assert_close(bb.stage2[0].branches[1][3].conv2.weight,
                                   src["pre_feature.stage2.0.branches.1.3.conv2.weight"], rtol=0, atol=0)


def test_l_stacks_are_numbered_globally() -> None:
    src = official_state("L")
    model = _loaded("tokenpose_l_d24", src)
    for stack, layer, block in [(1, 0, 0), (2, 1, 9), (3, 7, 23)]:
        q = f"transformer.transformer{stack}.layers.{layer}."
        torch.testing.assert_close(model.blocks[block].attn.qkv.weight, src[q + "0.fn.fn.to_qkv.weight"],
                                   rtol=0, atol=0)
        torch.testing.assert_close(model.blocks[block].mlp.fc2.bias, src[q + "1.fn.fn.net.3.bias"], rtol=0, atol=0)


def test_wrappers_and_module_prefix() -> None:
    src = official_state("S")
    prefixed = {"module." + k: v for k, v in src.items()}
    # The official checkpoint.pth: model *name* under 'model', DataParallel state dict under 'state_dict'.
    training_ckpt = {"epoch": 3, "model": "pose_tokenpose_s", "state_dict": prefixed, "perf": 0.5}
    expected = convert_official_state_dict(src, "tokenpose_s_v1")
    for wrapped in (prefixed, {"state_dict": src}, {"model": prefixed}, training_ckpt):
        got = convert_official_state_dict(wrapped, "tokenpose_s_v1")
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_missing_bn_counters_are_filled() -> None:
    src = {k: v for k, v in official_state("S").items() if not k.endswith("num_batches_tracked")}
    out = convert_official_state_dict(src, "tokenpose_s_v1")
    assert int(out["backbone.bn1.num_batches_tracked"]) == 0


def test_other_architecture_is_named() -> None:
    with pytest.raises(PrunePoseError) as err:
        convert_official_state_dict(official_state("B"), "ppt_s")
    msg = str(err.value)
    assert "ppt_s" in msg and "pre_feature." in msg
    assert "TokenPose-B" in msg and "tokenpose_b" in msg and "HRNet-W32" in msg

    with pytest.raises(PrunePoseError, match=r"TokenPose-L/D24.*tokenpose_l_d24"):
        convert_official_state_dict(official_state("L"), "tokenpose_l_d6_mpii")
    with pytest.raises(PrunePoseError, match=r"shape mismatch.*patch_to_embedding"):
        convert_official_state_dict(official_state("S"), "tokenpose_s_v2")


def test_gtpt_checkpoint_is_named() -> None:
    gtpt = {"features.human_token": torch.zeros(1, 1, DIM), "features.keypoint_token": torch.zeros(1, 17, DIM),
            "ema_features.human_token": torch.zeros(1, 1, DIM)}
    with pytest.raises(PrunePoseError, match="GTPT"):
        convert_official_state_dict(gtpt, "ppt_s")
    assert "GTPT" in guess_official_architecture(gtpt)


def test_guess() -> None:
    assert "TokenPose-T" in guess_official_architecture(official_state("T"))
    assert "ppt_s" in guess_official_architecture({"module." + k: v for k, v in official_state("S").items()})
    assert "PPT-L/D6" in guess_official_architecture(official_state("L_D6_PPT"))
    assert "not a state dict" in guess_official_architecture([1, 2])  # type: ignore[arg-type]


def test_leftover_and_non_tensor_entries_are_errors() -> None:
    src = dict(official_state("T"))
    src["transformer.extra.weight"] = torch.zeros(3)
    with pytest.raises(PrunePoseError, match=r"transformer\.extra\.weight"):
        convert_official_state_dict(src, "tokenpose_t")
    src = {k: v for k, v in official_state("T").items() if "layers.11." not in k}
    with pytest.raises(PrunePoseError, match=r"not found in the file: blocks\.11\."):
        convert_official_state_dict(src, "tokenpose_t")
    with pytest.raises(PrunePoseError, match="expected a state dict"):
        convert_official_state_dict({"transformer.keypoint_token": [1, 2]}, "tokenpose_t")


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_convert_checkpoint_round_trip(tmp_path: Path) -> None:
    src_path = tmp_path / "final_state.pth"
    torch.save({"module." + k: v for k, v in official_state("S").items()}, src_path)
    dst = convert_checkpoint(src_path, "ppt_s", tmp_path / "out" / "ppt_s.safetensors")
    assert dst == tmp_path / "out" / "ppt_s.safetensors"
    assert _entries(dst.parent) == ["ppt_s.json", "ppt_s.safetensors"]  # no temp files left
    meta = json.loads(dst.with_suffix(".json").read_text())
    assert meta["name"] == "ppt_s" and meta["source"] == str(src_path) and meta["prune_layers"] == [3, 6, 9]
    model = load_weights(prunepose.create_model("ppt_s"), dst)
    torch.testing.assert_close(model.blocks[3].attn.qkv.weight,
                               official_state("S")["features.transformer.layers.3.0.fn.fn.to_qkv.weight"],
                               rtol=0, atol=0)


def test_truncated_file(tmp_path: Path) -> None:
    src_path = tmp_path / "model_best.pth"
    torch.save(official_state("S"), src_path)
    data = src_path.read_bytes()
    src_path.write_bytes(data[: len(data) // 2])
    dst = tmp_path / "out.safetensors"
    with pytest.raises(PrunePoseError, match=r"model_best\.pth.*truncated or corrupt"):
        convert_checkpoint(src_path, "ppt_s", dst)
    assert _entries(tmp_path) == ["model_best.pth"]
    src_path.write_bytes(b"")
    with pytest.raises(PrunePoseError, match=r"model_best\.pth"):
        convert_checkpoint(src_path, "ppt_s", dst)
    assert _entries(tmp_path) == ["model_best.pth"]


class _Opaque:
    """A custom class: weights_only loading must refuse it rather than run its unpickling."""


def test_non_state_dict_files(tmp_path: Path) -> None:
    dst = tmp_path / "out.safetensors"
    listed = tmp_path / "list.pth"
    torch.save([torch.zeros(2), 3], listed)
    with pytest.raises(PrunePoseError, match=r"list\.pth.*expected a state dict.*list"):
        convert_checkpoint(listed, "ppt_s", dst)
    obj = tmp_path / "object.pth"
    torch.save({"model": _Opaque()}, obj)
    with pytest.raises(PrunePoseError, match=r"object\.pth.*_Opaque"):
        convert_checkpoint(obj, "ppt_s", dst)
    with pytest.raises(PrunePoseError, match="not found"):
        convert_checkpoint(tmp_path / "nope.pth", "ppt_s", dst)
    assert _entries(tmp_path) == ["list.pth", "object.pth"]


def test_failed_conversion_writes_nothing(tmp_path: Path) -> None:
    src_path = tmp_path / "b.pth"
    torch.save(official_state("B"), src_path)
    dst = tmp_path / "out" / "ppt_s.safetensors"
    with pytest.raises(PrunePoseError, match=r"b\.pth does not convert to ppt_s.*TokenPose-B"):
        convert_checkpoint(src_path, "ppt_s", dst)
    assert not dst.exists() and not dst.with_suffix(".json").exists()
    with pytest.raises(PrunePoseError, match=r"\.safetensors"):
        convert_checkpoint(src_path, "tokenpose_b", tmp_path / "out.pth")
    assert _entries(tmp_path) == ["b.pth"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src_path = tmp_path / "t.pth"
    torch.save(official_state("T"), src_path)
    parser = argparse.ArgumentParser(prog="prunepose")
    add_convert_parser(parser.add_subparsers(dest="command", required=True))
    dst = tmp_path / "t.safetensors"
    args = parser.parse_args(["convert", str(src_path), "--model", "tokenpose_t", "--out", str(dst)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert str(dst) in out and str(dst.with_suffix(".json")) in out
    load_weights(prunepose.create_model("tokenpose_t"), dst)


# ------------------------------------------------------------------------------------------------
# GTPT: official layout, written from the description (reference notes 3.2-3.4, 3.8)
# ------------------------------------------------------------------------------------------------

GTPT_SIZES = {"T": (128, 128), "S": (192, 256), "B": (192, 256)}  # variant -> (dim, stem output width)
GTPT_MODELS = [("T", False, "gtpt_t"), ("S", False, "gtpt_s"), ("B", False, "gtpt_b"),
               ("T", True, "gtpt_t_wholebody"), ("S", True, "gtpt_s_wholebody"), ("B", True, "gtpt_b_wholebody")]
GROUP_MASK_SHAPE = (1, 8, 3, 256 + 6, 256 + 3 * 6)  # (1, heads, groups, queries, keys) per group layer


def _biased_conv(out: Shapes, name: str, cout: int, cin_per_group: int, k: int) -> None:
    out[f"{name}.weight"] = (cout, cin_per_group, k, k)
    out[f"{name}.bias"] = (cout,)  # every official GTPT conv keeps its bias


def _inverted_residual(out: Shapes, p: str, cin: int, cout: int, stride: int) -> None:
    """ShuffleNetV2 unit: branch1 = [dw3x3, BN, 1x1, BN, ReLU] (stride 2 only); branch2 = [1x1, BN, ReLU,
    dw3x3, BN, 1x1, BN, ReLU]."""
    half = cout // 2
    if stride > 1:
        _biased_conv(out, p + "branch1.0", cin, 1, 3)
        _bn(out, p + "branch1.1", cin)
        _biased_conv(out, p + "branch1.2", half, cin, 1)
        _bn(out, p + "branch1.3", half)
    _biased_conv(out, p + "branch2.0", half, cin if stride > 1 else half, 1)
    _bn(out, p + "branch2.1", half)
    _biased_conv(out, p + "branch2.3", half, 1, 3)
    _bn(out, p + "branch2.4", half)
    _biased_conv(out, p + "branch2.5", half, half, 1)
    _bn(out, p + "branch2.6", half)


def _gtpt_stem(out: Shapes, p: str, variant: str) -> None:
    """conv1 = [conv3x3 s2 3->64, BN, ReLU]; T/S: ``layer`` (4 units, 64 -> width); B: three 4-unit down
    stages 256/384/512, ``upsample{1,2}`` = [1x1 conv to 4x, PixelShuffle, BN, ReLU], ``up_layer{1,2}`` =
    [[1x1 conv 2c -> c, BN, ReLU], 2 units]."""
    _biased_conv(out, p + "conv1.0", 64, 3, 3)
    _bn(out, p + "conv1.1", 64)

    def stage(name: str, cin: int, cout: int) -> None:
        for i in range(4):
            _inverted_residual(out, f"{p}{name}.{i}.", cin if i == 0 else cout, cout, 2 if i == 0 else 1)

    if variant != "B":
        stage("layer", 64, GTPT_SIZES[variant][1])
        return
    stage("down_layer1", 64, 256)
    stage("down_layer2", 256, 384)
    stage("down_layer3", 384, 512)
    for name, cin, c in (("upsample1", 512, 384), ("upsample2", 384, 256)):
        _biased_conv(out, f"{p}{name}.0", 4 * c, cin, 1)
        _bn(out, f"{p}{name}.2", c)
    for name, c in (("up_layer1", 384), ("up_layer2", 256)):
        _biased_conv(out, f"{p}{name}.0.0", c, 2 * c, 1)
        _bn(out, f"{p}{name}.0.1", c)
        for i in (1, 2):
            _inverted_residual(out, f"{p}{name}.{i}.", c, c, 1)


def gtpt_official_shapes(variant: str, wholebody: bool) -> Shapes:
    """Key -> shape of ONE copy (student names) of an official GTPT 256x192 checkpoint, without the masks."""
    dim, width = GTPT_SIZES[variant]
    f = "features."
    out: Shapes = {f + "human_token": (1, 1, dim), f + "keypoint_token": (1, 17, dim)}
    if wholebody:
        out[f + "extra_token"] = (1, 5, dim)
        out[f + "fine_keypoint_token"] = (1, 116, dim)
    out[f + "pos_embedding"] = (1, 256, dim)
    _gtpt_stem(out, f + "stem.", variant)
    _bn(out, f + "patch2emb_norm", width)
    out[f + "patch2emb_mlp.weight"] = (dim, width * 4 * 3)
    out[f + "patch2emb_mlp.bias"] = (dim,)
    for stack in ("layers", "group_layers"):
        for i in range(6):
            _prenorm_layer(out, f"{f}transformer.{stack}.{i}.", dim)
    out[f + "transformer.group_mask.0.weight"] = (dim // 2, dim)
    out[f + "transformer.group_mask.0.bias"] = (dim // 2,)
    out[f + "transformer.group_mask.2.weight"] = (3 * dim, dim // 2)
    out[f + "transformer.group_mask.2.bias"] = (3 * dim,)
    for axis, bins in (("x", 384), ("y", 512)):
        out[f"mlp_head_{axis}.0.weight"] = out[f"mlp_head_{axis}.0.bias"] = (dim,)
        out[f"mlp_head_{axis}.1.weight"] = (bins, dim)
        out[f"mlp_head_{axis}.1.bias"] = (bins,)
    return out


@functools.lru_cache(maxsize=2)
def gtpt_official_state(variant: str, wholebody: bool) -> dict[str, torch.Tensor]:
    """Student (``features.*``, ``mlp_head_*``) and EMA (``ema_*``) copies with different random values, plus
    the group layers' bool mask buffers. Cached: callers must not modify it in place."""
    shapes = gtpt_official_shapes(variant, wholebody)
    mask = torch.zeros(GROUP_MASK_SHAPE, dtype=torch.bool)
    mask[..., 0] = True  # the dummy's key column (one tensor shared by all layers: torch.save stores it once)
    state: dict[str, torch.Tensor] = {}
    for seed, copy in ((1, ""), (2, "ema_")):
        g = torch.Generator().manual_seed(seed)
        for k, s in shapes.items():
            state[copy + k] = (torch.randint(0, 1000, s, generator=g) if k.endswith("num_batches_tracked")
                               else torch.randn(s, generator=g))
        for i in range(6):
            state[f"{copy}features.transformer.group_layers.{i}.0.fn.fn.mask"] = mask
    return state


def _one_copy(state: dict[str, torch.Tensor], copy: str) -> dict[str, torch.Tensor]:
    """Only the ``ema`` or only the ``student`` keys."""
    return {k: v for k, v in state.items() if k.startswith("ema_") == (copy == "ema")}


def _gtpt_loaded(model_name: str, state: dict[str, torch.Tensor], **kwargs: bool) -> torch.nn.Module:
    with torch.device("meta"):
        model = prunepose.create_model(model_name)
    model.load_state_dict(convert_official_state_dict(state, model_name, **kwargs), strict=True, assign=True)
    return model


def _assert_gtpt_landed(model: torch.nn.Module, src: dict[str, torch.Tensor], copy: str, variant: str,
                        wholebody: bool) -> None:
    """Our tensors (by module attribute) equal the official ones of ``copy`` ('ema_' or '')."""
    bb = model.backbone
    pairs = [
        (model.human_token, "features.human_token"),
        (model.keypoint_tokens, "features.keypoint_token"),
        (model.pos_embed, "features.pos_embedding"),
        (model.patch_norm.running_var, "features.patch2emb_norm.running_var"),
        (model.patch_norm.num_batches_tracked, "features.patch2emb_norm.num_batches_tracked"),
        (model.patch_embed.weight, "features.patch2emb_mlp.weight"),
        (model.coarse_blocks[0].norm1.weight, "features.transformer.layers.0.0.fn.norm.weight"),
        (model.coarse_blocks[3].attn.qkv.weight, "features.transformer.layers.3.0.fn.fn.to_qkv.weight"),
        (model.coarse_blocks[4].mlp.fc2.bias, "features.transformer.layers.4.1.fn.fn.net.3.bias"),
        (model.fine_blocks[2].attn.qkv.weight, "features.transformer.group_layers.2.0.fn.fn.to_qkv.weight"),
        (model.fine_blocks[5].attn.proj.bias, "features.transformer.group_layers.5.0.fn.fn.to_out.0.bias"),
        (model.fine_blocks[1].norm2.bias, "features.transformer.group_layers.1.1.fn.norm.bias"),
        (model.fine_blocks[3].mlp.fc1.weight, "features.transformer.group_layers.3.1.fn.fn.net.0.weight"),
        (model.group_mask[0].weight, "features.transformer.group_mask.0.weight"),
        (model.group_mask[2].bias, "features.transformer.group_mask.2.bias"),
        (model.head_x[0].bias, "mlp_head_x.0.bias"),
        (model.head_x[1].weight, "mlp_head_x.1.weight"),
        (model.head_y[1].bias, "mlp_head_y.1.bias"),
        (bb.conv1[0].bias, "features.stem.conv1.0.bias"),
        (bb.conv1[1].running_mean, "features.stem.conv1.1.running_mean"),
    ]
    if variant == "B":
        pairs += [
            (bb.down_layer3[0].branch1[2].weight, "features.stem.down_layer3.0.branch1.2.weight"),
            (bb.down_layer2[3].branch2[4].running_var, "features.stem.down_layer2.3.branch2.4.running_var"),
            (bb.upsample1[0].weight, "features.stem.upsample1.0.weight"),
            (bb.upsample2[2].running_mean, "features.stem.upsample2.2.running_mean"),
            (bb.up_layer1[0][0].weight, "features.stem.up_layer1.0.0.weight"),
            (bb.up_layer2[2].branch2[5].bias, "features.stem.up_layer2.2.branch2.5.bias"),
        ]
    else:
        pairs += [
            (bb.layer[0].branch1[0].weight, "features.stem.layer.0.branch1.0.weight"),
            (bb.layer[3].branch2[3].weight, "features.stem.layer.3.branch2.3.weight"),
            (bb.layer[1].branch2[6].running_var, "features.stem.layer.1.branch2.6.running_var"),
        ]
    if wholebody:
        pairs += [(model.part_tokens, "features.extra_token"), (model.dense_tokens, "features.fine_keypoint_token")]
    for ours, official in pairs:
        assert torch.equal(ours, src[copy + official]), copy + official


@pytest.mark.parametrize("variant,wholebody,model_name", GTPT_MODELS)
def test_gtpt_converts_the_ema_copy_by_default(variant: str, wholebody: bool, model_name: str) -> None:
    src = gtpt_official_state(variant, wholebody)
    model = _gtpt_loaded(model_name, src)
    _assert_gtpt_landed(model, src, "ema_", variant, wholebody)
    key = "features.transformer.group_layers.2.0.fn.fn.to_qkv.weight"
    assert not torch.equal(src[key], src["ema_" + key])  # the copies differ, so the student's did not land
    assert not hasattr(model.fine_blocks[2].attn, "mask")  # the official mask buffer has no counterpart


@pytest.mark.parametrize("variant,wholebody,model_name", [GTPT_MODELS[0], GTPT_MODELS[5]])
def test_gtpt_student_copy(variant: str, wholebody: bool, model_name: str) -> None:
    src = gtpt_official_state(variant, wholebody)
    _assert_gtpt_landed(_gtpt_loaded(model_name, src, use_ema=False), src, "", variant, wholebody)


def test_gtpt_file_with_one_copy_uses_it() -> None:
    src = gtpt_official_state("T", False)
    student_only, ema_only = _one_copy(src, "student"), _one_copy(src, "ema")
    _assert_gtpt_landed(_gtpt_loaded("gtpt_t", student_only), src, "", "T", False)
    _assert_gtpt_landed(_gtpt_loaded("gtpt_t", ema_only, use_ema=False), src, "ema_", "T", False)
    # The official training checkpoint: DataParallel state dict under 'state_dict'.
    wrapped = {"epoch": 7, "model": "pose_gtpt_t_human", "state_dict": {"module." + k: v for k, v in src.items()}}
    _assert_gtpt_landed(_gtpt_loaded("gtpt_t", wrapped), src, "ema_", "T", False)


def test_gtpt_other_variant_is_named() -> None:
    with pytest.raises(PrunePoseError) as err:
        convert_official_state_dict(gtpt_official_state("T", True), "gtpt_t")
    msg = str(err.value)
    assert "does not convert to gtpt_t" in msg and "GTPT-T WholeBody" in msg and "gtpt_t_wholebody" in msg
    assert "ema_features.extra_token" in msg and "ema_features.fine_keypoint_token" in msg

    with pytest.raises(PrunePoseError, match=r"GTPT-T COCO.*gtpt_t\b.*not found in the file: part_tokens"):
        convert_official_state_dict(gtpt_official_state("T", False), "gtpt_t_wholebody")
    with pytest.raises(PrunePoseError, match=r"GTPT-S COCO.*gtpt_s\b.*shape mismatch"):
        convert_official_state_dict(gtpt_official_state("S", False), "gtpt_t")


def test_gtpt_and_tokenpose_files_are_kept_apart() -> None:
    with pytest.raises(PrunePoseError, match=r"does not convert to ppt_s: the file looks like GTPT-S COCO.*gtpt_s"):
        convert_official_state_dict(gtpt_official_state("S", False), "ppt_s")
    with pytest.raises(PrunePoseError, match=r"does not convert to gtpt_s: the file looks like TokenPose-S.*ppt_s"):
        convert_official_state_dict(official_state("S"), "gtpt_s")
    with pytest.raises(PrunePoseError, match=r"ppt_s: use_ema=False .*GTPT"):
        convert_official_state_dict(official_state("S"), "ppt_s", use_ema=False)


def test_gtpt_leftover_key_in_the_used_copy_is_an_error() -> None:
    src = dict(_one_copy(gtpt_official_state("T", False), "ema"))
    src["ema_features.transformer.layers.6.0.fn.norm.weight"] = torch.zeros(128)
    with pytest.raises(PrunePoseError, match=r"no place in the model: ema_features\.transformer\.layers\.6\."):
        convert_official_state_dict(src, "gtpt_t")


def test_gtpt_guess() -> None:
    text = guess_official_architecture({"module." + k: v for k, v in gtpt_official_state("B", True).items()})
    assert "GTPT-B WholeBody" in text and "133 keypoints" in text and "EMA and student copies" in text
    assert "gtpt_b_wholebody" in text
    text = guess_official_architecture(_one_copy(gtpt_official_state("T", False), "student"))
    assert "GTPT-T COCO" in text and "student copy only" in text and "gtpt_t" in text


def test_gtpt_convert_checkpoint_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = gtpt_official_state("T", False)
    both, ema_only = tmp_path / "final_state.pth", tmp_path / "ema_only.pth"
    torch.save({"module." + k: v for k, v in src.items()}, both)
    torch.save(_one_copy(src, "ema"), ema_only)

    dst = convert_checkpoint(both, "gtpt_t", tmp_path / "out" / "gtpt_t.safetensors")
    assert _entries(dst.parent) == ["gtpt_t.json", "gtpt_t.safetensors"]
    meta = json.loads(dst.with_suffix(".json").read_text())
    assert meta["name"] == "gtpt_t" and meta["official_copy"] == "ema" and meta["source"] == str(both)
    model = load_weights(prunepose.create_model("gtpt_t"), dst)
    key = "features.transformer.group_layers.2.0.fn.fn.to_qkv.weight"
    torch.testing.assert_close(model.fine_blocks[2].attn.qkv.weight, src["ema_" + key], rtol=0, atol=0)

    parser = argparse.ArgumentParser(prog="prunepose")
    add_convert_parser(parser.add_subparsers(dest="command", required=True))
    student_dst = tmp_path / "student.safetensors"
    args = parser.parse_args(["convert", str(both), "--model", "gtpt_t", "--out", str(student_dst), "--student"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "from the student copy" in out and "has no" not in out
    model = load_weights(prunepose.create_model("gtpt_t"), student_dst)
    torch.testing.assert_close(model.fine_blocks[2].attn.qkv.weight, src[key], rtol=0, atol=0)

    fallback = tmp_path / "fallback.safetensors"
    args = parser.parse_args(["convert", str(ema_only), "--model", "gtpt_t", "--out", str(fallback), "--student"])
    assert args.func(args) == 0
    assert "from the EMA copy (ema_features.*, ema_mlp_head_*): the file has no student copy" in capsys.readouterr().out
    assert json.loads(fallback.with_suffix(".json").read_text())["official_copy"] == "ema"

    with pytest.raises(PrunePoseError, match="use_ema=False"):  # refused before the file is read
        convert_checkpoint(tmp_path / "missing.pth", "tokenpose_t", tmp_path / "x.safetensors", use_ema=False)
