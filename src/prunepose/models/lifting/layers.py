"""Transformer layers of the video pose lifters (MixSTE, MotionBERT and their HoT versions).

Key names follow the official code (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``,
``mlp.fc2``; MotionBERT's ``*_s`` / ``*_t`` pairs) so official checkpoints load without renaming.
Attention runs on ``scaled_dot_product_attention``; the explicit softmax is computed only when a caller
asks for the attention each token *receives* (the attention-pruning ablation).

Inference path. Without autograd (``torch.no_grad`` / ``inference_mode``), in eval mode, outside ONNX/JIT
tracing and with no forward hooks, `Block` runs `_block_inference`: the same
operations in the same order, but the residual adds and GELU write into tensors the block has just
created instead of allocating new ones. The result is bitwise equal to the plain path (floating-point
addition is commutative, so ``y.add_(x)`` rounds exactly as ``x + y``). Why bitwise and not merely
close: HoT's frame selection compares densities of frames, and on padded clips (repeated edge frames)
those comparisons are near-ties decided by rounding, so a re-associated but "equal to float tolerance"
inference path could keep other frames than training/export (measured on a tiny HoT model, see
docs/performance.md). Rewrites that change rounding (dropping the key bias, which softmax cancels;
folding the value bias into the projection bias; ``addmm_`` into the residual) were measured too: at most
2 % faster, within the noise of the shared 2-core CPU, where the GEMMs alone take ~85 % of a MixSTE-243
forward at one thread.

Training and export keep the plain path (the one the official code computes), so autograd and the ONNX
graphs are unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import _global_forward_hooks, _global_forward_pre_hooks

from prunepose.nn.blocks import FeedForward


def use_inference_path(module: nn.Module) -> bool:
    """Whether ``module`` may run its in-place inference kernels: no autograd graph is recorded, it is in
    eval mode (no stochastic depth), autocast is off (the in-place kernels would mix dtypes), no exporter or
    compiler is tracing it, and no forward hook watches it or its submodules (FLOP counters and attention
    probes expect the submodule calls of the plain path)."""
    if (torch.is_grad_enabled() or module.training or torch.jit.is_tracing() or torch.jit.is_scripting()
            or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
            or torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")):
        return False
    if _global_forward_hooks or _global_forward_pre_hooks:
        return False
    return not any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch for a random subset of samples (rate ``p``)
    and rescale the rest by ``1 / (1 - p)``; identity in eval. Same rule as timm's ``DropPath``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head self-attention over the token axis of (B, N, C), scale ``head_dim ** -0.5``."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, need_received: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(out (B, N, C), received)``; ``received`` (B, N) is, when asked for, the attention mass each
        token gets as a key (post-softmax rows summed over queries, averaged over heads), else ``None``."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        received = None
        if need_received:
            attn = (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)
            out = attn @ v
            received = attn.detach().sum(dim=-2).mean(dim=1)
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c)), received


class Block(nn.Module):
    """Pre-norm transformer block ``x + DP(attn(norm1 x))``, ``x + DP(mlp(norm2 x))`` on (B, N, C)."""

    def __init__(self, dim: int, heads: int, mlp_hidden: int, qkv_bias: bool = True, drop_path: float = 0.0,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = FeedForward(dim, mlp_hidden)

    def forward(self, x: torch.Tensor, need_received: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not need_received and use_inference_path(self):
            return _block_inference(self, x), None
        out, received = self.attn(self.norm1(x), need_received)
        x = x + self.drop_path(out)
        return x + self.drop_path(self.mlp(self.norm2(x))), received


def _layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _attention_residual(x: torch.Tensor, attn: Attention, h: torch.Tensor) -> torch.Tensor:
    """``x + attn(h)`` for ``h`` (B, N, C) normalised tokens, written into the attention output's tensor;
    bitwise equal to the plain path. ``x`` is never modified (a caller may reuse it)."""
    out, _ = attn(h)
    return out.add_(x)


def _mlp_residual_(x: torch.Tensor, mlp: FeedForward, h: torch.Tensor) -> torch.Tensor:
    """``x + mlp(h)`` for normalised ``h``, GELU in place on the hidden activations; bitwise equal to the
    plain path. Returns the result in the MLP output's tensor (``x`` is left unchanged)."""
    hidden = mlp.fc1(h)
    if isinstance(mlp.act, nn.GELU):
        torch.ops.aten.gelu_(hidden, approximate=mlp.act.approximate)
    else:
        hidden = mlp.act(hidden)
    return mlp.fc2(hidden).add_(x)


