"""A ``SupernetConformerForCTC`` subnet saved before subnets extracted to the plain dense model -> the plain dense
:class:`ConformerForCTC` (same logits).

``extract_subnet`` returns a ``ConformerForCTC`` itself; checkpoints of subnets written by earlier versions (a
``SupernetConformerForCTC`` of one architecture: ``model_type`` ``"supernet_conformer"``) still load with
``SupernetConformerForCTC.from_pretrained`` (or ``AutoModelForCTC`` after ``import hf_supernet``), and this converts
them: such a model's space holds one subnet, the whole model, whose extraction copies every weight as it is."""

from __future__ import annotations

import torch

from ..conformer import ConformerForCTC, ConformerModel
from .modeling_supernet_conformer import SupernetConformerPreTrainedModel


def _check_one_architecture(model) -> None:
    config, space = model.config, model.subnet_space
    if getattr(model, "depth_heads", None) or config.num_physical_layers != config.num_hidden_layers:
        raise ValueError(
            "This model is a supernet (CTC heads per depth, or folded blocks), not one architecture; extract a "
            "subnet instead: model.extract_subnet(spec), or pass spec=."
        )
    if space.largest() != space.smallest():
        raise ValueError(
            f"This {type(model).__name__} still holds a space of subnets (mask_type={config.mask_type!r}); pick one "
            "and extract it: model.extract_subnet(spec), or pass spec=."
        )


@torch.no_grad()
def dense_conformer_from_subnet(model, spec=None) -> ConformerForCTC | ConformerModel:
    """The plain dense model computing what ``model`` computes.

    Args:
        model: a one-architecture ``SupernetConformerForCTC`` (a subnet checkpoint saved by an earlier version,
            loaded with ``SupernetConformerForCTC.from_pretrained``) or ``SupernetConformerModel``; a supernet with
            ``spec``; or a ``ConformerForCTC`` / ``ConformerModel``, returned as it is.
        spec: if given, ``model`` is a supernet and ``spec`` the subnet to extract (``model.extract_subnet(spec)``).

    Returns:
        A :class:`ConformerForCTC` (a :class:`ConformerModel` for a bare encoder) on the same device and dtype, in
        the same train/eval mode, whose logits equal ``model``'s (<= 1e-4), keeping the ``subnet_spec`` an old
        checkpoint recorded.
    """
    if isinstance(model, (ConformerForCTC, ConformerModel)) and spec is None:
        return model
    if not isinstance(model, SupernetConformerPreTrainedModel):
        raise TypeError(
            f"dense_conformer_from_subnet converts SupernetConformerForCTC / SupernetConformerModel subnets, got a "
            f"{type(model).__name__} (a peft model: merge_and_unload() it first)."
        )
    if spec is not None:
        return model.extract_subnet(spec)
    _check_one_architecture(model)
    dense = model.extract_subnet(model.subnet_space.largest())
    dense.config.subnet_spec = model.config.subnet_spec  # what the old checkpoint was cut with, not its trivial spec
    return dense


__all__ = ["dense_conformer_from_subnet"]
