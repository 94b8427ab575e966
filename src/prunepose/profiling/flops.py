"""Compute cost in the three conventions that the pose-transformer papers mix up.

Why three counters: TokenPose/PPT tables use HRNet's ``get_model_summary`` hook counter (which
multiplies every Linear by the *sequence length* instead of ``in_features`` and ignores attention),
GTPT/HoT quote ``thop`` MACs (module rules only, no attention matmuls), and neither is the real cost.
Comparing with a published table needs the paper's own convention; deciding anything needs the
honest one. All three are computed from one forward pass on an example input:

``true``
    Every multiply-accumulate of convolutions and matrix products, attention included, counted by
    :class:`torch.utils.flop_counter.FlopCounterMode` (its FLOPs / 2). Normalisation, softmax and
    activations are not counted (they are not matmuls).
``thop``
    What ``thop.profile`` 0.1.1.post2209072238 (the version pinned by the official repos) reports:
    forward hooks with per-module-type rules, summed over the module tree the way thop does. The
    rules are re-implemented here (thop is not a dependency).
``paper-hrnet``
    HRNet's ``get_model_summary``: Conv = prod(weight.shape) x H_out x W_out (batch ignored), Linear =
    output.numel() x ``input.size(1)`` (for token inputs that is the sequence length, a bug kept on
    purpose), nothing else. Papers print it divided by 1024**3 and call it "GFLOPs".

Counts are raw integers; :func:`profile_model` converts them to the units each convention publishes.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunepose.errors import ConfigError
from prunepose.profiling.params import count_params

CONVENTIONS = ("true", "thop", "paper-hrnet")
GIGA = 1e9  # true and thop MACs are published in units of 1e9
PAPER_GIGA = 1024**3  # HRNet's get_model_summary divides by 1024**3

Inputs = torch.Tensor | Sequence[torch.Tensor]

# ---------------------------------------------------------------------------------------------------
# true: FlopCounterMode plus the CPU fused-attention kernel it does not know
# ---------------------------------------------------------------------------------------------------


def _attention_flops(query_shape: torch.Size, key_shape: torch.Size, value_shape: torch.Size, *args: Any,
                     out_shape: Any = None, **kwargs: Any) -> int:
    """FLOPs of softmax(q kᵀ) v: the two batched matmuls, 2·B·H·Lq·Lk·(D + Dv).

    Registered for ``aten._scaled_dot_product_flash_attention_for_cpu``, the op that
    ``F.scaled_dot_product_attention`` dispatches to on CPU and that FlopCounterMode leaves at zero
    (it only knows the CUDA flash/efficient/cudnn kernels). Heads are taken from the query, so
    grouped-query attention (fewer key/value heads) is counted as the kernel broadcasts it.
    """
    b, h, lq, d = query_shape
    lk = key_shape[-2]
    dv = value_shape[-1]
    return 2 * b * h * lq * lk * d + 2 * b * h * lq * lk * dv


def _extra_flop_formulas() -> dict[Any, Callable[..., int]]:
    ops = torch.ops.aten
    name = "_scaled_dot_product_flash_attention_for_cpu"
    return {getattr(ops, name): _attention_flops} if hasattr(ops, name) else {}


class _TrueCounter:
    """Matmul/conv MACs of everything the forward pass dispatches (FlopCounterMode FLOPs / 2)."""

    def __init__(self) -> None:
        self._mode = FlopCounterMode(display=False, custom_mapping=_extra_flop_formulas())

    @contextmanager
    def attach(self, model: nn.Module) -> Iterator[None]:
        with self._mode:
            yield

    def total(self) -> int:
        return self._mode.get_total_flops() // 2


# ---------------------------------------------------------------------------------------------------
# thop 0.1.1.post2209072238 rules (MACs per call of a module of exactly that type)
# ---------------------------------------------------------------------------------------------------

_ModuleRule = Callable[[nn.Module, tuple[Any, ...], Any], int]


def _zero(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    return 0


def _thop_conv(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    # output elements x (input channels per group x kernel elements); thop's newer rule drops the bias
    return out.numel() * (inputs[0].shape[1] // m.groups) * math.prod(m.weight.shape[2:])


def _thop_norm(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    # 2 per element (subtract mean, divide by std), doubled when there is an affine scale/shift
    affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
    return 2 * inputs[0].numel() * (2 if affine else 1)


def _thop_prelu(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    return 0 if m.training else inputs[0].numel()


def _thop_softmax(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    if m.dim is None:  # thop would crash on x.size(None); refuse rather than guess
        raise ValueError("thop convention: nn.Softmax without an explicit dim is not countable")
    x = inputs[0]
    n = x.shape[m.dim]
    return (x.numel() // n) * (3 * n - 1)  # exp + (n - 1) adds + div per row


def _thop_avgpool(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    return out.numel()


def _thop_adaptive_avgpool(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    kernel = math.prod(i / o for i, o in zip(inputs[0].shape[2:], out.shape[2:]))
    return int((kernel + 1) * out.numel())


_UPSAMPLE_FACTOR = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 224 + 35}


def _thop_upsample(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    return out.numel() * _UPSAMPLE_FACTOR.get(m.mode, 0)  # thop counts other modes as zero


def _thop_linear(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> int:
    return m.in_features * out.numel()


def _thop_rules() -> dict[type, _ModuleRule]:
    """thop's ``register_hooks`` table: exact module type -> rule (subclasses get no rule)."""
    rules: dict[type, _ModuleRule] = {}
    for types, rule in [
        ((nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
         _thop_conv),
        ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.LayerNorm, nn.InstanceNorm1d,
          nn.InstanceNorm2d, nn.InstanceNorm3d), _thop_norm),
        ((nn.PReLU,), _thop_prelu),
        ((nn.Softmax,), _thop_softmax),
        ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), _thop_avgpool),
        ((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d), _thop_adaptive_avgpool),
        ((nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d), _thop_upsample),
        ((nn.Linear,), _thop_linear),
        ((nn.ZeroPad2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
          nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Dropout, nn.Sequential,
          nn.PixelShuffle), _zero),
    ]:
        rules.update(dict.fromkeys(types, rule))
    return rules


