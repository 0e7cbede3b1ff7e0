"""Supernet -> dense subnet, for every model family, adapted by peft or not.

Each family cuts its own weights (``model.extract_dense_subnet(spec)``: the Conformer in
:mod:`hf_supernet.models.supernet_conformer.extraction`, the foldable models on their class); a peft-adapted
supernet extracts to a ``PeftModel`` around that dense subnet, carrying the adapters cut like the weights
(:func:`hf_supernet.adapters.lora.extract_lora_subnet`).
"""

from __future__ import annotations

from .adapters.lora import extract_lora_subnet, has_peft_layers, unwrap_peft
from .subnets import SubnetSpec


def extract_subnet(model, spec: SubnetSpec):
    """A physically smaller dense model whose outputs equal ``model``'s run as ``spec``: of the model's own class or
    a stock transformers class, as its family extracts; a ``PeftModel`` around it when ``model`` carries peft
    adapters."""
    if has_peft_layers(model):
        return extract_lora_subnet(model, spec)
    return unwrap_peft(model).extract_dense_subnet(spec)
