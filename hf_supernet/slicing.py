"""How a subnet cuts the supernet's weights: channel selection, and each linear layer run on its selection — plain
or LoRA-adapted. Masks, the modules' forward passes, extraction and adapters all cut through this one module.

The Conformer's modules never call their ``nn.Linear``\\ s: they compute ``F.linear`` on a row/column *selection*
of the (possibly masked) weight, so a narrow subnet reads a slice of the supernet's weights instead of copying
them. peft replaces an adapted ``nn.Linear`` by a ``lora.Linear`` whose forward adds the low-rank path — a forward
the modules would bypass. :func:`subnet_linear` is the one place both cases go through: for an ``nn.Linear`` it is
exactly the sliced ``F.linear`` (no extra work), for a ``lora.Linear`` it adds ``B[rows] @ A[:, cols]`` — the
adapter cut the same way as the weight, so a width-trimmed FFN trims its LoRA factors consistently.

peft is imported only when an adapted layer is met, so plain models never pay for it.
"""

from __future__ import annotations

import dataclasses
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

# What ``BlockPlan.ffn_keep`` returns: ``None`` (every channel), an ``int`` (that many leading channels: a slicing
# view, the cheap case) or a tuple of channel indices (any subset, in order).
ChannelSelection = Union[int, tuple[int, ...], None]


def kept_count(selection: ChannelSelection, full: int) -> int:
    """How many of ``full`` channels (or heads) a selection keeps."""
    if selection is None:
        return full
    return selection if isinstance(selection, int) else len(selection)


def select_channels(tensor: torch.Tensor, dim: int, keep: ChannelSelection, group: int = 1) -> torch.Tensor:
    """The part of ``tensor`` along ``dim`` that ``keep`` selects, in groups of ``group`` rows (one attention head
    is ``head_dim`` rows). A prefix is a view (shares storage and gradients with the supernet); an index set is a
    gather, whose gradient still flows back into the supernet's weights."""
    if keep is None:
        return tensor
    if isinstance(keep, int):
        return tensor.narrow(dim, 0, keep * group)
    if keep == tuple(range(len(keep))):
        return tensor.narrow(dim, 0, len(keep) * group)
    index = torch.tensor(keep, device=tensor.device)
    if group > 1:
        index = (index[:, None] * group + torch.arange(group, device=tensor.device)).reshape(-1)
    return tensor.index_select(dim, index)


