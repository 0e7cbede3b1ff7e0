"""Extracted ``SupernetConformerForCTC`` subnet -> plain dense :class:`ConformerForCTC` (same logits).

An extracted subnet is already one fixed architecture (per-layer widths, heads and convolution modules in its
config), stored with the supernet's module names, which the dense model keeps: the conversion copies the
architecture fields and loads the weights as they are (strictly: every weight has its place)."""

from __future__ import annotations

import dataclasses

import torch

from ..conformer import ConformerConfig, ConformerForCTC, ConformerModel
from .modeling_supernet_conformer import SupernetConformerForCTC, SupernetConformerModel

# The architecture (and training-loss) fields of the dense config, all of which the supernet config has too.
_DENSE_FIELDS = tuple(ConformerConfig.__annotations__)


def _dense_class_of(model) -> type | None:
    targets = ((SupernetConformerForCTC, ConformerForCTC), (SupernetConformerModel, ConformerModel))
    return next((dense for source, dense in targets if isinstance(model, source)), None)


def dense_config_from_subnet(config) -> ConformerConfig:
    """The :class:`ConformerConfig` of the architecture a one-architecture supernet config describes."""
    values = config.to_dict()
    return ConformerConfig(**{name: values[name] for name in _DENSE_FIELDS if name in values})


def _check_one_architecture(model) -> None:
    config, space = model.config, model.subnet_space
    if getattr(model, "depth_heads", None) or config.num_physical_layers != config.num_hidden_layers:
        raise ValueError(
            "This model is a supernet (CTC heads per depth, or folded blocks), not one architecture; extract a "
            "subnet first: dense_conformer_from_subnet(model.extract_subnet(spec)), or pass spec=."
        )
    if space.largest() != space.smallest():
        raise ValueError(
            f"This {type(model).__name__} still holds a space of subnets (mask_type={config.mask_type!r}); pick one "
            "and extract it: dense_conformer_from_subnet(model.extract_subnet(spec)), or pass spec=."
        )


@torch.no_grad()
def dense_conformer_from_subnet(model, spec=None) -> ConformerForCTC | ConformerModel:
    """The plain dense model computing what ``model`` computes.

    Args:
        model: an extracted subnet (the output of ``supernet.extract_subnet(spec)`` for any mask type, or a subnet
            checkpoint loaded with ``SupernetConformerForCTC.from_pretrained``), a ``SupernetConformerForCTC`` or a
            bare ``SupernetConformerModel`` encoder (which gives a ``ConformerModel``).
        spec: if given, ``model`` is a supernet and ``spec`` the subnet to extract and convert.

    Returns:
        A :class:`ConformerForCTC` (or :class:`ConformerModel`) on the same device and dtype, in the same
        train/eval mode, whose logits equal ``model``'s (<= 1e-4).
    """
    if spec is not None:
        model = model.extract_subnet(spec)
    target = _dense_class_of(model)
    if target is None:
        raise TypeError(
            f"dense_conformer_from_subnet converts SupernetConformerForCTC / SupernetConformerModel subnets, got a "
            f"{type(model).__name__} (a peft model: merge_and_unload() it first)."
        )
    _check_one_architecture(model)
    dense = target(dense_config_from_subnet(model.config))
    prefix = "" if model.base_model is model else f"{model.base_model_prefix}."
    # The mask's own state (scores, pruning ranks) carved the subnet; a one-architecture model needs none of it.
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(f"{prefix}mask.")}
    dense.load_state_dict(state, strict=True)
    parameter = next(model.parameters())
    return dense.to(device=parameter.device, dtype=parameter.dtype).train(model.training)
