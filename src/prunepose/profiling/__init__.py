"""Cost accounting: parameter counts (and, later, FLOP counters) in named conventions."""
from prunepose.profiling.params import count_params

__all__ = ["count_params"]
