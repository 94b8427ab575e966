"""Convert state dicts saved by the official TokenPose / PPT code into prunepose's layout.

Why a converter instead of module names that mirror the official ones: our transformer blocks are
numbered globally (the three stacks of TokenPose-L are one list) and split into attention / FFN halves
so that PPT can prune between them, which the official ``Residual(PreNorm(...))`` nesting cannot
express. The conversion is a pure renaming (no tensor is reshaped or transposed), and it is checked
exhaustively: every key of the target model must be filled, every key of the file used, every shape
equal. A checkpoint of another variant therefore fails loudly, with a guess of what the file is,
instead of half-loading under ``strict=False`` as the official ``tools/test.py`` would.

Official layouts (see the project's reference notes, sections 1.3, 1.4, 2.6):

* T: ``transformer.*`` only (no CNN).
* S / PPT-S: ``features.*`` holds the stem (``conv1 bn1 conv2 bn2 layer1``) *and* the transformer part.
* B, L, PPT-B, PPT-L/D6: ``pre_feature.*`` (HRNet, stem .. stage3) + ``transformer.*``.
* Transformer part under prefix P: ``P.keypoint_token``, ``P.pos_embedding``, ``P.patch_to_embedding``,
  ``P.transformer.layers.{i}.{0,1}...`` (L: ``P.transformer{1,2,3}.layers.{i}``), ``P.mlp_head.{n}``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from prunepose.errors import PrunePoseError

# Official sub-module path inside one transformer layer -> ours inside ``blocks.{k}``.
_BLOCK_PARTS = (
    ("0.fn.norm.", "norm1."),
    ("0.fn.fn.to_qkv.", "attn.qkv."),
    ("0.fn.fn.to_out.0.", "attn.proj."),
    ("1.fn.norm.", "norm2."),
    ("1.fn.fn.net.0.", "mlp.fc1."),
    ("1.fn.fn.net.3.", "mlp.fc2."),
)
_TOP_LEVEL = {"keypoint_token": "keypoint_tokens", "pos_embedding": "pos_embed"}
_STEM_ROOTS = frozenset({"conv1", "bn1", "conv2", "bn2", "layer1"})
_LAYER_RE = re.compile(r"transformer(\d*)\.layers\.(\d+)\.(.+)")
_BACKBONE_CHANNELS = {"none": 3, "stemnet": 256, "hrnet_w32": 32, "hrnet_w48": 48}
_BN_COUNTER = "num_batches_tracked"
_MAX_LISTED = 5


@dataclass(frozen=True)
class _Layout:
    """Where the official code puts each part for one of our configs."""

    transformer_prefix: str  # "transformer." (T/B/L) or "features." (S)
    backbone_prefix: str | None  # "pre_feature." (HRNet), "features." (stem), None (T)
    depth: int
    num_stacks: int


@dataclass(frozen=True)
class _Signature:
    """What an official state dict reveals about its architecture (heads are not stored, so not here)."""

    backbone: str  # none | stemnet | hrnet_w32 | hrnet_w48 | hrnet_w?
    dim: int
    num_keypoints: int
    num_tokens: int | None
    patch_dim: int | None
    depth: int
    num_stacks: int


# --------------------------------------------------------------------------------------------------
# Reading what the user handed us
# --------------------------------------------------------------------------------------------------


def _unwrap(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """The flat tensor dict inside ``obj``: unwraps ``state_dict`` / ``model`` entries, drops ``module.``.

    The ``state_dict`` entry is tried first because the official ``checkpoint.pth`` stores the model
    *name* (a string) under ``model`` and the DataParallel state dict (``module.`` keys) under
    ``state_dict``.
    """
    if not isinstance(obj, Mapping):
        raise PrunePoseError(f"{where}: expected a state dict (a dict of tensors), got a {type(obj).__name__}")
    if not all(torch.is_tensor(v) for v in obj.values()):
        for entry in ("state_dict", "model"):
            if isinstance(obj.get(entry), Mapping):
                obj = obj[entry]
                break
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise PrunePoseError(
                f"{where}: expected a state dict (a dict of tensors, or a checkpoint with a 'state_dict' or "
                f"'model' entry holding one); entry {key!r} is a {type(value).__name__}"
            )
        name = key[len("module."):] if key.startswith("module.") else key
        if name in state:
            raise PrunePoseError(f"{where}: key {name!r} appears both with and without the 'module.' prefix")
        state[name] = value
    if not state:
        raise PrunePoseError(f"{where}: the state dict is empty")
    return state


def _layer_counts(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, int]:
    """Number of layers per official transformer stack name ('' for T/S/B, '1'..'3' for L)."""
    counts: dict[str, int] = {}
    for key in state:
        if key.startswith(prefix):
            m = _LAYER_RE.fullmatch(key[len(prefix):])
            if m:
                counts[m[1]] = max(counts.get(m[1], 0), int(m[2]) + 1)
    return counts


def _signature(state: Mapping[str, torch.Tensor]) -> _Signature | None:
    """Read the architecture off an (unwrapped) official state dict; None if it has no TokenPose layout."""
    if "features.keypoint_token" in state:
        prefix = "features."
    elif "transformer.keypoint_token" in state:
        prefix = "transformer."
    else:
        return None
    kp = state[prefix + "keypoint_token"]
    if kp.dim() != 3:
        return None
    if prefix == "features.":
        backbone = "stemnet"
    elif "pre_feature.transition1.0.0.weight" in state:
        backbone = f"hrnet_w{state['pre_feature.transition1.0.0.weight'].shape[0]}"
    elif any(k.startswith("pre_feature.") for k in state):
        backbone = "hrnet_w?"
    else:
        backbone = "none"
    pos = state.get(prefix + "pos_embedding")
    patch = state.get(prefix + "patch_to_embedding.weight")
    counts = _layer_counts(state, prefix)
    stacks = [v for k, v in counts.items() if k]
    return _Signature(
        backbone=backbone,
        dim=int(kp.shape[2]),
        num_keypoints=int(kp.shape[1]),
        num_tokens=int(pos.shape[1]) if pos is not None and pos.dim() == 3 else None,
        patch_dim=int(patch.shape[1]) if patch is not None and patch.dim() == 2 else None,
        depth=max(stacks) if stacks else counts.get("", 0),
        num_stacks=len(stacks) if stacks else 1,
    )


def _config_signature(config: Any) -> _Signature:
    """The signature an official checkpoint of ``config``'s architecture would have."""
    pw, ph = config.patch_size
    rows, cols = config.grid_size
    return _Signature(
        backbone=config.backbone,
        dim=config.dim,
        num_keypoints=config.num_keypoints,
        num_tokens=rows * cols,
        patch_dim=_BACKBONE_CHANNELS[config.backbone] * pw * ph,
        depth=config.depth,
        num_stacks=config.num_stacks,
    )


