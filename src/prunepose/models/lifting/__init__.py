"""2D-to-3D video pose lifters (MixSTE, MotionBERT) and their HoT / TPC versions.

Importing this package registers ``mixste_243``, ``hot_mixste_243``, ``tpc_mixste_243``,
``motionbert_lite_243``, ``motionbert_243``, ``hot_motionbert_243`` and the ``*_tiny`` test configs.
Every model maps (B, F, 17, C_in) normalised 2D to a `LiftingOutput` (camera-frame, root-relative 3D).
"""
from prunepose.models.lifting import hot  # noqa: F401  (registers the HoT/TPC names)
from prunepose.models.lifting.config import LiftingConfig
from prunepose.models.lifting.mixste import MixSTE, MixSTEConfig
from prunepose.models.lifting.motionbert import MotionBERT, MotionBERTConfig
from prunepose.models.lifting.outputs import LiftingOutput

__all__ = ["LiftingConfig", "LiftingOutput", "MixSTE", "MixSTEConfig", "MotionBERT", "MotionBERTConfig"]
