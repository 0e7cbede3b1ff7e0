"""``mask_type="layer_width"`` — TODM (Shangguan et al., 2023): drop the top layers, prefix-trim the FFN width.

Both reductions are prefixes (a dropped layer drops every layer above it, a trimmed FFN channel every later
channel), so a subnet is a slice of the supernet's weights and extraction is slicing.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Iterator

import torch

from ..config_validation import Rule, check_fields
from ..subnets import SubnetSpace, SubnetSpec, randint, register_spec
from .base import BlockPlan, MaskMethod


# TODM drops the top 0, 3 or 7 of its layers; for other depths we keep the same *fractions* of the stack.
_TODM_DEPTH = 16
_TODM_LAYER_DROPS = (0, 3, 7)


def default_layer_drop_choices(num_hidden_layers: int) -> list[int]:
    """TODM's (0, 3, 7) layer drops scaled to ``num_hidden_layers`` (e.g. 4 layers -> [0, 1, 2])."""
    drops = sorted({round(d * num_hidden_layers / _TODM_DEPTH) for d in _TODM_LAYER_DROPS})
    return [d for d in drops if d < num_hidden_layers]


# What each layer_width field may hold (types; ranges are checked once the defaults are filled in).
LAYER_WIDTH_FIELD_RULES = {
    "layer_drop_choices": Rule(list, items=int, optional=True),
    "ffn_width_choices": Rule(list, items=float, optional=True),
    "layer_width_shrinking_steps": Rule(list, items=int, optional=True),
    "ffn_width_per_layer": Rule(bool),
}


@dataclasses.dataclass(kw_only=True, repr=False)
class LayerWidthConfigMixin:
    r"""The config fields of ``mask_type="layer_width"`` (a config of a family this mask type can carve lists this class among its bases; transformers
    collects the fields into the config's dataclass).

    Args:
        layer_drop_choices (`list[int]`, *optional*):
            `layer_width`: how many top layers a subnet may drop. Defaults to TODM's (0, 3, 7) of 16 layers scaled to
            `num_hidden_layers`.
        ffn_width_choices (`list[float]`, *optional*, defaults to `[0.125, 0.25, 0.5, 1.0]`):
            `layer_width`: feed-forward widths a kept layer may use, as fractions of its full width.
        layer_width_shrinking_steps (`list[int]`, *optional*):
            `layer_width`: Once-for-All's progressive shrinking, as the optimizer steps `[s1, s2]` where smaller
            subnets open to training: before `s1` only the largest subnet trains, until `s2` every subnet keeps all
            its layers (elastic width), then the whole space trains. `None`: the whole space from the start (TODM).
        ffn_width_per_layer (`bool`, *optional*, defaults to `True`):
            `layer_width`: each kept layer picks its own feed-forward width (TODM). `False`: every layer of a subnet
            has the same width (a subnet is a depth and one width), as a stock `ParakeetForCTC` needs
            (`SupernetConformerForCTC.from_parakeet` defaults to it); every layer must then have the same full width.
    """

    layer_drop_choices: list[int] | None = None
    ffn_width_choices: list[float] | None = None
    layer_width_shrinking_steps: list[int] | None = None
    ffn_width_per_layer: bool = True

    def __post_init__(self, **kwargs):
        check_fields(self, LAYER_WIDTH_FIELD_RULES)
        if self.layer_drop_choices is None:
            self.layer_drop_choices = default_layer_drop_choices(self.num_hidden_layers)
        if self.ffn_width_choices is None:
            self.ffn_width_choices = [0.125, 0.25, 0.5, 1.0]
        self.layer_drop_choices = sorted(int(d) for d in self.layer_drop_choices)
        self.ffn_width_choices = sorted(float(f) for f in self.ffn_width_choices)
        super().__post_init__(**kwargs)
        self._validate_layer_width_fields()

    def _validate_layer_width_fields(self) -> None:
        if not self.layer_drop_choices or min(self.layer_drop_choices) < 0:
            raise ValueError(f"layer_drop_choices must be non-negative and non-empty, got {self.layer_drop_choices}.")
        if max(self.layer_drop_choices) >= self.num_hidden_layers:
            raise ValueError(
                f"layer_drop_choices={self.layer_drop_choices} would drop every one of the "
                f"{self.num_hidden_layers} layers; keep at least one."
            )
        if not self.ffn_width_choices or not all(0 < f <= 1 for f in self.ffn_width_choices):
            raise ValueError(f"ffn_width_choices must be fractions in (0, 1], got {self.ffn_width_choices}.")
        if not self.ffn_width_per_layer and len({self.ffn_dims_of_layer(i) for i in range(self.num_hidden_layers)}) > 1:
            raise ValueError(
                "ffn_width_per_layer=False gives every layer of a subnet one feed-forward width, but this model's "
                f"layers differ in full width (layer_ffn_dims={self.layer_ffn_dims}); set ffn_width_per_layer=True."
            )
        stages = self.layer_width_shrinking_steps
        if stages is not None and (
            len(stages) != 2 or not all(isinstance(s, int) and s >= 0 for s in stages) or stages[0] > stages[1]
        ):
            raise ValueError(
                f"layer_width_shrinking_steps must be two steps [s1, s2] with 0 <= s1 <= s2 (largest only before s1, "
                f"elastic width until s2), got {stages}."
            )


