from .configuration_foldable import FoldableHubertConfig, FoldableWav2Vec2Config
from .modeling_foldable import (
    FoldableCTCOutput,
    FoldableHubertForCTC,
    FoldableHubertModel,
    FoldableWav2Vec2ForCTC,
    FoldableWav2Vec2Model,
    UnfoldingLayerList,
    evenly_spaced_layers,
)

__all__ = [
    "FoldableCTCOutput",
    "FoldableHubertConfig",
    "FoldableHubertForCTC",
    "FoldableHubertModel",
    "FoldableWav2Vec2Config",
    "FoldableWav2Vec2ForCTC",
    "FoldableWav2Vec2Model",
    "UnfoldingLayerList",
    "evenly_spaced_layers",
]
