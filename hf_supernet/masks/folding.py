"""``mask_type="folding"`` — Unfolding (Li et al., 2024): a few stored blocks, run many times.

A foldable model stores ``num_physical_layers`` blocks (the *seed*) and runs them along an *unfolding path*: the
sequence of physical blocks its logical layers execute, repeats allowed. The seed path runs each block once; deeper
paths emulate a deeper model at no extra storage. A subnet is one path, so ``block_plans`` returns one
``BlockPlan(layer_index=...)`` per logical layer, with the same physical index wherever a block repeats.

Which paths exist is configured by two fields of the model config, shared by every family that folds:

* ``unfolding_depths`` — the logical depths a path may have, each between ``num_physical_layers`` (the seed: every
  stored block once) and ``num_hidden_layers`` (the deepest path). Default: every depth in that range.
* ``unfolding_patterns`` — how a path of a given depth repeats the blocks (the paper's exact paths are not
  published; these are the two natural ones):

  - ``"stack"``: the whole stack repeated, ``0 1 2 3 0 1 2 3 ...``, cut after ``depth`` layers;
  - ``"layer"``: each block repeated in place, ``0 0 1 1 2 2 3 3``; when ``depth`` is not a multiple of the
    number of blocks, the lowest ``depth % num_physical_layers`` blocks run once more.

  Default ``["stack", "layer"]``. The first pattern names the deepest path (``largest()``) and the seed
  (``smallest()``, where both patterns agree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch

from ..config_validation import Rule, check_fields
from ..subnets import SubnetSpace, SubnetSpec, randint, register_spec
from .base import BlockPlan, MaskMethod

UNFOLDING_PATTERNS = ("stack", "layer")


def unfolding_path(pattern: str, num_physical_layers: int, depth: int) -> tuple[int, ...]:
    """The physical block of each of the ``depth`` logical layers of a ``pattern`` path (see the module docstring)."""
    if pattern == "stack":
        return tuple(i % num_physical_layers for i in range(depth))
    if pattern == "layer":
        base, extra = divmod(depth, num_physical_layers)
        return tuple(block for block in range(num_physical_layers) for _ in range(base + (block < extra)))
    raise ValueError(f"Unknown unfolding pattern {pattern!r}; choose from {list(UNFOLDING_PATTERNS)}.")


def default_unfolding_depths(num_physical_layers: int, num_hidden_layers: int) -> list[int]:
    """Every depth from the seed (each block once) to the deepest path."""
    return list(range(num_physical_layers, num_hidden_layers + 1))


def resolve_folding_fields(config) -> None:
    """Fill the defaults of ``unfolding_depths`` / ``unfolding_patterns`` and check every folding field, with an
    error that says how to fix it. Called from :class:`FoldingConfigMixin` when a config folds."""
    physical, logical = config.num_physical_layers, config.num_hidden_layers
    if physical is None or physical < 1:
        raise ValueError(
            f"num_physical_layers must be >= 1, got {physical}: a foldable model needs at least one stored block "
            "to unfold."
        )
    if logical < physical:
        raise ValueError(
            f"num_hidden_layers={logical} is the logical depth of the deepest unfolding path and cannot be smaller "
            f"than num_physical_layers={physical} (a path runs every stored block at least once). Set "
            f"num_hidden_layers >= {physical}, or store fewer blocks."
        )
    if config.unfolding_patterns is None:
        config.unfolding_patterns = list(UNFOLDING_PATTERNS)
    config.unfolding_patterns = list(config.unfolding_patterns)
    unknown = [p for p in config.unfolding_patterns if p not in UNFOLDING_PATTERNS]
    if unknown or not config.unfolding_patterns or len(set(config.unfolding_patterns)) != len(config.unfolding_patterns):
        raise ValueError(
            f"unfolding_patterns must be a non-empty list of distinct names from {list(UNFOLDING_PATTERNS)}, got "
            f"{config.unfolding_patterns}."
        )
    if config.unfolding_depths is None:
        config.unfolding_depths = default_unfolding_depths(physical, logical)
    config.unfolding_depths = sorted({int(d) for d in config.unfolding_depths})
    depths = config.unfolding_depths
    if not depths:
        raise ValueError("unfolding_depths is empty; give at least one logical depth (e.g. [num_hidden_layers]).")
    too_deep = [d for d in depths if d > logical]
    if too_deep:
        raise ValueError(
            f"unfolding_depths {too_deep} have more logical layers than num_hidden_layers={logical} allows (it is "
            f"the depth of the deepest path). Raise num_hidden_layers to {max(too_deep)} or drop those depths."
        )
    too_shallow = [d for d in depths if d < physical]
    if too_shallow:
        raise ValueError(
            f"unfolding_depths {too_shallow} are shallower than the num_physical_layers={physical} stored blocks; "
            "every path runs each stored block at least once. Drop those depths or store fewer blocks."
        )
    if depths[-1] != logical:
        raise ValueError(
            f"The deepest of unfolding_depths={depths} is {depths[-1]}, but num_hidden_layers={logical} says the "
            f"deepest path has {logical} layers. Add {logical} to unfolding_depths or set num_hidden_layers="
            f"{depths[-1]}."
        )


# What each folding field may hold (types; ranges and depths are checked with the fields once filled in).
FOLDING_FIELD_RULES = {
    "num_physical_layers": Rule(int, optional=True),  # None: as many stored blocks as layers
    "unfolding_depths": Rule(list, items=int, optional=True),
    "unfolding_patterns": Rule(list, items=str, optional=True),
}


@dataclasses.dataclass(kw_only=True, repr=False)
class FoldingConfigMixin:
    r"""The config fields of ``mask_type="folding"`` (a config of a family this mask type can carve lists this class
    among its bases; transformers collects the fields into the config's dataclass). A family that only folds
    overrides the defaults (e.g. the foldable wav2vec2 / HuBERT configs store 8 blocks and default to folding).

    Args:
        num_physical_layers (`int`, *optional*):
            `folding`: number of stored Conformer blocks (the seed). Defaults to `num_hidden_layers`; any other value
            needs `mask_type="folding"`.
        unfolding_depths (`list[int]`, *optional*):
            `folding`: logical depths of the unfolding paths, between `num_physical_layers` and `num_hidden_layers`
            (which must be the deepest). Defaults to every depth in that range.
        unfolding_patterns (`list[str]`, *optional*):
            `folding`: how paths repeat the stored blocks, `"stack"` (the whole stack again) and/or `"layer"` (each
            block in place). Defaults to `["stack", "layer"]`; the first one gives the deepest path.
    """

    num_physical_layers: int | None = None
    unfolding_depths: list[int] | None = None
    unfolding_patterns: list[str] | None = None

    def __post_init__(self, **kwargs):
        check_fields(self, FOLDING_FIELD_RULES)
        if self.num_physical_layers is None:
            self.num_physical_layers = self.num_hidden_layers
        super().__post_init__(**kwargs)
        if self.mask_type == "folding":
            resolve_folding_fields(self)
        elif self.num_physical_layers != self.num_hidden_layers:
            raise ValueError(
                f"num_physical_layers={self.num_physical_layers} differs from num_hidden_layers="
                f"{self.num_hidden_layers}, which only mask_type='folding' allows (blocks run several times); set "
                "mask_type='folding' or leave num_physical_layers unset."
            )


@register_spec("folding")
@dataclasses.dataclass(frozen=True)
class FoldingSpec(SubnetSpec):
    """An unfolding path: ``path[i]`` is the physical block logical layer ``i`` runs."""

    path: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "path", tuple(int(i) for i in self.path))

    @property
    def num_layers(self) -> int:
        """Logical depth of the path."""
        return len(self.path)

    @classmethod
    def from_pattern(cls, pattern: str, num_physical_layers: int, depth: int) -> FoldingSpec:
        return cls(unfolding_path(pattern, num_physical_layers, depth))


class FoldingSpace(SubnetSpace):
    """The paths of every (pattern, depth) pair the config allows; paths two patterns share count once."""

    def __init__(self, config):
        self.num_physical_layers = config.num_physical_layers
        self.num_hidden_layers = config.num_hidden_layers
        self.patterns = list(config.unfolding_patterns)
        self.depths = list(config.unfolding_depths)
        paths = {}  # insertion-ordered set: shallow to deep, then by pattern
        for depth in self.depths:
            for pattern in self.patterns:
                paths.setdefault(FoldingSpec.from_pattern(pattern, self.num_physical_layers, depth), None)
        self.paths = list(paths)
        self._members = frozenset(self.paths)

    def _spec(self, pattern: str, depth: int) -> FoldingSpec:
        return FoldingSpec.from_pattern(pattern, self.num_physical_layers, depth)

    def largest(self) -> FoldingSpec:
        """The deepest path of the first pattern: the teacher of the seed."""
        return self._spec(self.patterns[0], self.depths[-1])

    def smallest(self) -> FoldingSpec:
        """The shallowest path (by default the seed: every stored block once, in order)."""
        return self._spec(self.patterns[0], self.depths[0])

    def sample(self, generator: torch.Generator | None = None) -> FoldingSpec:
        """A path drawn uniformly from the distinct paths of the space."""
        return self.paths[randint(len(self.paths), generator)]

    # Genome: gene 0 picks the pattern, gene 1 the depth.
    def gene_choices(self) -> list[int]:
        return [len(self.patterns), len(self.depths)]

    def to_genes(self, spec: FoldingSpec) -> tuple[int, ...]:
        for p, pattern in enumerate(self.patterns):
            for d, depth in enumerate(self.depths):
                if self._spec(pattern, depth) == spec:
                    return (p, d)
        self.validate(spec)  # raises, saying why
        raise AssertionError("unreachable")

    def from_genes(self, genes: tuple[int, ...]) -> FoldingSpec:
        return self._spec(self.patterns[genes[0]], self.depths[genes[1]])

    def neighbors_up(self, spec: FoldingSpec) -> list[FoldingSpec]:
        """The paths of the next depth (one per pattern)."""
        deeper = [d for d in self.depths if d > spec.num_layers]
        if not deeper:
            return []
        return list(dict.fromkeys(self._spec(p, deeper[0]) for p in self.patterns))

    def __contains__(self, spec: object) -> bool:
        return isinstance(spec, FoldingSpec) and spec in self._members

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[FoldingSpec]:
        return iter(self.paths)

    def validate(self, spec: SubnetSpec) -> None:
        if spec in self:
            return
        if not isinstance(spec, FoldingSpec):
            raise ValueError(f"{spec} is not an unfolding path; this supernet's subnets are FoldingSpec paths.")
        path = spec.path
        if len(path) > self.num_hidden_layers:
            raise ValueError(
                f"{spec} runs {len(path)} logical layers, more than a path of this model allows "
                f"(num_hidden_layers={self.num_hidden_layers})."
            )
        bad = [i for i in path if not 0 <= i < self.num_physical_layers]
        if bad:
            raise ValueError(
                f"{spec} names physical blocks {bad}, but the model stores blocks 0..{self.num_physical_layers - 1}."
            )
        raise ValueError(f"{spec} is not one of this model's unfolding paths {self!r}; pick one of `list(space)`.")

    def __repr__(self) -> str:
        return (
            f"FoldingSpace(num_physical_layers={self.num_physical_layers}, depths={self.depths}, "
            f"patterns={self.patterns})"
        )


class FoldingMask(MaskMethod):
    mask_type = "folding"
    spec_class = FoldingSpec

    def space(self) -> FoldingSpace:
        return FoldingSpace(self.config)

    def block_plans(self, spec: FoldingSpec) -> list[BlockPlan]:
        self.space().validate(spec)
        return [BlockPlan(layer_index=i) for i in spec.path]

    def full_plans(self) -> list[BlockPlan]:
        """The whole model is its deepest unfolding."""
        return self.block_plans(self.space().largest())


def evenly_spaced_layers(num_source_layers: int, num_physical_layers: int) -> list[int]:
    """Which of a pretrained stack's layers seed the stored blocks by default: ``num_physical_layers`` layers
    evenly spaced over the stack, always including its first and last layer (the last one feeds a fine-tuned CTC
    head, the first one reads the feature projection), rounded to the nearest layer. 12 -> 8: 0 2 3 5 6 8 9 11;
    12 -> 4: 0 4 7 11. A single stored block is seeded by the last layer."""
    if num_physical_layers == 1:
        return [num_source_layers - 1]
    span, steps = num_source_layers - 1, num_physical_layers - 1
    return [(2 * j * span + steps) // (2 * steps) for j in range(num_physical_layers)]
