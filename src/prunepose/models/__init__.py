"""Model families. Importing this package registers every model name in :mod:`prunepose.registry`."""
# tokenpose: tokenpose_*, ppt_*; gtpt: gtpt_*; lifting: mixste_*, motionbert_*, hot_*, tpc_*;
# multiview_ppt: mvppt_*, mvtokenpose_*
from prunepose.models import gtpt, lifting, multiview_ppt, tokenpose  # noqa: F401  (registration side effects)
