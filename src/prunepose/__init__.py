"""prunepose: efficient transformer-based human pose estimation (TokenPose, PPT, GTPT, HoT).

Public API: :func:`create_model`, :func:`list_models`, :func:`get_config`, :class:`PoseEstimator2D`,
:class:`Lifter3D`.
"""
from typing import Any

from prunepose.registry import create_model, get_config, list_models

__version__ = "0.1.0"
__all__ = ["Lifter3D", "PoseEstimator2D", "create_model", "get_config", "list_models", "__version__"]

_LAZY = {"PoseEstimator2D": "prunepose.api.estimator2d", "Lifter3D": "prunepose.api.lifter3d"}


def __getattr__(name: str) -> Any:
    """Import the prediction classes on first use: they pull in OpenCV and the codecs."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'prunepose' has no attribute {name!r}")
