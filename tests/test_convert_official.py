"""Official TokenPose / PPT checkpoints -> prunepose weights.

The official key layout is generated here from the reference description (TokenPose ``tokenpose_base.py``
and HRNet ``_make_transition_layer`` / ``_make_fuse_layers`` naming), independently of our module
names, so a renaming bug in the converter or a naming drift in our modules shows up as a failure. Where
tensors land is checked through module attributes (``model.blocks[9].attn.qkv``), not through our keys.
"""
from __future__ import annotations

import argparse
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


def _transformer(out: Shapes, p: str, joints: int, tokens: int, patch_dim: int, depth: int, stacks: int,
                 heatmap: int = 48 * 64) -> None:
    out[p + "keypoint_token"] = (1, joints, DIM)
    out[p + "pos_embedding"] = (1, tokens, DIM)
    out[p + "patch_to_embedding.weight"] = (DIM, patch_dim)
    out[p + "patch_to_embedding.bias"] = (DIM,)
    for s in ([""] if stacks == 1 else ["1", "2", "3"]):
        for i in range(depth):
            q = f"{p}transformer{s}.layers.{i}."
            out[q + "0.fn.norm.weight"] = out[q + "0.fn.norm.bias"] = (DIM,)
            out[q + "0.fn.fn.to_qkv.weight"] = (3 * DIM, DIM)
            out[q + "0.fn.fn.to_out.0.weight"] = (DIM, DIM)
            out[q + "0.fn.fn.to_out.0.bias"] = (DIM,)
            out[q + "1.fn.norm.weight"] = out[q + "1.fn.norm.bias"] = (DIM,)
            out[q + "1.fn.fn.net.0.weight"] = (3 * DIM, DIM)
            out[q + "1.fn.fn.net.0.bias"] = (3 * DIM,)
            out[q + "1.fn.fn.net.3.weight"] = (DIM, 3 * DIM)
            out[q + "1.fn.fn.net.3.bias"] = (DIM,)
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