def _tokenpose_configs() -> dict[str, Any]:
    """Registered configs the converter handles (TokenPose and PPT), by name."""
    from prunepose.models.tokenpose import TokenPoseConfig
    from prunepose.registry import get_config, list_models

    configs = {name: get_config(name) for name in list_models()}
    return {n: c for n, c in configs.items() if isinstance(c, TokenPoseConfig)}


def _matching_models(sig: _Signature) -> list[str]:
    return sorted(n for n, c in _tokenpose_configs().items() if _config_signature(c) == sig)


def _label(sig: _Signature) -> str:
    """The paper/repo name of the architecture behind a signature."""
    if sig.backbone == "none":
        return "TokenPose-T"
    if sig.backbone == "stemnet":
        return "TokenPose-S / PPT-S"
    if sig.num_stacks > 1:
        return f"TokenPose-L/D{sig.num_stacks * sig.depth}"
    if sig.backbone == "hrnet_w48":
        return f"PPT's TokenPose-L/D{sig.depth} / PPT-L/D{sig.depth} (the B architecture)"
    return "TokenPose-B / PPT-B"


def _describe(state: Mapping[str, torch.Tensor]) -> tuple[str, list[str]]:
    """(human-readable guess, registered models with exactly this layout) for an unwrapped state dict."""
    keys = list(state)
    if any("human_token" in k or "group_layers" in k or k.startswith("ema_") for k in keys):
        return ("a GTPT checkpoint (it has human_token / group_layers / ema_* keys); this converter reads "
                "TokenPose and PPT checkpoints only", [])
    if "keypoint_tokens" in state and any(k.startswith("blocks.") for k in keys):
        return "a prunepose state dict (already converted: load it with prunepose.weights.load_weights)", []
    sig = _signature(state)
    if sig is None:
        return f"no official TokenPose/PPT layout (first keys: {keys[:3]})", []
    backbone = {"none": "raw pixels, no CNN", "stemnet": "stem-net"}.get(
        sig.backbone, sig.backbone.replace("hrnet_w", "HRNet-W"))
    layers = f"{sig.num_stacks} stacks x {sig.depth} layers" if sig.num_stacks > 1 else f"{sig.depth} layers"
    text = (f"{_label(sig)} ({backbone}, {layers}, {sig.num_keypoints} keypoints, "
            f"{sig.num_tokens} visual tokens, patch dim {sig.patch_dim})")
    models = _matching_models(sig)
    text += f"; registered models with this layout: {', '.join(models)}" if models else \
        "; no registered model has this layout"
    return text, models


