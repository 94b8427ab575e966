"""Run a 2D pose network on a batch of crops: PyTorch or onnxruntime, same outputs.

Why a tiny adapter layer: :class:`~prunepose.api.estimator2d.PoseEstimator2D` must cut crops, flip, decode and
map keypoints back identically whatever runs the network, so each backend only turns a float32 NCHW batch
into a dict of numpy arrays named as the ONNX export names them: ``heatmaps`` (TokenPose/PPT) or
``simcc_x``/``simcc_y`` (GTPT), plus ``kept_0``, ``kept_1``, ... (pruning indices per stage).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from prunepose.errors import ConfigError, PrunePoseError

#: Bundled default 2D weights (safetensors + JSON beside them), produced by the distillation work.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "weights" / "pose2d_default.safetensors"
#: The same weights exported to ONNX (+ its JSON): what the default estimator runs on CPU when onnxruntime is
#: installed, because onnxruntime runs the MobileNetV2 backbone about twice as fast as PyTorch eager on a CPU
#: (benchmarks/bench_2d_default.py).
DEFAULT_ONNX = DEFAULT_WEIGHTS.with_name("pose2d_default_cpu.onnx")


class PoseBackend(Protocol):
    """What the estimator needs from a backend."""

    config: Any  # the registry config (input_size, skeleton, family, ...)
    name: str  # "pytorch" | "onnxruntime"
    device: str

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]: ...

    def grid(self) -> tuple[int, int]: ...


def resolve_device(device: str | None) -> str:
    """``None``/``"auto"`` -> cuda when available else cpu; check that an explicit CUDA/MPS device exists."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r}: expected cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available in this PyTorch build or on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r}: MPS is not available on this machine")
    return str(dev)


def default_checkpoint(device: str | None) -> Path | None:
    """The bundled ONNX export when the default model will run on the CPU and onnxruntime is importable;
    ``None`` (= the bundled PyTorch weights, see :func:`load_torch_model`) otherwise.

    The export only counts together with the safetensors weights it was made from, so a missing bundle
    is reported the same way whichever backend would have run it.
    """
    if not (DEFAULT_WEIGHTS.is_file() and DEFAULT_ONNX.is_file() and DEFAULT_ONNX.with_suffix(".json").is_file()):
        return None
    if device not in (None, "", "auto", "cpu"):
        return None
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    if device in (None, "", "auto"):
        import torch

        if torch.cuda.is_available():
            return None
    return DEFAULT_ONNX


def load_torch_model(model: str | None, checkpoint: str | Path | None) -> Any:
    """The 2D network for ``model`` / ``checkpoint`` (see PoseEstimator2D), weights loaded, in eval mode.

    * neither given: the bundled default weights (error naming the expected file when they are absent);
    * ``checkpoint`` with a JSON beside it (``save_weights`` / ``prunepose convert`` output): built from the
      JSON, so architecture overrides travel with the file; ``model`` must then match the JSON's name;
    * ``checkpoint`` without JSON: ``model`` names the registry architecture;
    * ``model`` without ``checkpoint``: refused, random weights would give meaningless keypoints silently.
    """
    from prunepose.weights import load_weights, model_from_weights, read_weights_info

    if checkpoint is None:
        if model is not None:
            raise ConfigError(f"model={model!r} needs checkpoint=<weights file>: without trained weights the "
                              "keypoints would be random (prunepose.create_model gives an untrained network)")
        if not DEFAULT_WEIGHTS.is_file():
            raise PrunePoseError(f"the bundled default 2D weights are not installed ({DEFAULT_WEIGHTS} is missing; "
                                 "they come from the distillation step). Pass model=... and checkpoint=... "
                                 "(or --model/--checkpoint) to use your own weights")
        checkpoint = DEFAULT_WEIGHTS
    path = Path(checkpoint)
    if not path.is_file():
        raise PrunePoseError(f"{path}: weights file not found")
    if path.with_suffix(".json").is_file():
        info = read_weights_info(path)
        if model is not None and info["name"] != model:
            raise ConfigError(f"{path}: weights are for model {info['name']!r} (see {path.with_suffix('.json').name}), "
                              f"not {model!r}; drop --model or pass matching weights")
        net = model_from_weights(path)
    elif model is None:
        raise ConfigError(f"{path}: no {path.with_suffix('.json').name} beside the weights says which model they "
                          "belong to; pass model=... (e.g. 'ppt_s')")
    else:
        from prunepose.registry import create_model

        net = load_weights(create_model(model), path)
    if hasattr(net.config, "num_frames"):
        raise ConfigError(f"{net.config.name} is a 2D->3D lifter; use prunepose.Lifter3D for it")
    return net


class TorchBackend:
    """PyTorch: eval mode, BatchNorm folded into convolutions, channels-last (``prepare_for_inference``)."""

    name = "pytorch"

    def __init__(self, net: Any, device: str, prepare: bool = True) -> None:
        import torch

        from prunepose.nn.fuse import prepare_for_inference

        self.torch = torch
        self.net = net.eval().to(device)
        if prepare and not getattr(self.net, "prepared_for_inference", False):
            prepare_for_inference(self.net)
        self.config = net.config
        self.device = device

    def grid(self) -> tuple[int, int]:
        return int(self.net.grid_h), int(self.net.grid_w)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            out = self.net(torch.from_numpy(np.ascontiguousarray(images)).to(self.device))
        res: dict[str, np.ndarray] = {}
        if hasattr(out, "simcc_x"):
            res["simcc_x"] = out.simcc_x.float().cpu().numpy()
            res["simcc_y"] = out.simcc_y.float().cpu().numpy()
        else:
            res["heatmaps"] = out.heatmaps.float().cpu().numpy()
        for i, k in enumerate(out.kept):
            res[f"kept_{i}"] = k.cpu().numpy()
        return res


class OnnxBackend:
    """onnxruntime through ``prunepose.export.runtime.OnnxPoseRunner`` (CPU)."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, model: str | None = None) -> None:
        try:
            from prunepose.export.runtime import OnnxPoseRunner
        except ImportError as exc:
            raise PrunePoseError(f"{path}: running .onnx files needs onnxruntime and prunepose.export "
                                 f"(pip install 'prunepose[onnx]'): {exc}") from None
        path = Path(path)
        if not path.is_file():
            raise PrunePoseError(f"{path}: ONNX file not found")
        self.runner = OnnxPoseRunner(path)
        self.config = self.runner.model_config
        if model is not None and getattr(self.config, "name", model) != model:
            raise ConfigError(f"{path}: exported from model {self.config.name!r}, not {model!r}")
        if hasattr(self.config, "num_frames"):
            raise ConfigError(f"{path}: a 2D->3D lifter; use prunepose.Lifter3D for it")
        self.device = "cpu"

    def grid(self) -> tuple[int, int]:
        c = self.config
        grid = getattr(c, "grid_size", None)
        if grid is None:
            raise PrunePoseError(f"model config {getattr(c, 'name', '?')} has no token grid")
        return int(grid[0]), int(grid[1])

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return dict(self.runner(np.ascontiguousarray(images, dtype=np.float32)))

