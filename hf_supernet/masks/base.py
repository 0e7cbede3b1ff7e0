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
from typing import ClassVar

import torch
from torch import nn

from ..subnets import SubnetSpace, SubnetSpec


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """How one logical block of a subnet runs.

    Attributes:
        layer_index: the physical block (index into the supernet's stored blocks) that executes.
        ffn_dim: prefix width kept in both feed-forward modules of the block (`None` = the block's full width).
        dropout_scale: factor applied to the block's dropout rates when adaptive dropout is on (the kept share of
            the block, TODM's ``p_i = p_max * c_i / m_i``).
    """

    layer_index: int
    ffn_dim: int | None = None
    dropout_scale: float = 1.0


class MaskMethod(nn.Module):
    """Base class of the mask types. Subclasses set ``mask_type`` and ``spec_class`` and implement the two
    abstract methods; the training hooks are optional."""

    mask_type: ClassVar[str]
    spec_class: ClassVar[type[SubnetSpec]]

    def __init__(self, config):
        super().__init__()
        # Kept as a plain attribute (not a registered sub-object) so the config stays the model's one source of truth.
        self.config = config

    @abstractmethod
    def space(self) -> SubnetSpace:
        """The subnets this supernet can run."""

    @abstractmethod
    def block_plans(self, spec: SubnetSpec) -> list[BlockPlan]:
        """The blocks to run, in order, when the supernet runs as ``spec``."""

    def full_plans(self) -> list[BlockPlan]:
        """Plans of the unreduced model (what runs when no subnet is active)."""
        return [BlockPlan(layer_index=i) for i in range(self.config.num_hidden_layers)]

    # --- optional training hooks (the trainer calls these for every mask type; defaults do nothing) ---
    def extra_loss(self, model: nn.Module, step: int) -> torch.Tensor | None:
        """An extra loss term added once per optimizer step (e.g. OrthoSoftmax's orthogonality loss)."""
        return None

    def on_optimizer_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Called after each optimizer step (e.g. Omni-sparsity recomputes its pruning masks)."""
        return None
