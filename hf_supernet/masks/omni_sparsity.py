"""``mask_type="omni_sparsity"`` — Omni-sparsity DNN (Yang et al., 2022): per-layer block sparsity, one supernet.

A subnet is one sparsity per Conformer block, ``OmniSparsitySpec(sparsity=(s_0, ..., s_{L-1}))``, each from
``config.omni_sparsity_levels`` ([paper] {0, 0.5, 0.6, 0.7, 0.8}). Block ``l`` at sparsity ``s`` runs with
multiplicative 0/1 masks on its *prunable matrices* (``BlockPlan.weight_masks``), so the block, extraction (zeros
baked in) and costs (nonzero weights, density-scaled matmul FLOPs) need nothing mask-specific.

* **Prunable matrices** [choice]: the block's linear weights — both feed-forward modules (``intermediate_dense``,
  ``output_dense``), the attention projections (q, k, v, out) and the convolution module's two pointwise
  projections. Biases, LayerNorms and the depthwise convolution (31 weights per channel, ~1% of a block) stay
  dense, as do the front end and the CTC head (the paper prunes the encoder layers only).
* **Blocks** [paper: 8x1; orientation: choice]: a weight of shape (out, in) is cut into ``[rows, cols]`` blocks
  (``config.omni_sparsity_block_shape``, default ``[8, 1]`` = QNNPACK/fbgemm's 8x1 pattern: 8 consecutive output
  channels of one input channel). A dimension that is not a multiple of the block keeps a smaller last block.
  Every block is either kept whole or zeroed whole.
* **Importance** [paper: Adam-pruning]: ``I(w) = |w| * sqrt(v_w)``, ``v`` = the optimizer's second moment
  ``exp_avg_sq`` (Adam, AdamW and this package's ScaledAdam keep it under that name; its bias correction is the same
  factor for every weight, so it cannot change a ranking and is left out). A block scores the *mean* importance of
  its weights [choice; = the sum for full blocks, and fair to a smaller last block]. Before the first pruning step,
  or with an optimizer that keeps no ``exp_avg_sq`` (SGD, Adafactor, 8-bit Adam; a warning says so), the
  importance is the magnitude ``|w|``.
* **Exact level** [paper / choice]: at sparsity ``s`` exactly ``round((1 - s) * num_blocks)`` blocks are kept —
  per matrix (``omni_sparsity_pooling="matrix"``, the default: no matrix can be emptied, as in Zhu & Gupta's
  per-matrix pruning) or over all blocks of the layer (``"layer"``: importance decides which matrices to thin).
  Ties break towards the lower block index (stable sort), so masks are deterministic.
* **Storage**: one ranking of each layer's blocks gives every level at once (level ``s`` keeps ranks below its
  count), so the masks of a layer are nested across levels and cost one int32 per block, in buffers
  (``block_ranks_<layer>``) that ``save_pretrained`` writes and ``from_pretrained`` restores exactly. Full-shape
  boolean masks are built from them on demand and cached until the ranks change.
* **Pruning steps** [paper]: every ``omni_sparsity_prune_interval`` optimizer steps (256) the rankings are
  recomputed from the current importance and the largest sparsity the trainer may sample, ``s_max``, follows
  Zhu & Gupta's cubic schedule ``s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3`` (``s_f`` = highest level; ``s_i``,
  ``t0`` and ``n dt`` from the config [choice]), held between pruning steps. The step count lives in a buffer
  (``schedule_step``), so a resumed run continues the schedule.
* **What the trainer samples** (:meth:`OmniSparsityMask.training_space`): levels up to ``s_max`` only — the
  smallest subnet is every layer at the highest open level, and random subnets draw every layer from the open
  *nonzero* levels ([paper]: "zero sparsity is not used for sampling random networks ... only for training the
  dense network"; while no nonzero level is open yet, every subnet is the dense one). Search, costs and extraction
  see the whole space (:meth:`OmniSparsityMask.space`), mixed specs with dense layers included [choice].
* **Adaptive dropout** [paper]: a layer at sparsity ``s`` runs all its dropouts at ``p * (1 - s)`` (``p`` = the
  config's rates, 0.1 in the paper), when ``adaptive_dropout`` is on.
* **Sizes**: ``subnet_costs(spec).params`` counts nonzero weights and ``int8_mb`` stores only those (linear weights
  at one byte, with no index; what budgets compare; a dense int8 export stores the zeros too);
  :func:`hf_supernet.storage_report` adds the index bytes of the block-sparse format that
  :func:`hf_supernet.save_sparse` writes.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterator

import torch
from torch import nn

from ..config_validation import FLAG, STEPS, Rule, check_fields
from ..slicing import block_grid
from ..subnets import SubnetSpace, SubnetSpec, randint, register_spec
from .base import BlockPlan, MaskMethod

logger = logging.getLogger(__name__)

# Every prunable weight a Conformer block can have, by parameter name inside the block (fixed order: the layout of
# the rank buffers).
PRUNABLE_WEIGHTS = (
    "ffn1.intermediate_dense.weight",
    "ffn1.output_dense.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.out_proj.weight",
    "conv_module.pointwise_in.weight",
    "conv_module.pointwise_out.weight",
    "ffn2.intermediate_dense.weight",
    "ffn2.output_dense.weight",
)
# Sparsity thins every unit of a layer, so adaptive dropout scales all of them.
ALL_UNITS = ("ffn1", "self_attn", "conv_module", "ffn2")
# Tolerance when comparing a schedule value with a level (0.8 * (1 - 0.125) is 0.7000000000000001).
_LEVEL_TOLERANCE = 1e-9


# ----------------------------------------------------------------------------------------------- pure functions
def adam_importance(weight: torch.Tensor, exp_avg_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Adam-pruning importance ``|w| * sqrt(v)`` of every weight; ``|w|`` when no second moment is given."""
    magnitude = weight.detach().abs().float()
    if exp_avg_sq is None:
        return magnitude
    return magnitude * exp_avg_sq.detach().float().sqrt()


