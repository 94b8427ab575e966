"""Compare an exported graph with the PyTorch model it came from, output by output.

Why its own module: ``prunepose export onnx --check`` and users who convert their own weights need the
same answer -- does onnxruntime give what PyTorch gives, including which tokens/frames pruning keeps --
without writing the comparison themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prunepose.errors import PrunePoseError


@dataclass(frozen=True)
class OutputDiff:
    """One output's agreement: ``max_abs`` for float outputs; for int64 pruning indices ``mismatches``
    (elements that differ, index order included) and ``set_mismatches`` (rows whose *set* of kept
    indices differs -- order inside a stage does not change the model's output)."""

    name: str
    shape: tuple[int, ...]
    max_abs: float | None = None
    mismatches: int | None = None
    set_mismatches: int | None = None

    def ok(self, atol: float) -> bool:
        if self.max_abs is not None:
            return self.max_abs <= atol
        return self.set_mismatches == 0

    def __str__(self) -> str:
        shape = "x".join(map(str, self.shape))
        if self.max_abs is not None:
            return f"{self.name} ({shape}): max |onnx - torch| = {self.max_abs:.3g}"
        same = "identical" if self.mismatches == 0 else (
            f"{self.mismatches} element(s) in a different order, same sets" if self.set_mismatches == 0
            else f"{self.set_mismatches} row(s) keep different indices")
        return f"{self.name} ({shape}): {same}"


def torch_outputs(model: nn.Module, inputs: np.ndarray) -> list[np.ndarray]:
    """The model's outputs in graph order (main outputs, then kept indices), PyTorch eager on CPU, with the
    deterministic frame tie-break the graph uses."""
    from prunepose.export.onnx import _FlatOutputs, frame_tie_break, model_task

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), frame_tie_break(model, "index"):
            x = torch.from_numpy(np.ascontiguousarray(inputs)).to(next(model.parameters()).device)
            outs = _FlatOutputs(model, model_task(model))(x)
    finally:
        model.train(was_training)
    return [o.cpu().numpy() for o in outs]


def compare(model: nn.Module, onnx_path: str | Path, inputs: np.ndarray) -> list[OutputDiff]:
    """Run ``inputs`` through the PyTorch ``model`` and the exported ``onnx_path``; one diff per output."""
    from prunepose.export.runtime import OnnxPoseRunner

    runner = OnnxPoseRunner(onnx_path)
    got = runner(inputs)
    ref = torch_outputs(model, inputs)
    diffs = []
    for name, r in zip(runner.output_names, ref):
        g = got[name]
        if g.shape != r.shape:
            raise PrunePoseError(f"{onnx_path}: output {name} has shape {g.shape}, PyTorch gives {r.shape}")
        if np.issubdtype(r.dtype, np.floating):
            diffs.append(OutputDiff(name, r.shape, max_abs=float(np.abs(g - r).max())))
        else:
            rows_g = np.sort(g.reshape(-1, g.shape[-1]), axis=-1)
            rows_r = np.sort(r.reshape(-1, r.shape[-1]), axis=-1)
            diffs.append(OutputDiff(name, r.shape, mismatches=int((g != r).sum()),
                                    set_mismatches=int((rows_g != rows_r).any(axis=-1).sum())))
    return diffs


__all__ = ["OutputDiff", "compare", "torch_outputs"]
