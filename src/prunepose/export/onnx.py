"""Export a prunepose model to ONNX with its token pruning inside the graph.

Why the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``): torch 2.13's default
dynamo exporter needs the ``onnxscript`` package, which this project does not depend on, and the traced
graph is exactly what we want -- pruning is data-dependent in *values* (which tokens: attention rows ->
TopK -> Gather, DPC-kNN scores -> TopK -> GatherElements) but static in *shapes* (how many tokens is fixed
by the config), so tracing records the selection as graph ops instead of baking in one input's choice.

Graph interface (also written to the JSON beside the ``.onnx``):

* input ``"images"`` (B, 3, H, W) float32 normalised RGB for 2D models; ``"keypoints2d"`` (B, F, J, C_in)
  normalised 2D for the lifters;
* outputs ``"heatmaps"`` (TokenPose / PPT) or ``"simcc_x"``, ``"simcc_y"`` (GTPT) or ``"pose3d"``
  (lifters), then ``"kept_0"``, ``"kept_1"``, ... int64: the model's ``out.kept`` per pruning stage
  (absolute token-grid indices for 2D models, absolute frame indices for lifters);
* the batch axis is dynamic unless ``dynamic_batch=False``.

One deliberate difference from eager PyTorch: HoT's DPC-kNN breaks density ties with random noise (the
official code), and with ``k = 2`` ties are structural (two mutually nearest frames have equal density), so
eager PyTorch itself picks different frames run to run. A graph cannot reproduce torch's RNG, so lifters are
exported with the deterministic ``tie_break="index"`` rule of :func:`prunepose.pruning.temporal.dpc_knn_scores`;
run PyTorch inside :func:`frame_tie_break` ``(model, "index")`` to get the same frames as the ONNX graph.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunepose.errors import ConfigError, PrunePoseError

TASK_HEATMAP = "heatmap"
TASK_SIMCC = "simcc"
TASK_LIFTING = "lifting"
#: lowest opset whose exporter has scaled_dot_product_attention (and TopK with a tensor k)
MIN_OPSET = 14
FORMAT = "prunepose-onnx/1"
#: keys the exported JSON adds next to the config fields
GRAPH_KEYS = ("format", "task", "input_name", "input_shape", "output_names", "opset", "torch_version", "pruning")


def model_task(model: nn.Module) -> str:
    """``"heatmap"`` (TokenPose/PPT), ``"simcc"`` (GTPT) or ``"lifting"`` (MixSTE/MotionBERT and HoT)."""
    from prunepose.models.gtpt import GTPT
    from prunepose.models.lifting import MixSTE, MotionBERT
    from prunepose.models.tokenpose import TokenPose

    if isinstance(model, TokenPose):
        return TASK_HEATMAP
    if isinstance(model, GTPT):
        return TASK_SIMCC
    if isinstance(model, (MixSTE, MotionBERT)):
        return TASK_LIFTING
    raise PrunePoseError(f"cannot export {type(model).__name__} to ONNX: only prunepose TokenPose/PPT, GTPT and "
                         "lifting models (MixSTE, MotionBERT, HoT/TPC) are supported")


def input_name(task: str) -> str:
    return "keypoints2d" if task == TASK_LIFTING else "images"


def main_output_names(task: str) -> tuple[str, ...]:
    return {TASK_HEATMAP: ("heatmaps",), TASK_SIMCC: ("simcc_x", "simcc_y"), TASK_LIFTING: ("pose3d",)}[task]


def input_shape(model: nn.Module, batch: int = 1) -> tuple[int, ...]:
    """Shape of one input batch: (B, 3, H, W) for 2D models, (B, F, J, C_in) for lifters."""
    c = model.config
    if model_task(model) == TASK_LIFTING:
        return (batch, c.num_frames, c.num_joints, c.in_channels)
    return (batch, 3, c.input_size[1], c.input_size[0])


def example_input(model: nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random input of the model's shape (values only drive the trace; pruning stays data-dependent).

    Batch 2 by default so that no batch-1 special case (a squeezed axis, a broadcast) gets recorded.
    """
    gen = torch.Generator().manual_seed(seed)
    shape = input_shape(model, batch)
    if model_task(model) == TASK_LIFTING:
        x = torch.rand(shape, generator=gen) * 2 - 1  # normalised screen coordinates are in [-1, 1]
        if shape[-1] == 3:
            x[..., 2] = x[..., 2].abs()  # confidence column in [0, 1]
        return x
    return torch.randn(shape, generator=gen)


@contextlib.contextmanager
def frame_tie_break(model: nn.Module, mode: str = "index") -> Iterator[nn.Module]:
    """Temporarily set the DPC-kNN tie-break rule (``"random"`` | ``"index"``) of every frame selector in
    ``model`` (HoT / TPC lifters; a no-op for other models); the previous rules are restored on exit."""
    from prunepose.pruning.temporal import TIE_BREAKS, FrameSelector

    if mode not in TIE_BREAKS:
        raise ConfigError(f"tie-break mode must be one of {TIE_BREAKS}, got {mode!r}")
    selectors = [s for m in model.modules() if isinstance(s := getattr(m, "selector", None), FrameSelector)]
    before = [s.tie_break for s in selectors]
    for s in selectors:
        s.tie_break = mode
    try:
        yield model
    finally:
        for s, old in zip(selectors, before):
            s.tie_break = old