def block_scores(importance: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """Mean importance of each ``block`` of a 2-D tensor, shape ``block_grid``."""
    rows, cols = block_grid(tuple(importance.shape), block)
    padded = importance.new_zeros(rows * block[0], cols * block[1])
    padded[: importance.shape[0], : importance.shape[1]] = importance
    counts = torch.zeros_like(padded)
    counts[: importance.shape[0], : importance.shape[1]] = 1
    sums = padded.view(rows, block[0], cols, block[1]).sum(dim=(1, 3))
    return sums / counts.view(rows, block[0], cols, block[1]).sum(dim=(1, 3))


def descending_ranks(scores: torch.Tensor) -> torch.Tensor:
    """Rank of every entry of a 1-D tensor, 0 = highest score; ties go to the lower index."""
    order = torch.argsort(scores, descending=True, stable=True)
    ranks = torch.empty(scores.numel(), dtype=torch.int32, device=scores.device)
    ranks[order] = torch.arange(scores.numel(), dtype=torch.int32, device=scores.device)
    return ranks


def kept_block_count(num_blocks: int, sparsity: float) -> int:
    """Blocks kept at ``sparsity``: ``round((1 - s) * num_blocks)``."""
    return round((1.0 - sparsity) * num_blocks)


def expand_block_mask(block_mask: torch.Tensor, shape: tuple[int, int], block: tuple[int, int]) -> torch.Tensor:
    """A (rows, cols) mask of blocks as the (out, in) mask of the weight's entries."""
    full = block_mask.repeat_interleave(block[0], dim=0).repeat_interleave(block[1], dim=1)
    return full[: shape[0], : shape[1]]


def cubic_max_sparsity(step: int, *, initial: float, final: float, start: int, length: int, interval: int) -> float:
    """Largest trainable sparsity after ``step`` optimizer steps (Zhu & Gupta, 2018):
    ``s_f + (s_i - s_f) * (1 - (t - t0) / length) ** 3`` at the last pruning step ``t <= step`` (a multiple of
    ``interval``), ``s_i`` before ``t0`` and ``s_f`` from ``t0 + length`` on."""
    t = (step // interval) * interval
    if length == 0:
        progress = 1.0 if t >= start else 0.0
    else:
        progress = min(max((t - start) / length, 0.0), 1.0)
    return final + (initial - final) * (1.0 - progress) ** 3


# ------------------------------------------------------------------------------------------------ spec / space
# Where pruning blocks compete for survival: within each matrix, or across the whole layer.
OMNI_SPARSITY_POOLINGS = ("matrix", "layer")


# What each Omni-sparsity field may hold (types; ranges are checked once the defaults are filled in).
OMNI_SPARSITY_FIELD_RULES = {
    "omni_sparsity_levels": Rule(list, items=float, optional=True),
    "omni_sparsity_block_shape": Rule(list, items=int, optional=True),
    "omni_sparsity_pooling": Rule(str),
    "omni_sparsity_prune_interval": Rule(int),
    "omni_sparsity_schedule_start": STEPS,
    "omni_sparsity_schedule_steps": STEPS,
    "omni_sparsity_initial_max_sparsity": Rule(float),
    "omni_sparsity_search_excludes_dense": FLAG,
}


@dataclasses.dataclass(kw_only=True, repr=False)
class OmniSparsityConfigMixin:
    r"""The config fields of ``mask_type="omni_sparsity"`` (a config of a family this mask type can carve lists this class among its bases; transformers
    collects the fields into the config's dataclass).

    Args:
        omni_sparsity_levels (`list[float]`, *optional*, defaults to `[0.0, 0.5, 0.6, 0.7, 0.8]`):
            `omni_sparsity`: the sparsities each layer may take (share of pruned weights in its prunable matrices).
            The largest subnet has every layer at the lowest level, the smallest at the highest.
        omni_sparsity_block_shape (`list[int]`, *optional*, defaults to `[8, 1]`):
            `omni_sparsity`: pruning block `[rows, cols]` over a weight of shape (out_features, in_features): `[8,
            1]` is QNNPACK/fbgemm's 8x1 pattern (8 consecutive output channels of one input channel); `[1, 8]` runs
            along the input instead.
        omni_sparsity_pooling (`str`, *optional*, defaults to `"matrix"`):
            `omni_sparsity`: where blocks compete: `"matrix"` (each prunable matrix of a layer keeps its own
            `round((1 - s) * blocks)`, so no matrix can be emptied) or `"layer"` (all of a layer's blocks ranked
            together, `round((1 - s) * blocks)` kept per layer).
        omni_sparsity_prune_interval (`int`, *optional*, defaults to 256):
            `omni_sparsity`: optimizer steps between pruning steps; at each one the masks are recomputed from the
            Adam importance and the largest sparsity the trainer may sample is raised (paper: 256).
        omni_sparsity_schedule_start (`int`, *optional*, defaults to 0):
            `omni_sparsity`: step `t0` where the cubic schedule of the largest trainable sparsity starts.
        omni_sparsity_schedule_steps (`int`, *optional*, defaults to 2560):
            `omni_sparsity`: length `n * interval` of the cubic ramp from `omni_sparsity_initial_max_sparsity` to the
            highest level; about half to two thirds of the training steps.
        omni_sparsity_initial_max_sparsity (`float`, *optional*, defaults to 0.0):
            `omni_sparsity`: largest trainable sparsity at the start of the schedule (`s_i`; 0 = dense warm-up).
        omni_sparsity_search_excludes_dense (`bool`, *optional*, defaults to `False`):
            `omni_sparsity`: search subnets among the nonzero sparsity levels only, as the paper does (the dense
            level is then trained but never selected; on in the `omni_sparsity` recipe).
    """

    omni_sparsity_levels: list[float] | None = None
    omni_sparsity_block_shape: list[int] | None = None
    omni_sparsity_pooling: str = "matrix"
    omni_sparsity_prune_interval: int = 256
    omni_sparsity_schedule_start: int = 0
    omni_sparsity_schedule_steps: int = 2560
    omni_sparsity_initial_max_sparsity: float = 0.0
    omni_sparsity_search_excludes_dense: bool = False

    def __post_init__(self, **kwargs):
        check_fields(self, OMNI_SPARSITY_FIELD_RULES)
        if self.omni_sparsity_levels is None:
            self.omni_sparsity_levels = [0.0, 0.5, 0.6, 0.7, 0.8]
        # Rounded so that levels read back from JSON (or typed as 0.6000000001) compare equal to spec entries.
        self.omni_sparsity_levels = sorted(round(float(s), 6) for s in self.omni_sparsity_levels)
        if self.omni_sparsity_block_shape is None:
            self.omni_sparsity_block_shape = [8, 1]
        self.omni_sparsity_block_shape = [int(b) for b in self.omni_sparsity_block_shape]
        super().__post_init__(**kwargs)
        self._validate_omni_sparsity_fields()

    def _validate_omni_sparsity_fields(self) -> None:
        levels = self.omni_sparsity_levels
        if not levels or not all(0 <= s < 1 for s in levels) or len(set(levels)) != len(levels):
            raise ValueError(f"omni_sparsity_levels must be distinct sparsities in [0, 1), got {levels}.")
        block = self.omni_sparsity_block_shape
        if len(block) != 2 or min(block) < 1:
            raise ValueError(f"omni_sparsity_block_shape must be [rows, cols] of positive ints, got {block}.")
        if self.omni_sparsity_pooling not in OMNI_SPARSITY_POOLINGS:
            raise ValueError(
                f"omni_sparsity_pooling must be one of {list(OMNI_SPARSITY_POOLINGS)}, got {self.omni_sparsity_pooling!r}."
            )
        if self.omni_sparsity_prune_interval < 1:
            raise ValueError(f"omni_sparsity_prune_interval must be >= 1, got {self.omni_sparsity_prune_interval}.")
        if self.omni_sparsity_schedule_start < 0 or self.omni_sparsity_schedule_steps < 0:
            raise ValueError(
                "omni_sparsity_schedule_start and omni_sparsity_schedule_steps must be >= 0, got "
                f"{self.omni_sparsity_schedule_start} and {self.omni_sparsity_schedule_steps}."
            )
        if not 0 <= self.omni_sparsity_initial_max_sparsity <= max(levels):
            raise ValueError(
                f"omni_sparsity_initial_max_sparsity must be in [0, {max(levels)}] (the highest level), got "
                f"{self.omni_sparsity_initial_max_sparsity}."
            )


@register_spec("omni_sparsity")
@dataclasses.dataclass(frozen=True)
class OmniSparsitySpec(SubnetSpec):
    """An Omni-sparsity subnet: layer ``i`` runs with sparsity ``sparsity[i]`` (every layer is kept)."""

    sparsity: tuple[float, ...]

    def __post_init__(self):
        # Rounded like the config's levels, so a spec read back from JSON compares equal to the space's levels.
        object.__setattr__(self, "sparsity", tuple(round(float(s), 6) for s in self.sparsity))

    @property
    def num_layers(self) -> int:
        return len(self.sparsity)


class OmniSparsitySpace(SubnetSpace):
    """Every per-layer choice of the levels up to ``max_sparsity`` (``None``: all levels)."""

    def __init__(self, levels, num_layers: int, max_sparsity: float | None = None):
        levels = tuple(sorted(levels))
        cap = levels[-1] if max_sparsity is None else max_sparsity
        # The lowest level is always open: the largest subnet trains from the first step.
        self.levels = tuple(s for s in levels if s <= cap + _LEVEL_TOLERANCE) or levels[:1]
        self.num_layers = num_layers
        # [paper] random subnets use sparse layers only (the dense level trains the largest subnet), unless no
        # sparse level is open yet.
        self.sample_levels = tuple(s for s in self.levels if s > 0) or self.levels

    @property
    def max_sparsity(self) -> float:
        return self.levels[-1]

    def largest(self) -> OmniSparsitySpec:
        return OmniSparsitySpec((self.levels[0],) * self.num_layers)

    def smallest(self) -> OmniSparsitySpec:
        return OmniSparsitySpec((self.levels[-1],) * self.num_layers)

    def sample(self, generator: torch.Generator | None = None) -> OmniSparsitySpec:
        levels = self.sample_levels
        return OmniSparsitySpec(tuple(levels[randint(len(levels), generator)] for _ in range(self.num_layers)))

    # Genome: gene i is the index of layer i's level.
    def gene_choices(self) -> list[int]:
        return [len(self.levels)] * self.num_layers

    def to_genes(self, spec: OmniSparsitySpec) -> tuple[int, ...]:
        return tuple(self.levels.index(s) for s in spec.sparsity)

    def from_genes(self, genes: tuple[int, ...]) -> OmniSparsitySpec:
        return OmniSparsitySpec(tuple(self.levels[g] for g in genes))

    def neighbors_up(self, spec: OmniSparsitySpec) -> list[OmniSparsitySpec]:
        """Subnets one step bigger: one layer one level less sparse."""
        out = []
        for i, s in enumerate(spec.sparsity):
            index = self.levels.index(s)
            if index > 0:
                denser = list(spec.sparsity)
                denser[i] = self.levels[index - 1]
                out.append(OmniSparsitySpec(tuple(denser)))
        return out

    def __contains__(self, spec: object) -> bool:
        return (
            isinstance(spec, OmniSparsitySpec)
            and spec.num_layers == self.num_layers
            and all(s in self.levels for s in spec.sparsity)
        )

    def __len__(self) -> int:
        return len(self.levels) ** self.num_layers

    def __iter__(self) -> Iterator[OmniSparsitySpec]:
        for sparsity in itertools.product(self.levels, repeat=self.num_layers):
            yield OmniSparsitySpec(sparsity)

    def __repr__(self) -> str:
        return f"OmniSparsitySpace(num_layers={self.num_layers}, levels={self.levels})"


# ------------------------------------------------------------------------------------------------- mask method
@dataclasses.dataclass(frozen=True)
class PrunableMatrix:
    """Where one prunable weight of a layer sits in that layer's rank buffer."""

    name: str  # parameter name inside the block
    shape: tuple[int, int]
    grid: tuple[int, int]  # block rows, block columns
    offset: int  # first entry in the layer's rank buffer

    @property
    def num_blocks(self) -> int:
        return self.grid[0] * self.grid[1]


def prunable_weight_shapes(config, layer: int) -> dict[str, tuple[int, int]]:
    """Shapes of the prunable weights physical block ``layer`` has (units it lacks have none)."""
    d = config.hidden_size
    inner = config.heads_of_layer(layer) * (d // config.num_attention_heads)
    shapes = {}
    for unit, width in zip(("ffn1", "ffn2"), config.ffn_dims_of_layer(layer)):
        if width:
            shapes[f"{unit}.intermediate_dense.weight"] = (width, d)
            shapes[f"{unit}.output_dense.weight"] = (d, width)
    if inner:
        for proj in ("q_proj", "k_proj", "v_proj"):
            shapes[f"self_attn.{proj}.weight"] = (inner, d)
        shapes["self_attn.out_proj.weight"] = (d, inner)
    if config.has_conv_module(layer):
        shapes["conv_module.pointwise_in.weight"] = (2 * d, d)
        shapes["conv_module.pointwise_out.weight"] = (d, d)
    return {name: shapes[name] for name in PRUNABLE_WEIGHTS if name in shapes}


class OmniSparsityMask(MaskMethod):
    mask_type = "omni_sparsity"
    spec_class = OmniSparsitySpec

    def __init__(self, config, plan_costs=None):
        super().__init__(config, plan_costs)
        self.levels = tuple(config.omni_sparsity_levels)
        self.block_shape = tuple(config.omni_sparsity_block_shape)
        self.layouts: list[list[PrunableMatrix]] = []
        for layer in range(config.num_hidden_layers):
            layout, offset = [], 0
            for name, shape in prunable_weight_shapes(config, layer).items():
                matrix = PrunableMatrix(name, shape, block_grid(shape, self.block_shape), offset)
                layout.append(matrix)
                offset += matrix.num_blocks
            self.layouts.append(layout)
            self.register_buffer(f"block_ranks_{layer}", torch.zeros(offset, dtype=torch.int32))
        # Optimizer steps done when the rankings were last computed; -1 = never (computed from the weights'
        # magnitudes at first use, so a fresh model's masks follow its initialisation, not the constructor's).
        self.register_buffer("masks_step", torch.tensor(-1, dtype=torch.long))
        # Optimizer steps done, as of the last on_optimizer_step: drives the schedule and survives resume.
        self.register_buffer("schedule_step", torch.tensor(0, dtype=torch.long))
        # Plain attributes, not submodules (the blocks belong to the model; the cache is derived state).
        self.__dict__["_blocks"] = None
        self.__dict__["_mask_cache"] = {}
        self.__dict__["_warned_no_second_moment"] = False

    def bind_blocks(self, blocks: nn.ModuleList) -> None:
        self.__dict__["_blocks"] = blocks

    # ------------------------------------------------------------------------------------------------ spaces
    @property
    def max_sparsity(self) -> float:
        """The largest sparsity the trainer may sample now (cubic schedule at ``schedule_step``)."""
        config = self.config
        return cubic_max_sparsity(
            int(self.schedule_step),
            initial=config.omni_sparsity_initial_max_sparsity,
            final=self.levels[-1],
            start=config.omni_sparsity_schedule_start,
            length=config.omni_sparsity_schedule_steps,
            interval=config.omni_sparsity_prune_interval,
        )

    def space(self) -> OmniSparsitySpace:
        return OmniSparsitySpace(self.levels, self.config.num_hidden_layers)

    def search_space(self) -> OmniSparsitySpace:
        # [paper] "Zero sparsity is not used for sampling random networks or the evolutionary search but only for
        # training the dense network": with `omni_sparsity_search_excludes_dense`, layers are searched among the
        # nonzero levels only.
        if not self.config.omni_sparsity_search_excludes_dense:
            return self.space()
        return OmniSparsitySpace([s for s in self.levels if s > 0] or self.levels, self.config.num_hidden_layers)

    def training_space(self) -> OmniSparsitySpace:
        return OmniSparsitySpace(self.levels, self.config.num_hidden_layers, self.max_sparsity)

    # ------------------------------------------------------------------------------------------------- plans
    def block_plans(self, spec: OmniSparsitySpec) -> list[BlockPlan]:
        self.space().validate(spec)
        return [
            BlockPlan(
                layer_index=layer,
                weight_masks=self.weight_masks(layer, s) if s > 0 else None,
                dropout_scale=1.0 - s,
                dropout_scaled_units=ALL_UNITS,
            )
            for layer, s in enumerate(spec.sparsity)
        ]

    def weight_masks(self, layer: int, sparsity: float) -> dict[str, torch.Tensor]:
        """Boolean masks (the weights' full shapes) of layer ``layer``'s prunable weights at ``sparsity``."""
        if int(self.masks_step) < 0:
            self.update_masks()
        ranks = getattr(self, f"block_ranks_{layer}")
        # A cached mask is valid while its rank buffer is the same tensor, unmodified (load_state_dict and
        # update_masks write in place, which bumps the version; .to(device) makes a new tensor).
        key = (ranks.data_ptr(), ranks._version, ranks.device)
        cached = self._mask_cache.get((layer, sparsity))
        if cached is not None and cached[0] == key:
            return cached[1]
        layout = self.layouts[layer]
        per_matrix = self.config.omni_sparsity_pooling == "matrix"
        layer_keep = kept_block_count(sum(m.num_blocks for m in layout), sparsity)
        masks = {}
        # Ordinary tensors even when first asked for in inference mode: training multiplies by them later.
        with torch.inference_mode(False), torch.no_grad():
            for m in layout:
                block_ranks = ranks[m.offset : m.offset + m.num_blocks].view(m.grid)
                keep = kept_block_count(m.num_blocks, sparsity) if per_matrix else layer_keep
                masks[m.name] = expand_block_mask(block_ranks < keep, m.shape, self.block_shape)
        self._mask_cache[(layer, sparsity)] = (key, masks)
        return masks

    # ------------------------------------------------------------------------------------------------ pruning
    @torch.no_grad()
    def update_masks(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Recompute every layer's block ranking from the importance: Adam-pruning ``|w| * sqrt(exp_avg_sq)`` with
        the optimizer's second moments, the magnitude ``|w|`` without an optimizer (or one that keeps none)."""
        blocks = self._blocks
        if blocks is None:
            raise RuntimeError(
                "This OmniSparsityMask is not attached to a model's blocks (bind_blocks was never called), so it "
                "cannot compute masks from the weights. Use it through SupernetConformerModel / ForCTC."
            )
        weights = {}
        for layer, layout in enumerate(self.layouts):
            for m in layout:
                weight = blocks[layer].get_parameter(m.name)
                if tuple(weight.shape) != m.shape:
                    raise ValueError(
                        f"Layer {layer}'s {m.name} has shape {tuple(weight.shape)} but the config says {m.shape}; "
                        "the mask and the model were built from different configs."
                    )
                weights[(layer, m.name)] = weight
        second_moments = self._second_moments(weights, optimizer)
        with torch.inference_mode(False):  # buffers must stay ordinary tensors even if first used in inference mode
            for layer, layout in enumerate(self.layouts):
                importances = [
                    adam_importance(weights[(layer, m.name)], second_moments.get((layer, m.name))) for m in layout
                ]
                scores = [block_scores(imp, self.block_shape).flatten() for imp in importances]
                if not scores:
                    continue
                if self.config.omni_sparsity_pooling == "matrix":
                    ranks = torch.cat([descending_ranks(s) for s in scores])
                else:
                    ranks = descending_ranks(torch.cat(scores))
                getattr(self, f"block_ranks_{layer}").copy_(ranks)
            self.masks_step.fill_(int(self.schedule_step))
        self._mask_cache.clear()

    def _second_moments(self, weights: dict, optimizer) -> dict:
        """Adam's ``exp_avg_sq`` of every prunable weight, or ``{}`` (magnitude importance) when the optimizer
        does not keep one for each of them: mixing the two criteria would rank blocks on different scales."""
        if optimizer is None:
            return {}
        state = optimizer.state
        found = {}
        for key, weight in weights.items():
            entry = state.get(weight)
            moment = entry.get("exp_avg_sq") if isinstance(entry, dict) else None
            if not torch.is_tensor(moment) or moment.shape != weight.shape:
                if not self._warned_no_second_moment:
                    logger.warning(
                        "%s keeps no Adam second moment (exp_avg_sq) of the shape of %s; Omni-sparsity ranks blocks "
                        "by weight magnitude |w| instead of Adam-pruning importance |w|*sqrt(v). Use AdamW or "
                        "scaled_adam for the paper's criterion.",
                        type(getattr(optimizer, "optimizer", optimizer)).__name__,
                        key[1],
                    )
                    self.__dict__["_warned_no_second_moment"] = True
                return {}
            found[key] = moment
        return found

    def on_optimizer_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Count the step; at every pruning step (each ``omni_sparsity_prune_interval`` steps) recompute the
        masks from the optimizer's importance, which also moves the schedule's ``s_max`` on."""
        done = step + 1  # ``step`` is the index of the step just taken
        self.schedule_step.fill_(done)
        if done % self.config.omni_sparsity_prune_interval == 0:
            self.update_masks(optimizer)

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, block_shape={self.block_shape}, pooling={self.config.omni_sparsity_pooling!r}, "
            f"schedule_step={int(self.schedule_step)}, max_sparsity={self.max_sparsity:.4g}"
        )
