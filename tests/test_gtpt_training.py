"""GTPT training pieces: the KL global-perceived loss (hand arithmetic) and the cosine-momentum EMA."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunepose.engine.ema import ModelEMA, cosine_ema_momentum
from prunepose.engine.losses import joints_mse_loss, kl_global_perceived_loss, kl_global_perceived_terms
from prunepose.errors import ConfigError

LN = math.log


def _t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(1, 1, -1)


# --------------------------------------------------------------------------------------------- loss
def test_kl_loss_tiny_case_by_hand() -> None:
    """B = K = 1; x has 2 bins, y has 3 bins; KL_n(p||q) = p_n ln(p_n / q_n), averaged over the bins.

    entire x = [0, ln 3] -> q = [1/4, 3/4]      target x = [1/2, 1/2]
    pruned x = [ln 3, 0] -> q = [3/4, 1/4]
    entire y = [0, 0, 0] -> q = [1/3, 1/3, 1/3]  target y = [1, 0, 0] (zeros contribute nothing)
    pruned y = [ln 2, 0, 0] -> q = [1/2, 1/4, 1/4]

    KL(t||q_entire): x (1/2 ln 2 + 1/2 ln(2/3)) / 2 = ln(4/3) / 4;   y ln 3 / 3
    KL(t||q_pruned): x (1/2 ln(2/3) + 1/2 ln 2) / 2 = ln(4/3) / 4;   y ln 2 / 3
    KL(q_entire||q_pruned): x (1/4 ln(1/3) + 3/4 ln 3) / 2 = ln 3 / 4
                            y (1/3 ln(2/3) + 2/3 ln(4/3)) / 3 = ln(32/27) / 9
    """
    ex, ey = _t([0.0, LN(3)]), _t([0.0, 0.0, 0.0])
    px, py = _t([LN(3), 0.0]), _t([LN(2), 0.0, 0.0])
    tx, ty = _t([0.5, 0.5]), _t([1.0, 0.0, 0.0])
    w = torch.ones(1, 1, 1)
    terms = kl_global_perceived_terms(ex, ey, px, py, tx, ty, w)
    assert terms["gt_entire"].item() == pytest.approx(LN(4 / 3) / 4 + LN(3) / 3, rel=1e-6)
    assert terms["gt_pruned"].item() == pytest.approx(LN(4 / 3) / 4 + LN(2) / 3, rel=1e-6)
    assert terms["distill"].item() == pytest.approx(LN(3) / 4 + LN(32 / 27) / 9, rel=1e-6)
    total = kl_global_perceived_loss(ex, ey, px, py, tx, ty, w)
    assert total.dtype == torch.float32
    assert total.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-6)
    # without a pruned pass: SimCC's plain KLDiscretLoss of the prediction
    plain = kl_global_perceived_loss(ex, ey, None, None, tx, ty, w)
    assert plain.item() == pytest.approx(LN(4 / 3) / 4 + LN(3) / 3, rel=1e-6)


def test_reduction_matches_official_per_joint_loop() -> None:
    """Official KLDiscretGlobalPerceivedLoss: for each joint, each KL term is ``.mean(1)`` over bins, times
    the joint weight (B,), ``.mean()`` over the batch; summed over joints (and x, y) and divided by K."""
    g = torch.Generator().manual_seed(0)
    b, k, wx, hy = 3, 4, 6, 5
    ex, ey = torch.randn(b, k, wx, generator=g), torch.randn(b, k, hy, generator=g)
    px, py = torch.randn(b, k, wx, generator=g), torch.randn(b, k, hy, generator=g)
    tx = torch.rand(b, k, wx, generator=g)
    ty = torch.rand(b, k, hy, generator=g)
    w = torch.tensor([[1.0, 0.0, 2.0, 1.0], [0.0, 1.0, 1.0, 1.5], [1.0, 1.0, 0.0, 1.0]]).unsqueeze(-1)
    kld = nn.KLDivLoss(reduction="none")
    ref = torch.zeros(())
    for j in range(k):
        wj = w[:, j, 0]
        for logits, tgt in ((ex, tx), (ey, ty), (px, tx), (py, ty)):
            ref = ref + (kld(F.log_softmax(logits[:, j], 1), tgt[:, j]).mean(1) * wj).mean()
        for pr, en in ((px, ex), (py, ey)):
            teacher = F.log_softmax(en[:, j].detach(), 1)
            kl = F.kl_div(F.log_softmax(pr[:, j], 1), teacher, reduction="none", log_target=True)
            ref = ref + (kl.mean(1) * wj).mean()
    ref = ref / k
    got = kl_global_perceived_loss(ex, ey, px, py, tx, ty, w)
    assert got.item() == pytest.approx(ref.item(), rel=1e-6)
    assert kl_global_perceived_loss(ex, ey, px, py, tx, ty, w[..., 0]).item() == pytest.approx(got.item())


def test_distillation_term_vanishes_when_pruned_equals_entire_and_only_trains_pruned() -> None:
    g = torch.Generator().manual_seed(1)
    ex = torch.randn(2, 3, 8, generator=g, requires_grad=True)
    ey = torch.randn(2, 3, 7, generator=g, requires_grad=True)
    tx, ty = torch.rand(2, 3, 8, generator=g), torch.rand(2, 3, 7, generator=g)
    w = torch.ones(2, 3, 1)
    terms = kl_global_perceived_terms(ex, ey, ex.detach().clone(), ey.detach().clone(), tx, ty, w)
    assert terms["distill"].item() == 0.0
    assert terms["gt_pruned"].item() == pytest.approx(terms["gt_entire"].item(), rel=1e-6)
    # gradient of the distillation term reaches the pruned logits only (teacher is detached)
    px = (ex.detach() + 0.3).requires_grad_(True)
    py = (ey.detach() - 0.2).requires_grad_(True)
    kl_global_perceived_terms(ex, ey, px, py, tx, ty, w)["distill"].backward()
    assert ex.grad is None and ey.grad is None and px.grad is not None and px.grad.abs().sum() > 0


def test_zero_weight_joint_contributes_nothing_and_shape_checks() -> None:
    g = torch.Generator().manual_seed(2)
    ex, ey = torch.randn(1, 2, 4, generator=g), torch.randn(1, 2, 5, generator=g)
    tx, ty = torch.rand(1, 2, 4, generator=g), torch.rand(1, 2, 5, generator=g)
    w = torch.tensor([[1.0, 0.0]])
    ex2 = ex.clone()
    ex2[0, 1] += 5.0  # change only the weight-0 joint
    assert kl_global_perceived_loss(ex, ey, None, None, tx, ty, w).item() == pytest.approx(
        kl_global_perceived_loss(ex2, ey, None, None, tx, ty, w).item())
    with pytest.raises(ValueError, match="do not match"):
        kl_global_perceived_loss(ex, ey, None, None, tx[..., :3], ty, w)
    with pytest.raises(ValueError, match="target weight"):
        kl_global_perceived_loss(ex, ey, None, None, tx, ty, torch.ones(1, 3))
    with pytest.raises(ValueError, match="both pruned_x and pruned_y"):
        kl_global_perceived_loss(ex, ey, ex, None, tx, ty, w)


def test_joints_mse_loss_still_there() -> None:
    pred, target = torch.ones(1, 2, 2, 2), torch.zeros(1, 2, 2, 2)
    assert joints_mse_loss(pred, target, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------- EMA
def test_cosine_momentum_schedule() -> None:
    assert cosine_ema_momentum(0, 1000) == pytest.approx(0.996)
    assert cosine_ema_momentum(1000, 1000) == 1.0
    assert cosine_ema_momentum(500, 1000) == pytest.approx(1 - 0.5 * 0.004 * 1.0)  # cos(pi/2) = 0
    assert cosine_ema_momentum(250, 1000) == pytest.approx(1 - 0.5 * 0.004 * (1 + math.sqrt(0.5)))
    assert cosine_ema_momentum(5000, 1000) == 1.0 and cosine_ema_momentum(-3, 1000) == pytest.approx(0.996)
    with pytest.raises(ConfigError):
        cosine_ema_momentum(0, 0)


def test_ema_update_on_one_parameter_model() -> None:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = ModelEMA(model, total_steps=100)
    assert ema.module is not model and not ema.module.weight.requires_grad and not ema.module.training
    with torch.no_grad():
        model.weight.fill_(2.0)
    assert ema.update(model, 0) == pytest.approx(0.996)
    assert ema.module.weight.item() == pytest.approx(0.996 * 1.0 + 0.004 * 2.0)  # 1.004
    with torch.no_grad():
        model.weight.fill_(3.0)
    m = ema.update(model, 50)  # half-way: m = 1 - 0.5 * 0.004 = 0.998
    assert m == pytest.approx(0.998)
    assert ema.module.weight.item() == pytest.approx(0.998 * 1.004 + 0.002 * 3.0)
    before = ema.module.weight.item()
    ema.update(model, 100)  # m = 1: the average no longer moves
    assert ema.module.weight.item() == pytest.approx(before)
    assert model.weight.item() == 3.0 and ema.updates == 3


def test_ema_buffers_checkpoint_and_step_callback() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    ema = ModelEMA(model, 0.9, total_steps=10)
    model.train()
    model(torch.randn(8, 2))  # moves BN running stats and num_batches_tracked
    bn, ebn = model[1], ema.module[1]
    old_mean = ebn.running_mean.clone()
    ema.update(model, 0)  # m = 0.9
    torch.testing.assert_close(ebn.running_mean, 0.9 * old_mean + 0.1 * bn.running_mean)
    assert ebn.num_batches_tracked.item() == 1 and ebn.num_batches_tracked.dtype == torch.long  # copied

    state = ema.state_dict()
    fresh = ModelEMA(nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)), total_steps=1)
    fresh.load_state_dict(state)
    assert fresh.total_steps == 10 and fresh.momentum_start == 0.9 and fresh.updates == 1
    torch.testing.assert_close(fresh.module[0].weight, ema.module[0].weight)



def test_ema_into_existing_branch_and_key_check() -> None:
    student, branch = nn.Linear(2, 2), nn.Linear(2, 2)
    ema = ModelEMA(student, total_steps=5, ema_model=branch)
    assert ema.module is branch
    torch.testing.assert_close(branch.weight, student.weight)
    with pytest.raises(ConfigError, match="state_dict keys"):
        ModelEMA(student, total_steps=5, ema_model=nn.Linear(2, 2, bias=False))
    with pytest.raises(ConfigError):
        ModelEMA(student, total_steps=0)
