"""The plain dense Conformer-CTC every Conformer subnet extracts to (``configuration_conformer.py`` and
``modeling_conformer.py`` import only torch and transformers and travel as remote code; the supernet family converts
its subnets to it: :func:`hf_supernet.models.supernet_conformer.dense_conformer_from_subnet`).

Importing this package registers the config and models with transformers' Auto classes, and marks them for
``auto_map`` so ``save_pretrained`` writes the two files next to the weights."""

from transformers import AutoConfig, AutoModel, AutoModelForCTC

from .configuration_conformer import ConformerConfig
from .modeling_conformer import (
    ConformerCTCOutput,
    ConformerForCTC,
    ConformerModel,
    ConformerModelOutput,
    ConformerPreTrainedModel,
)

AutoConfig.register(ConformerConfig.model_type, ConformerConfig, exist_ok=True)
AutoModel.register(ConformerConfig, ConformerModel, exist_ok=True)
AutoModelForCTC.register(ConformerConfig, ConformerForCTC, exist_ok=True)
ConformerConfig.register_for_auto_class()
ConformerModel.register_for_auto_class("AutoModel")
ConformerForCTC.register_for_auto_class("AutoModelForCTC")

__all__ = [
    "ConformerCTCOutput",
    "ConformerConfig",
    "ConformerForCTC",
    "ConformerModel",
    "ConformerModelOutput",
    "ConformerPreTrainedModel",
]
