"""Start a HoT lifter from its trained unpruned twin (plug-and-play, as the HoT paper presents it).

HoT adds only two modules to MixSTE / MotionBERT: the Token Pruning Cluster (``pruning``) and the Token
Recovering Attention (``recovery``); every other weight has the same name and shape in both models
(checked below, never assumed). So a HoT model can start from a trained twin's weights and only has to learn
the two new modules and adapt the blocks that now run on fewer frames. Why a dedicated loader instead of
``strict=False``: a non-strict load would also silently accept a checkpoint of the wrong architecture that
happens to share a few names; here every weight of the twin must land, and the only weights left at their
initial values are HoT's own.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from prunepose.errors import PrunePoseError

#: the state-dict prefixes of the modules HoT adds to its base model
HOT_MODULE_PREFIXES = ("pruning.", "recovery.")


def is_hot(model: nn.Module) -> bool:
    """True for a lifter with a pruning stage or a recovery module (HoT / TPC versions of a base model)."""
    return getattr(model, "pruning", None) is not None or getattr(model, "recovery", None) is not None


def load_twin_into_hot(model: nn.Module, path: str | Path) -> list[str]:
    """Load the unpruned twin's weights at ``path`` into the HoT ``model``; return the HoT keys left as
    initialised (the TPC / TRA parameters).

    Raises a `PrunePoseError` naming the file when the checkpoint has a weight the HoT model lacks or shapes
    differ (a different base architecture), or when a non-HoT weight of the model is missing from it.
    """
    from prunepose.weights import read_state_dict

    state = read_state_dict(path)
    own = model.state_dict()
    extra = sorted(k for k in state if k not in own)
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in state if k in own and state[k].shape != own[k].shape]
    missing = sorted(k for k in own if k not in state)
    not_hot = [k for k in missing if not k.startswith(HOT_MODULE_PREFIXES)]
    name = getattr(getattr(model, "config", None), "name", type(model).__name__)
    if extra or shapes or not_hot:
        parts = [f"{path} is not the unpruned twin of {name}:"]
        if shapes:
            parts.append("shape mismatches: " + "; ".join(shapes[:5]))
        if extra:
            parts.append(f"weights the model lacks: {extra[:5]}")
        if not_hot:
            parts.append(f"base weights missing from the file: {not_hot[:5]}")
        raise PrunePoseError(" ".join(parts))
    model.load_state_dict(state, strict=False)
    return missing


__all__ = ["HOT_MODULE_PREFIXES", "is_hot", "load_twin_into_hot"]
