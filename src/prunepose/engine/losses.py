"""Training losses: heatmap MSE (TokenPose/PPT) and SimCC KL with global-perceived distillation (GTPT)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def joints_mse_loss(pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
    """TokenPose/HRNet ``JointsMSELoss``: ``0.5 * mean((w * (pred - target)) ** 2)``.

    pred, target: (B, K, H, W) heatmaps; target_weight: (B, K, 1) or (B, K). The official code averages
    0.5 * MSE per joint and then over joints, which equals the mean over every element computed here.
    """
    w = target_weight.reshape(target_weight.shape[0], target_weight.shape[1], 1, 1).to(pred.dtype)
    return 0.5 * ((pred - target) * w).square().mean()


def heatmap_focal_loss(logits: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor,
                       alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on sigmoid heatmaps (Law & Deng 2018, Zhou et al. 2019).

    Why, for heatmaps that go through a sigmoid (MoveNet's head, which was trained with it): an MSE towards
    Gaussians of peak 1 pushes every peak towards 1, neighbours' joints included, and a crop's argmax then
    jumps between people; the focal loss keeps the background down and weighs the peak pixel.
    ``logits`` (B, K, H, W) before the sigmoid; ``target`` Gaussian heatmaps; the positive of each
    keypoint is its target's maximum pixel; ``target_weight`` (B, K[, 1]) masks keypoints. The sum is
    divided by the number of weighted positives (at least 1), as in CenterNet.
    """
    z = logits.float()
    y = target.float()
    w = target_weight.reshape(target_weight.shape[0], target_weight.shape[1], 1, 1).float()
    peak = y.flatten(2).amax(dim=2).reshape(y.shape[0], y.shape[1], 1, 1)
    pos = ((y >= peak) & (peak > 0)).float()
    log_p, log_not_p = F.logsigmoid(z), F.logsigmoid(-z)
    p = torch.sigmoid(z)
    pos_loss = -((1 - p) ** alpha) * log_p * pos
    neg_loss = -((1 - y) ** beta) * (p**alpha) * log_not_p * (1 - pos)
    num_pos = (pos * w).sum().clamp(min=1.0)
    return ((pos_loss + neg_loss) * w).sum() / num_pos


def _kl_over_bins(logits: torch.Tensor, target: torch.Tensor, log_target: bool = False) -> torch.Tensor:
    """``KLDivLoss(reduction='none')(log_softmax(logits), target)`` averaged over bins: (B, K, N) -> (B, K).

    Computed in float32 even under autocast (the softmax over 384/512 bins is the numerically delicate
    part). ``log_target=False``: ``target`` is a distribution used as given (zeros contribute 0);
    ``log_target=True``: ``target`` holds log-probabilities.
    """
    log_p = F.log_softmax(logits.float(), dim=-1)
    return F.kl_div(log_p, target.float(), reduction="none", log_target=log_target).mean(dim=-1)


def _joint_weight(weight: torch.Tensor, batch: int, joints: int) -> torch.Tensor:
    """Target weight (B, K) or (B, K, 1) -> (B, K) float32."""
    if weight.numel() != batch * joints:
        raise ValueError(f"target weight of shape {tuple(weight.shape)} does not match (B, K) = ({batch}, {joints})")
    return weight.reshape(batch, joints).float()


