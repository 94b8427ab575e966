"""Converters from other code bases' checkpoints to prunepose weights.

Why a package: official checkpoints are the only published weights for these models, and each code base
names its modules differently; converters turn them into safetensors that
:func:`prunepose.weights.load_weights` reads with ``strict=True``.
"""
from prunepose.convert.official import (
    convert_checkpoint,
    convert_official_state_dict,
    guess_official_architecture,
)

__all__ = ["convert_checkpoint", "convert_official_state_dict", "guess_official_architecture"]
