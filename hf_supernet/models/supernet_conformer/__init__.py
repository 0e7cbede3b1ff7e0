from .configuration_supernet_conformer import MASK_TYPES, SupernetConformerConfig
from .modeling_supernet_conformer import (
    SupernetConformerCTCOutput,
    SupernetConformerForCTC,
    SupernetConformerModel,
    SupernetConformerModelOutput,
    SupernetConformerPreTrainedModel,
)

__all__ = [
    "MASK_TYPES",
    "SupernetConformerCTCOutput",
    "SupernetConformerConfig",
    "SupernetConformerForCTC",
    "SupernetConformerModel",
    "SupernetConformerModelOutput",
    "SupernetConformerPreTrainedModel",
]
