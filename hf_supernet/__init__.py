"""hf_supernet: train once, deploy many — supernet CTC speech recognition for the Hugging Face ecosystem.

Importing the package registers its configs, models and processor with transformers' Auto classes, so
``AutoConfig``, ``AutoModel``, ``AutoModelForCTC`` and ``AutoProcessor`` load hf_supernet checkpoints.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCTC

from . import data  # noqa: F401  (registers the feature extractor, tokenizer and processor with the Auto classes)
from .costs import SubnetCosts, costs_of, stored_params
from . import latency  # noqa: F401  (measured real-time factors, per-machine table)
from .extraction import extract_subnet
from .latency import LatencyTable
from .masks import BlockPlan, FoldingSpec, LayerWidthSpec, MaskMethod, OmniSparsitySpec, OrthoSoftmaxSpec
from .models.foldable import (
    FoldableHubertConfig,
    FoldableHubertForCTC,
    FoldableHubertModel,
    FoldableWav2Vec2Config,
    FoldableWav2Vec2ForCTC,
    FoldableWav2Vec2Model,
)
from .models.conformer import ConformerConfig, ConformerForCTC, ConformerModel, dense_conformer_from_subnet
from .models.supernet_conformer import (
    MASK_TYPES,
    SupernetConformerConfig,
    SupernetConformerForCTC,
    SupernetConformerModel,
)
from .data import build_processor, load_speech_dataset, train_tokenizer
from .metrics import load_metric
from .publishing import publish_subnets
from .sparse_storage import load_sparse, save_sparse, storage_report
from .subnets import SubnetSpace, SubnetSpec

__version__ = "0.1.0"

AutoConfig.register(SupernetConformerConfig.model_type, SupernetConformerConfig, exist_ok=True)
AutoModel.register(SupernetConformerConfig, SupernetConformerModel, exist_ok=True)
AutoModelForCTC.register(SupernetConformerConfig, SupernetConformerForCTC, exist_ok=True)
for _config, _model, _ctc in (
    (FoldableWav2Vec2Config, FoldableWav2Vec2Model, FoldableWav2Vec2ForCTC),
    (FoldableHubertConfig, FoldableHubertModel, FoldableHubertForCTC),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    AutoModelForCTC.register(_config, _ctc, exist_ok=True)

__all__ = [
    "MASK_TYPES",
    "BlockPlan",
    "ConformerConfig",
    "ConformerForCTC",
    "ConformerModel",
    "FoldableHubertConfig",
    "FoldableHubertForCTC",
    "FoldableHubertModel",
    "FoldableWav2Vec2Config",
    "FoldableWav2Vec2ForCTC",
    "FoldableWav2Vec2Model",
    "FoldingSpec",
    "LayerWidthSpec",
    "MaskMethod",
    "OmniSparsitySpec",
    "OrthoSoftmaxSpec",
    "SubnetCosts",
    "SubnetSpace",
    "SubnetSpec",
    "SupernetConformerConfig",
    "SupernetConformerForCTC",
    "SupernetConformerModel",
    "build_processor",
    "costs_of",
    "dense_conformer_from_subnet",
    "LatencyTable",
    "extract_subnet",
    "load_metric",
    "load_sparse",
    "load_speech_dataset",
    "publish_subnets",
    "save_sparse",
    "storage_report",
    "stored_params",
    "train_tokenizer",
]
