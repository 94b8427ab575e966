"""Frame selection (TPC / DPC-kNN and the ablation baselines) and token recovery (TRA, interpolation)."""
from __future__ import annotations

import math

import pytest
import torch

from prunepose.pruning.recovery import CrossAttention, TokenRecoveryAttention, interpolate_frames
from prunepose.pruning.temporal import (
    FrameSelector,
    dpc_knn_scores,
    dpc_knn_select,
    frame_motion,
    motion_select,
    top_frames,
    uniform_select,
)


def _reference_scores(x: torch.Tensor, k: int, noise: torch.Tensor) -> torch.Tensor:
    """Section 4.2 transcribed with loops over one batch element (N <= 25: exact cdist)."""
    n, c = x.shape
    d = [[math.dist(x[i].tolist(), x[j].tolist()) / math.sqrt(c) for j in range(n)] for i in range(n)]
    rho = [math.exp(-sum(v**2 for v in sorted(d[i])[:k]) / k) + 1e-6 * float(noise[i]) for i in range(n)]
    dmax = max(max(row) for row in d)
    out = []
    for i in range(n):
        higher = [d[i][j] for j in range(n) if rho[j] > rho[i]]
        out.append((min(higher) if higher else dmax) * rho[i])
    return torch.tensor(out, dtype=torch.float64)


def test_dpc_knn_scores_match_the_definition() -> None:
    # float64 so that the reference's float64 maths breaks density ties exactly as the function does
    x = torch.randn(2, 20, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scores = dpc_knn_scores(x, k=2, generator=torch.Generator().manual_seed(7))
    noise = torch.rand(2, 20, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    for b in range(2):
        torch.testing.assert_close(scores[b], _reference_scores(x[b], 2, noise[b]).double(), rtol=1e-9, atol=1e-12)


def test_dpc_knn_picks_the_two_density_peaks() -> None:
    # 1-D features: cluster A around 0 (tight pair 0.0/0.1), cluster B around 10 (tight pair 10.0/10.05);
    # the stragglers 0.35, 0.8, 10.3 are less dense or close to a denser frame.
    values = [10.3, 0.35, 10.0, 0.0, 0.8, 10.05, 0.1]
    x = torch.tensor(values).reshape(1, -1, 1)
    for seed in range(5):
        idx = dpc_knn_select(x, 2, generator=torch.Generator().manual_seed(seed))[0].tolist()
        assert idx == sorted(idx)
        assert {values[i] for i in idx} & {0.0, 0.1} and {values[i] for i in idx} & {10.0, 10.05}


def test_selection_is_deterministic_given_a_generator() -> None:
    x = torch.randn(3, 30, 8)
    a = dpc_knn_select(x, 10, generator=torch.Generator().manual_seed(1))
    b = dpc_knn_select(x, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (3, 10)
    assert bool((a[:, 1:] > a[:, :-1]).all())


def test_seq2frame_variant_keeps_the_centre() -> None:
    scores = torch.arange(9, dtype=torch.float32).expand(2, 9)  # centre 4 would not be chosen on score
    assert top_frames(scores, 3, keep_index=4).tolist() == [[4, 7, 8], [4, 7, 8]]
    assert top_frames(scores, 3, keep_index=torch.tensor([4, 8])).tolist() == [[4, 7, 8], [6, 7, 8]]
    x = torch.randn(4, 27, 5)
    assert bool((dpc_knn_select(x, 9, keep_index=13) == 13).any(dim=1).all())


def test_uniform_selection() -> None:
    idx = uniform_select(2, 243, 81)
    assert idx.shape == (2, 81) and idx[0, :3].tolist() == [1, 4, 7] and int(idx[0, -1]) == 241
    assert 121 in idx[0].tolist()
    assert uniform_select(1, 10, 2).tolist() == [[2, 7]]
    assert uniform_select(1, 10, 2, keep_index=4).tolist() == [[4, 7]]


def test_motion_selection_prefers_moving_frames() -> None:
    poses = torch.zeros(1, 8, 17, 2)
    poses[0, 5:, :, 0] = 1.0  # a jump between frames 4 and 5
    poses[0, 2:, :, 1] += 0.1  # a small one between 1 and 2
    motion = frame_motion(poses)
    assert motion[0].argmax().item() == 5
    assert motion_select(poses, 2).tolist() == [[2, 5]]


def test_attention_selector_needs_evidence() -> None:
    sel = FrameSelector("attention")
    received = torch.tensor([[0.1, 3.0, 0.2, 2.0, 0.5]])
    assert sel.select(2, features=torch.zeros(1, 5, 4), received=received).tolist() == [[1, 3]]
    with pytest.raises(ValueError, match="attention received"):
        sel.select(2, features=torch.zeros(1, 5, 4))
    with pytest.raises(ValueError, match="unknown frame selector"):
        FrameSelector("random")


def test_tra_is_a_residual_cross_attention_over_the_kept_tokens() -> None:
    torch.manual_seed(0)
    tra = TokenRecoveryAttention(dim=16, num_frames=10, heads=4)
    assert torch.count_nonzero(tra.x_token) == 0  # zero-initialised queries
    with torch.no_grad():
        tra.x_token.normal_()
    tokens = torch.randn(3, 4, 16)
    out = tra(tokens)
    assert out.shape == (3, 10, 16)
    ca: CrossAttention = tra.cross_attention
    q = ca.linear_q(tra.x_token).reshape(1, 10, 4, 4).transpose(1, 2)
    k = ca.linear_k(tokens).reshape(3, 4, 4, 4).transpose(1, 2)
    v = ca.linear_v(tokens).reshape(3, 4, 4, 4).transpose(1, 2)
    attn = (q @ k.transpose(-2, -1) / 2.0).softmax(-1)  # head_dim 4 -> scale 1/2
    expected = tra.x_token + ca.proj((attn @ v).transpose(1, 2).reshape(3, 10, 16))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert tra.x_token.grad is not None and ca.linear_k.weight.grad is not None


def test_interpolation_recovery() -> None:
    index = torch.tensor([[0, 3, 4, 9], [2, 5, 6, 7]])
    t = index.to(torch.float32)
    values = torch.stack([2.0 + 0.5 * t, -1.0 + 3.0 * t], dim=-1).unsqueeze(2)  # (B, f, 1, 2), linear in time
    lin = interpolate_frames(values, index, 10, "linear")
    full = torch.arange(10, dtype=torch.float32)
    torch.testing.assert_close(lin[0, :, 0], torch.stack([2.0 + 0.5 * full, -1.0 + 3.0 * full], dim=-1))
    # the second sample knows frames 2..7 only: exact inside, edge-replicated outside
    torch.testing.assert_close(lin[1, 2:8, 0, 0], 2.0 + 0.5 * full[2:8])
    torch.testing.assert_close(lin[1, :2, 0, 0], torch.full((2,), 3.0))
    torch.testing.assert_close(lin[1, 8:, 0, 0], torch.full((2,), 5.5))
    near = interpolate_frames(values, index, 10, "nearest")[0, :, 0, 0]
    # kept 0, 3, 4, 9: frame 6 is 2 from 4 and 3 from 9 -> 4; frame 7 -> 9
    expected_frames = torch.tensor([0, 0, 3, 3, 4, 4, 4, 9, 9, 9], dtype=torch.float32)
    torch.testing.assert_close(near, 2.0 + 0.5 * expected_frames)
