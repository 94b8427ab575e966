"""Configuration shared by the lifting families (MixSTE, MotionBERT) and their HoT/TPC variants.

Why one base: HoT is a plug-in, so every family carries the same pruning/recovery fields and the same
validation; a family config only adds its own architecture fields.
"""
from __future__ import annotations

from dataclasses import dataclass

from prunepose.errors import ConfigError
from prunepose.pruning.temporal import SELECTORS

RECOVERIES = ("tra", "tra_linear", "nearest", "linear")
#: the recoveries that own a TRA module (same parameters and keys)
TRA_RECOVERIES = ("tra", "tra_linear")
PIPELINES = ("seq2seq", "seq2frame")


@dataclass(frozen=True)
class LiftingConfig:
    """Fields every lifter has.

    Pruning: ``token_num`` frames are kept before block ``layer_index`` (0-based; the block runs on the
    kept frames), or, for hierarchical pruning (H2OT-style), ``hierarchical`` lists several
    ``(layer_index, token_num)`` stages with increasing layers and decreasing counts (then ``token_num``
    and ``layer_index`` stay ``None``). ``selector`` picks the frames (`prunepose.pruning.temporal`).
    ``token_pos_embed`` adds HoT's new learnable temporal PE (``pos_embed_token``) to the kept tokens.

    Output: ``recovery`` restores all F frames after the last block (``"tra"`` = HoT's TRA, or
    ``"nearest"``/``"linear"`` interpolation, or ``"tra_linear"`` = TRA on top of a linear-interpolation
    residual, our change, see `prunepose.models.lifting.hourglass.recover_frames`); ``None`` outputs the
    kept frames only. ``pipeline =
    "seq2frame"`` (TPC) always keeps the centre frame ``(F - 1) // 2`` and needs ``recovery=None``.

    ``in_channels``: 2 (x, y) or 3 (x, y, confidence).
    """

    name: str
    num_frames: int = 243
    num_joints: int = 17
    in_channels: int = 2
    dim: int = 512
    depth: int = 8
    heads: int = 8
    mlp_ratio: float = 2.0
    qkv_bias: bool = True
    drop_path: float = 0.0
    token_num: int | None = None
    layer_index: int | None = None
    hierarchical: tuple[tuple[int, int], ...] = ()
    recovery: str | None = None
    selector: str = "dpc_knn"
    pipeline: str = "seq2seq"
    token_pos_embed: bool = False
    dpc_k: int = 2

    #: lowest block index a pruning stage may use (MixSTE's first block pair always sees every frame)
    min_layer_index = 0

    def __post_init__(self) -> None:
        where = f"lifting config {self.name!r}"

        def bad(msg: str) -> ConfigError:
            return ConfigError(f"{where}: {msg}")

        if self.in_channels not in (2, 3):
            raise bad(f"in_channels must be 2 or 3, got {self.in_channels}")
        if self.dim % self.heads != 0:
            raise bad(f"dim {self.dim} is not divisible by heads {self.heads}")
        if min(self.num_frames, self.num_joints, self.depth) < 1:
            raise bad("num_frames, num_joints and depth must be positive")
        if self.selector not in SELECTORS:
            raise bad(f"selector must be one of {SELECTORS}, got {self.selector!r}")
        if self.recovery not in (None, *RECOVERIES):
            raise bad(f"recovery must be None or one of {RECOVERIES}, got {self.recovery!r}")
        if self.pipeline not in PIPELINES:
            raise bad(f"pipeline must be one of {PIPELINES}, got {self.pipeline!r}")
        if self.hierarchical and (self.token_num is not None or self.layer_index is not None):
            raise bad("give either hierarchical stages or token_num/layer_index, not both")
        if (self.token_num is None) != (self.layer_index is None):
            raise bad("token_num and layer_index go together")
        stages = self.stages
        prev_layer, prev_tokens = self.min_layer_index - 1, self.num_frames + 1
        for layer, tokens in stages:
            if not prev_layer < layer < self.depth:
                raise bad(f"pruning layers must increase within [{self.min_layer_index}, {self.depth - 1}], "
                          f"got {[s[0] for s in stages]}")
            if not 1 <= tokens < prev_tokens:
                raise bad(f"token counts must decrease and stay below num_frames {self.num_frames}, "
                          f"got {[s[1] for s in stages]}")
            prev_layer, prev_tokens = layer, tokens
        if self.pipeline == "seq2frame":
            if self.recovery is not None:
                raise bad("seq2frame (TPC) outputs the kept frames; recovery must be None")
            if self.num_frames % 2 != 1:
                raise bad(f"seq2frame needs an odd num_frames (a centre frame), got {self.num_frames}")
        if self.recovery is not None and not stages:
            raise bad(f"recovery {self.recovery!r} needs a pruning stage (token_num/layer_index)")
        if self.token_pos_embed and not stages:
            raise bad("token_pos_embed needs a pruning stage")
        if self.selector == "attention" and stages and stages[0][0] == 0:
            raise bad("the attention selector needs a block before the first pruning layer")

    @property
    def stages(self) -> tuple[tuple[int, int], ...]:
        """The pruning stages as ``((layer_index, token_num), ...)``; empty for the plain model."""
        if self.hierarchical:
            return tuple((int(a), int(b)) for a, b in self.hierarchical)
        if self.token_num is not None and self.layer_index is not None:
            return ((int(self.layer_index), int(self.token_num)),)
        return ()

    @property
    def keep_center(self) -> bool:
        """Whether pruning always keeps the centre frame (seq2frame / TPC)."""
        return self.pipeline == "seq2frame"
