from .configuration_supernet_conformer import MASK_TYPES, SupernetConformerConfig
from .modeling_supernet_conformer import (
    SupernetConformerCTCOutput,
    SupernetConformerForCTC,
    SupernetConformerModel,
    SupernetConformerModelOutput,
    SupernetConformerPreTrainedModel,
)
from .to_dense import dense_conformer_from_subnet

__all__ = [
    "MASK_TYPES",
    "SupernetConformerCTCOutput",
    "SupernetConformerConfig",
    "SupernetConformerForCTC",
    "SupernetConformerModel",
    "SupernetConformerModelOutput",
    "SupernetConformerPreTrainedModel",
    "dense_conformer_from_subnet",
]
