"""Frame (temporal token) selection for video pose lifters: HoT's TPC and the ablation baselines.

Why separate from ``selectors.py``: the 2D selectors rank *visual tokens of one image* by attention; here
a whole frame (all its joint tokens) is kept or dropped, and the ranking is density-peak clustering over
time. Every selector returns **sorted ascending** frame indices (B, f), relative to the frames it was given,
so the kept tokens stay in temporal order. Selection is never differentiated (``torch.no_grad``).

Selectors (``kind``):

* ``"dpc_knn"`` -- TPC (HoT section 3.1, official ``cluster_dpc_knn``): cluster centres by density peaks
  on joint-averaged frame features;
* ``"uniform"`` -- evenly spaced frames (DeciWatch / P-STMO style sampling);
* ``"attention"`` -- frames receiving the most temporal attention (PPT-style attention pruning);
* ``"motion"`` -- frames whose input 2D moves the most (top-k largest motion).

Each can keep a given frame unconditionally (``keep_index``): the seq2frame variant keeps the centre
frame (HoT section 3.3, official ``cluster_dpc_knn_center``).
"""
from __future__ import annotations

import math

import torch

SELECTORS = ("dpc_knn", "uniform", "attention", "motion")
#: how DPC-kNN breaks density ties: official random noise, or deterministically by frame index
TIE_BREAKS = ("random", "index")


@torch.no_grad()
def dpc_knn_scores(features: torch.Tensor, k: int = 2, generator: torch.Generator | None = None,
                   tie_break: str = "random") -> torch.Tensor:
    """Density-peak cluster-centre scores ``delta * rho`` of each frame, (B, N, C) -> (B, N).

    With ``tie_break="random"`` (default), exactly the official computation:

    * ``D = cdist(x, x) / sqrt(C)`` (``torch.cdist`` default mode, as the official code);
    * ``rho_i = exp(-mean of D_ij^2 over the k nearest j)`` -- the k nearest include i itself (distance 0),
      so the default ``k = 2`` is "self + the nearest other frame"; plus ``U(0, 1) * 1e-6`` noise to break
      ties, drawn from ``generator`` when given (deterministic selection) else from the global RNG;
    * ``delta_i = min D_ij over j with rho_j > rho_i``; for the densest frame, the maximum of the whole
      distance matrix (per batch element);
    * score ``= delta * rho``.

    Why ties matter: with ``k = 2`` two frames that are each other's nearest neighbour have the *same*
    density, so which of the two becomes a centre is decided by the noise, and consecutive video frames
    are so close that cdist's ``|a|^2 + |b|^2 - 2ab`` rounding is of the size of their distances. The
    selection is random run to run (on Human3.6M clips about a quarter of the kept frames change with the
    seed, see docs/export.md). ``tie_break="index"`` is the deterministic variant used by exported ONNX
    graphs (which cannot reproduce torch's RNG) and for reproducible runs: the same mathematics on
    features centred over frames (translation leaves distances unchanged but removes most of the
    cancellation), distances made exactly symmetric with a zero diagonal so mutual-neighbour ties are
    exact in any float implementation, no noise, and of two frames with equal density the lower frame
    index counts as the denser one.
    """
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"unknown tie_break {tie_break!r}; use one of {TIE_BREAKS}")
    b, n, c = features.shape
    x = features if features.dtype in (torch.float32, torch.float64) else features.float()  # no half-precision cdist
    if tie_break == "index":  # centred: same distances, far less cancellation in cdist's |a|^2 + |b|^2 - 2ab
        x = x - x.mean(dim=1, keepdim=True)
    dist = torch.cdist(x, x) / math.sqrt(c)
    idx = torch.arange(n, device=dist.device)
    if tie_break == "index":  # (an arange comparison, not torch.eye: onnxruntime has no boolean EyeLike)
        dist = (0.5 * (dist + dist.transpose(1, 2))).masked_fill(idx[:, None] == idx[None, :], 0.0)
    nearest = torch.topk(dist, k=min(k, n), dim=-1, largest=False).values
    density = (-(nearest**2).mean(dim=-1)).exp()
    if tie_break == "random":
        gen_device = generator.device if generator is not None else density.device
        noise = torch.rand(density.shape, generator=generator, device=gen_device, dtype=density.dtype)
        density = density + noise.to(density.device) * 1e-6
    higher = density[:, None, :] > density[:, :, None]  # [b, i, j]: rho_j > rho_i
    if tie_break == "index":
        higher = higher | ((density[:, None, :] == density[:, :, None]) & (idx[None, :] < idx[:, None]))
    dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
    delta = torch.where(higher, dist, dist_max).min(dim=-1).values
    return delta * density


def _keep_vector(keep_index: int | torch.Tensor, batch: int, n: int, device: torch.device) -> torch.Tensor:
    keep = torch.as_tensor(keep_index, dtype=torch.long, device=device).expand(batch)
    if bool(((keep < 0) | (keep >= n)).any()):
        raise ValueError(f"keep_index {keep_index} out of range for {n} frames")
    return keep


@torch.no_grad()
def top_frames(scores: torch.Tensor, num_keep: int, keep_index: int | torch.Tensor | None = None) -> torch.Tensor:
    """The ``num_keep`` best-scored frames of (B, N) scores, sorted ascending, (B, num_keep) int64.

    With ``keep_index`` (an int, or (B,) per sample), that frame is always kept: its score is set to
    -inf, the best ``num_keep - 1`` others are taken and it is added (the official seq2frame
    ``cluster_dpc_knn_center``).
    """
    b, n = scores.shape
    if not 1 <= num_keep <= n:
        raise ValueError(f"cannot keep {num_keep} of {n} frames")
    if keep_index is None:
        index = torch.topk(scores, k=num_keep, dim=-1).indices
    else:
        keep = _keep_vector(keep_index, b, n, scores.device)
        masked = scores.clone()
        masked.scatter_(1, keep[:, None], -math.inf)
        index = torch.topk(masked, k=num_keep - 1, dim=-1).indices
        index = torch.cat([index, keep[:, None]], dim=1)
    return torch.sort(index, dim=-1).values