_THOP_RULES = _thop_rules()
# thop has rules for these too; no model here uses them, so they are refused rather than re-derived.
_THOP_UNSUPPORTED = (nn.RNNCell, nn.GRUCell, nn.LSTMCell, nn.RNN, nn.GRU, nn.LSTM)


class _ThopCounter:
    """Per-module hooks with thop's rules, then thop's tree walk.

    thop's walk: a module's total is its own count plus, for each child, the child's count if the
    child has a rule (and is not a Sequential/ModuleList), else the child's recursive total. So a
    module with a rule hides its children, modules without a rule (GELU, Identity, custom blocks)
    contribute only through their children, and functional ops (``torch.matmul``, ``F.softmax``,
    ``F.scaled_dot_product_attention``, tensor additions) are never counted.
    """

    def __init__(self) -> None:
        self._ops: dict[nn.Module, int] = {}
        self._root: nn.Module | None = None

    @contextmanager
    def attach(self, model: nn.Module) -> Iterator[None]:
        self._root = model
        handles = []
        try:
            for m in model.modules():
                if type(m) in _THOP_UNSUPPORTED:
                    raise NotImplementedError(f"thop convention: recurrent module {type(m).__name__} is not supported")
                rule = _THOP_RULES.get(type(m))
                if rule is not None:
                    self._ops[m] = 0
                    handles.append(m.register_forward_hook(self._make_hook(rule)))
            yield
        finally:
            for h in handles:
                h.remove()

    def _make_hook(self, rule: _ModuleRule) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(m: nn.Module, inputs: tuple[Any, ...], out: Any) -> None:
            self._ops[m] += rule(m, inputs, out)

        return hook

    def _walk(self, module: nn.Module) -> int:
        total = self._ops.get(module, 0)
        for child in module.children():
            if child in self._ops and not isinstance(child, (nn.Sequential, nn.ModuleList)):
                total += self._ops[child]
            else:
                total += self._walk(child)
        return total

    def total(self) -> int:
        assert self._root is not None, "attach() the counter and run the model first"
        return self._walk(self._root)


# ---------------------------------------------------------------------------------------------------
# paper-hrnet: HRNet's get_model_summary
# ---------------------------------------------------------------------------------------------------


