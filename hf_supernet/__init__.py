"""hf_supernet: train once, deploy many — supernet CTC speech recognition for the Hugging Face ecosystem.

Importing the package registers its configs, models, feature extractor, tokenizer and processor with transformers'
Auto classes, so ``AutoConfig``, ``AutoModel``, ``AutoModelForCTC`` and ``AutoProcessor`` load hf_supernet
checkpoints. Every other public name is imported on first use (as transformers does), so ``import hf_supernet``
loads neither peft nor the ``Trainer``, ``datasets`` or ``evaluate``.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForCTC, AutoProcessor, AutoTokenizer

from .data.processing import SupernetCTCTokenizer, SupernetFeatureExtractor, SupernetSpeechProcessor
from .lazy_imports import lazy_module_attributes
from .models.foldable import (
    FoldableHubertConfig,
    FoldableHubertForCTC,
    FoldableHubertModel,
    FoldableWav2Vec2Config,
    FoldableWav2Vec2ForCTC,
    FoldableWav2Vec2Model,
)
from .models.conformer import ConformerConfig, ConformerForCTC, ConformerModel
from .models.supernet_conformer import (
    SupernetConformerConfig,
    SupernetConformerForCTC,
    SupernetConformerModel,
    dense_conformer_from_subnet,
)
from .version import __version__

AutoConfig.register(SupernetConformerConfig.model_type, SupernetConformerConfig, exist_ok=True)
AutoModel.register(SupernetConformerConfig, SupernetConformerModel, exist_ok=True)
AutoModelForCTC.register(SupernetConformerConfig, SupernetConformerForCTC, exist_ok=True)
# Supernet and dense Conformer folders share the processor (the dense model's Auto classes are registered by its
# package, which also marks them for remote code).
for _config in (SupernetConformerConfig, ConformerConfig):
    AutoFeatureExtractor.register(_config, SupernetFeatureExtractor, exist_ok=True)
    AutoTokenizer.register(_config, tokenizer_class=SupernetCTCTokenizer, exist_ok=True)
    AutoProcessor.register(_config, SupernetSpeechProcessor, exist_ok=True)
for _config, _model, _ctc in (
    (FoldableWav2Vec2Config, FoldableWav2Vec2Model, FoldableWav2Vec2ForCTC),
    (FoldableHubertConfig, FoldableHubertModel, FoldableHubertForCTC),
):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)
    AutoModelForCTC.register(_config, _ctc, exist_ok=True)

# The rest of the public API: submodule -> the names it defines, imported on first use.
_import_structure = {
    "batch_norm": ["batch_norm_recalibrated", "recalibrate_batch_norm"],
    "costs": ["SubnetCosts", "costs_of", "stored_params"],
    "data": ["build_processor", "load_speech_dataset", "train_tokenizer"],
    "extraction": ["extract_subnet"],
    "latency": ["LatencyTable"],
    "masks": ["MASK_TYPES", "BlockPlan", "FoldingSpec", "LayerWidthSpec", "MaskMethod", "OmniSparsitySpec",
              "OrthoSoftmaxSpec"],
    "metrics": ["load_metric"],
    "modeling_outputs": ["SupernetCTCOutput"],
    "publishing": ["publish_subnets"],
    "sparse_storage": ["load_sparse", "save_sparse", "storage_report"],
    "subnets": ["SubnetSpace", "SubnetSpec"],
    "training": ["SupernetTrainer", "SupernetTrainingArguments"],
}
__getattr__, __dir__, _lazy_names = lazy_module_attributes(__name__, _import_structure, globals())

__all__ = [
    "ConformerConfig",
    "ConformerForCTC",
    "ConformerModel",
    "FoldableHubertConfig",
    "FoldableHubertForCTC",
    "FoldableHubertModel",
    "FoldableWav2Vec2Config",
    "FoldableWav2Vec2ForCTC",
    "FoldableWav2Vec2Model",
    "SupernetCTCTokenizer",
    "SupernetConformerConfig",
    "SupernetConformerForCTC",
    "SupernetConformerModel",
    "SupernetFeatureExtractor",
    "SupernetSpeechProcessor",
    "dense_conformer_from_subnet",
    *_lazy_names,
]
