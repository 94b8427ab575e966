"""Datasets and geometric transforms for top-down pose estimation.

Kept free of eager imports: ``prunepose.codecs`` imports ``prunepose.data.transforms``, and the dataset
modules import the codecs, so importing them here would create an import cycle. Import the modules
directly (``from prunepose.data.coco import CocoTopDownDataset``) or use the lazy names below.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CocoTopDownDataset": "prunepose.data.coco",
    "CocoWholeBodyDataset": "prunepose.data.coco_wholebody",
    "MpiiDataset": "prunepose.data.mpii",
    "AugmentConfig": "prunepose.data.transforms",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'prunepose.data' has no attribute {name!r}")
