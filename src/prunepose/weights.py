"""Loading and saving model weights without executing code.

Accepted files: our training checkpoints (``*.pt``, the ``model`` entry, read with
``torch.load(weights_only=True)``) and safetensors files (``*.safetensors``, optionally with a JSON
config beside them). Mismatches are reported by key and shape instead of torch's long traceback.
"""
from __future__ import annotations

import dataclasses
import json
import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunepose.errors import ConfigError, PrunePoseError


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

        try:
            return load_file(str(path))
        except Exception as exc:  # noqa: BLE001  (SafetensorError, OSError, ...: none names the file)
            raise PrunePoseError(f"{path}: not a readable safetensors file: truncated, corrupt or not "
                                 f"safetensors ({first_line(exc)})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises many types for bad files)
        raise torch_load_error(path, exc) from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        ema = (obj.get("extra") or {}).get("ema") if prefer_ema else None
        obj = ema["module"] if isinstance(ema, dict) and isinstance(ema.get("module"), dict) else obj["model"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise PrunePoseError(f"{path}: expected a state dict (or a checkpoint with a 'model' entry)")
    return obj


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` without terminal escape codes: torch's and safetensors' messages
    run over several lines (with colour codes and advice that does not apply) and would break the CLI's
    one-line error."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def torch_load_error(path: str | Path, exc: BaseException) -> PrunePoseError:
    """One-line error for a ``torch.load(weights_only=True)`` failure.

    A pickled object beyond tensors (``torch.save(model)``) makes torch print six lines with escape codes
    advising ``weights_only=False``, which would run code from the file; prunepose never does that, so the
    message says what the file holds and how to save one it can read instead.
    """
    text = str(exc)
    blocked = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if isinstance(exc, pickle.UnpicklingError) and ("Weights only load failed" in text or blocked):
        what = f" (a {blocked.group(1)})" if blocked else ""
        return PrunePoseError(f"{path}: holds pickled Python objects besides tensors{what}; prunepose reads "
                              "only tensors, since unpickling can run code. Save model.state_dict() with "
                              "torch.save, or safetensors")
    return PrunePoseError(f"{path}: not a readable PyTorch checkpoint: truncated, corrupt or not a torch.save "
                          f"file ({first_line(exc)})")


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


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights as safetensors plus ``<path>.json`` with its registry config.

    ``metadata`` (provenance: what it was trained on, licence, command) is merged into the JSON next to the
    config fields, the same flat layout ``prunepose convert`` writes, so one reader handles both.
    """
    from safetensors.torch import save

    from prunepose.atomic import atomic_write

    path = Path(path)  # atomic_write creates the folder
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    config: Any = getattr(model, "config", None)
    meta_json: dict[str, Any] = {}
    if config is not None and dataclasses.is_dataclass(config):
        meta_json = dataclasses.asdict(config)
    clash = sorted(set(metadata or {}) & set(meta_json))
    if clash:
        raise PrunePoseError(f"save_weights: metadata keys {clash} collide with config fields")
    meta_json |= dict(metadata or {})
    atomic_write(path, lambda f: f.write(save(state)))
    if meta_json:
        atomic_write(path.with_suffix(".json"), lambda f: f.write((json.dumps(meta_json, indent=2) + "\n").encode()))
    return path


def _tuples(value: Any) -> Any:
    """JSON gives lists where the frozen configs hold (nested) tuples."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def read_json_beside(path: str | Path, how_to_fix: str) -> dict[str, Any]:
    """The JSON object beside ``path`` (same stem, ``.json``); errors name that file and say ``how_to_fix``."""
    json_path = Path(path).with_suffix(".json")
    if not json_path.is_file():
        raise PrunePoseError(f"{json_path}: no model description beside {Path(path).name}; {how_to_fix}")
    try:
        info = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PrunePoseError(f"{json_path}: not valid JSON ({exc})") from None
    if not isinstance(info, dict) or not isinstance(info.get("name"), str):
        raise PrunePoseError(f"{json_path}: field 'name' (the registry model name) is missing")
    return info


def read_weights_info(path: str | Path) -> dict[str, Any]:
    """The JSON beside a weights file (config fields plus provenance)."""
    return read_json_beside(path, "pass the model name explicitly (e.g. model='ppt_s') or save weights with "
                                  "prunepose.weights.save_weights")


def config_overrides(info: dict[str, Any], where: str | Path = "model description") -> dict[str, Any]:
    """The fields of ``info`` that belong to the config of registry model ``info['name']``, as overrides.

    Extra keys (provenance, export details) are ignored; an unknown model name is named with ``where``.
    """
    from prunepose.registry import get_config

    try:
        fields = {f.name for f in dataclasses.fields(get_config(info["name"]))}
    except ConfigError as exc:
        raise PrunePoseError(f"{where}: {exc}") from None
    return {k: _tuples(v) for k, v in info.items() if k in fields and k != "name"}


def model_from_weights(path: str | Path, model: str | None = None, prefer_ema: bool = True) -> nn.Module:
    """Build the model described beside ``path`` (or the registry ``model``) and load the weights into it.

    Why: a weights file plus its JSON is self-describing, so users (and the bundled defaults) need not
    repeat architecture overrides such as a compact lifter's width and depth.
    """
    from prunepose.registry import create_model

    if model is None:
        info = read_weights_info(path)
        net = create_model(info["name"], **config_overrides(info, Path(path).with_suffix(".json")))
    else:
        net = create_model(model)
    return load_weights(net, path, strict=True, prefer_ema=prefer_ema)