class _FlatOutputs(nn.Module):
    """Returns the model's output as a flat tuple ``(main outputs..., kept_0, kept_1, ...)``: ONNX graph
    outputs are positional, the models return dataclasses."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x)
        if self.task == TASK_HEATMAP:
            main: tuple[torch.Tensor, ...] = (out.heatmaps,)
        elif self.task == TASK_SIMCC:
            main = (out.simcc_x, out.simcc_y)
        else:
            main = (out.pose3d,)
        return (*main, *out.kept)


def export_config(model: nn.Module) -> dict[str, Any]:
    """The model's registry config as a flat dict, with the settings the model *runs* with.

    TokenPose/PPT's ``keep_ratio`` is a mutable attribute (training schedules change it), so the value on
    the model, not the one it was built with, is what the exported graph prunes with.
    """
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise PrunePoseError(f"{type(model).__name__} has no registry config (.config dataclass) to describe it")
    info = dataclasses.asdict(config)
    if "keep_ratio" in info and hasattr(model, "keep_ratio"):
        info["keep_ratio"] = float(model.keep_ratio)
    return info


def export_onnx(model: nn.Module, path: str | Path, *, opset: int = 17, dynamic_batch: bool = True,
                metadata: dict[str, Any] | None = None) -> Path:
    """Export ``model`` to ``path`` (``.onnx``) and write ``path.with_suffix(".json")`` beside it.

    The model is traced in eval mode (its mode is restored afterwards) on a random input of its
    configured size. ``metadata`` (provenance such as ``trained_on``, ``licence``) is merged into the JSON
    as :func:`prunepose.weights.save_weights` does. Returns ``path``.
    """
    from prunepose.atomic import atomic_write

    path = Path(path)
    if path.suffix != ".onnx":
        raise ConfigError(f"ONNX output path must end in .onnx, got {path}")
    if not MIN_OPSET <= int(opset) <= 20:
        raise ConfigError(f"opset must be in [{MIN_OPSET}, 20] (attention needs opset >= {MIN_OPSET}), got {opset}")
    task = model_task(model)
    info = export_config(model)
    clash = sorted(set(metadata or {}) & (set(info) | set(GRAPH_KEYS)))
    if clash:
        raise PrunePoseError(f"export_onnx: metadata keys {clash} collide with config fields or graph keys")
    if any(hasattr(m, "_orig_mod") for m in model.modules()):  # torch.compile wrappers cannot be traced
        raise PrunePoseError("export the model before torch.compile (prepare_for_inference(compile_backbone=True))")

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        x = example_input(model, batch=2 if dynamic_batch else 1).to(device)
        with torch.no_grad():
            num_kept = len(_FlatOutputs(model, task)(x)) - len(main_output_names(task))
        outputs = [*main_output_names(task), *(f"kept_{i}" for i in range(num_kept))]
        name_in = input_name(task)
        axes = {n: {0: "batch"} for n in [name_in, *outputs]} if dynamic_batch else None
        buffer = io.BytesIO()
        with warnings.catch_warnings(), frame_tie_break(model, "index"):
            # shape arithmetic on the static token/frame counts is meant to be constant in the trace
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # chosen on purpose (module docstring); torch 2.13 warns that this exporter is the legacy one
            warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export",
                                    category=DeprecationWarning)
            warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
            # gathers by frame index: the indices are never negative, which is what this warns about
            warnings.filterwarnings("ignore", message="Exporting aten::index operator of advanced indexing")
            torch.onnx.export(_FlatOutputs(model, task), (x,), buffer, dynamo=False, input_names=[name_in],
                              output_names=outputs, opset_version=int(opset), dynamic_axes=axes,
                              do_constant_folding=True)
    except PrunePoseError:
        raise
    except Exception as exc:  # noqa: BLE001  (the exporter raises many types; name the model instead)
        name = getattr(model.config, "name", type(model).__name__)
        reason = str(exc).split("\n")[0]  # the exporter appends the whole TorchScript graph to its message
        raise PrunePoseError(f"ONNX export of {name} failed: {type(exc).__name__}: {reason}") from None
    finally:
        model.train(was_training)

    shape: list[int | str] = list(input_shape(model))
    if dynamic_batch:
        shape[0] = "batch"
    info |= {
        "format": FORMAT,
        "task": task,
        "input_name": name_in,
        "input_shape": shape,
        "output_names": outputs,
        "opset": int(opset),
        "torch_version": torch.__version__,
    }
    if task == TASK_SIMCC:
        info["pruning"] = bool(getattr(model, "pruning", True))
    info |= dict(metadata or {})
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    atomic_write(path.with_suffix(".json"), lambda f: f.write((json.dumps(info, indent=2) + "\n").encode()))
    return path


__all__ = ["FORMAT", "GRAPH_KEYS", "example_input", "export_config", "export_onnx", "frame_tie_break", "input_shape",
           "model_task"]
