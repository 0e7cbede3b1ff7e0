"""Masked supernet Conformer -> dense Conformer subnet.

The dense model is an ordinary instance of the supernet's own class with a smaller config (fewer layers,
per-layer FFN widths): each block of the subnet's plan is cut down by the block itself
(``reduced_state_dict``), so the dense model runs exactly the operations the masked supernet runs. (Adapters are
cut by :mod:`hf_supernet.adapters.lora`; :func:`hf_supernet.extract_subnet` chooses.)
"""

from __future__ import annotations

import torch

from ...masks.base import BlockPlan
from ...subnets import SubnetSpec
from .costs import conformer_block_shape

# Config fields that describe the supernet's subnet space; an extracted subnet is a single architecture.
_SPACE_RESET = {
    "layer_drop_choices": [0],
    "ffn_width_choices": [1.0],
    "ffn_width_per_layer": True,
    "selected_subnets": None,
    # An unfolded path is extracted with its blocks' weights repeated: every logical layer is stored.
    "num_physical_layers": None,
    "unfolding_depths": None,
    "unfolding_patterns": None,
    # A subnet has one depth: the head of that depth becomes its lm_head.
    "ctc_head_per_depth": False,
}
# An extracted subnet is one fixed architecture: whatever mask type carved it, its own space is layer_width's
# trivial one (drop nothing, full width), which needs no learned mask state.
_DENSE_MASK_TYPE = "layer_width"


def subnet_config(config, plans: list[BlockPlan], spec: SubnetSpec):
    """Config of the dense model that runs ``plans``: same class, same fields, the subnet's architecture (per-layer
    lists only where layers differ from the uniform case)."""
    shapes = [conformer_block_shape(config, plan) for plan in plans]
    ffn_dims = [list(s.ffn_dims) if s.ffn_dims[0] != s.ffn_dims[1] else s.ffn_dims[0] for s in shapes]
    heads = [s.heads for s in shapes]
    convs = [s.conv for s in shapes]
    widest = max(max(s.ffn_dims) for s in shapes)
    values = config.to_dict()
    values.update(_SPACE_RESET)
    values.update(
        mask_type=_DENSE_MASK_TYPE,
        num_hidden_layers=len(plans),
        intermediate_size=widest,
        layer_ffn_dims=None if all(d == widest for d in ffn_dims) else ffn_dims,
        layer_attention_heads=None if all(h == config.num_attention_heads for h in heads) else heads,
        layer_conv_modules=None if all(convs) else convs,
        subnet_spec=spec.to_dict(),
    )
    for key in ("model_type", "transformers_version", "architectures"):
        values.pop(key, None)
    return type(config)(**values)


@torch.no_grad()
def extract_dense_subnet(model, spec: SubnetSpec):
    """A physically smaller dense copy of ``model`` (a supernet Conformer without adapters) running as ``spec``;
    its logits equal the masked supernet's. A Parakeet-architecture supernet's subnet is a stock transformers
    ``ParakeetForCTC`` instead (see :mod:`.parakeet`)."""
    if model.config.architecture == "parakeet":
        from .parakeet import extract_stock_parakeet

        return extract_stock_parakeet(model, spec)
    model.subnet_space.validate(spec)
    plans = model.mask.block_plans(spec)
    dense = type(model)(subnet_config(model.config, plans, spec))

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
    dense.to(next(model.parameters()).device)
    dense.train(model.training)
    return dense
