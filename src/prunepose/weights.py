"""Loading and saving model weights without executing code.

Accepted files: our training checkpoints (``*.pt``, the ``model`` entry, read with
``torch.load(weights_only=True)``) and safetensors files (``*.safetensors``, optionally with a JSON
config beside them). Mismatches are reported by key and shape instead of torch's long traceback.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunepose.errors import PrunePoseError


def read_state_dict(path: str | Path, prefer_ema: bool = True) -> dict[str, torch.Tensor]:
    """The model state dict stored in ``path`` (checkpoint or safetensors).

    Training checkpoints of models trained with an EMA of the weights (GTPT) hold both copies; the EMA
    one is what evaluation uses (as in the official code) and is returned unless ``prefer_ema=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise PrunePoseError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises many types for bad files)
        raise PrunePoseError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        ema = (obj.get("extra") or {}).get("ema") if prefer_ema else None
        obj = ema["module"] if isinstance(ema, dict) and isinstance(ema.get("module"), dict) else obj["model"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise PrunePoseError(f"{path}: expected a state dict (or a checkpoint with a 'model' entry)")
    return obj


def load_weights(model: nn.Module, path: str | Path, strict: bool = True, prefer_ema: bool = True) -> nn.Module:
    """Load ``path`` into ``model``; raise a PrunePoseError listing missing/unexpected/mis-shaped keys.

    ``strict=False`` loads the keys both sides have (shapes must still agree) and leaves the rest as
    initialised: how a curriculum stage starts the 133-keypoint model from a 17-keypoint one.
    """
    state = read_state_dict(path, prefer_ema=prefer_ema)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        name = getattr(getattr(model, "config", None), "name", type(model).__name__)
        parts = [f"{path} does not fit model {name}:"]
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es), e.g. " + "; ".join(shapes[:3]))
        if strict and missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if strict and unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        raise PrunePoseError(" ".join(parts))
    model.load_state_dict(state, strict=strict)
    return model


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """Write ``model``'s weights as safetensors plus ``<path>.json`` with its registry config."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    config: Any = getattr(model, "config", None)
    if config is not None and dataclasses.is_dataclass(config):
        path.with_suffix(".json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return path
