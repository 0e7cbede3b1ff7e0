"""Supernet -> dense subnet, for every model family, adapted by peft or not.

Each family cuts its own weights (``model.extract_dense_subnet(spec)``) into a plain model that has no subnet
machinery left: a Conformer supernet into the dense :class:`~hf_supernet.models.conformer.ConformerForCTC`
(:mod:`hf_supernet.models.supernet_conformer.extraction`), a foldable model into a stock transformers
``Wav2Vec2ForCTC`` / ``HubertForCTC``. A peft-adapted supernet extracts to a ``PeftModel`` around that dense subnet,
carrying the adapters cut like the weights (:func:`hf_supernet.adapters.lora.extract_lora_subnet`).
"""

from __future__ import annotations

from .adapters.lora import extract_lora_subnet, has_peft_layers, unwrap_peft
from .subnets import SubnetSpec


def extract_subnet(model, spec: SubnetSpec):
    """A physically smaller dense model whose outputs equal ``model``'s run as ``spec``: the family's plain model
    (``ConformerForCTC`` for a Conformer supernet, ``ConformerModel`` for its bare encoder; a stock transformers class
    for the foldable models), which has no ``subnet_space``, ``use_subnet`` or ``subnet_costs`` (its config records
    ``subnet_spec``); a ``PeftModel`` around it when ``model`` carries peft adapters."""
    if has_peft_layers(model):
        return extract_lora_subnet(model, spec)
    return unwrap_peft(model).extract_dense_subnet(spec)
