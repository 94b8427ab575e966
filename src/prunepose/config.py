"""Experiment configuration files (YAML) for ``prunepose train`` / ``prunepose test``.

Why plain YAML + dataclasses rather than a config language: the model architecture is already data in
the registry, so an experiment file only names the model and says where the data is and how to train.
Relative data paths resolve against ``data_root`` (which ``--data-root`` or the ``PRUNEPOSE_COCO`` /
``PRUNEPOSE_MPII`` environment variables can replace), so one config works on every machine.

```yaml
model: tokenpose_s_v1          # registry name
model_overrides: {}            # optional config field overrides, e.g. {keep_ratio: 0.7}
data:
  format: coco                 # coco | coco_wholebody | mpii
  data_root: data/coco
  train: {ann_file: annotations/person_keypoints_train2017.json, image_root: train2017}
  val: {ann_file: annotations/person_keypoints_val2017.json, image_root: val2017, det_file: null}
train: {epochs: 300, batch_size: 32, lr: 0.001, lr_steps: [200, 260]}   # engine.trainer.TrainConfig fields
test: {flip: true, refine: dark, batch_size: 32, oks_nms_thr: 0.9, in_vis_thr: 0.2}
ema: {momentum: 0.996}         # optional (GTPT): EMA of the weights, used for evaluation
init: {checkpoint: path.pt, strict: false}   # optional: start from these weights (e.g. a curriculum stage)
```
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from prunepose.errors import ConfigError

DEFAULT_TEST = {"flip": True, "refine": "dark", "batch_size": 32, "oks_nms_thr": 0.9, "in_vis_thr": 0.2,
                "det_score_thr": 0.0, "use_nms": True}
_TOP_KEYS = {"model", "model_overrides", "data", "train", "test", "keep_ratio_schedule", "ema", "init", "task"}


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None,
                data_root: str | None = None) -> dict[str, Any]:
    """Read an experiment YAML, apply ``key.sub=value`` overrides, and resolve data paths.

    Relative ``data_root`` is resolved against the current directory (where the user runs the CLI);
    the environment variable ``PRUNEPOSE_<FORMAT>`` (e.g. ``PRUNEPOSE_COCO``) replaces it when set,
    and ``data_root`` given here wins over both.
    """
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(cfg).__name__}")
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    if "model" not in cfg:
        raise ConfigError(f"{path}: missing field 'model' (a registry name, see `prunepose models`)")
    for item in overrides or []:
        apply_override(cfg, item, path)
    cfg.setdefault("model_overrides", {})
    cfg.setdefault("train", {})
    cfg["test"] = {**DEFAULT_TEST, **(cfg.get("test") or {})}
    data = cfg.get("data")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: missing mapping 'data' (format, data_root, train, val)")
    fmt = data.setdefault("format", "coco")
    if fmt == "h36m":  # lifting: the shared Human3.6M folder (data.root) is resolved by the loader
        cfg["_path"] = str(path)
        return cfg
    if fmt not in ("coco", "coco_wholebody", "mpii"):
        raise ConfigError(f"{path}: data.format must be 'coco', 'coco_wholebody' or 'mpii', got {fmt!r}")
    env = "PRUNEPOSE_MPII" if fmt == "mpii" else "PRUNEPOSE_COCO"  # WholeBody uses the COCO image tree
    root = data_root or os.environ.get(env) or data.get("data_root", ".")
    root_path = Path(root).expanduser()
    data["data_root"] = str(root_path)
    for split in ("train", "val"):
        part = data.get(split)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise ConfigError(f"{path}: data.{split} must be a mapping")
        for key in ("ann_file", "image_root", "det_file", "head_boxes"):
            if part.get(key):
                p = Path(part[key]).expanduser()
                part[key] = str(p if p.is_absolute() else root_path / p)
    cfg["_path"] = str(path)
    return cfg


def parse_value(text: str) -> Any:
    """YAML-parse a command-line value so ``3``, ``1e-3``, ``[1, 2]`` and ``true`` get their types."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(cfg: dict[str, Any], item: str, source: Path | str = "--set") -> None:
    """Apply one ``a.b.c=value`` override in place."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, value = item.split("=", 1)
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{source}: cannot set {key}: {part} is not a mapping")
    node[parts[-1]] = parse_value(value)


def dump_config(cfg: dict[str, Any]) -> str:
    """YAML text of a resolved config (saved next to checkpoints so a run can be reproduced)."""
    clean = copy.deepcopy({k: v for k, v in cfg.items() if not k.startswith("_")})
    return yaml.safe_dump(clean, sort_keys=False)
