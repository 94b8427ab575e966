"""HoT (Li et al., CVPR 2024) configurations of the lifting families: TPC + TRA (seq2seq) and TPC only
(seq2frame).

HoT is a plug-in, so a HoT model is its family's model with pruning fields set (see
`prunepose.models.lifting.config.LiftingConfig`); this module only names the published settings:

* ``hot_mixste_243``: MixSTE, 81 frames kept before block 3, new temporal PE, TRA (paper default).
* ``tpc_mixste_243``: MixSTE seq2frame, 61 frames (60 + the centre) kept before block 7, no new PE, no
  recovery (the TPC w. MixSTE row of HoT table 6).
* ``hot_motionbert_243``: MotionBERT-Lite, 81 frames kept before block 1, new PE, TRA.

Other settings (ablations) are overrides, e.g. ``create_model("hot_mixste_243", selector="uniform")``,
``recovery="linear", token_pos_embed=False`` (HoT table 5), or H2OT-style hierarchical pruning
``hierarchical=((2, 121), (4, 61)), token_num=None, layer_index=None``.
"""
from __future__ import annotations

import dataclasses

from prunepose.models.lifting.mixste import MIXSTE_243, MIXSTE_TINY, build_mixste
from prunepose.models.lifting.motionbert import MOTIONBERT_LITE_243, MOTIONBERT_TINY, build_motionbert
from prunepose.registry import register_model

_HOT = {"recovery": "tra", "token_pos_embed": True}

HOT_MIXSTE_243 = dataclasses.replace(MIXSTE_243, name="hot_mixste_243", token_num=81, layer_index=3, **_HOT)
TPC_MIXSTE_243 = dataclasses.replace(MIXSTE_243, name="tpc_mixste_243", token_num=61, layer_index=7,
                                     pipeline="seq2frame")
HOT_MIXSTE_TINY = dataclasses.replace(MIXSTE_TINY, name="hot_mixste_tiny", token_num=9, layer_index=1, **_HOT)
HOT_MOTIONBERT_243 = dataclasses.replace(MOTIONBERT_LITE_243, name="hot_motionbert_243", token_num=81,
                                         layer_index=1, **_HOT)
HOT_MOTIONBERT_TINY = dataclasses.replace(MOTIONBERT_TINY, name="hot_motionbert_tiny", token_num=9,
                                          layer_index=1, **_HOT)

for _cfg in (HOT_MIXSTE_243, TPC_MIXSTE_243, HOT_MIXSTE_TINY):
    register_model(_cfg, build_mixste)
for _cfg in (HOT_MOTIONBERT_243, HOT_MOTIONBERT_TINY):
    register_model(_cfg, build_motionbert)
