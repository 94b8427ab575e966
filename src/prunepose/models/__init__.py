"""Model families. Importing this package registers every model name in :mod:`prunepose.registry`."""
# tokenpose: tokenpose_*, ppt_*; gtpt: gtpt_*
from prunepose.models import gtpt, tokenpose  # noqa: F401  (registration side effects)
