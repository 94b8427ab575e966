"""prunepose: efficient transformer-based human pose estimation (TokenPose, PPT, GTPT, HoT).

Public API: :func:`create_model`, :func:`list_models`, :func:`get_config`.
"""
from prunepose.registry import create_model, get_config, list_models

__version__ = "0.1.0"
__all__ = ["create_model", "get_config", "list_models", "__version__"]