@register_spec("layer_width")
@dataclasses.dataclass(frozen=True)
class LayerWidthSpec(SubnetSpec):
    """A TODM subnet: the bottom ``len(ffn_dims)`` layers are kept, layer ``i`` with FFN width ``ffn_dims[i]``."""

    ffn_dims: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "ffn_dims", tuple(int(d) for d in self.ffn_dims))

    @property
    def num_layers(self) -> int:
        return len(self.ffn_dims)


class LayerWidthSpace(SubnetSpace):
    """Every (layer drop, per-layer width) combination allowed by the config."""

    def __init__(self, config):
        self.num_layers_total = config.num_hidden_layers
        self.depths = sorted(config.num_hidden_layers - d for d in config.layer_drop_choices)
        # Width choices per physical layer, as absolute channel counts (at least one channel).
        self.width_choices = [
            sorted({max(1, round(f * config.ffn_dim_of_layer(i))) for f in config.ffn_width_choices})
            for i in range(config.num_hidden_layers)
        ]

    def at_full_depth(self) -> LayerWidthSpace:
        """The part of this space that keeps every layer (only the widths vary)."""
        part = copy.copy(self)
        part.depths = self.depths[-1:]
        return part

    def largest(self) -> LayerWidthSpec:
        return LayerWidthSpec(tuple(w[-1] for w in self.width_choices[: self.depths[-1]]))

    def smallest(self) -> LayerWidthSpec:
        return LayerWidthSpec(tuple(w[0] for w in self.width_choices[: self.depths[0]]))

    def sample(self, generator: torch.Generator | None = None) -> LayerWidthSpec:
        depth = self.depths[randint(len(self.depths), generator)]
        return LayerWidthSpec(tuple(w[randint(len(w), generator)] for w in self.width_choices[:depth]))

    # Genome: gene 0 picks the depth, gene 1 + i the width of layer i (ignored for layers the depth drops).
    def gene_choices(self) -> list[int]:
        return [len(self.depths)] + [len(w) for w in self.width_choices]

    def to_genes(self, spec: LayerWidthSpec) -> tuple[int, ...]:
        widths = [self.width_choices[i].index(d) for i, d in enumerate(spec.ffn_dims)]
        return (self.depths.index(spec.num_layers), *widths, *[0] * (self.num_layers_total - spec.num_layers))

    def from_genes(self, genes: tuple[int, ...]) -> LayerWidthSpec:
        depth = self.depths[genes[0]]
        return LayerWidthSpec(tuple(self.width_choices[i][g] for i, g in enumerate(genes[1 : 1 + depth])))

    def neighbors_up(self, spec: LayerWidthSpec) -> list[LayerWidthSpec]:
        """Subnets one step bigger: one layer one width choice wider, or the next depth (new layers narrowest)."""
        out = []
        for i, dim in enumerate(spec.ffn_dims):
            choices = self.width_choices[i]
            if dim != choices[-1]:
                wider = list(spec.ffn_dims)
                wider[i] = choices[choices.index(dim) + 1]
                out.append(LayerWidthSpec(tuple(wider)))
        deeper = [d for d in self.depths if d > spec.num_layers]
        if deeper:
            added = tuple(w[0] for w in self.width_choices[spec.num_layers : deeper[0]])
            out.append(LayerWidthSpec(spec.ffn_dims + added))
        return out

    def __contains__(self, spec: object) -> bool:
        return (
            isinstance(spec, LayerWidthSpec)
            and spec.num_layers in self.depths
            and all(d in self.width_choices[i] for i, d in enumerate(spec.ffn_dims))
        )

    def __len__(self) -> int:
        total = 0
        for depth in self.depths:
            count = 1
            for choices in self.width_choices[:depth]:
                count *= len(choices)
            total += count
        return total

    def __iter__(self) -> Iterator[LayerWidthSpec]:
        for depth in self.depths:
            for dims in itertools.product(*self.width_choices[:depth]):
                yield LayerWidthSpec(dims)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(depths={self.depths}, width_choices={self.width_choices})"