def _block_inference(block: Block, x: torch.Tensor) -> torch.Tensor:
    """`Block.forward` without autograd, dropout or stochastic depth (eval), in fewer memory passes."""
    y = _attention_residual(x, block.attn, _layer_norm(block.norm1, x))
    return _mlp_residual_(y, block.mlp, _layer_norm(block.norm2, y))


def to_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, F, J, C) -> (B*F, J, C): one spatial sequence (of joints) per frame."""
    b, f, j, c = x.shape
    return x.reshape(b * f, j, c)


def to_joints(x: torch.Tensor) -> torch.Tensor:
    """(B, F, J, C) -> (B*J, F, C): one temporal sequence (of frames) per joint."""
    b, f, j, c = x.shape
    return x.transpose(1, 2).reshape(b * j, f, c)


def from_frames(x: torch.Tensor, b: int) -> torch.Tensor:
    """Inverse of `to_frames`."""
    return x.reshape(b, -1, x.shape[-2], x.shape[-1])


def from_joints(x: torch.Tensor, b: int) -> torch.Tensor:
    """Inverse of `to_joints`."""
    return x.reshape(b, -1, x.shape[-2], x.shape[-1]).transpose(1, 2)


class DualStreamBlock(nn.Module):
    """MotionBERT's DSTformer block on (B, F, J, C): spatial (over joints) and temporal (over frames)
    attention + MLP sub-blocks, in the order ``"st"`` (spatial first) or ``"ts"`` (temporal first).

    ``forward`` returns ``(x, received)``: ``received`` (B, F) is the temporal attention each frame gets,
    averaged over joints, when ``need_received`` (else ``None``).
    """

    def __init__(self, dim: int, heads: int, mlp_hidden: int, order: str, qkv_bias: bool = True,
                 drop_path: float = 0.0, eps: float = 1e-6) -> None:
        super().__init__()
        if order not in ("st", "ts"):
            raise ValueError(f"order must be 'st' or 'ts', got {order!r}")
        self.order = order
        self.norm1_s = nn.LayerNorm(dim, eps=eps)
        self.norm1_t = nn.LayerNorm(dim, eps=eps)
        self.attn_s = Attention(dim, heads, qkv_bias)
        self.attn_t = Attention(dim, heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2_s = nn.LayerNorm(dim, eps=eps)
        self.norm2_t = nn.LayerNorm(dim, eps=eps)
        self.mlp_s = FeedForward(dim, mlp_hidden)
        self.mlp_t = FeedForward(dim, mlp_hidden)

    def _spatial(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        out, _ = self.attn_s(to_frames(self.norm1_s(x)))
        x = x + self.drop_path(from_frames(out, b))
        return x + self.drop_path(self.mlp_s(self.norm2_s(x)))

    def _temporal(self, x: torch.Tensor, need_received: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, _, j, _ = x.shape
        out, received = self.attn_t(to_joints(self.norm1_t(x)), need_received)
        x = x + self.drop_path(from_joints(out, b))
        if received is not None:
            received = received.reshape(b, j, -1).mean(dim=1)
        return x + self.drop_path(self.mlp_t(self.norm2_t(x))), received

    def forward(self, x: torch.Tensor, need_received: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.order == "st":
            return self._temporal(self._spatial(x), need_received)
        x, received = self._temporal(x, need_received)
        return self._spatial(x), received