class _HRNetSummaryCounter:
    """HRNet ``get_model_summary`` "Multiply Adds": Conv and Linear only, with its quirks.

    * Every module except the root, ``nn.Sequential`` and ``nn.ModuleList`` is hooked, per call.
    * "Conv" = any module whose class name contains ``Conv`` and that has a ``weight``:
      prod(weight.shape) x prod(output.shape[2:]); bias and batch size are ignored.
    * Linear (``isinstance``): output.numel() x input.size(1). For (B, N, C) token inputs that is N,
      not in_features, which inflates long-sequence models (TokenPose-S-v2: 11.6 "GFLOPs" vs 7.5 true
      GMACs). Attention matmuls, norms, softmax and activations are not counted.
    """

    def __init__(self) -> None:
        self._total = 0

    @contextmanager
    def attach(self, model: nn.Module) -> Iterator[None]:
        handles = []
        try:
            for m in model.modules():
                if m is model or isinstance(m, (nn.Sequential, nn.ModuleList)):
                    continue
                handles.append(m.register_forward_hook(self._hook))
            yield
        finally:
            for h in handles:
                h.remove()

    def _hook(self, m: nn.Module, inputs: tuple[Any, ...], out: Any) -> None:
        if "Conv" in type(m).__name__ and hasattr(m, "weight"):
            if not torch.is_tensor(out) or out.dim() < 2:
                raise ValueError(f"paper-hrnet convention: {type(m).__name__} returned no (B, C, ...) tensor")
            self._total += math.prod(m.weight.shape) * math.prod(out.shape[2:])
        elif isinstance(m, nn.Linear):
            x = inputs[0]
            if x.dim() < 2:
                raise ValueError("paper-hrnet convention: nn.Linear on a 1-D input has no size(1) to multiply by")
            self._total += out.numel() * x.shape[1]

    def total(self) -> int:
        return self._total


_COUNTERS: dict[str, type] = {"true": _TrueCounter, "thop": _ThopCounter, "paper-hrnet": _HRNetSummaryCounter}


# ---------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------


