"""Model zoo: a name maps to a frozen config dataclass and the builder of its family.

Configs are plain data (``dataclasses.replace`` makes variants); builders live with their family in
``prunepose.models``. Nothing here downloads weights.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

from prunepose.errors import ConfigError

_REGISTRY: dict[str, tuple[Any, Callable[[Any], nn.Module]]] = {}


def register_model(config: Any, builder: Callable[[Any], nn.Module]) -> None:
    """Register ``config`` (a frozen dataclass with a ``name`` field) under its name."""
    if config.name in _REGISTRY:
        raise ConfigError(f"model name {config.name!r} registered twice")
    _REGISTRY[config.name] = (config, builder)


def _ensure_loaded() -> None:
    import prunepose.models  # noqa: F401  (registration side effect)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, sorted; ``pattern`` filters by substring."""
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if pattern is None or pattern in n)


def get_config(name: str, **overrides: Any) -> Any:
    """The frozen config of ``name`` with ``overrides`` applied (unknown fields raise ConfigError)."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(_REGISTRY))}")
    config = _REGISTRY[name][0]
    fields = {f.name for f in dataclasses.fields(config)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ConfigError(f"model {name!r} has no config field(s) {bad}; fields: {sorted(fields)}")
    for key, value in overrides.items():  # YAML gives lists where configs hold tuples
        if isinstance(value, list):
            overrides[key] = tuple(value)
    return dataclasses.replace(config, **overrides)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the model ``name`` (randomly initialised), e.g. ``create_model("tokenpose_s_v1")``."""
    config = get_config(name, **overrides)
    return _REGISTRY[name][1](config)
