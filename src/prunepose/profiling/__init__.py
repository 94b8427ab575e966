"""Cost accounting: parameter counts and compute (true / thop / paper-hrnet) in named conventions."""
from prunepose.profiling.flops import CONVENTIONS, count_all, count_macs, format_profile, profile_model
from prunepose.profiling.params import count_params

__all__ = ["CONVENTIONS", "count_all", "count_macs", "count_params", "format_profile", "profile_model"]