def kl_global_perceived_terms(
    pred_x: torch.Tensor,
    pred_y: torch.Tensor,
    pruned_x: torch.Tensor | None,
    pruned_y: torch.Tensor | None,
    target_x: torch.Tensor,
    target_y: torch.Tensor,
    weight: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The three terms of `kl_global_perceived_loss`, each already summed over both axes and divided by K.

    Keys ``"gt_entire"``, ``"gt_pruned"``, ``"distill"``; with ``pruned_x is None`` only ``"gt_entire"``
    (then the sum is SimCC's ``KLDiscretLoss`` of ``pred``). The values add up to the loss; log them to
    see whether the pruned pass tracks the full one.
    """
    if pred_x.ndim != 3 or pred_y.ndim != 3 or pred_x.shape[:2] != pred_y.shape[:2]:
        raise ValueError(f"pred_x / pred_y must be (B, K, Wx) / (B, K, Hy), got {tuple(pred_x.shape)} / "
                         f"{tuple(pred_y.shape)}")
    if target_x.shape != pred_x.shape or target_y.shape != pred_y.shape:
        raise ValueError(f"targets {tuple(target_x.shape)} / {tuple(target_y.shape)} do not match the logits "
                         f"{tuple(pred_x.shape)} / {tuple(pred_y.shape)}")
    b, k = pred_x.shape[:2]
    w = _joint_weight(weight, b, k)

    def reduce(kl: torch.Tensor) -> torch.Tensor:
        # official: per joint, (kl * w).mean() over the batch; summed over joints; / K  ==  mean over (B, K)
        return (kl * w).mean()

    terms = {"gt_entire": reduce(_kl_over_bins(pred_x, target_x)) + reduce(_kl_over_bins(pred_y, target_y))}
    if pruned_x is None or pruned_y is None:
        if (pruned_x is None) != (pruned_y is None):
            raise ValueError("give both pruned_x and pruned_y, or neither")
        return terms
    if pruned_x.shape != pred_x.shape or pruned_y.shape != pred_y.shape:
        raise ValueError(f"pruned logits {tuple(pruned_x.shape)} / {tuple(pruned_y.shape)} do not match the "
                         f"full-token logits {tuple(pred_x.shape)} / {tuple(pred_y.shape)}")
    terms["gt_pruned"] = reduce(_kl_over_bins(pruned_x, target_x)) + reduce(_kl_over_bins(pruned_y, target_y))
    teacher_x = F.log_softmax(pred_x.detach().float(), dim=-1)
    teacher_y = F.log_softmax(pred_y.detach().float(), dim=-1)
    terms["distill"] = (reduce(_kl_over_bins(pruned_x, teacher_x, log_target=True))
                        + reduce(_kl_over_bins(pruned_y, teacher_y, log_target=True)))
    return terms


def kl_global_perceived_loss(
    pred_x: torch.Tensor,
    pred_y: torch.Tensor,
    pruned_x: torch.Tensor | None,
    pruned_y: torch.Tensor | None,
    target_x: torch.Tensor,
    target_y: torch.Tensor,
    weight: torch.Tensor,
) -> torch.Tensor:
    """GTPT's ``KLDiscretGlobalPerceivedLoss``: SimCC KL to the targets for both passes plus self-distillation.

    Args:
        pred_x, pred_y: logits (B, K, Wx) / (B, K, Hy) of the *full-token* ("entire", unpruned) pass.
        pruned_x, pruned_y: logits of the pruned pass, same shapes; ``None`` gives SimCC's plain
            ``KLDiscretLoss`` on ``pred``.
        target_x, target_y: SimCC targets (`prunepose.codecs.simcc.SimCCCodec.encode`), used as given
            (the official loss does not renormalise them).
        weight: per-joint target weight (B, K) or (B, K, 1).

    Returns:
        Scalar float32 loss. Per axis ``a`` in {x, y}, with ``q = softmax(logits)`` over the bins and
        ``KL_n(p || q) = p_n (log p_n - log q_n)`` (0 where ``p_n = 0``)::

            L = 1/K sum_j sum_a mean_b w_bj [ mean_n KL_n(t || q_entire) + mean_n KL_n(t || q_pruned)
                                             + mean_n KL_n(stopgrad(q_entire) || q_pruned) ]

        i.e. the official reduction: ``KLDivLoss(reduction='none')`` on ``log_softmax`` predictions,
        ``.mean`` over bins, times the joint weight, mean over the batch, summed over joints and axes,
        divided by K. Only the pruned pass receives gradient from the third term (temperature 1).
    """
    terms = kl_global_perceived_terms(pred_x, pred_y, pruned_x, pruned_y, target_x, target_y, weight)
    return torch.stack(list(terms.values())).sum()