class UniformLayerWidthSpace(LayerWidthSpace):
    """``ffn_width_per_layer=False``: a subnet is a depth and one feed-forward width shared by all its layers (every
    layer has the same width choices)."""

    @property
    def widths(self) -> list[int]:
        return self.width_choices[0]

    def sample(self, generator: torch.Generator | None = None) -> LayerWidthSpec:
        depth = self.depths[randint(len(self.depths), generator)]
        return LayerWidthSpec((self.widths[randint(len(self.widths), generator)],) * depth)

    # Genome: gene 0 picks the depth, gene 1 the width.
    def gene_choices(self) -> list[int]:
        return [len(self.depths), len(self.widths)]

    def to_genes(self, spec: LayerWidthSpec) -> tuple[int, ...]:
        return (self.depths.index(spec.num_layers), self.widths.index(spec.ffn_dims[0]))

    def from_genes(self, genes: tuple[int, ...]) -> LayerWidthSpec:
        return LayerWidthSpec((self.widths[genes[1]],) * self.depths[genes[0]])

    def neighbors_up(self, spec: LayerWidthSpec) -> list[LayerWidthSpec]:
        """Subnets one step bigger: every layer one width choice wider, or the next depth at the same width."""
        depth, width = spec.num_layers, spec.ffn_dims[0]
        out = []
        if width != self.widths[-1]:
            out.append(LayerWidthSpec((self.widths[self.widths.index(width) + 1],) * depth))
        deeper = [d for d in self.depths if d > depth]
        if deeper:
            out.append(LayerWidthSpec((width,) * deeper[0]))
        return out

    def __contains__(self, spec: object) -> bool:
        return super().__contains__(spec) and len(set(spec.ffn_dims)) == 1

    def __len__(self) -> int:
        return len(self.depths) * len(self.widths)

    def __iter__(self) -> Iterator[LayerWidthSpec]:
        for depth in self.depths:
            for width in self.widths:
                yield LayerWidthSpec((width,) * depth)


class LayerWidthMask(MaskMethod):
    mask_type = "layer_width"
    spec_class = LayerWidthSpec

    def space(self) -> LayerWidthSpace:
        return (LayerWidthSpace if self.config.ffn_width_per_layer else UniformLayerWidthSpace)(self.config)

    def training_subnets(self, subnets, generator, step):
        """Progressive shrinking (Once-for-All) when ``layer_width_shrinking_steps`` is set: the largest subnet alone
        first, then the sandwich's other subnets drawn again at full depth, then the sandwich as drawn."""
        stages = self.config.layer_width_shrinking_steps
        if not stages or step >= stages[1]:
            return subnets
        if step < stages[0]:
            return subnets[:1]  # the largest comes first
        # The sandwich draws the largest, the smallest, then random subnets: each is drawn again at full depth.
        elastic_width = self.space().at_full_depth()
        redraws = [elastic_width.largest, elastic_width.smallest]
        return [
            (role, redraws[i]() if i < len(redraws) else elastic_width.sample(generator))
            for i, (role, _) in enumerate(subnets)
        ]

    def block_plans(self, spec: LayerWidthSpec) -> list[BlockPlan]:
        self.space().validate(spec)
        plans = []
        for i, dim in enumerate(spec.ffn_dims):
            ffn1, ffn2 = self.config.ffn_dims_of_layer(i)
            share = dim / ffn1 if ffn1 else 1.0
            if ffn1 == ffn2:
                plans.append(BlockPlan(layer_index=i, ffn_dim=dim, dropout_scale=share))
            else:
                # A layer whose two feed-forward modules differ (e.g. in a subnet extracted by another mask type):
                # the width choice is FFN1's; FFN2 keeps the same share of its own width.
                plans.append(
                    BlockPlan(
                        layer_index=i,
                        ffn1_channels=tuple(range(dim)) if ffn1 else (),
                        ffn2_channels=tuple(range(max(1, round(share * ffn2)))) if ffn2 else (),
                        dropout_scale=share,
                    )
                )
        return plans