def guess_official_architecture(state: Mapping[str, Any]) -> str:
    """Say which architecture an official state dict belongs to, e.g. for error messages.

    Accepts the same inputs as :func:`convert_official_state_dict` (wrapped, ``module.``-prefixed) and
    never raises: an unreadable input is described as such.
    """
    try:
        flat = _unwrap(state, "state dict")
    except PrunePoseError as exc:
        return f"not a state dict ({exc})"
    return _describe(flat)[0]


# --------------------------------------------------------------------------------------------------
# Renaming
# --------------------------------------------------------------------------------------------------


def _layout(config: Any) -> _Layout:
    if config.backbone == "none":
        return _Layout("transformer.", None, config.depth, config.num_stacks)
    if config.backbone == "stemnet":
        return _Layout("features.", "features.", config.depth, config.num_stacks)
    return _Layout("transformer.", "pre_feature.", config.depth, config.num_stacks)


def _transformer_key(rest: str, layout: _Layout) -> str | None:
    """Our key for an official transformer-part key (``rest`` is without the prefix P), or None."""
    if rest in _TOP_LEVEL:
        return _TOP_LEVEL[rest]
    if rest.startswith("patch_to_embedding."):
        return "patch_embed." + rest[len("patch_to_embedding."):]
    if rest.startswith("mlp_head."):
        return "head." + rest[len("mlp_head."):]
    m = _LAYER_RE.fullmatch(rest)
    if m is None:
        return None
    stack_name, layer, part = m[1], int(m[2]), m[3]
    if layout.num_stacks == 1:
        if stack_name:
            return None
        stack = 0
    else:  # L: transformer1..3; a layer index past the stack depth would alias another stack's block
        if not stack_name or not 1 <= int(stack_name) <= layout.num_stacks or layer >= layout.depth:
            return None
        stack = int(stack_name) - 1
    for official, ours in _BLOCK_PARTS:
        if part.startswith(official):
            return f"blocks.{stack * layout.depth + layer}.{ours}{part[len(official):]}"
    return None


def _our_key(key: str, layout: _Layout) -> str | None:
    if layout.backbone_prefix and key.startswith(layout.backbone_prefix):
        rest = key[len(layout.backbone_prefix):]
        # S keeps stem and transformer under the same "features." prefix: only stem roots are backbone.
        if layout.backbone_prefix != layout.transformer_prefix or rest.split(".", 1)[0] in _STEM_ROOTS:
            return "backbone." + rest  # HRNet / stem names are kept as they are
    if key.startswith(layout.transformer_prefix):
        return _transformer_key(key[len(layout.transformer_prefix):], layout)
    return None


def _some(items: Iterable[str]) -> str:
    items = list(items)
    more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


def _convert(state: Mapping[str, Any], model_name: str, where: str) -> tuple[dict[str, torch.Tensor], Any]:
    """Convert and check; returns (our state dict, the target model's config)."""
    from prunepose.models.tokenpose import TokenPoseConfig
    from prunepose.registry import create_model

    flat = _unwrap(state, where)
    with torch.device("meta"):  # only names, shapes and dtypes are needed: skip allocation and init
        model = create_model(model_name)
    config = model.config
    if not isinstance(config, TokenPoseConfig):
        raise PrunePoseError(f"{model_name}: no converter for official checkpoints of family "
                             f"{getattr(config, 'family', '?')!r} (only TokenPose and PPT)")
    targets = model.state_dict()
    del model
    layout = _layout(config)

    converted: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    duplicates: list[str] = []
    shapes: list[str] = []
    mismatched: set[str] = set()
    for key, value in flat.items():
        ours = _our_key(key, layout)
        if ours is None or ours not in targets:
            unexpected.append(key)
            continue
        if ours in origin:
            duplicates.append(f"{origin[ours]} and {key} -> {ours}")
            continue
        target = targets[ours]
        if tuple(value.shape) != tuple(target.shape):
            shapes.append(f"{key} {tuple(value.shape)} vs {ours} {tuple(target.shape)}")
            mismatched.add(ours)
            continue
        tensor = value.detach()
        if tensor.is_floating_point() and target.is_floating_point():
            tensor = tensor.to(target.dtype)
        converted[ours] = tensor.contiguous()
        origin[ours] = key

    missing = [k for k in targets if k not in converted and k not in mismatched]
    # Files written before BatchNorm had a step counter (or with it stripped) lack every counter; it only
    # matters for momentum=None, which no model here uses, so zeros are filled in. A file lacking *some*
    # counters is inconsistent and is reported like any other missing key.
    if missing and not any(k.endswith(_BN_COUNTER) for k in flat):
        counters = [k for k in missing if k.endswith(_BN_COUNTER)]
        for k in counters:
            converted[k] = torch.zeros(targets[k].shape, dtype=targets[k].dtype)
        missing = [k for k in missing if not k.endswith(_BN_COUNTER)]
    if missing or unexpected or duplicates or shapes:
        parts = [f"{where} does not convert to {model_name}:"]
        guess, models = _describe(flat)
        if model_name not in models:
            parts.append(f"the file looks like {guess};")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) (file vs model): {_some(shapes)};")
        if missing:
            parts.append(f"{len(missing)} model key(s) not found in the file: {_some(missing)};")
        if unexpected:
            parts.append(f"{len(unexpected)} file key(s) with no place in the model: {_some(unexpected)};")
        if duplicates:
            parts.append(f"{len(duplicates)} model key(s) filled twice: {_some(duplicates)};")
        raise PrunePoseError(" ".join(parts).rstrip(";"))
    return {k: converted[k] for k in targets}, config  # in the model's own key order


