"""``mask_type="orthosoftmax"`` — OrthoSoftmax (Xu, Beck, Yang, Schlüter, 2025, "Efficient Supernet Training with
Orthogonal Softmax for Scalable ASR Model Compression"): learned, nested, orthogonal unit masks.

Each Conformer block is cut into *units* — component-wise: feed-forward module 1 in chunks of hidden channels, each
self-attention head, the convolution module, feed-forward module 2 in chunks; layer-wise: the four modules whole. A
learnable square score matrix ``W`` (one row per rank, one column per unit) gives ``S = softmax(W / τ)`` row by row;
row ``i`` says which unit holds rank ``i``. Budget ``p`` (a fraction of the model's FLOPs or parameters) keeps the
first ``k(p)`` ranks, so the masks of the budgets are prefixes of one ranking and nest by construction.

Training has two stages, switched by the optimizer step (``orthosoftmax_stage1_steps``):

1. *soft*: each step trains the full model and one random smaller budget whose units are scaled by the soft masks
   ``m_j = Σ_{i≤k(p)} S_ij`` (gradients reach ``W``); its CTC loss is reweighted ``(1 − e^{−CTC})·CTC``; an
   orthogonality loss with a linearly ramped weight pushes the rows of ``S`` to disjoint one-hots; ``τ`` anneals.
2. *hard*: the ranking is frozen (a buffer, so checkpoints and ``from_pretrained`` reproduce it, and a frozen
   supernet trained further by a new run stays frozen) and the trainer's sandwich trains the budgets with binary
   masks; the full model gets stochastic depth on the units outside the smallest budget.

A budget's *subnet* (``OrthoSoftmaxSpec(budget)``) always runs its binary mask, in either stage and in train or eval
mode, so costs, evaluation, search and extraction see one deterministic architecture per budget. Before the freeze
the binary mask comes from the current scores (it changes while ``W`` trains); after it, from the frozen ranking.
The soft-mask and stochastic-depth networks exist only during training, as :class:`OrthoSoftmaxTrainingSpec`\\ s the
mask hands the trainer through :meth:`OrthoSoftmaxMask.training_subnets`; they are not members of the space.

Choices not fixed by the paper or the authors' code (see also ``SupernetConformerConfig``):

- [choice] Binary masks take the rows in order and give each the highest-scoring unit *not taken by an earlier row*
  (the authors' ``argmax_j S_ij`` whenever the rows' argmaxes are distinct, which the orthogonality loss drives them
  to). The result is a ranking of all units, so every budget keeps exactly ``k`` units, budget 1.0 is the whole
  model, and ``k(p)`` for a binary mask is chosen on its exact cost (the model family's, handed in as ``plan_costs``) rather than on ``S``.
- [choice] Unit costs ``n_j`` are marginal costs from ``plan_costs`` (whole model minus the model without unit ``j``),
  with the CTC head counted; ``C_rest = C_tot − Σ n_j``, so a soft mask of all ones costs exactly ``C_tot``.
- [choice] The orthogonality loss covers the first ``k`` rows of the largest budget below 1.0 (every nested mask
  lives in them), is divided by ``k`` (a mean per row: its scale does not grow with the number of units, and at
  low temperature its gradient would otherwise dominate the trainer's global gradient-norm clipping) and ramps
  linearly from 0 to its weight over stage 1.
- [choice] With no explicit decay, ``τ`` reaches its floor exactly at the stage switch (``γ = τ_min^{1/stage1_steps}``):
  the paper's ``γ = 0.999992`` needs ~575k steps to get there, far more than a short run has.
- [choice] Stochastic depth skips a unit outright, as a budget does (no rescaling of the survivors), drawn from the
  trainer's subnet generator so resumed runs draw the same units.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..config_validation import STEPS, Rule, check_fields
from ..subnets import SubnetSpace, SubnetSpec, randint, register_spec
from .base import BlockPlan, MaskMethod

GRANULARITIES = ("component", "layer")
BUDGET_COSTS = ("flops", "params")
# Standard deviation of the score matrix's initial values: breaks the symmetry of the rows (an all-equal W would
# give every row the same gradient forever) while leaving S close to uniform at τ = 1. [choice]
SCORE_INIT_STD = 1e-2
UNIT_KINDS = ("ffn1", "self_attn", "conv_module", "ffn2")  # the execution order inside a block


# The paper's FLOPs-aware budgets (fractions of the whole model's FLOPs).
ORTHOSOFTMAX_PAPER_BUDGETS = (0.337, 0.457, 0.578, 0.759, 1.0)


# What each OrthoSoftmax field may hold (types; values and ranges are checked once the defaults are filled in).
ORTHOSOFTMAX_FIELD_RULES = {
    "orthosoftmax_granularity": Rule(str),
    "orthosoftmax_ffn_chunks": Rule(int),
    "orthosoftmax_budgets": Rule(list, items=float, optional=True),
    "orthosoftmax_budget_cost": Rule(str),
    "orthosoftmax_stage1_steps": STEPS,
    "orthosoftmax_temperature_decay": Rule(float, optional=True),
    "orthosoftmax_min_temperature": Rule(float),
    "orthosoftmax_orth_weight": Rule(float),
    "orthosoftmax_stochastic_depth": Rule(float),
}


@dataclasses.dataclass(kw_only=True, repr=False)
class OrthoSoftmaxConfigMixin:
    r"""The config fields of ``mask_type="orthosoftmax"`` (a config of a family this mask type can carve lists this class among its bases; transformers
    collects the fields into the config's dataclass).

    Args:
        orthosoftmax_granularity (`str`, *optional*, defaults to `"component"`):
            `orthosoftmax`: the maskable units of a block. `"component"`: each feed-forward module in
            `orthosoftmax_ffn_chunks` chunks of hidden channels, each attention head, the conv module (15 units per
            block with 4 heads); `"layer"`: the four modules whole (FF1, MHSA, Conv, FF2).
        orthosoftmax_ffn_chunks (`int`, *optional*, defaults to 4):
            `orthosoftmax`, component-wise: chunks (contiguous, near-equal) each feed-forward module is cut into.
        orthosoftmax_budgets (`list[float]`, *optional*, defaults to `[0.337, 0.457, 0.578, 0.759, 1.0]`):
            `orthosoftmax`: the subnets, as fractions of the whole model's cost (`orthosoftmax_budget_cost`); the
            paper's FLOPs-aware budgets by default. 1.0 (the whole model, the sandwich's largest) is added if absent;
            at least one budget must be below 1.
        orthosoftmax_budget_cost (`str`, *optional*, defaults to `"flops"`):
            `orthosoftmax`: what budgets are fractions of, `"flops"` (FLOPs-aware, the paper's best) or `"params"`.
        orthosoftmax_stage1_steps (`int`, *optional*, defaults to 1000):
            `orthosoftmax`: optimizer steps of stage 1 (soft masks, orthogonality loss); the binary masks are frozen
            after this many steps and stage 2 (sandwich with binary masks) runs to the end. The paper spends about
            60% of training in stage 1: set it to ~0.6 x `max_steps`. 0 freezes the initial masks at once.
        orthosoftmax_temperature_decay (`float`, *optional*):
            `orthosoftmax`: γ of the softmax temperature `τ_t = max(γ^t, orthosoftmax_min_temperature)` (the
            authors use 0.999992). `None`: the γ that reaches the floor exactly at the end of stage 1.
        orthosoftmax_min_temperature (`float`, *optional*, defaults to 0.01):
            `orthosoftmax`: the floor of the temperature.
        orthosoftmax_orth_weight (`float`, *optional*, defaults to 1.0):
            `orthosoftmax`: final weight of the orthogonality loss, ramped linearly from 0 over stage 1.
        orthosoftmax_stochastic_depth (`float`, *optional*, defaults to 0.1):
            `orthosoftmax`, stage 2: probability that the full model skips each unit outside the smallest budget's
            mask on a training step (0 disables it).
    """

    orthosoftmax_granularity: str = "component"
    orthosoftmax_ffn_chunks: int = 4
    orthosoftmax_budgets: list[float] | None = None
    orthosoftmax_budget_cost: str = "flops"
    orthosoftmax_stage1_steps: int = 1000
    orthosoftmax_temperature_decay: float | None = None
    orthosoftmax_min_temperature: float = 0.01
    orthosoftmax_orth_weight: float = 1.0
    orthosoftmax_stochastic_depth: float = 0.1

    def __post_init__(self, **kwargs):
        check_fields(self, ORTHOSOFTMAX_FIELD_RULES)
        if self.orthosoftmax_budgets is None:
            self.orthosoftmax_budgets = list(ORTHOSOFTMAX_PAPER_BUDGETS)
        self.orthosoftmax_budgets = sorted({float(b) for b in self.orthosoftmax_budgets} | {1.0})
        super().__post_init__(**kwargs)
        self._validate_orthosoftmax_fields()

    def _validate_orthosoftmax_fields(self) -> None:
        if self.orthosoftmax_granularity not in ("component", "layer"):
            raise ValueError(
                f"orthosoftmax_granularity must be 'component' or 'layer', got {self.orthosoftmax_granularity!r}."
            )
        if self.orthosoftmax_budget_cost not in ("flops", "params"):
            raise ValueError(
                f"orthosoftmax_budget_cost must be 'flops' or 'params', got {self.orthosoftmax_budget_cost!r}."
            )
        if self.orthosoftmax_ffn_chunks < 1:
            raise ValueError(f"orthosoftmax_ffn_chunks must be >= 1, got {self.orthosoftmax_ffn_chunks}.")
        budgets = self.orthosoftmax_budgets
        if not all(0 < b <= 1 for b in budgets) or len(budgets) < 2:
            raise ValueError(
                f"orthosoftmax_budgets must be fractions in (0, 1] with at least one below 1 (1.0, the whole "
                f"model, is implied), got {budgets}."
            )
        if self.orthosoftmax_stage1_steps < 0:
            raise ValueError(f"orthosoftmax_stage1_steps must be >= 0, got {self.orthosoftmax_stage1_steps}.")
        decay = self.orthosoftmax_temperature_decay
        if decay is not None and not 0 < decay <= 1:
            raise ValueError(f"orthosoftmax_temperature_decay must be in (0, 1] or None, got {decay}.")
        if not 0 < self.orthosoftmax_min_temperature <= 1:
            raise ValueError(
                f"orthosoftmax_min_temperature must be in (0, 1], got {self.orthosoftmax_min_temperature}."
            )
        if self.orthosoftmax_orth_weight < 0:
            raise ValueError(f"orthosoftmax_orth_weight must be >= 0, got {self.orthosoftmax_orth_weight}.")
        if not 0 <= self.orthosoftmax_stochastic_depth < 1:
            raise ValueError(
                f"orthosoftmax_stochastic_depth must be in [0, 1), got {self.orthosoftmax_stochastic_depth}."
            )


@register_spec("orthosoftmax")
@dataclasses.dataclass(frozen=True)
class OrthoSoftmaxSpec(SubnetSpec):
    """An OrthoSoftmax subnet: the binary mask of one configured budget (a fraction of FLOPs or parameters)."""

    budget: float

    def __post_init__(self):
        object.__setattr__(self, "budget", float(self.budget))
        if not 0 < self.budget <= 1:
            raise ValueError(f"An OrthoSoftmax budget is a fraction in (0, 1], got {self.budget}.")


@dataclasses.dataclass(frozen=True)
class OrthoSoftmaxTrainingSpec(OrthoSoftmaxSpec):
    """A network that exists only while training (never a member of the space, never extracted): the budget run
    with its soft masks (``soft=True``, stage 1) or its binary mask minus ``dropped_units`` (stochastic depth)."""

    soft: bool = False
    dropped_units: tuple[int, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "dropped_units", tuple(sorted(int(u) for u in self.dropped_units)))


@dataclasses.dataclass(frozen=True)
class Unit:
    """One maskable unit: ``kind`` of physical block ``layer``; ``members`` are the hidden channels (``ffn1`` /
    ``ffn2``) or heads (``self_attn``) it gates, empty for the convolution module."""

    layer: int
    kind: str
    index: int
    members: tuple[int, ...]
    whole_module: bool

    @property
    def name(self) -> str:
        if self.kind == "conv_module":
            return "conv"
        if self.whole_module:
            return "mhsa" if self.kind == "self_attn" else self.kind
        return f"head{self.index}" if self.kind == "self_attn" else f"{self.kind}.{self.index}"


def contiguous_chunks(width: int, chunks: int) -> list[tuple[int, ...]]:
    """``range(width)`` cut into ``chunks`` contiguous near-equal parts (the first ``width % chunks`` one longer);
    a width below the chunk count gives fewer (non-empty) chunks."""
    size, extra = divmod(width, chunks)
    bounds = [0]
    for i in range(chunks):
        bounds.append(bounds[-1] + size + (1 if i < extra else 0))
    return [tuple(range(a, b)) for a, b in zip(bounds, bounds[1:]) if b > a]


def build_units(config) -> list[Unit]:
    """The units of a supernet, layer by layer in execution order (FFN1, MHSA, conv, FFN2). Modules a layer does
    not have (width 0, no heads, no conv module) contribute no unit."""
    granularity = config.orthosoftmax_granularity
    units = []
    for layer in range(config.num_hidden_layers):
        ffn_dims = config.ffn_dims_of_layer(layer)
        for kind in UNIT_KINDS:
            if kind in ("ffn1", "ffn2"):
                width = ffn_dims[0 if kind == "ffn1" else 1]
                if not width:
                    continue
                chunks = 1 if granularity == "layer" else config.orthosoftmax_ffn_chunks
                for i, group in enumerate(contiguous_chunks(width, chunks)):
                    units.append(Unit(layer, kind, i, group, granularity == "layer"))
            elif kind == "self_attn":
                heads = config.heads_of_layer(layer)
                if not heads:
                    continue
                if granularity == "layer":
                    units.append(Unit(layer, kind, 0, tuple(range(heads)), True))
                else:
                    units.extend(Unit(layer, kind, h, (h,), False) for h in range(heads))
            elif config.has_conv_module(layer):
                units.append(Unit(layer, kind, 0, (), True))
    return units


def orthogonality_loss(scores: torch.Tensor) -> torch.Tensor:
    """``Σ_{i<j} G_ij² + Σ_i (G_ii − 1)²`` with ``G = S Sᵀ`` over the rows of ``scores``: exactly 0 when the rows
    are one-hots at distinct positions (a partial permutation matrix), positive otherwise."""
    gram = scores @ scores.T
    off_diagonal = torch.triu(gram, diagonal=1)
    return off_diagonal.pow(2).sum() + (torch.diagonal(gram) - 1).pow(2).sum()


def greedy_ranking(scores: torch.Tensor) -> list[int]:
    """Row ``i`` takes its highest-scoring unit that no earlier row took: a permutation of the units (``argmax`` of
    every row when those are distinct). Ties go to the lower unit index."""
    taken, ranking = set(), []
    for row in scores.detach().float().cpu().argsort(dim=1, descending=True, stable=True).tolist():
        unit = next(j for j in row if j not in taken)
        taken.add(unit)
        ranking.append(unit)
    return ranking


def nearest_prefix(cost_of_prefix, size: int, target: float) -> int:
    """``argmin_k |cost_of_prefix(k) − target|`` over ``k = 0..size`` for a nondecreasing ``cost_of_prefix`` (a
    binary search; ties go to the shorter prefix, so the chosen ``k`` never decreases as ``target`` grows)."""
    low, high = 0, size
    while low < high:  # the shortest prefix costing at least the target
        middle = (low + high) // 2
        if cost_of_prefix(middle) >= target:
            high = middle
        else:
            low = middle + 1
    if low > 0 and abs(cost_of_prefix(low - 1) - target) <= abs(cost_of_prefix(low) - target):
        return low - 1
    return low


class OrthoSoftmaxSpace(SubnetSpace):
    """The configured budgets, one subnet each; the largest is budget 1.0, the whole model."""

    def __init__(self, budgets):
        self.budgets = tuple(sorted(float(b) for b in budgets))

    def largest(self) -> OrthoSoftmaxSpec:
        return OrthoSoftmaxSpec(self.budgets[-1])

    def smallest(self) -> OrthoSoftmaxSpec:
        return OrthoSoftmaxSpec(self.budgets[0])

    def sample(self, generator: torch.Generator | None = None) -> OrthoSoftmaxSpec:
        """A budget strictly between the smallest and the largest when there is one (the sandwich already trains
        those two), else any budget."""
        pool = self.budgets[1:-1] or self.budgets
        return OrthoSoftmaxSpec(pool[randint(len(pool), generator)])

    def __contains__(self, spec: object) -> bool:
        return type(spec) is OrthoSoftmaxSpec and spec.budget in self.budgets

    def __len__(self) -> int:
        return len(self.budgets)

    def __iter__(self) -> Iterator[OrthoSoftmaxSpec]:
        return (OrthoSoftmaxSpec(b) for b in self.budgets)

    # Genome: one gene, the index of the budget.
    def gene_choices(self) -> list[int]:
        return [len(self.budgets)]

    def to_genes(self, spec: OrthoSoftmaxSpec) -> tuple[int, ...]:
        return (self.budgets.index(spec.budget),)

    def from_genes(self, genes: tuple[int, ...]) -> OrthoSoftmaxSpec:
        return OrthoSoftmaxSpec(self.budgets[genes[0]])

    def neighbors_up(self, spec: OrthoSoftmaxSpec) -> list[OrthoSoftmaxSpec]:
        i = self.budgets.index(spec.budget)
        return [OrthoSoftmaxSpec(self.budgets[i + 1])] if i + 1 < len(self.budgets) else []

    def __repr__(self) -> str:
        return f"OrthoSoftmaxSpace(budgets={list(self.budgets)})"


class OrthoSoftmaxMask(MaskMethod):
    """Learned nested masks over the units of every block (see the module docstring).

    State (all in the checkpoint): ``scores`` (the score matrix ``W``, a parameter), ``trained_steps`` (optimizer
    steps seen: drives ``τ``), ``frozen`` (stage 2 reached) and ``frozen_ranking`` (the unit order the binary masks
    were frozen with; meaningful once ``frozen``).
    """

    mask_type = "orthosoftmax"
    spec_class = OrthoSoftmaxSpec

    def __init__(self, config, plan_costs=None):
        if plan_costs is None:
            raise ValueError(
                "mask_type='orthosoftmax' carves its budgets by cost: build it with the model family's cost function "
                "(build_mask(config, plan_costs=...), as the supernet models do)."
            )
        super().__init__(config, plan_costs)
        self.units = build_units(config)
        if not self.units:
            raise ValueError("orthosoftmax found no maskable unit: every layer lacks feed-forward, attention and conv.")
        count = len(self.units)
        self.scores = nn.Parameter(torch.randn(count, count) * SCORE_INIT_STD)
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("frozen", torch.zeros((), dtype=torch.bool))
        self.register_buffer("frozen_ranking", torch.arange(count))
        # Per layer and module kind, the unit of each member channel/head (soft masks gather through these). Plain
        # CPU tensors, not buffers: structure derived from the config (and from_pretrained builds on "meta").
        self._member_units: list[dict[str, torch.Tensor]] = [{} for _ in range(config.num_hidden_layers)]
        for layer in range(config.num_hidden_layers):
            for kind in UNIT_KINDS:
                ids = [j for j, u in enumerate(self.units) if u.layer == layer and u.kind == kind]
                if kind == "conv_module" and ids:
                    self._member_units[layer][kind] = torch.tensor(ids[0], device="cpu")
                elif ids:
                    owner = {member: j for j in ids for member in self.units[j].members}
                    self._member_units[layer][kind] = torch.tensor([owner[c] for c in sorted(owner)], device="cpu")
        self._unit_cost_cache: tuple[torch.Tensor, float, float] | None = None
        self._kept_cache: dict[tuple, tuple[int, ...]] = {}

    # ---------------------------------------------------------------- subnets
    def space(self) -> OrthoSoftmaxSpace:
        return OrthoSoftmaxSpace(self.config.orthosoftmax_budgets)

    def block_plans(self, spec: OrthoSoftmaxSpec) -> list[BlockPlan]:
        self._validate(spec)
        if isinstance(spec, OrthoSoftmaxTrainingSpec) and spec.soft:
            if spec.budget >= 1:
                return self.full_plans()  # the whole model trains unmasked (the paper's CTC_full)
            return self._soft_plans(self.soft_masks(spec.budget))
        kept = set(self.kept_units(spec.budget))
        if isinstance(spec, OrthoSoftmaxTrainingSpec):
            kept -= set(spec.dropped_units)
        return self.plans_for_units(kept)

    def _validate(self, spec) -> None:
        if isinstance(spec, OrthoSoftmaxTrainingSpec):
            if spec.budget not in self.space().budgets:
                raise ValueError(f"{spec} trains budget {spec.budget}, which is not one of {self.space().budgets}.")
            if spec.dropped_units and not 0 <= spec.dropped_units[0] <= spec.dropped_units[-1] < len(self.units):
                raise ValueError(f"{spec} drops units outside 0..{len(self.units) - 1}.")
        else:
            self.space().validate(spec)

    # ---------------------------------------------------------------- binary masks
    def ranking(self) -> list[int]:
        """Every unit, most important first: the frozen ranking in stage 2, else the one the current scores give."""
        if bool(self.frozen):
            return self.frozen_ranking.tolist()
        return greedy_ranking(self.scores)

    def kept_units(self, budget: float) -> tuple[int, ...]:
        """Indices (into ``self.units``) of the units the binary mask of ``budget`` keeps, in rank order: the
        shortest ranking prefix whose exact cost is nearest ``budget`` times the whole model's."""
        ranking = tuple(self.ranking())
        key = (ranking, float(budget))
        if key not in self._kept_cache:
            if len(self._kept_cache) > 256:
                self._kept_cache.clear()
            _, _, total = self.unit_costs()
            k = len(ranking) if budget >= 1 else nearest_prefix(
                lambda n: self.cost_of_units(ranking[:n]), len(ranking), budget * total
            )
            self._kept_cache[key] = ranking[:k]
        return self._kept_cache[key]

    def plans_for_units(self, kept: set[int]) -> list[BlockPlan]:
        """Plans running only the units in ``kept`` (a block with none left runs only its final LayerNorm)."""
        chosen: list[dict[str, list[int]]] = [{kind: [] for kind in UNIT_KINDS} for _ in self._member_units]
        for j in kept:
            unit = self.units[j]
            chosen[unit.layer][unit.kind].extend(unit.members or (0,))
        plans = []
        for layer, members in enumerate(self._member_units):
            fields, ffn_kept, ffn_total = {}, 0, 0
            for kind, field in (("ffn1", "ffn1_channels"), ("self_attn", "attention_heads"), ("ffn2", "ffn2_channels")):
                if kind not in members:
                    continue  # the layer has no such module: nothing to select
                keep = tuple(sorted(chosen[layer][kind]))
                if len(keep) < len(members[kind]):
                    fields[field] = keep
                if kind != "self_attn":
                    ffn_kept, ffn_total = ffn_kept + len(keep), ffn_total + len(members[kind])
            if "conv_module" in members:
                fields["conv"] = bool(chosen[layer]["conv_module"])
            # Adaptive dropout (opt-in) scales feed-forward dropout by the kept share of the block's FFN channels.
            scale = ffn_kept / ffn_total if ffn_total else 1.0
            plans.append(BlockPlan(layer_index=layer, dropout_scale=scale, **fields))
        return plans

    def _cost(self, plans: list[BlockPlan]) -> float:
        costs = self.plan_costs(plans)
        return float(getattr(costs, self.config.orthosoftmax_budget_cost))

    def cost_of_units(self, kept) -> float:
        """Exact cost (the configured ``orthosoftmax_budget_cost``) of the model running only ``kept`` units."""
        return self._cost(self.plans_for_units(set(kept)))

    def unit_costs(self) -> tuple[torch.Tensor, float, float]:
        """``(n, C_rest, C_tot)``: each unit's marginal cost, the cost no mask touches, the whole model's cost."""
        if self._unit_cost_cache is None:
            everything = set(range(len(self.units)))
            full = self.plans_for_units(everything)
            # Costs add up over blocks, so a unit's marginal cost is its own block's difference (the front end
            # and head appear on both sides and cancel).
            marginal = torch.tensor(
                [
                    self._cost([full[unit.layer]]) - self._cost([self.plans_for_units(everything - {j})[unit.layer]])
                    for j, unit in enumerate(self.units)
                ],
                dtype=torch.float64,
            )
            total = self._cost(full)
            self._unit_cost_cache = (marginal, total - float(marginal.sum()), total)
        return self._unit_cost_cache

    # ---------------------------------------------------------------- soft masks
    def temperature(self) -> float:
        """``τ_t = max(γ^t, τ_min)`` at the number of optimizer steps trained so far."""
        floor = self.config.orthosoftmax_min_temperature
        decay = self.config.orthosoftmax_temperature_decay
        if decay is None:  # reach the floor exactly at the stage switch
            decay = floor ** (1.0 / max(1, self.config.orthosoftmax_stage1_steps))
        return max(decay ** int(self.trained_steps), floor)

    def soft_scores(self) -> torch.Tensor:
        """``S = softmax(W / τ)`` row-wise (computed in fp32)."""
        return F.softmax(self.scores.float() / self.temperature(), dim=1)

    def soft_prefix_length(self, soft_scores: torch.Tensor, budget: float) -> int:
        """``k(p) = argmin_k |C_rest + Σ_{i≤k} Σ_j n_j S_ij − p·C_tot|`` (ties: the smaller ``k``)."""
        marginal, rest, total = self.unit_costs()
        claimed = torch.cat([torch.zeros(1, dtype=torch.float64), (soft_scores.detach().double().cpu() @ marginal).cumsum(0)])
        return int(torch.argmin((rest + claimed - budget * total).abs()))

    def soft_masks(self, budget: float) -> torch.Tensor:
        """``m_j = Σ_{i≤k(p)} S_ij`` for every unit (differentiable in ``W``)."""
        scores = self.soft_scores()
        return scores[: self.soft_prefix_length(scores, budget)].sum(0)

    def _soft_plans(self, masks: torch.Tensor) -> list[BlockPlan]:
        plans = []
        for layer, members in enumerate(self._member_units):
            scales = {kind: masks[owner.to(masks.device)] for kind, owner in members.items()}
            plans.append(BlockPlan(layer_index=layer, unit_scales=scales))
        return plans

    # ---------------------------------------------------------------- stages
    @property
    def stage1_steps(self) -> int:
        return self.config.orthosoftmax_stage1_steps

    def freeze(self) -> None:
        """Stage 2: fix the binary masks to the ranking the scores give now (the scores stop training)."""
        if not bool(self.frozen):
            self.frozen_ranking.copy_(torch.tensor(greedy_ranking(self.scores), device=self.frozen_ranking.device))
            self.frozen.fill_(True)
            self._kept_cache.clear()

    def training_subnets(self, subnets, generator, step):
        space = self.space()
        if step < self.stage1_steps and not bool(self.frozen):  # a frozen checkpoint trained further stays frozen
            smaller = [b for b in space.budgets if b < 1]
            budget = smaller[randint(len(smaller), generator)]
            return [subnets[0], ("random", OrthoSoftmaxTrainingSpec(budget, soft=True))]
        self.freeze()
        role, largest = subnets[0]
        drop = self.config.orthosoftmax_stochastic_depth
        if drop <= 0 or largest.budget < 1:
            return subnets
        protected = set(self.kept_units(space.smallest().budget))
        draws = torch.rand(len(self.units), generator=generator).tolist()
        dropped = tuple(j for j, d in enumerate(draws) if j not in protected and d < drop)
        return [(role, OrthoSoftmaxTrainingSpec(largest.budget, dropped_units=dropped))] + list(subnets[1:])

    def subnet_loss(self, spec, loss, step):
        if isinstance(spec, OrthoSoftmaxTrainingSpec) and spec.soft:
            # Down-weights budgets that already fit well (the paper's (1 − e^{−CTC_p})·CTC_p); not detached.
            return (1 - torch.exp(-loss)) * loss
        return loss

    def extra_loss(self, model, step):
        if step >= self.stage1_steps or bool(self.frozen):
            return None
        scores = self.soft_scores()
        budget = max(b for b in self.space().budgets if b < 1)
        rows = max(1, self.soft_prefix_length(scores, budget))
        weight = self.config.orthosoftmax_orth_weight * min(1.0, step / max(1, self.stage1_steps))
        return weight * orthogonality_loss(scores[:rows]) / rows

    def on_optimizer_step(self, model, optimizer, step):
        self.trained_steps.fill_(step + 1)
        if step + 1 >= self.stage1_steps:
            self.freeze()

    # ---------------------------------------------------------------- reporting
    def kept_units_per_layer(self) -> dict[float, list[dict[str, list[str]]]]:
        """For each budget, for each layer, the names of the units its binary mask keeps, by module kind."""
        report = {}
        for budget in self.space().budgets:
            layers = [{kind: [] for kind in UNIT_KINDS} for _ in range(self.config.num_hidden_layers)]
            for j in sorted(self.kept_units(budget)):
                unit = self.units[j]
                layers[unit.layer][unit.kind].append(unit.name)
            report[budget] = layers
        return report


def kept_units_report(model) -> dict:
    """Which units each budget keeps, per layer, with each budget's achieved cost fractions: ``{"budgets": {budget:
    {"layers": [{kind: [unit names]}], "flops": fraction, "params": fraction, "kept_share": {kind: fraction}}},
    "frozen": bool, "granularity": str}``. ``model`` is a supernet (or its ``mask``) with ``mask_type="orthosoftmax"``."""
    mask = getattr(model, "mask", model)
    if not isinstance(mask, OrthoSoftmaxMask):
        raise TypeError(f"kept_units_report needs an orthosoftmax supernet, got mask type {type(mask).__name__}.")
    full = mask.plan_costs(mask.full_plans())
    per_layer = mask.kept_units_per_layer()
    out = {"frozen": bool(mask.frozen), "granularity": mask.config.orthosoftmax_granularity, "budgets": {}}
    for budget, layers in per_layer.items():
        kept = mask.kept_units(budget)
        costs = mask.plan_costs(mask.plans_for_units(set(kept)))
        share = {}
        for kind in UNIT_KINDS:
            total = sum(1 for u in mask.units if u.kind == kind)
            if total:
                share[kind] = sum(1 for j in kept if mask.units[j].kind == kind) / total
        out["budgets"][budget] = {
            "layers": layers,
            "flops": costs.flops / full.flops,
            "params": costs.params / full.params,
            "kept_share": share,
        }
    return out


def format_kept_units(report: dict) -> str:
    """A plain-text table of :func:`kept_units_report`: one line per budget and layer."""
    lines = [f"orthosoftmax masks ({report['granularity']}-wise, {'frozen' if report['frozen'] else 'from current scores, not frozen yet'})"]
    for budget, entry in report["budgets"].items():
        shares = ", ".join(f"{kind} {100 * s:.0f}%" for kind, s in entry["kept_share"].items())
        lines.append(
            f"\nbudget {budget:g}: {100 * entry['flops']:.1f}% of FLOPs, {100 * entry['params']:.1f}% of params; "
            f"units kept: {shares}"
        )
        for layer, kinds in enumerate(entry["layers"]):
            cells = [f"{kind:<11} {' '.join(names) if names else '-'}" for kind, names in kinds.items()]
            lines.append(f"  layer {layer:>2}: " + " | ".join(cells))
    return "\n".join(lines)


def plot_kept_units(model, path, title: str | None = None):
    """Heat map, units (rows) × layers (columns): each cell is coloured by the smallest budget that keeps the unit
    (the masks nest, so that budget and every larger one keep it; blank = only the full model). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    mask = getattr(model, "mask", model)
    budgets = [b for b in mask.space().budgets]
    rows = []  # unit names in block order, e.g. ffn1.0 .. head0 .. conv .. ffn2.3
    for unit in mask.units:
        if unit.name not in rows:
            rows.append(unit.name)
    grid = np.full((len(rows), mask.config.num_hidden_layers), np.nan)
    for budget in reversed(budgets):  # smaller budgets overwrite: the cell ends at the smallest keeping budget
        for j in mask.kept_units(budget):
            unit = mask.units[j]
            grid[rows.index(unit.name), unit.layer] = budget
    # One discrete colour per budget (index into the sorted budgets), labelled with the budget itself.
    index = np.where(np.isnan(grid), np.nan, np.searchsorted(budgets, np.nan_to_num(grid)))
    colours = plt.get_cmap("viridis_r", len(budgets))
    norm = matplotlib.colors.BoundaryNorm(np.arange(len(budgets) + 1) - 0.5, len(budgets))
    fig, ax = plt.subplots(figsize=(2.2 + 0.45 * grid.shape[1], 1.0 + 0.3 * grid.shape[0]))
    image = ax.imshow(index, aspect="auto", cmap=colours, norm=norm)
    ax.set_xticks(range(grid.shape[1]), [str(i) for i in range(grid.shape[1])])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("layer")
    ax.set_title(title or "smallest budget keeping each unit")
    bar = fig.colorbar(image, ax=ax, ticks=range(len(budgets)))
    bar.ax.set_yticklabels([f"{b:g}" for b in budgets])
    bar.set_label(f"budget (fraction of {mask.config.orthosoftmax_budget_cost})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
