"""The one interface every mask type implements.

A mask type answers two questions about a supernet: *which subnets exist* (:meth:`MaskMethod.space`) and *how
a given subnet runs* (:meth:`MaskMethod.block_plans`: for each logical block of the subnet, which physical block
executes and how it is reduced). The model's modules know how to execute a :class:`BlockPlan` and how to cut
their weights down to it; costs and extraction are computed from the plans. So a new way of carving subnets is one
file under ``masks/`` plus one registry line, and the trainer, search, costs and publishing never ask which mask
type they hold.

Mask types are ``nn.Module``\\ s attached to the model (``model.mask``) so learned mask parameters (e.g.
OrthoSoftmax's score matrix) live in the checkpoint like any other weight.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import ClassVar

import torch
from torch import nn

from ..costs import SubnetCosts
from ..slicing import ChannelSelection
from ..subnets import SubnetSpace, SubnetSpec


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """How one logical block of a subnet runs.

    A block has four units (feed-forward 1, self-attention, convolution, feed-forward 2) plus its final LayerNorm. A
    plan can shrink each unit, drop it, scale its output (soft masks, while a learned mask is still being trained)
    and zero individual weights. Every field defaults to "unchanged", so a mask type sets only what it carves.

    Attributes:
        layer_index: the physical block (index into the supernet's stored blocks) that executes. The same physical
            block may appear in several plans (unfolding).
        ffn_dim: prefix width kept in both feed-forward modules of the block (`None` = the block's full width).
        ffn1_channels / ffn2_channels: hidden channels kept in feed-forward module 1 / 2, as indices; overrides
            `ffn_dim` for that module. An empty tuple removes the module.
        attention_heads: indices of the self-attention heads kept (`None` = all; empty = no self-attention).
        conv: whether the convolution module runs.
        unit_scales: soft masks multiplied into unit outputs, keyed `"ffn1"` / `"ffn2"` (one factor per hidden
            channel), `"self_attn"` (one per head) or `"conv_module"` (a scalar). They carry gradients into the mask
            type's own parameters; a plan with unit scales describes a training-time model and cannot be extracted.
        weight_masks: multiplicative masks of the block's weights, keyed by parameter name inside the block (e.g.
            `"ffn1.intermediate_dense.weight"`), each of the weight's full shape. Extraction bakes them in (zeros).
        dropout_scale: factor applied to the block's dropout rates when adaptive dropout is on (the kept share of
            the block, TODM's ``p_i = p_max * c_i / m_i``; Omni-sparsity's ``1 - s``).
        dropout_scaled_units: the units whose dropout `dropout_scale` scales. By default the feed-forward modules
            (TODM reduces only those); a mask type that thins every unit (Omni-sparsity) names all four.
    """

    layer_index: int
    ffn_dim: int | None = None
    ffn1_channels: tuple[int, ...] | None = None
    ffn2_channels: tuple[int, ...] | None = None
    attention_heads: tuple[int, ...] | None = None
    conv: bool = True
    unit_scales: Mapping[str, torch.Tensor] | None = dataclasses.field(default=None, compare=False, repr=False)
    weight_masks: Mapping[str, torch.Tensor] | None = dataclasses.field(default=None, compare=False, repr=False)
    dropout_scale: float = 1.0
    dropout_scaled_units: tuple[str, ...] = ("ffn1", "ffn2")

    def ffn_keep(self, which: int) -> ChannelSelection:
        """The hidden channels kept in feed-forward module ``which`` (1 or 2)."""
        explicit = self.ffn1_channels if which == 1 else self.ffn2_channels
        return explicit if explicit is not None else self.ffn_dim

    def weight_masks_of(self, unit: str) -> dict[str, torch.Tensor]:
        """The weight masks of one unit, keyed by parameter name inside that unit."""
        if not self.weight_masks:
            return {}
        prefix = unit + "."
        return {k[len(prefix) :]: v for k, v in self.weight_masks.items() if k.startswith(prefix)}

    @property
    def extractable(self) -> bool:
        """Whether a dense model can run this plan exactly (soft masks exist only inside the supernet)."""
        return not self.unit_scales


class MaskMethod(nn.Module):
    """Base class of the mask types. Subclasses set ``mask_type`` and ``spec_class`` and implement the two
    abstract methods; the training hooks are optional."""

    mask_type: ClassVar[str]
    spec_class: ClassVar[type[SubnetSpec]]

    def __init__(self, config, plan_costs: Callable[[list[BlockPlan]], SubnetCosts] | None = None):
        super().__init__()
        # Kept as a plain attribute (not a registered sub-object) so the config stays the model's one source of truth.
        self.config = config
        # The model family's cost of the dense model that runs some plans (handed in: masks do not know how a
        # family counts its costs). Only a mask type that carves by cost (OrthoSoftmax's budgets) needs it.
        self.plan_costs = plan_costs

    @abstractmethod
    def space(self) -> SubnetSpace:
        """The subnets this supernet can run."""

    @abstractmethod
    def block_plans(self, spec: SubnetSpec) -> list[BlockPlan]:
        """The blocks to run, in order, when the supernet runs as ``spec``."""

    def search_space(self) -> SubnetSpace:
        """The subnets a search considers. Default: the whole space (Omni-sparsity may leave out its dense level,
        as the paper's search does)."""
        return self.space()

    def training_space(self) -> SubnetSpace:
        """The subnets the trainer's sandwich draws from at the current step (its largest, smallest and random
        subnets). Default: the whole space. A mask type whose space opens up during training (Omni-sparsity's
        schedule of the largest sparsity) returns the part open now; search, costs and extraction still see
        :meth:`space`."""
        return self.space()

    def bind_blocks(self, blocks: nn.ModuleList) -> None:
        """Called once by the model that owns this mask, with the physical blocks ``BlockPlan.layer_index``
        indexes. A mask type whose masks are computed from the weights (Omni-sparsity) keeps a reference; the
        default ignores it."""
        return None

    def subnet_depths(self) -> list[int]:
        """How many blocks a subnet of this space may run, ascending (a CTC head per depth needs them). Default: the
        space's ``depths`` where it varies depth (layer dropping, unfolding), else every subnet runs all layers."""
        return sorted(getattr(self.space(), "depths", [self.config.num_hidden_layers]))

    def full_plans(self) -> list[BlockPlan]:
        """Plans of the unreduced model (what runs when no subnet is active)."""
        return [BlockPlan(layer_index=i) for i in range(self.config.num_hidden_layers)]

    # --- optional training hooks (the trainer calls these for every mask type; defaults do nothing) ---
    def training_subnets(
        self, subnets: list[tuple[str, SubnetSpec]], generator: torch.Generator, step: int
    ) -> list[tuple[str, SubnetSpec]]:
        """The ``(role, spec)`` pairs a training step trains, given the sandwich rule's draw ``subnets`` (largest
        first: its output is the distillation teacher, so keep it first). Default: the sandwich as drawn.

        A mask type may train fewer or other subnets, or training-only variants of them (e.g. OrthoSoftmax's
        soft-masked and stochastic-depth networks, which need not be members of the space). Draw any randomness
        from ``generator``: it is checkpointed with the run. Roles name the logged losses (``loss_<role>``)."""
        return subnets

    def subnet_loss(self, spec: SubnetSpec, loss: torch.Tensor, step: int) -> torch.Tensor:
        """The training loss of subnet ``spec`` on a step, from its task (CTC) loss (e.g. OrthoSoftmax's
        ``(1 − e^{−CTC})·CTC`` reweighting of its soft-masked subnet). Default: ``loss`` unchanged."""
        return loss

    def extra_loss(self, model: nn.Module, step: int) -> torch.Tensor | None:
        """An extra loss term added once per optimizer step (e.g. OrthoSoftmax's orthogonality loss)."""
        return None

    def on_optimizer_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Called after each optimizer step (e.g. Omni-sparsity recomputes its pruning masks). ``step`` is the index
        of the step just taken (0 for the first: the trainer's ``global_step`` before it counts the step, the same
        value ``extra_loss`` saw for it); ``optimizer`` holds its state (e.g. Adam's ``exp_avg_sq``)."""
        return None
