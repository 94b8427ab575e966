"""Convert state dicts saved by the official TokenPose / PPT / GTPT code into prunepose's layout.

Why a converter instead of module names that mirror the official ones: our transformer blocks are
numbered globally (the three stacks of TokenPose-L are one list) and split into attention / FFN halves
so that PPT can prune between them, which the official ``Residual(PreNorm(...))`` nesting cannot
express. The conversion is a pure renaming (no tensor is reshaped or transposed), and it is checked
exhaustively: every key of the target model must be filled, every key of the file used, every shape
equal. A checkpoint of another variant therefore fails loudly, with a guess of what the file is,
instead of half-loading under ``strict=False`` as the official ``tools/test.py`` would.

Official layouts (see the project's reference notes, sections 1.3, 1.4, 2.6, 3.8):

* T: ``transformer.*`` only (no CNN).
* S / PPT-S: ``features.*`` holds the stem (``conv1 bn1 conv2 bn2 layer1``) *and* the transformer part.
* B, L, PPT-B, PPT-L/D6: ``pre_feature.*`` (HRNet, stem .. stage3) + ``transformer.*``.
* Transformer part under prefix P: ``P.keypoint_token``, ``P.pos_embedding``, ``P.patch_to_embedding``,
  ``P.transformer.layers.{i}.{0,1}...`` (L: ``P.transformer{1,2,3}.layers.{i}``), ``P.mlp_head.{n}``.
* GTPT (T/S/B, COCO and WholeBody): two copies of the whole model, the student (``features.*``,
  ``mlp_head_{x,y}.*``) and its EMA (``ema_features.*``, ``ema_mlp_head_{x,y}.*``), which is what the
  official evaluation runs and what is converted by default. Under ``features.``: ``human_token``,
  ``keypoint_token``, [WholeBody: ``extra_token`` (part tokens), ``fine_keypoint_token`` (dense tokens)],
  ``pos_embedding``, ``stem.*`` (ShuffleNet, named as ours), ``patch2emb_norm.*``, ``patch2emb_mlp.*``,
  ``transformer.layers.{i}`` (coarse) / ``transformer.group_layers.{i}`` (fine; each holds a constant
  attention-mask buffer ``0.fn.fn.mask``, dropped: our group attention derives it from the layout) and
  ``transformer.group_mask.*``.
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

# GTPT. Official names below are the student's; the EMA copy's are the same with "ema_" in front.
_GTPT_COPIES = {
    "ema": ("ema_features.", "ema_mlp_head_x.", "ema_mlp_head_y."),
    "student": ("features.", "mlp_head_x.", "mlp_head_y."),
}
_GTPT_COPY_TEXT = {"ema": "EMA copy (ema_features.*, ema_mlp_head_*)",
                   "student": "student copy (features.*, mlp_head_*)"}
_GTPT_TOP_LEVEL = {
    "features.human_token": "human_token",
    "features.keypoint_token": "keypoint_tokens",
    "features.extra_token": "part_tokens",
    "features.fine_keypoint_token": "dense_tokens",
    "features.pos_embedding": "pos_embed",
}
_GTPT_MODULES = (  # official module prefix -> ours (names inside are kept)
    ("features.stem.", "backbone."),
    ("features.patch2emb_norm.", "patch_norm."),
    ("features.patch2emb_mlp.", "patch_embed."),
    ("features.transformer.group_mask.", "group_mask."),
    ("mlp_head_x.", "head_x."),
    ("mlp_head_y.", "head_y."),
)
_GTPT_LAYER_RE = re.compile(r"features\.transformer\.(layers|group_layers)\.(\d+)\.(.+)")
_GTPT_STACKS = {"layers": "coarse_blocks", "group_layers": "fine_blocks"}
# The group attention's constant mask (dummy-token blocking); ours derives it from the layout.
_GTPT_MASK_RE = re.compile(r"features\.transformer\.group_layers\.\d+\.0\.fn\.fn\.mask")
_GTPT_CHANNELS = {"gtpt_t": 128, "gtpt_s": 256, "gtpt_b": 256}  # stem output width
_GTPT_BY_WIDTH = {128: "gtpt_t", 256: "gtpt_s"}  # single-stage stems (B has down_layer* instead)


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


@dataclass(frozen=True)
class _GTPTSignature:
    """What an official GTPT state dict (one copy) reveals about its architecture."""

    backbone: str  # gtpt_t | gtpt_s | gtpt_b, or a description of an unknown stem
    dim: int
    num_keypoints: int  # 17, or 17 + dense tokens (WholeBody)
    num_tokens: int | None
    patch_dim: int | None
    coarse_depth: int
    fine_depth: int


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
    """Registered configs the converter handles (TokenPose and PPT on the official backbones), by name.

    Models of ours on other backbones (``ppt_movenet``) have no official checkpoints to convert.
    """
    from prunepose.models.tokenpose import TokenPoseConfig
    from prunepose.registry import get_config, list_models

    configs = {name: get_config(name) for name in list_models()}
    return {n: c for n, c in configs.items()
            if isinstance(c, TokenPoseConfig) and c.backbone in _BACKBONE_CHANNELS}


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


def _gtpt_copies_present(state: Mapping[str, torch.Tensor]) -> dict[str, bool]:
    """Which of the two GTPT copies (``ema``, ``student``) have at least one key in ``state``."""
    return {copy: any(k.startswith(prefixes) for k in state) for copy, prefixes in _GTPT_COPIES.items()}


def _choose_gtpt_copy(state: Mapping[str, torch.Tensor], use_ema: bool) -> str:
    """The copy to convert: the requested one, or the other one when the file holds only that."""
    present = _gtpt_copies_present(state)
    wanted, other = ("ema", "student") if use_ema else ("student", "ema")
    return other if present[other] and not present[wanted] else wanted


def _gtpt_select(state: Mapping[str, torch.Tensor], copy: str) -> dict[str, str | None]:
    """File key -> the official student name it stands for, for the keys that take part in converting
    ``copy``: the keys of that copy (less the attention-mask buffers) and keys of neither copy (None: they
    have no place in the model and are reported). The other copy's keys are left out."""
    own = _GTPT_COPIES[copy]
    other = _GTPT_COPIES["student" if copy == "ema" else "ema"]
    out: dict[str, str | None] = {}
    for key in state:
        if key.startswith(own):
            name = key[len("ema_"):] if copy == "ema" else key
            if not _GTPT_MASK_RE.fullmatch(name):
                out[key] = name
        elif not key.startswith(other):
            out[key] = None
    return out


