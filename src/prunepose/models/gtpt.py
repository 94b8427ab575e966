"""GTPT: Group-based Token Pruning Transformer (Wang et al., ECCV 2024), COCO and COCO-WholeBody.

Faithful to the official code (see section 3 of the project's reference notes), which differs from the
paper in places:

* Tokenizer: ShuffleNet backbone -> BatchNorm -> 4x3 patches flattened channel-last -> Linear, plus the
  fixed sine PE (stored as a frozen parameter, ``sine-full``: re-added before every coarse layer but the
  first and before *every* fine layer).
* Coarse encoder (6 standard layers): one learnable human token + 256 visual tokens. At layer 3 the
  visual tokens are pruned to ``int(256 * 0.7)`` by the human token's attention logits, then the
  Human-to-Keypoint step adds the human token to the sparse keypoint embeddings (17 body tokens; whole
  body: 5 part tokens first, then the 17) -- both after that layer's attention residual, before its FFN.
* Grouping: body keypoints split head / upper / lower; the 5-token head group is padded to 6 with a
  duplicate of the nose in front (a dummy nobody attends to). Each group gets the visual tokens and the PE
  multiplied by its own sigmoid channel mask (``group_mask`` MLP), then keeps the visual tokens its
  keypoint queries score highest in the last coarse layer. Whole body: each group also gets its dense
  keypoint tokens (part token + learnable embedding; face / both hands / both feet), placed first in the
  group's token budget with zero PE, so they displace visual tokens.
* Fine encoder (6 MHGA layers): each group attends to all groups' sparse tokens plus its own tokens; at
  fine layer 3 every group prunes again (COCO 76 -> 25, whole body 128 -> 76 incl. dense tokens).
* Token budgets are ``int(256 * rate)`` of the ORIGINAL token count, rates applied per 3 layers
  (``[1, .7, .3, .1]`` -> layers 0-2, 3-5, 6-8 (= grouping + fine 0-2), 9-11 (fine 3-5)); scores are the
  softmax-pool of pre-softmax logits (:class:`~prunepose.pruning.SoftmaxPoolTopKSelector`).
* SimCC heads: ``LN + Linear(dim -> W * k)`` for x and ``LN + Linear(dim -> H * k)`` for y.
* Attention scale ``dim ** -0.5`` in both attentions; every Linear keeps PyTorch's default init; conv
  weights ~ N(0, 0.001); human/keypoint/part/dense embeddings ~ trunc-normal(0.02).

The official module also holds an EMA copy of everything; here the module is a single copy (the training
engine keeps the EMA separately), so its state dict is the student or the EMA weights. Training runs the
transformer twice on one backbone pass, pruned and unpruned ("entire", keep rate 1 everywhere):
:meth:`GTPT.forward_pair` does that; ``forward(images, pruning=False)`` runs the unpruned pass alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunepose.errors import ConfigError
from prunepose.models.checks import check_images
from prunepose.models.outputs import SimCCOutput
from prunepose.nn.backbones import build_backbone
from prunepose.nn.backbones.shufflenet import init_gtpt_backbone
from prunepose.nn.blocks import GroupPreNormBlock, PreNormBlock
from prunepose.nn.posenc import sine_position_encoding_2d
from prunepose.pruning.selectors import SoftmaxPoolTopKSelector, gather_tokens
from prunepose.registry import register_model
from prunepose.skeletons import COCO17, get_skeleton


@dataclass(frozen=True)
class GTPTConfig:
    """Architecture of a GTPT variant. Sizes are (width, height)."""

    name: str
    backbone: str  # gtpt_t | gtpt_s | gtpt_b
    input_size: tuple[int, int] = (192, 256)
    patch_size: tuple[int, int] = (3, 4)  # (w, h) on the stride-4 feature map
    num_keypoints: int = 17
    skeleton: str = "coco"  # coco | coco_wholebody
    dim: int = 192
    heads: int = 8
    mlp_ratio: float = 3.0
    coarse_depth: int = 6  # standard layers (official TRANSFORMER_DEPTH // 2)
    fine_depth: int = 6  # MHGA layers
    h2k_layer: int = 3  # coarse layer after whose attention the human token becomes keypoint tokens
    keep_rates: tuple[float, ...] = (1.0, 0.7, 0.3, 0.1)  # whole body: (1.0, 0.7, 0.5, 0.3)
    simcc_split_ratio: float = 2.0
    attn_scale: str = "dim"  # "dim": dim**-0.5 (the official GTPT scale) ; "head": head_dim**-0.5
    family: str = "gtpt"

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (rows, cols) on the stride-4 feature map."""
        return (self.input_size[1] // 4 // self.patch_size[1], self.input_size[0] // 4 // self.patch_size[0])

    @property
    def simcc_bins(self) -> tuple[int, int]:
        """Number of (x, y) bins of the SimCC heads."""
        return int(self.input_size[0] * self.simcc_split_ratio), int(self.input_size[1] * self.simcc_split_ratio)

    @property
    def prune_layers(self) -> tuple[int, ...]:
        """0-based global layer indices (coarse 0..5, fine 6..11) where the pruned pass changes the token
        budget: after that layer's attention, except the grouping step (before the first fine layer),
        listed as the first fine layer. (3, 6, 9) for the published rates; the same notation as PPT's."""
        rates = self.layer_keep_rates
        return tuple(i for i in range(1, len(rates)) if rates[i] != rates[i - 1])

    @property
    def layer_keep_rates(self) -> tuple[float, ...]:
        """Keep rate of each of the ``coarse_depth + fine_depth`` layers (each rate spans an equal run)."""
        depth = self.coarse_depth + self.fine_depth
        per = depth // len(self.keep_rates)
        return tuple(self.keep_rates[i // per] for i in range(depth))


@dataclass(frozen=True)
class _GroupLayout:
    """Where every keypoint token lives once tokens are grouped (derived from the skeleton).

    sparse_index: (G*S,) for each sparse slot of the grouped layout, the body keypoint it holds (groups
        shorter than S are padded in front with copies of their first keypoint: the dummies).
    sparse_valid: (G, S) False at dummy slots.
    score_rows: (G, Q) rows of the coarse sparse sequence ([parts..., body...]) whose logits score group
        g's visual tokens at grouping, padded with 0; score_valid (G, Q) marks the real ones.
    dense_counts: dense keypoint tokens per group (whole body; zeros for COCO).
    dense_part: (D,) the part token each dense token starts from, dense tokens ordered group by group.
    output_index: (K,) position, in ``cat(sparse slots (G*S), dense tokens (D))``, of native keypoint k.
    """

    num_sparse: int
    num_parts: int
    sparse_index: tuple[int, ...]
    sparse_valid: tuple[tuple[bool, ...], ...]
    score_rows: tuple[tuple[int, ...], ...]
    score_valid: tuple[tuple[bool, ...], ...]
    dense_counts: tuple[int, ...]
    dense_part: tuple[int, ...]
    output_index: tuple[int, ...]

    @property
    def dummy_slots(self) -> tuple[int, ...]:
        flat = [v for row in self.sparse_valid for v in row]
        return tuple(i for i, v in enumerate(flat) if not v)


def _group_layout(skeleton_name: str) -> _GroupLayout:
    """COCO: 3 body groups. Whole body: the same body groups plus 5 part tokens (face; left/right hand;
    left/right foot) seeding 68 / 42 / 6 dense tokens in the head / upper / lower groups."""
    body_groups = COCO17.groups
    assert body_groups is not None
    s = max(len(g) for g in body_groups)
    padded = [(g[0],) * (s - len(g)) + tuple(g) for g in body_groups]
    sparse_valid = tuple(tuple(i >= s - len(g) for i in range(s)) for g in body_groups)
    sparse_index = tuple(j for g in padded for j in g)
    if skeleton_name == "coco":
        parts_of_group: list[tuple[int, ...]] = [(), (), ()]
        dense: list[list[tuple[int, range]]] = [[], [], []]  # per group: (part, native keypoint ids)
    elif skeleton_name == "coco_wholebody":
        p = get_skeleton("coco_wholebody").parts
        foot = p["foot"]
        left_foot, right_foot = range(foot.start, foot.start + 3), range(foot.start + 3, foot.stop)
        parts_of_group = [(0,), (1, 2), (3, 4)]
        dense = [[(0, p["face"])], [(1, p["lefthand"]), (2, p["righthand"])], [(3, left_foot), (4, right_foot)]]
    else:
        raise ConfigError(f"GTPT supports the 'coco' and 'coco_wholebody' skeletons, got {skeleton_name!r}")
    num_parts = sum(len(g) for g in parts_of_group)
    rows = [list(parts) + [num_parts + j for j in g] for parts, g in zip(parts_of_group, body_groups)]
    q = max(len(r) for r in rows)
    score_rows = tuple(tuple(r + [0] * (q - len(r))) for r in rows)
    score_valid = tuple(tuple(i < len(r) for i in range(q)) for r in rows)
    dense_counts = tuple(sum(len(ids) for _, ids in d) for d in dense)
    dense_part = tuple(part for d in dense for part, ids in d for _ in ids)
    position: dict[int, int] = {}
    for slot, (j, valid) in enumerate(zip(sparse_index, [v for row in sparse_valid for v in row])):
        if valid:
            position[j] = slot
    native_dense = [k for d in dense for _, ids in d for k in ids]
    for i, k in enumerate(native_dense):
        position[k] = len(sparse_index) + i
    output_index = tuple(position[k] for k in range(len(position)))
    return _GroupLayout(s, num_parts, sparse_index, sparse_valid, score_rows, score_valid, dense_counts, dense_part,
                        output_index)


class GTPT(nn.Module):
    """GTPT. Call on (B, 3, H, W) normalised RGB; returns :class:`SimCCOutput`.

    ``pruning`` (attribute, default True; or the ``pruning`` argument of :meth:`forward`) selects the
    pruned pass (the model as published) or the unpruned one (keep rate 1 at every layer). Whole-body
    note: even the unpruned pass gives each group a 256-token budget shared by dense keypoint tokens and
    visual tokens, so it keeps 256 - 68 / 42 / 6 visual tokens per group (as the official code does).
    """

    def __init__(self, config: GTPTConfig) -> None:
        super().__init__()
        self.config = c = config
        skeleton = get_skeleton(c.skeleton)
        if skeleton.num_keypoints != c.num_keypoints:
            raise ConfigError(f"{c.name}: skeleton {c.skeleton!r} has {skeleton.num_keypoints} keypoints, "
                              f"config says num_keypoints={c.num_keypoints}")
        self.layout = layout = _group_layout(c.skeleton)
        self.backbone, channels, stride = build_backbone(c.backbone)
        if stride != 4:
            raise ConfigError(f"{c.name}: GTPT needs a stride-4 backbone, {c.backbone!r} has stride {stride}")
        fw, fh = c.input_size[0] // 4, c.input_size[1] // 4
        pw, ph = c.patch_size
        if c.input_size[0] % 4 or c.input_size[1] % 4 or fw % pw or fh % ph:
            raise ConfigError(f"{c.name}: input {c.input_size} / 4 is not divisible by patch {c.patch_size} (w, h)")
        self.grid_h, self.grid_w = c.grid_size
        self.num_tokens = self.grid_h * self.grid_w
        self.selector = SoftmaxPoolTopKSelector()
        self._check_schedule()

        self.patch_norm = nn.BatchNorm2d(channels)
        self.patch_embed = nn.Linear(channels * pw * ph, c.dim)
        self.human_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.keypoint_tokens = nn.Parameter(torch.zeros(1, len(COCO17.keypoint_names), c.dim))
        if layout.num_parts:
            self.part_tokens = nn.Parameter(torch.zeros(1, layout.num_parts, c.dim))
            self.dense_tokens = nn.Parameter(torch.zeros(1, len(layout.dense_part), c.dim))
        self.pos_embed = nn.Parameter(sine_position_encoding_2d(self.grid_h, self.grid_w, c.dim), requires_grad=False)
        if c.attn_scale not in ("dim", "head"):
            raise ConfigError(f"{c.name}: attn_scale must be 'dim' or 'head', got {c.attn_scale!r}")
        scale = c.dim**-0.5 if c.attn_scale == "dim" else (c.dim // c.heads) ** -0.5
        self.coarse_blocks = nn.ModuleList(PreNormBlock(c.dim, c.heads, c.mlp_ratio, scale)
                                           for _ in range(c.coarse_depth))
        self.fine_blocks = nn.ModuleList(
            GroupPreNormBlock(c.dim, c.heads, c.mlp_ratio, scale, layout.num_sparse, 3, layout.dummy_slots)
            for _ in range(c.fine_depth)
        )
        self.group_mask = nn.Sequential(nn.Linear(c.dim, c.dim // 2), nn.ReLU(), nn.Linear(c.dim // 2, 3 * c.dim),
                                        nn.Sigmoid())
        bins_x, bins_y = c.simcc_bins
        self.head_x = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, bins_x))
        self.head_y = nn.Sequential(nn.LayerNorm(c.dim), nn.Linear(c.dim, bins_y))
        self.pruning = True

        # Layout as non-persistent buffers: they follow .to(device) but are not weights.
        def buffer(name: str, values: object, dtype: torch.dtype) -> None:
            self.register_buffer(name, torch.tensor(values, dtype=dtype), persistent=False)

        buffer("_sparse_index", layout.sparse_index, torch.long)
        buffer("_score_rows", layout.score_rows, torch.long)
        buffer("_score_valid", layout.score_valid, torch.bool)
        buffer("_dense_part", layout.dense_part, torch.long)
        buffer("_dense_counts", layout.dense_counts, torch.long)
        buffer("_output_index", layout.output_index, torch.long)
        d_max = max(layout.dense_counts)
        fine_valid = [list(v) + [True] * d + [False] * (d_max - d)
                      for v, d in zip(layout.sparse_valid, layout.dense_counts)]
        buffer("_fine_query_valid", fine_valid, torch.bool)
        self._init_weights()

    # ------------------------------------------------------------------------------------------ set-up
    def _check_schedule(self) -> None:
        c = self.config
        depth = c.coarse_depth + c.fine_depth
        if not c.keep_rates or depth % len(c.keep_rates):
            raise ConfigError(f"{c.name}: {depth} layers cannot be split evenly over keep_rates {c.keep_rates}")
        if not 0 <= c.h2k_layer < c.coarse_depth - 1:
            raise ConfigError(f"{c.name}: h2k_layer {c.h2k_layer} must be a coarse layer before the last one "
                              f"(0..{c.coarse_depth - 2})")
        if not all(0.0 < r <= 1.0 for r in c.keep_rates):
            raise ConfigError(f"{c.name}: keep rates must be in (0, 1], got {c.keep_rates}")
        budgets = [self._budget(r) for r in c.layer_keep_rates]
        if any(b2 > b1 for b1, b2 in zip(budgets, budgets[1:])):
            raise ConfigError(f"{c.name}: keep rates {c.keep_rates} must not increase (budgets {budgets})")
        dense = max(self.layout.dense_counts)
        if budgets[c.coarse_depth] <= dense:
            raise ConfigError(f"{c.name}: a group budget of {budgets[c.coarse_depth]} tokens leaves no room next to "
                              f"{dense} dense keypoint tokens; raise keep_rates")

    def _budget(self, keep_rate: float) -> int:
        return self.selector.budget(self.num_tokens, keep_rate)

    def _init_weights(self) -> None:
        init_gtpt_backbone(self.backbone)
        nn.init.ones_(self.patch_norm.weight)
        nn.init.zeros_(self.patch_norm.bias)
        for p in (self.human_token, self.keypoint_tokens, getattr(self, "part_tokens", None),
                  getattr(self, "dense_tokens", None)):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)

    # ----------------------------------------------------------------------------------------- forward
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone + tokenizer: (B, 3, H, W) -> (B, N, dim) visual tokens with the PE added."""
        check_images(images, self.config.name, self.config.input_size)
        f = self.patch_norm(self.backbone(images))
        b, ch, h, w = f.shape
        pw, ph = self.config.patch_size
        f = f.reshape(b, ch, h // ph, ph, w // pw, pw).permute(0, 2, 4, 3, 5, 1)  # (p1 p2 c): channel-last
        return self.patch_embed(f.reshape(b, self.num_tokens, ph * pw * ch)) + self.pos_embed

    def forward(self, images: torch.Tensor, pruning: bool | None = None,
                pair: bool = False) -> SimCCOutput | tuple[SimCCOutput, SimCCOutput]:
        """SimCC logits for (B, 3, H, W) images. ``pair=True`` returns ``(pruned, unpruned)`` from one
        backbone pass (training's global-perceived loss); going through ``forward`` keeps DDP's gradient
        synchronisation working, which a direct ``forward_pair`` call on the wrapped module would bypass."""
        if pair:
            return self.forward_pair(images)
        return self.run_transformer(self.embed(images), self.pruning if pruning is None else pruning)

    def forward_pair(self, images: torch.Tensor) -> tuple[SimCCOutput, SimCCOutput]:
        """(pruned, unpruned) outputs from one backbone pass, as the official training step computes them."""
        visual = self.embed(images)
        return self.run_transformer(visual, True), self.run_transformer(visual, False)

    def run_transformer(self, visual: torch.Tensor, pruning: bool = True) -> SimCCOutput:
        """Coarse encoder, grouping, fine encoder and heads on ``visual`` (B, N, dim) from :meth:`embed`."""
        c, lay = self.config, self.layout
        rates = c.layer_keep_rates if pruning else (1.0,) * len(c.layer_keep_rates)
        budgets = [self._budget(r) for r in rates]
        b = visual.shape[0]
        kept: list[torch.Tensor] = []

        # ---- coarse encoder: human token, pruning by its attention, Human-to-Keypoint
        sparse = self.keypoint_tokens if not lay.num_parts else torch.cat((self.part_tokens, self.keypoint_tokens), 1)
        x = torch.cat((self.human_token.expand(b, -1, -1), visual), dim=1)
        k = 1  # tokens in front of the visual ones
        pos = self.pos_embed
        grid = torch.arange(self.num_tokens, device=visual.device).expand(b, -1)
        group_budget = budgets[c.coarse_depth]
        dense = lay.dense_counts
        logits = None
        for idx, block in enumerate(self.coarse_blocks):
            if idx > 0:
                x = torch.cat((x[:, :k], x[:, k:] + pos), dim=1)
            target = budgets[idx]
            prune = x.shape[1] - k != target
            last = idx == c.coarse_depth - 1
            group_select = last and any(target != group_budget - d for d in dense)
            x, logits = block.attend(x, query_rows=k if prune or group_select else 0, logits=True)
            if prune:
                keep = self.selector.select(logits[..., k:], target)
                x = torch.cat((x[:, :k], gather_tokens(x[:, k:], keep)), dim=1)
                pos, grid = gather_tokens(pos, keep), torch.gather(grid, 1, keep)
                kept.append(grid)
                if logits is not None and group_select:
                    logits = torch.cat((logits[..., :k], torch.gather(
                        logits[..., k:], -1, keep[:, None, None].expand(-1, *logits.shape[1:3], -1))), dim=-1)
            if idx == c.h2k_layer:
                x = torch.cat((x[:, :1] + sparse, x[:, 1:]), dim=1)
                k = sparse.shape[1]
            x = block.feed_forward(x)

        # ---- grouping: pad + split sparse tokens, channel masks, per-group selection, dense tokens
        s, g = lay.num_sparse, 3
        tokens, img = x[:, :k], x[:, k:]
        groups_sparse = tokens[:, lay.num_parts:].index_select(1, self._sparse_index).reshape(b, g, s, -1)
        mask = self.group_mask(img).unflatten(-1, (g, c.dim)).transpose(1, 2)  # (B, G, N, C)
        img, pos = img.unsqueeze(1) * mask, pos.unsqueeze(1) * mask
        order = None
        if group_select:  # descending scores, so group i keeps a prefix of its own order
            rows = logits[..., k:][:, :, self._score_rows].transpose(1, 2)  # (B, G, heads, Q, N)
            order = self.selector.select(rows, group_budget - min(dense), self._score_valid[:, None])
        dense_tok = tokens[:, self._dense_part] + self.dense_tokens if lay.num_parts else None  # group by group
        img, pos, grid = self._fill_groups(img, pos, grid, order, group_budget, dense_tok)
        if group_select:
            kept.append(grid)
        x = torch.cat((groups_sparse, img), dim=2)  # (B, G, S + budget, C)

        # ---- fine encoder: MHGA, PE re-added before every layer, per-group pruning
        d_max = max(dense)
        for idx, block in enumerate(self.fine_blocks):
            x = torch.cat((x[:, :, :s], x[:, :, s:] + pos), dim=2)
            target = budgets[c.coarse_depth + idx]
            prune = x.shape[2] - s != target
            x, logits = block.attend(x, query_rows=s + d_max if prune else 0)
            if prune:
                scores = self.selector.scores(logits, self._fine_query_valid[:, None])  # (B, G, n)
                slot = torch.arange(scores.shape[-1], device=scores.device)
                scores = scores.masked_fill(slot < self._dense_counts[:, None], float("inf"))  # dense stay
                keep = scores.topk(target, dim=-1).indices.sort(dim=-1).values  # dense slots first, in order
                x = torch.cat((x[:, :, :s], gather_tokens(x[:, :, s:], keep)), dim=2)
                pos, grid = gather_tokens(pos, keep), torch.gather(grid, 2, keep)
                kept.append(grid)
            x = block.feed_forward(x)

        # ---- keypoint tokens in native order -> SimCC heads
        out = x[:, :, :s].flatten(1, 2)
        if lay.num_parts:
            out = torch.cat([out] + [x[:, i, s:s + d] for i, d in enumerate(dense)], dim=1)
        out = out.index_select(1, self._output_index)
        return SimCCOutput(simcc_x=self.head_x(out), simcc_y=self.head_y(out), kept=kept)

    def _fill_groups(self, img: torch.Tensor, pos: torch.Tensor, grid: torch.Tensor, order: torch.Tensor | None,
                     budget: int, dense_tok: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each group's token budget: [its dense tokens (zero PE, grid -1), its best ``budget - D_g`` visual
        tokens by ``order`` (B, G, M), or all of them when ``order`` is None]; stacked to (B, G, budget, ...).

        A loop over the 3 groups moves data only (groups keep different numbers of visual tokens when they
        hold different numbers of dense tokens); no attention is computed here.
        """
        xs, ps, gs = [], [], []
        start = 0
        for i, d in enumerate(self.layout.dense_counts):
            xi, pi, gi = img[:, i], pos[:, i], grid.expand(img.shape[0], -1)
            if order is not None:
                index = order[:, i, :budget - d]
                xi, pi, gi = gather_tokens(xi, index), gather_tokens(pi, index), torch.gather(gi, 1, index)
            if d and dense_tok is not None:
                dt = dense_tok[:, start:start + d]
                start += d
                xi, pi = torch.cat((dt, xi), dim=1), torch.cat((torch.zeros_like(dt), pi), dim=1)
                gi = torch.cat((gi.new_full((gi.shape[0], d), -1), gi), dim=1)
            xs.append(xi)
            ps.append(pi)
            gs.append(gi)
        return torch.stack(xs, 1), torch.stack(ps, 1), torch.stack(gs, 1)


def build_gtpt(config: GTPTConfig) -> GTPT:
    return GTPT(config)


_WB = {"num_keypoints": 133, "skeleton": "coco_wholebody", "keep_rates": (1.0, 0.7, 0.5, 0.3)}
_VARIANTS = [
    GTPTConfig("gtpt_t", backbone="gtpt_t", dim=128),
    GTPTConfig("gtpt_s", backbone="gtpt_s"),
    GTPTConfig("gtpt_b", backbone="gtpt_b"),
    GTPTConfig("gtpt_t_wholebody", backbone="gtpt_t", dim=128, **_WB),
    GTPTConfig("gtpt_s_wholebody", backbone="gtpt_s", **_WB),
    GTPTConfig("gtpt_b_wholebody", backbone="gtpt_b", **_WB),
]
for _cfg in _VARIANTS:
    register_model(_cfg, build_gtpt)
