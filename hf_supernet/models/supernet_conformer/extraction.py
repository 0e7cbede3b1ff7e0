"""Masked supernet Conformer -> the plain dense :class:`~hf_supernet.models.conformer.ConformerForCTC` of a subnet.

The dense model (``ConformerForCTC``, or ``ConformerModel`` for a bare encoder) has the subnet's architecture in its
config (depth, per-layer feed-forward widths, heads and convolution modules) and the supernet's module names: each
block of the subnet's plan is cut down by the supernet block itself (``reduced_state_dict``, the very selection its
forward pass makes), so the dense model runs exactly the operations the masked supernet runs. It has no masks, no
block plans and no subnet space: what it keeps of where it came from is provenance in its config (``subnet_spec``;
``sparsity_block_shape`` for weights pruned in blocks). (Adapters are cut by :mod:`hf_supernet.adapters.lora`;
:func:`hf_supernet.extract_subnet` chooses.)
"""

from __future__ import annotations

import torch

from ...masks.base import BlockPlan
from ...subnets import SubnetSpec
from ..conformer import ConformerConfig, ConformerForCTC, ConformerModel
from .costs import conformer_block_shape

# The dense config's fields that the supernet config has too, copied as they are (architecture, losses, dropout).
_SHARED_FIELDS = tuple(name for name in ConformerConfig.__annotations__ if name != "feature_hop_length")


def subnet_config(config, plans: list[BlockPlan], spec: SubnetSpec | None) -> ConformerConfig:
    """Config of the dense model that runs ``plans`` of a supernet of ``config`` (per-layer lists only where layers
    differ from the uniform case), recording ``spec`` as its provenance."""
    shapes = [conformer_block_shape(config, plan) for plan in plans]
    ffn_dims = [list(s.ffn_dims) if s.ffn_dims[0] != s.ffn_dims[1] else s.ffn_dims[0] for s in shapes]
    heads = [s.heads for s in shapes]
    convs = [s.conv for s in shapes]
    widest = max((max(s.ffn_dims) for s in shapes), default=config.intermediate_size)
    values = {name: getattr(config, name) for name in _SHARED_FIELDS if hasattr(config, name)}
    values.update(
        num_hidden_layers=len(plans),
        intermediate_size=widest,
        layer_ffn_dims=None if all(d == widest for d in ffn_dims) else ffn_dims,
        layer_attention_heads=None if all(h == config.num_attention_heads for h in heads) else heads,
        layer_conv_modules=None if all(convs) else convs,
        subnet_spec=None if spec is None else spec.to_dict(),
        sparsity_block_shape=_sparsity_block_shape(config, plans),
    )
    return ConformerConfig(**values)


def _sparsity_block_shape(config, plans: list[BlockPlan]) -> list[int] | None:
    """The block shape of the zeros a weight-masking subnet bakes into its weights (what ``save_sparse`` stores
    block-sparse by); an extracted subnet of an old one-architecture checkpoint keeps the one it recorded."""
    recorded = getattr(config, "sparsity_block_shape", None)
    if any(plan.weight_masks for plan in plans):
        recorded = getattr(config, "omni_sparsity_block_shape", None) or recorded
    return None if recorded is None else [int(b) for b in recorded]


@torch.no_grad()
def extract_dense_subnet(model, spec: SubnetSpec):
    """The plain dense Conformer of ``spec`` cut out of ``model`` (a supernet Conformer without adapters): a
    ``ConformerForCTC`` (a ``ConformerModel`` for a bare encoder) on the same device and dtype, in the same
    train/eval mode, whose logits equal the masked supernet's. A Parakeet-architecture supernet's subnet is a stock
    transformers ``ParakeetForCTC`` instead (see :mod:`.parakeet`)."""
    if model.config.architecture == "parakeet":
        from .parakeet import extract_stock_parakeet

        return extract_stock_parakeet(model, spec)
    model.subnet_space.validate(spec)
    plans = model.mask.block_plans(spec)
    config = subnet_config(model.config, plans, spec)
    dense = ConformerModel(config) if model.base_model is model else ConformerForCTC(config)

    encoder = model.base_model
    prefix = "" if encoder is model else f"{model.base_model_prefix}."
    layers_prefix = f"{model.stored_blocks_name}."
    # The mask's own state (learned scores, pruning ranks) carved the subnet; the dense model has none. Of the
    # per-depth CTC heads (if any) only the subnet's own is kept, as its lm_head.
    skipped = (layers_prefix, f"{prefix}mask.", "depth_heads.")
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith(skipped)}
    if getattr(model, "depth_heads", None):
        state.update({f"lm_head.{k}": v.detach().clone() for k, v in model.ctc_head(spec).state_dict().items()})
    for i, plan in enumerate(plans):
        block_state = encoder.layers[plan.layer_index].reduced_state_dict(plan)
        state.update({f"{layers_prefix}{i}.{k}": v for k, v in block_state.items()})
    dense.load_state_dict(state, strict=True)
    parameter = next(model.parameters())
    return dense.to(device=parameter.device, dtype=parameter.dtype).train(model.training)