def _gtpt_signature(state: Mapping[str, torch.Tensor]) -> _GTPTSignature | None:
    """Read the architecture off an official GTPT state dict (its EMA copy, else the student); None if no
    copy has a ``keypoint_token``."""
    for copy in ("ema", "student"):
        names = {n: state[k] for k, n in _gtpt_select(state, copy).items() if n is not None}
        if "features.keypoint_token" in names:
            break
    else:
        return None
    kp = names["features.keypoint_token"]
    if kp.dim() != 3:
        return None

    def size(name: str, dims: int, axis: int) -> int | None:
        t = names.get(name)
        return int(t.shape[axis]) if t is not None and t.dim() == dims else None

    if any(n.startswith("features.stem.down_layer") for n in names):
        backbone = "gtpt_b"
    else:  # T and S differ only in the width of their one stage
        half = size("features.stem.layer.0.branch1.2.weight", 4, 0)
        width = 2 * half if half else size("features.patch2emb_norm.weight", 1, 0)
        backbone = _GTPT_BY_WIDTH.get(width or 0, f"an unknown {width}-channel stem" if width else "an unknown stem")
    depths = {"layers": 0, "group_layers": 0}
    for n in names:
        m = _GTPT_LAYER_RE.fullmatch(n)
        if m:
            depths[m[1]] = max(depths[m[1]], int(m[2]) + 1)
    return _GTPTSignature(
        backbone=backbone,
        dim=int(kp.shape[2]),
        num_keypoints=int(kp.shape[1]) + (size("features.fine_keypoint_token", 3, 1) or 0),
        num_tokens=size("features.pos_embedding", 3, 1),
        patch_dim=size("features.patch2emb_mlp.weight", 2, 1),
        coarse_depth=depths["layers"],
        fine_depth=depths["group_layers"],
    )


def _gtpt_config_signature(config: Any) -> _GTPTSignature:
    """The signature an official checkpoint of ``config``'s architecture would have."""
    pw, ph = config.patch_size
    rows, cols = config.grid_size
    return _GTPTSignature(
        backbone=config.backbone,
        dim=config.dim,
        num_keypoints=config.num_keypoints,
        num_tokens=rows * cols,
        patch_dim=_GTPT_CHANNELS.get(config.backbone, 0) * pw * ph,
        coarse_depth=config.coarse_depth,
        fine_depth=config.fine_depth,
    )