def block_grid(shape: tuple[int, int], block: tuple[int, int]) -> tuple[int, int]:
    """Number of block rows and columns of a weight of ``shape`` (a partial last block counts as one)."""
    return -(-shape[0] // block[0]), -(-shape[1] // block[1])


# The linear layers supernet modules can run: nn.Linear, and peft's vanilla LoRA on an nn.Linear.
_SUPPORTED = "torch.nn.Linear layers, optionally adapted by peft's vanilla LoRA (lora.Linear)"


@dataclasses.dataclass(frozen=True)
class LinearSelection:
    """The part of one linear layer a subnet runs: output ``rows`` and input ``cols`` (each a
    :data:`ChannelSelection`), in groups of ``group`` (one attention head is ``head_dim``
    rows or columns). The forward pass, extraction and adapter slicing all cut through this one object, so they
    cannot disagree."""

    rows: ChannelSelection = None
    cols: ChannelSelection = None
    group: int = 1

    def weight(self, weight: torch.Tensor) -> torch.Tensor:
        return select_channels(select_channels(weight, 0, self.rows, self.group), 1, self.cols, self.group)

    def bias(self, bias: torch.Tensor | None) -> torch.Tensor | None:
        return None if bias is None else select_channels(bias, 0, self.rows, self.group)

    # LoRA's update is scaling * B @ A (B: out x r, A: r x in): the kept output rows are rows of B, the kept input
    # columns columns of A; the rank is never cut.
    def lora_A(self, weight: torch.Tensor) -> torch.Tensor:
        return select_channels(weight, 1, self.cols, self.group)

    def lora_B(self, weight: torch.Tensor) -> torch.Tensor:
        return select_channels(weight, 0, self.rows, self.group)


FULL = LinearSelection()


def masked_weight(weight: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return weight if mask is None else weight * mask.to(weight.dtype)


def subnet_linear(
    layer: nn.Module, x: torch.Tensor, selection: LinearSelection = FULL, weight_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``layer`` applied to ``x`` as a subnet runs it: the ``selection`` of its (``weight_mask``-ed) weight.

    ``layer`` is an ``nn.Linear`` or a peft ``lora.Linear`` around one. The weight mask multiplies the *base* weight
    only: the LoRA path stays a separate dense low-rank term (as peft treats any base weight), which is what lets the
    adapter of an extracted subnet be the supernet's adapter sliced — see :mod:`hf_supernet.adapters.lora`.
    """
    if isinstance(layer, nn.Linear):
        return F.linear(x, selection.weight(masked_weight(layer.weight, weight_mask)), selection.bias(layer.bias))
    return _adapted_linear(layer, x, selection, weight_mask)


def _adapted_linear(layer: nn.Module, x: torch.Tensor, selection: LinearSelection, weight_mask) -> torch.Tensor:
    """peft ``lora.Linear.forward`` (vanilla LoRA) with the base weight and both factors cut by ``selection``."""
    base = check_adapted_linear(layer)
    if layer.disable_adapters and layer.merged:
        layer.unmerge()  # as peft: disabling adapters restores the base weights first
    if layer.merged and weight_mask is not None:
        # A merged weight is W + BA; masking it would prune the update too, which the unmerged adapter never does.
        raise ValueError(
            "This LoRA layer's adapter is merged into its base weight, but the subnet masks that weight: the forward "
            "would prune the LoRA update too and differ from the unmerged adapter. Call unmerge_adapter() (peft) "
            "before running weight-masked subnets; to deploy, extract the subnet first and merge its sliced adapter."
        )
    result = F.linear(x, selection.weight(masked_weight(base.weight, weight_mask)), selection.bias(base.bias))
    if layer.disable_adapters or layer.merged:
        return result
    result_dtype = result.dtype
    for name in layer.active_adapters:
        if name not in layer.lora_A:
            continue
        if name in layer.lora_variant:
            raise NotImplementedError(
                f"Adapter {name!r} is a LoRA variant ({type(layer.lora_variant[name]).__name__}, e.g. DoRA), whose "
                "update cannot be cut to a subnet's rows and columns. Use vanilla LoRA on a supernet."
            )
        lora_A, lora_B = layer.lora_A[name], layer.lora_B[name]
        hidden = F.linear(layer.lora_dropout[name](layer._cast_input_dtype(x, lora_A.weight.dtype)), selection.lora_A(lora_A.weight))
        update = F.linear(hidden, selection.lora_B(lora_B.weight), selection.bias(lora_B.bias))
        result = result + update * layer.scaling[name]
    return result.to(result_dtype)


def check_adapted_linear(layer: nn.Module) -> nn.Linear:
    """The base ``nn.Linear`` of a peft ``lora.Linear``; a clear error for any other layer a supernet module holds
    in place of an ``nn.Linear``."""
    from peft.tuners.lora import Linear as LoraLinear

    base = layer.get_base_layer() if isinstance(layer, LoraLinear) else None
    if not isinstance(base, nn.Linear):
        raise TypeError(
            f"A supernet module holds a {type(layer).__module__}.{type(layer).__name__} where it computes a linear "
            f"layer on a subnet's slice of the weights; it can run {_SUPPORTED}. Target only linear layers with "
            "LoRA (see hf_supernet.adapters.supernet_lora_config)."
        )
    if layer._forward_pre_hooks:
        # peft's mixed-adapter batches (adapter_names=...) work through forward hooks, which a sliced F.linear never
        # runs; ignoring them silently would apply the wrong adapters.
        raise NotImplementedError(
            "This LoRA layer has forward hooks (e.g. peft's adapter_names= mixed-adapter batches), which supernet "
            "modules do not run; call the model without adapter_names, or extract the subnet first."
        )
    return base
