"""Token selection shared by the pruned models (PPT, GTPT; HoT reuses the interface)."""
from prunepose.pruning.selectors import AttentionTopKSelector, SoftmaxPoolTopKSelector, gather_tokens, softmax_pool

__all__ = ["AttentionTopKSelector", "SoftmaxPoolTopKSelector", "gather_tokens", "softmax_pool"]