def _gtpt_configs() -> dict[str, Any]:
    """Registered GTPT configs, by name."""
    from prunepose.models.gtpt import GTPTConfig
    from prunepose.registry import get_config, list_models

    configs = {name: get_config(name) for name in list_models()}
    return {n: c for n, c in configs.items() if isinstance(c, GTPTConfig)}


def _describe_gtpt(state: Mapping[str, torch.Tensor]) -> tuple[str, list[str]]:
    present = _gtpt_copies_present(state)
    copies = ("EMA and student copies" if all(present.values()) else
              "EMA copy only" if present["ema"] else "student copy only" if present["student"] else "no model copy")
    sig = _gtpt_signature(state)
    if sig is None:
        return (f"a GTPT checkpoint of unknown variant (it has human_token / group_layers / ema_* keys but no "
                f"keypoint_token; {copies})", [])
    variant = {"gtpt_t": "GTPT-T", "gtpt_s": "GTPT-S", "gtpt_b": "GTPT-B"}.get(sig.backbone, "GTPT")
    dataset = {17: "COCO", 133: "WholeBody"}.get(sig.num_keypoints, f"{sig.num_keypoints}-keypoint")
    stem = (f"ShuffleNet encoder-decoder stem, {_GTPT_CHANNELS[sig.backbone]} channels" if sig.backbone == "gtpt_b"
            else f"ShuffleNet stem, {_GTPT_CHANNELS[sig.backbone]} channels" if sig.backbone in _GTPT_CHANNELS
            else sig.backbone)
    text = (f"{variant} {dataset} ({stem}, dim {sig.dim}, {sig.coarse_depth} + {sig.fine_depth} layers, "
            f"{sig.num_keypoints} keypoints, {sig.num_tokens} visual tokens, patch dim {sig.patch_dim}; {copies})")
    models = sorted(n for n, c in _gtpt_configs().items() if _gtpt_config_signature(c) == sig)
    text += f"; registered models with this layout: {', '.join(models)}" if models else \
        "; no registered model has this layout"
    return text, models


def _describe(state: Mapping[str, torch.Tensor]) -> tuple[str, list[str]]:
    """(human-readable guess, registered models with exactly this layout) for an unwrapped state dict."""
    keys = list(state)
    if "keypoint_tokens" in state and any(k.startswith(("blocks.", "coarse_blocks.")) for k in keys):
        return "a prunepose state dict (already converted: load it with prunepose.weights.load_weights)", []
    if any("human_token" in k or "group_layers" in k or k.startswith("ema_") for k in keys):
        return _describe_gtpt(state)
    sig = _signature(state)
    if sig is None:
        return f"no official TokenPose/PPT/GTPT layout (first keys: {keys[:3]})", []
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



def _gtpt_our_key(name: str) -> str | None:
    """Our key for an official GTPT key in student naming (``features.*``, ``mlp_head_{x,y}.*``), or None."""
    if name in _GTPT_TOP_LEVEL:
        return _GTPT_TOP_LEVEL[name]
    for official, ours in _GTPT_MODULES:
        if name.startswith(official):
            return ours + name[len(official):]  # ShuffleNet, BN, Linear, head names are kept as they are
    m = _GTPT_LAYER_RE.fullmatch(name)
    if m is None:
        return None
    for official, ours in _BLOCK_PARTS:
        if m[3].startswith(official):
            return f"{_GTPT_STACKS[m[1]]}.{m[2]}.{ours}{m[3][len(official):]}"
    return None

def _some(items: Iterable[str]) -> str:
    items = list(items)
    more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


def _check_use_ema(model_name: str, config: Any, use_ema: bool) -> None:
    """Refuse ``use_ema=False`` for models whose official checkpoints have no student/EMA pair."""
    from prunepose.models.gtpt import GTPTConfig

    if not use_ema and not isinstance(config, GTPTConfig):
        raise PrunePoseError(f"{model_name}: use_ema=False (--student) selects the student copy of a GTPT "
                             f"checkpoint; {getattr(config, 'family', '?')} checkpoints hold a single copy")


