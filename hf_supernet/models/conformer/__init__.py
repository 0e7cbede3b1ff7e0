"""The plain dense Conformer-CTC every Conformer subnet extracts to (``supernet.extract_subnet(spec)``;
:func:`hf_supernet.models.supernet_conformer.dense_conformer_from_subnet` converts subnets saved by earlier
versions). ``configuration_conformer.py``, ``modeling_conformer.py`` and ``checksums.py`` import only torch,
transformers and the standard library, and travel as remote code.

Importing this package registers the config and models with transformers' Auto classes, and marks them for
``auto_map`` so ``save_pretrained`` writes those files next to the weights."""

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
