"""Compute counters: hand-computed cases for each convention, SDPA counted like explicit attention, the
published TokenPose/PPT figures reproduced, the model left untouched, and the ``profile`` CLI."""
from __future__ import annotations

import argparse
import json
from functools import cache
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prunepose
from prunepose.errors import ConfigError
from prunepose.profiling import count_all, count_macs, format_profile, profile_model
from prunepose.profiling.cli import add_profile_parser


class ConvTokens(nn.Module):
    """Conv2d(3->4, 3x3, bias) -> ReLU -> tokens (B, 64, 4) -> Linear(4->6) -> LayerNorm(6)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 6)
        self.norm = nn.LayerNorm(6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn(self.conv(x)))  # (B, 4, 8, 8)
        return self.norm(self.fc(y.flatten(2).transpose(1, 2)))  # (B, 64, 6)


def test_hand_computed_conv_linear_batch1() -> None:
    counts = count_all(ConvTokens(), torch.rand(1, 3, 8, 8))
    conv = (4 * 8 * 8) * (3 * 3 * 3)  # output elements x (cin x kh x kw) = 256 x 27 = 6912 (bias not counted)
    linear = (64 * 6) * 4  # output elements x in_features = 384 x 4 = 1536
    assert counts["true"] == conv + linear == 8448  # only conv/matmul MACs
    bn = 2 * (4 * 8 * 8) * 2  # thop: 2 per input element, x2 for affine = 1024
    ln = 2 * (64 * 6) * 2  # thop: same rule for LayerNorm with elementwise affine = 1536
    assert counts["thop"] == conv + bn + linear + ln == 11008  # ReLU counts 0 in thop
    hr_conv = (4 * 3 * 3 * 3) * (8 * 8)  # prod(weight.shape) x H_out x W_out = 108 x 64 = 6912
    hr_linear = (64 * 6) * 64  # output.numel() x input.size(1): the sequence length 64, not in_features 4
    assert counts["paper-hrnet"] == hr_conv + hr_linear == 31488


def test_hand_computed_batch2_keeps_hrnet_quirks() -> None:
    counts = count_all(ConvTokens(), torch.rand(2, 3, 8, 8))
    assert counts["true"] == 2 * 8448
    assert counts["thop"] == 2 * 11008
    # HRNet's counter ignores the batch for Conv (spatial output only) but not for Linear (output.numel()).
    assert counts["paper-hrnet"] == 108 * 64 + (2 * 64 * 6) * 64 == 56064


class SDPAAttention(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


class EinsumAttention(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        attn = torch.einsum("bhqd,bhkd->bhqk", q, k).mul(q.shape[-1] ** -0.5).softmax(dim=-1)
        return torch.einsum("bhqk,bhkd->bhqd", attn, v)


def test_sdpa_counted_like_explicit_attention() -> None:
    b, h, lq, lk, d = 2, 3, 10, 7, 8
    q, k, v = torch.rand(b, h, lq, d), torch.rand(b, h, lk, d), torch.rand(b, h, lk, d)
    expected = 2 * b * h * lq * lk * d  # q @ k^T and attn @ v, each B*H*Lq*Lk*D MACs = 6720
    assert count_macs(EinsumAttention(), (q, k, v)) == expected
    assert count_macs(SDPAAttention(), (q, k, v)) == expected
    # neither counter of the papers sees functional attention
    assert count_macs(SDPAAttention(), (q, k, v), "thop") == 0
    assert count_macs(SDPAAttention(), (q, k, v), "paper-hrnet") == 0


@cache
def _profile(name: str) -> dict[str, Any]:
    return profile_model(prunepose.create_model(name))


# Reference figures (project notes on the official repos, sections 1.6 and 2.4): the official models measured
# with HRNet's get_model_summary, thop 0.1.1.post2209072238 and FlopCounterMode; batch 1, 256x192, PPT at 0.7.
PINNED = [
    ("tokenpose_s_v1", "gflops_paper_hrnet", 2.226),
    ("ppt_s", "gflops_paper_hrnet", 1.614),
    ("tokenpose_b", "gflops_paper_hrnet", 5.655),
    ("ppt_b", "gflops_paper_hrnet", 5.043),
    ("tokenpose_s_v1", "macs_thop", 2.414),
    ("ppt_s", "macs_thop", 2.024),
    ("tokenpose_b", "macs_thop", 5.995),
    ("ppt_b", "macs_thop", 5.605),
    ("tokenpose_s_v1", "macs_true", 2.726),
    ("tokenpose_b", "macs_true", 6.276),
]


@pytest.mark.parametrize("name,key,expected", PINNED)
def test_published_figures_reproduce(name: str, key: str, expected: float) -> None:
    assert _profile(name)[key] == pytest.approx(expected, rel=0.01)


def test_record_is_plain_and_consistent() -> None:
    rec = _profile("ppt_s")
    assert rec["model"] == "ppt_s" and rec["input_shape"] == [1, 3, 256, 192] and rec["keep_ratio"] == 0.7
    assert rec["params"] == 6_669_888 and rec["params_hrnet"] == 6_607_104
    assert rec["params_trainable"] == rec["params"] - 256 * 192  # the frozen sine PE
    assert rec["flops_true"] == pytest.approx(2 * rec["macs_true"])
    assert json.loads(json.dumps(rec)) == rec
    text = format_profile(rec)
    for unit in ("GMACs", "GFLOPs", "1e9", "1024^3", "attention"):
        assert unit in text


def test_profiling_leaves_model_untouched() -> None:
    model = ConvTokens().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_all(model, torch.rand(2, 3, 8, 8))
    assert model.training  # restored after the eval-mode measurement
    after = model.state_dict()
    assert before.keys() == after.keys()  # no thop-style buffers left behind
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics not updated
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_bad_inputs_rejected() -> None:
    with pytest.raises(ConfigError):
        profile_model(ConvTokens())  # no config.input_size to default from
    with pytest.raises(ValueError, match="convention"):
        count_macs(ConvTokens(), torch.rand(1, 3, 8, 8), "fvcore")
    rec = profile_model(ConvTokens(), (1, 3, 8, 8))
    assert rec["model"] == "ConvTokens" and rec["macs_true"] == pytest.approx(8448 / 1e9)


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="prunepose")
    add_profile_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_json_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run_cli(["profile", "tokenpose_t", "--json", "--input-size", "96", "128", "--batch", "2"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["model"] == "tokenpose_t" and rec["input_shape"] == [2, 3, 128, 96]
    assert _run_cli(["profile", "tokenpose_t", "--input-size", "96", "128"]) == 0
    assert "GMACs" in capsys.readouterr().out


@pytest.mark.parametrize("ratio", ["0", "-0.5", "1.5", "nan"])
def test_cli_rejects_keep_ratio_outside_unit_interval(ratio: str) -> None:
    with pytest.raises(ConfigError, match="keep-ratio"):
        _run_cli(["profile", "ppt_s", "--keep-ratio", ratio])