def _convert(state: Mapping[str, Any], model_name: str, where: str,
             use_ema: bool = True) -> tuple[dict[str, torch.Tensor], Any, str | None]:
    """Convert and check; returns (our state dict, the target model's config, the GTPT copy converted:
    ``"ema"`` / ``"student"``, None for TokenPose / PPT)."""
    from prunepose.models.gtpt import GTPTConfig
    from prunepose.models.tokenpose import TokenPoseConfig
    from prunepose.registry import create_model

    flat = _unwrap(state, where)
    with torch.device("meta"):  # only names, shapes and dtypes are needed: skip allocation and init
        model = create_model(model_name)
    config = model.config
    targets = model.state_dict()
    del model
    _check_use_ema(model_name, config, use_ema)
    copy: str | None = None
    if isinstance(config, TokenPoseConfig):
        layout = _layout(config)
        items = [(key, _our_key(key, layout)) for key in flat]
    elif isinstance(config, GTPTConfig):
        copy = _choose_gtpt_copy(flat, use_ema)
        items = [(key, None if name is None else _gtpt_our_key(name))
                 for key, name in _gtpt_select(flat, copy).items()]
    else:
        raise PrunePoseError(f"{model_name}: no converter for official checkpoints of family "
                             f"{getattr(config, 'family', '?')!r} (only TokenPose, PPT and GTPT)")

    converted: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    duplicates: list[str] = []
    shapes: list[str] = []
    mismatched: set[str] = set()
    for key, ours in items:
        value = flat[key]
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
    if missing and not any(key.endswith(_BN_COUNTER) for key, _ in items):
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
    return {k: converted[k] for k in targets}, config, copy  # in the model's own key order


def convert_official_state_dict(state: Mapping[str, Any], model_name: str, *, source: str | None = None,
                                use_ema: bool = True) -> dict[str, torch.Tensor]:
    """Rename an official TokenPose / PPT / GTPT state dict to the keys of ``create_model(model_name)``.

    ``state`` may be wrapped (``{'state_dict': ...}``, ``{'model': ...}``) and may carry DataParallel's
    ``module.`` prefix. The result loads into the model with ``strict=True``: every model key is filled,
    every file key is used and every shape matches, otherwise a :class:`PrunePoseError` names the model,
    the first offending keys and, for a file of another architecture, what the file looks like.
    ``source`` (e.g. the file path) only labels the messages. Tensors are not copied: the result shares
    storage with ``state`` except where a dtype conversion to the model's dtype was needed.

    GTPT checkpoints hold two copies of the model; the EMA one (``ema_*`` keys, what the official
    evaluation runs) is converted, or the student (``features.*``, ``mlp_head_*``) with ``use_ema=False``.
    A file holding only one copy is converted from that copy either way (:func:`convert_checkpoint`
    records which). The other copy's keys and the group layers' constant ``mask`` buffers are not used;
    everything else must fit. ``use_ema=False`` is an error for TokenPose / PPT models (single copy).
    """
    return _convert(state, model_name, source or "official state dict", use_ema)[0]


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
                       dst_path: str | os.PathLike[str], *, use_ema: bool = True) -> Path:
    """Convert an official ``.pth`` into ``dst_path`` (.safetensors) plus ``dst_path.with_suffix('.json')``.

    The JSON holds the model config (as :func:`prunepose.weights.save_weights` writes it) and
    ``"source"``; for GTPT also ``"official_copy"``: ``"ema"`` or ``"student"``, the copy converted (see
    ``use_ema`` in :func:`convert_official_state_dict`; it differs from the requested one when the file
    holds only the other). Both files appear only once conversion and writing have succeeded (temp files in the
    destination folder, then ``os.replace``), so a failed run never leaves a half-written or stale-looking
    output behind. Returns the weights path.
    """
    from safetensors.torch import save_file

    from prunepose.registry import get_config

    src, dst = Path(src_path), Path(dst_path)
    if dst.suffix != ".safetensors":
        raise PrunePoseError(f"{dst}: the output must be a .safetensors file")
    # An unknown model name or a wrong option is reported before the (possibly large) file is read.
    _check_use_ema(model_name, get_config(model_name), use_ema)
    state, config, copy = _convert(_load(src), model_name, str(src), use_ema)
    # safetensors refuses tensors that share storage; a plain state dict has none, but be safe.
    seen: set[int] = set()
    for key, tensor in state.items():
        ptr = tensor.untyped_storage().data_ptr()
        if ptr in seen and tensor.numel():
            state[key] = tensor.clone()
        seen.add(ptr)
    provenance = {"source": str(src_path)} | ({"official_copy": copy} if copy else {})
    meta_json = dataclasses.asdict(config) | provenance
    dst.parent.mkdir(parents=True, exist_ok=True)
    json_path = dst.with_suffix(".json")
    metadata = {"format": "pt", "model": model_name} | provenance
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
