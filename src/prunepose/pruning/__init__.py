"""Token selection shared by the pruned models (PPT now; GTPT and HoT reuse the interface)."""
from prunepose.pruning.selectors import AttentionTopKSelector, gather_tokens

__all__ = ["AttentionTopKSelector", "gather_tokens"]