def convert_official_state_dict(state: Mapping[str, Any], model_name: str, *,
                                source: str | None = None) -> dict[str, torch.Tensor]:
    """Rename an official TokenPose / PPT state dict to the keys of ``create_model(model_name)``.

    ``state`` may be wrapped (``{'state_dict': ...}``, ``{'model': ...}``) and may carry DataParallel's
    ``module.`` prefix. The result loads into the model with ``strict=True``: every model key is filled,
    every file key is used and every shape matches, otherwise a :class:`PrunePoseError` names the model,
    the first offending keys and, for a file of another architecture, what the file looks like.
    ``source`` (e.g. the file path) only labels the messages. Tensors are not copied: the result shares
    storage with ``state`` except where a dtype conversion to the model's dtype was needed.
    """
    return _convert(state, model_name, source or "official state dict")[0]


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def _load(path: Path) -> Any:
    """``torch.load`` that never runs code from the file, with one-line errors naming the path."""
    if not path.is_file():
        raise PrunePoseError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises many types for bad files)
        text = str(exc)
        blocked = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        hint = ("save just the state dict (model.state_dict()); of the official outputs, final_state.pth and "
                "model_best.pth hold only that")
        if blocked:
            reason = (f"it contains a Python object of type {blocked[1]}, which is not loaded because that "
                      f"could run code from the file; {hint}")
        elif "Weights only load failed" in text:
            detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
            reason = ("it holds data that safe loading (weights_only=True) refuses"
                      + (f" ({detail[1].strip()})" if detail else "") + f"; {hint}")
        elif isinstance(exc, EOFError) or "central directory" in text or "zip archive" in text:
            reason = "the file is truncated or corrupt"
        else:
            reason = f"{type(exc).__name__}: {text.strip().splitlines()[0] if text.strip() else 'no message'}"
        raise PrunePoseError(f"{path}: cannot read as a PyTorch checkpoint ({reason})") from None


def _write_atomically(dst: Path, write: Any) -> Path:
    """Write via ``write(tmp_path)`` into a temp file beside ``dst``; returns the temp path."""
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return tmp_path


def convert_checkpoint(src_path: str | os.PathLike[str], model_name: str,
                       dst_path: str | os.PathLike[str]) -> Path:
    """Convert an official ``.pth`` into ``dst_path`` (.safetensors) plus ``dst_path.with_suffix('.json')``.

    The JSON holds the model config (as :func:`prunepose.weights.save_weights` writes it) and
    ``"source"``. Both files appear only once conversion and writing have succeeded (temp files in the
    destination folder, then ``os.replace``), so a failed run never leaves a half-written or stale-looking
    output behind. Returns the weights path.
    """
    from safetensors.torch import save_file

    from prunepose.registry import get_config

    src, dst = Path(src_path), Path(dst_path)
    if dst.suffix != ".safetensors":
        raise PrunePoseError(f"{dst}: the output must be a .safetensors file")
    get_config(model_name)  # an unknown model name is reported before the (possibly large) file is read
    state, config = _convert(_load(src), model_name, str(src))
    # safetensors refuses tensors that share storage; a plain state dict has none, but be safe.
    seen: set[int] = set()
    for key, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen and tensor.numel():
            state[key] = tensor.clone()
        seen.add(ptr)
    meta_json = dataclasses.asdict(config) | {"source": str(src_path)}
    dst.parent.mkdir(parents=True, exist_ok=True)
    json_path = dst.with_suffix(".json")
    metadata = {"format": "pt", "model": model_name, "source": str(src_path)}
    tmp_weights = _write_atomically(dst, lambda p: save_file(state, str(p), metadata=metadata))
    try:
        tmp_json = _write_atomically(json_path, lambda p: p.write_text(json.dumps(meta_json, indent=2) + "\n"))
    except BaseException:
        tmp_weights.unlink(missing_ok=True)
        raise
    try:
        os.replace(tmp_weights, dst)
    except BaseException:
        tmp_weights.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
        raise
    try:
        os.replace(tmp_json, json_path)
    except BaseException:  # keep the pair consistent: no weights without their config
        tmp_json.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)
        raise
    return dst
