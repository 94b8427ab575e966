"""Model families. Importing this package registers every model name in :mod:`prunepose.registry`."""
from prunepose.models import tokenpose  # noqa: F401  (registers tokenpose_* and ppt_*)