@torch.no_grad()
def dpc_knn_select(features: torch.Tensor, num_keep: int, k: int = 2, keep_index: int | torch.Tensor | None = None,
                   generator: torch.Generator | None = None, tie_break: str = "random") -> torch.Tensor:
    """TPC: the ``num_keep`` cluster-centre frames of (B, N, C) frame features -> sorted (B, num_keep)."""
    return top_frames(dpc_knn_scores(features, k=k, generator=generator, tie_break=tie_break), num_keep, keep_index)


@torch.no_grad()
def uniform_select(batch: int, num_frames: int, num_keep: int, keep_index: int | torch.Tensor | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Evenly spaced frames: ``floor((i + 0.5) * N / f)`` for i < f, i.e. the centres of f equal
    segments (243 -> 81 gives 1, 4, ..., 241, which contains the centre 121). With ``keep_index`` (int or
    (B,)) not among them, the nearest sampled frame is replaced by it."""
    if not 1 <= num_keep <= num_frames:
        raise ValueError(f"cannot keep {num_keep} of {num_frames} frames")
    pos = torch.floor((torch.arange(num_keep, dtype=torch.float64) + 0.5) * num_frames / num_keep).long()
    pos = pos.clamp(0, num_frames - 1).to(device).unsqueeze(0).expand(batch, num_keep).clone()
    if keep_index is not None:
        keep = _keep_vector(keep_index, batch, num_frames, pos.device)
        present = (pos == keep[:, None]).any(dim=1)
        nearest = (pos - keep[:, None]).abs().argmin(dim=1)
        rows = torch.arange(batch, device=pos.device)
        pos[rows, nearest] = torch.where(present, pos[rows, nearest], keep)
        pos = torch.sort(pos, dim=1).values
    return pos


@torch.no_grad()
def attention_select(received: torch.Tensor, num_keep: int,
                     keep_index: int | torch.Tensor | None = None) -> torch.Tensor:
    """Frames receiving the most attention: ``received`` (B, N) is the attention mass each frame gets as a
    key (softmax rows summed over queries, averaged over heads and joints) -> sorted (B, num_keep)."""
    return top_frames(received, num_keep, keep_index)


def frame_motion(poses: torch.Tensor) -> torch.Tensor:
    """Per-frame 2D motion of (B, N, J, >=2) poses: mean over joints of ``|p_t - p_{t-1}|`` on x, y,
    frame 0 taking frame 1's value (its only neighbour) -> (B, N)."""
    xy = poses[..., :2].float()
    step = torch.linalg.vector_norm(xy[:, 1:] - xy[:, :-1], dim=-1).mean(dim=-1)  # (B, N - 1)
    if step.shape[1] == 0:
        return torch.zeros(poses.shape[:2], device=poses.device)
    return torch.cat([step[:, :1], step], dim=1)


@torch.no_grad()
def motion_select(poses: torch.Tensor, num_keep: int, keep_index: int | torch.Tensor | None = None) -> torch.Tensor:
    """Frames with the largest 2D motion (`frame_motion`) of (B, N, J, >=2) poses -> sorted (B, num_keep)."""
    return top_frames(frame_motion(poses), num_keep, keep_index)


class FrameSelector:
    """One of `SELECTORS` behind a single call, so models switch strategy by configuration.

    ``select(num_keep, features=..., received=..., poses=..., keep_index=..., generator=...)`` uses the
    evidence its kind needs: ``features`` (B, N, C) for ``dpc_knn`` (and for the batch size/device of
    ``uniform``), ``received`` (B, N) for ``attention``, ``poses`` (B, N, J, >=2) for ``motion``.
    ``tie_break`` (attribute, see `dpc_knn_scores`) is ``"random"`` as the official code, or ``"index"``.
    """

    def __init__(self, kind: str = "dpc_knn", k: int = 2, tie_break: str = "random") -> None:
        if kind not in SELECTORS:
            raise ValueError(f"unknown frame selector {kind!r}; use one of {SELECTORS}")
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"unknown tie_break {tie_break!r}; use one of {TIE_BREAKS}")
        self.kind = kind
        self.k = int(k)
        self.tie_break = tie_break

    def __repr__(self) -> str:
        return f"FrameSelector(kind={self.kind!r}, k={self.k}, tie_break={self.tie_break!r})"

    @torch.no_grad()
    def select(self, num_keep: int, *, features: torch.Tensor, received: torch.Tensor | None = None,
               poses: torch.Tensor | None = None, keep_index: int | torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        if self.kind == "dpc_knn":
            return dpc_knn_select(features, num_keep, k=self.k, keep_index=keep_index, generator=generator,
                                  tie_break=self.tie_break)
        if self.kind == "uniform":
            return uniform_select(features.shape[0], features.shape[1], num_keep, keep_index, features.device)
        if self.kind == "attention":
            if received is None:
                raise ValueError("the attention selector needs the attention received per frame")
            return attention_select(received, num_keep, keep_index)
        if poses is None:
            raise ValueError("the motion selector needs the input 2D poses of the frames")
        return motion_select(poses, num_keep, keep_index)


__all__ = [
    "SELECTORS",
    "TIE_BREAKS",
    "FrameSelector",
    "attention_select",
    "dpc_knn_scores",
    "dpc_knn_select",
    "frame_motion",
    "motion_select",
    "top_frames",
    "uniform_select",
]
