"""ONNX export of the 2D models and the lifters, pruning included, and an onnxruntime runner.

``export_onnx(model, "m.onnx")`` writes ``m.onnx`` plus ``m.json`` (the model's registry config in the flat
layout of :func:`prunepose.weights.save_weights`, plus the graph's input/output names);
``OnnxPoseRunner("m.onnx")`` runs it on CPU with onnxruntime. Importing this package does not import
onnx or onnxruntime (they are the optional ``onnx`` extra).
"""
from __future__ import annotations

from typing import Any

__all__ = ["OnnxPoseRunner", "export_onnx"]


def __getattr__(name: str) -> Any:
    if name == "export_onnx":
        from prunepose.export.onnx import export_onnx

        return export_onnx
    if name == "OnnxPoseRunner":
        from prunepose.export.runtime import OnnxPoseRunner

        return OnnxPoseRunner
    raise AttributeError(f"module 'prunepose.export' has no attribute {name!r}")
