"""Masked supernet -> dense subnet model.

The dense model is an ordinary instance of the supernet's own class with a smaller config (fewer layers,
per-layer FFN widths): each block of the subnet's plan is cut down by the block itself
(``reduced_state_dict``), so the dense model runs exactly the operations the masked supernet runs.
"""

from __future__ import annotations

import torch

from .masks import BlockPlan
from .subnets import SubnetSpec

# Config fields that describe the supernet's subnet space; an extracted subnet is a single architecture.
_SPACE_RESET = {"layer_drop_choices": [0], "ffn_width_choices": [1.0], "selected_subnets": None}


def subnet_config(config, plans: list[BlockPlan], spec: SubnetSpec):
    """Config of the dense model that runs ``plans``: same class, same fields, the subnet's architecture."""
    ffn_dims = [p.ffn_dim if p.ffn_dim is not None else config.ffn_dim_of_layer(p.layer_index) for p in plans]
    uniform = len(set(ffn_dims)) == 1
    values = config.to_dict()
    values.update(_SPACE_RESET)
    values.update(
        num_hidden_layers=len(plans),
        intermediate_size=ffn_dims[0] if uniform else max(ffn_dims),
        layer_ffn_dims=None if uniform else ffn_dims,
        subnet_spec=spec.to_dict(),
    )
    for key in ("model_type", "transformers_version", "architectures"):
        values.pop(key, None)
    return type(config)(**values)


@torch.no_grad()
def extract_subnet(model, spec: SubnetSpec):
    """A physically smaller dense copy of ``model`` running as ``spec``; its logits equal the masked supernet's."""
    model.subnet_space.validate(spec)
    plans = model.mask.block_plans(spec)
    dense = type(model)(subnet_config(model.config, plans, spec))

    encoder = model.base_model
    prefix = "" if encoder is model else f"{model.base_model_prefix}."
    layers_prefix = f"{prefix}layers."
    state = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith(layers_prefix)}
    for i, plan in enumerate(plans):
        block_state = encoder.layers[plan.layer_index].reduced_state_dict(plan)
        state.update({f"{layers_prefix}{i}.{k}": v for k, v in block_state.items()})
    dense.load_state_dict(state, strict=True)
    dense.to(next(model.parameters()).device)
    dense.train(model.training)
    return dense