@contextmanager
def _inference(model: nn.Module) -> Iterator[None]:
    """eval + no_grad for the measurement, then the caller's training flag back.

    Why eval: in train mode the forward would update BatchNorm running statistics, i.e. profiling would
    change the model.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _as_tuple(inputs: Inputs) -> tuple[torch.Tensor, ...]:
    return (inputs,) if torch.is_tensor(inputs) else tuple(inputs)


def count_all(model: nn.Module, inputs: Inputs, conventions: Sequence[str] = CONVENTIONS) -> dict[str, int]:
    """Raw counts ``{convention: int}`` from a single forward pass of ``model(*inputs)``.

    All three are multiply-accumulate counts in their own rules (``true``/``thop`` MACs, ``paper-hrnet``
    the HRNet counter's "multiply adds"). The model is run in eval mode under ``torch.no_grad()``; hooks
    are removed and the training flag restored afterwards. The output (any type) is discarded.
    """
    unknown = [c for c in conventions if c not in _COUNTERS]
    if unknown:
        raise ValueError(f"unknown cost convention(s) {unknown}; use {', '.join(CONVENTIONS)}")
    counters = {c: _COUNTERS[c]() for c in conventions}
    args = _as_tuple(inputs)
    with _inference(model), ExitStack() as stack:
        for counter in counters.values():
            stack.enter_context(counter.attach(model))
        model(*args)
    return {c: counter.total() for c, counter in counters.items()}


def count_macs(model: nn.Module, inputs: Inputs, convention: str = "true") -> int:
    """Raw count of ``model(*inputs)`` in one convention (``true`` | ``thop`` | ``paper-hrnet``)."""
    return count_all(model, inputs, (convention,))[convention]


def default_input_shape(model: nn.Module, batch: int = 1) -> tuple[int, ...]:
    """(batch, 3, H, W) from ``model.config.input_size`` (width, height) for image models;
    (batch, V, 3, H, W) with ``config.num_views`` for multi-view models;
    (batch, F, J, C_in) from ``num_frames`` / ``num_joints`` / ``in_channels`` for 2D->3D lifters."""
    config = getattr(model, "config", None)
    if hasattr(config, "num_frames") and hasattr(config, "num_joints"):
        return (batch, int(config.num_frames), int(config.num_joints), int(getattr(config, "in_channels", 2)))
    size = getattr(config, "input_size", None)
    if size is None:
        raise ConfigError(f"{type(model).__name__} has no config.input_size; pass input_shape explicitly")
    w, h = size
    if hasattr(config, "num_views"):
        return (batch, int(config.num_views), 3, int(h), int(w))
    return (batch, 3, int(h), int(w))


def profile_model(model: nn.Module, input_shape: Sequence[int] | None = None) -> dict[str, Any]:
    """Parameters and compute of ``model`` on a random input of ``input_shape`` (default: batch 1 at the
    model's configured input size), in every convention, as a JSON-ready record of plain numbers.

    Units: ``macs_true``/``macs_thop`` in G = 1e9 MACs, ``flops_true`` = 2 x ``macs_true`` in G = 1e9
    FLOPs, ``gflops_paper_hrnet`` in the TokenPose/PPT papers' unit (HRNet counter / 1024**3).
    """
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else default_input_shape(model)
    if not shape or any(s <= 0 for s in shape):
        raise ConfigError(f"input_shape must be positive integers, got {shape}")
    # Values never change the counts of these models; a private generator keeps the global RNG untouched.
    param = next(model.parameters(), None)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(shape, generator=gen)
    if param is not None:
        images = images.to(device=param.device, dtype=param.dtype if param.is_floating_point() else None)
    # Models whose forward needs more than the images (multi-view cameras) supply example arguments.
    profile_inputs = getattr(model, "profile_inputs", None)
    counts = count_all(model, profile_inputs(images) if callable(profile_inputs) else images)
    config = getattr(model, "config", None)
    keep_ratio = getattr(model, "keep_ratio", None)
    lifter = hasattr(config, "num_frames")
    record = {
        "model": str(getattr(config, "name", type(model).__name__)),
        "input_shape": list(shape),
        "keep_ratio": float(keep_ratio) if keep_ratio is not None else None,
        "params": count_params(model, "all"),
        "params_trainable": count_params(model, "trainable"),
        "params_hrnet": count_params(model, "hrnet"),
        "macs_true": counts["true"] / GIGA,
        "flops_true": 2 * counts["true"] / GIGA,
        "macs_thop": counts["thop"] / GIGA,
        "gflops_paper_hrnet": counts["paper-hrnet"] / PAPER_GIGA,
    }
    if lifter:  # HoT's convention: 2 x thop MACs for one clip (the input's batch)
        record["flops_hot"] = 2 * counts["thop"] / GIGA
    return record


_ROWS = [
    ("macs_true", "GMACs", "1e9", "true cost: every conv/matmul multiply-accumulate, attention included"),
    ("flops_true", "GFLOPs", "1e9", "2 x true MACs"),
    ("macs_thop", "GMACs", "1e9", "thop 0.1.1 rules: Conv/Linear/norm/pool/upsample modules, no attention (GTPT)"),
    ("gflops_paper_hrnet", '"GFLOPs"', "1024^3", "HRNet get_model_summary: Conv + Linear x seq length (TokenPose/PPT)"),
    ("flops_hot", "GFLOPs", "1e9", "2 x thop MACs per clip (HoT, MixSTE, MotionBERT tables)"),
]
_PARAM_ROWS = [
    ("params", "all parameters (incl. the frozen sine PE)"),
    ("params_trainable", "parameters with requires_grad"),
    ("params_hrnet", "Conv/BatchNorm/Linear parameters only (TokenPose/PPT tables)"),
]


def format_profile(record: dict[str, Any]) -> str:
    """Human-readable table of a :func:`profile_model` record, with each convention's unit and meaning."""
    layout = "(B, F, J, C)" if "flops_hot" in record else "(B, V, C, H, W)" if len(record["input_shape"]) == 5 \
        else "(B, C, H, W)"
    head = f"{record['model']}  input {tuple(record['input_shape'])} {layout}"
    if record.get("keep_ratio") is not None:
        head += f"  keep_ratio {record['keep_ratio']:g}"
    rows = [("quantity", "value", "unit", "per", "what is counted")]
    rows += [(key, f"{record[key]:.3f}", unit, per, what) for key, unit, per, what in _ROWS if key in record]
    rows += [(key, f"{record[key]:,}", "", "", what) for key, what in _PARAM_ROWS]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [head]
    for r in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4])
    return "\n".join(line.rstrip() for line in lines)


__all__ = ["CONVENTIONS", "count_all", "count_macs", "default_input_shape", "format_profile", "profile_model"]
