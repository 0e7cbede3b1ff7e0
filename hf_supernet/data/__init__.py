"""Speech data for hf_supernet: loading, text normalisation, features, tokenizer, processor, batching, SpecAugment.

Importing this module registers :class:`SupernetFeatureExtractor`, :class:`SupernetCTCTokenizer` and
:class:`SupernetSpeechProcessor` with transformers' `AutoFeatureExtractor`, `AutoTokenizer` and `AutoProcessor`, so
``AutoProcessor.from_pretrained(folder)`` loads a saved processor (and a model folder of a `supernet_conformer`
or `hf_supernet_conformer` config maps to these classes).
"""

from transformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer

from ..models.conformer import ConformerConfig
from ..models.supernet_conformer import SupernetConformerConfig
from .augment import SpecAugmentConfig, spec_augment
from .collator import (
    DataCollatorCTCWithPadding,
    SpecAugmentCallback,
    ctc_min_output_length,
    filter_ctc_feasible,
    prepare_dataset,
)
from .loading import BUNDLED_CORPORA, bundled_data_path, load_audio, load_speech_dataset
from .processing import (
    SupernetCTCTokenizer,
    SupernetFeatureExtractor,
    SupernetSpeechProcessor,
    build_processor,
    train_tokenizer,
)
from .text import normalize_text, number_to_words

for _config in (SupernetConformerConfig, ConformerConfig):
    AutoFeatureExtractor.register(_config, SupernetFeatureExtractor, exist_ok=True)
    AutoTokenizer.register(_config, tokenizer_class=SupernetCTCTokenizer, exist_ok=True)
    AutoProcessor.register(_config, SupernetSpeechProcessor, exist_ok=True)

__all__ = [
    "BUNDLED_CORPORA",
    "DataCollatorCTCWithPadding",
    "SpecAugmentCallback",
    "SpecAugmentConfig",
    "SupernetCTCTokenizer",
    "SupernetFeatureExtractor",
    "SupernetSpeechProcessor",
    "build_processor",
    "bundled_data_path",
    "ctc_min_output_length",
    "filter_ctc_feasible",
    "load_audio",
    "load_speech_dataset",
    "normalize_text",
    "number_to_words",
    "prepare_dataset",
    "spec_augment",
    "train_tokenizer",
]
