"""Run an exported prunepose ``.onnx`` file with onnxruntime on CPU.

Why a runner rather than a bare ``InferenceSession``: the JSON written beside the graph by
:func:`prunepose.export.onnx.export_onnx` says which registry model it is (so callers get the same config
object as with PyTorch weights: input size, skeleton, token grid) and what the outputs are called; the
runner checks graph and JSON agree and checks inputs, so a wrong file or a wrong crop size fails with a
message naming it instead of an onnxruntime traceback.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from prunepose.errors import ConfigError, PrunePoseError
from prunepose.weights import config_overrides, read_json_beside


def read_export_info(path: str | Path) -> dict[str, Any]:
    """The JSON beside the ``.onnx`` file ``path``, checked for the fields the runner needs."""
    info = read_json_beside(path, "export with `prunepose export onnx` (or prunepose.export.onnx.export_onnx), "
                                  "which writes it")
    json_path = Path(path).with_suffix(".json")
    for key, kind in (("input_name", str), ("output_names", list), ("input_shape", list)):
        if not isinstance(info.get(key), kind):
            raise PrunePoseError(f"{json_path}: field {key!r} is missing or not a {kind.__name__}")
    return info


def config_from_info(info: dict[str, Any], where: str | Path = "model description") -> Any:
    """The registry config named by ``info["name"]`` with the JSON's config fields applied."""
    from prunepose.registry import get_config

    try:
        return get_config(info["name"], **config_overrides(info, where))
    except ConfigError as exc:
        raise PrunePoseError(f"{where}: {exc}") from None


class OnnxPoseRunner:
    """An exported model on onnxruntime (CPU).

    ``runner(x)`` takes one float32 batch -- (B, 3, H, W) normalised RGB crops for 2D models, (B, F, J, C)
    normalised 2D for lifters -- and returns ``{output name: array}``: ``"heatmaps"`` or
    ``"simcc_x"``/``"simcc_y"`` or ``"pose3d"``, plus ``"kept_0"``, ``"kept_1"``, ... (int64 pruning indices).
    ``threads`` sets onnxruntime's intra-op threads (default: onnxruntime's choice, all cores).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PrunePoseError(f"{self.path}: ONNX file not found")
        self.info = read_export_info(self.path)
        json_path = self.path.with_suffix(".json")
        self.model_config = config_from_info(self.info, json_path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise PrunePoseError("running .onnx files needs onnxruntime (pip install 'prunepose[onnx]')") from None
        options = ort.SessionOptions()
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads must be >= 1, got {threads}")
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own exception types for bad files)
            raise PrunePoseError(f"{self.path}: not a loadable ONNX model ({type(exc).__name__}: {exc})") from None
        graph_in = [i.name for i in self.session.get_inputs()]
        graph_out = [o.name for o in self.session.get_outputs()]
        if graph_in != [self.info["input_name"]] or graph_out != list(self.info["output_names"]):
            raise PrunePoseError(f"{json_path} does not describe {self.path.name}: the graph has inputs {graph_in} "
                                 f"and outputs {graph_out}, the JSON says {self.info['input_name']!r} -> "
                                 f"{self.info['output_names']}")

    @property
    def output_names(self) -> list[str]:
        return list(self.info["output_names"])

    @property
    def input_shape(self) -> tuple[int | str, ...]:
        """Input shape; the first entry is ``"batch"`` when the batch axis is dynamic."""
        return tuple(self.info["input_shape"])

    @property
    def input_size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the crops a 2D model takes; ``None`` for lifters (see ``input_shape``)."""
        size = getattr(self.model_config, "input_size", None)
        return (int(size[0]), int(size[1])) if size is not None else None

    def __call__(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(inputs)
        if not np.issubdtype(x.dtype, np.floating):
            raise ConfigError(f"{self.path.name}: expected a float32 array, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        want = self.input_shape
        if x.ndim != len(want) or any(isinstance(w, int) and w != s for w, s in zip(want, x.shape)) or not x.shape[0]:
            shown = tuple("B" if isinstance(w, str) else w for w in want)
            raise ConfigError(f"{self.path.name} ({self.model_config.name}) expects input of shape {shown}, "
                              f"got {x.shape}")
        outputs = self.session.run(None, {self.info["input_name"]: x})
        return dict(zip(self.output_names, outputs))


__all__ = ["OnnxPoseRunner", "config_from_info", "read_export_info"]
