"""Speech data for hf_supernet: loading, text normalisation, features, tokenizer, processor, batching, SpecAugment.

:class:`SupernetFeatureExtractor`, :class:`SupernetCTCTokenizer` and :class:`SupernetSpeechProcessor` are registered
with transformers' `AutoFeatureExtractor`, `AutoTokenizer` and `AutoProcessor` by ``import hf_supernet``, so
``AutoProcessor.from_pretrained(folder)`` loads a saved processor (and a model folder of a `supernet_conformer`
or `hf_supernet_conformer` config maps to these classes). Names are imported on first use: reading a processor does not
import `datasets`.
"""

from ..lazy_imports import lazy_module_attributes

_import_structure = {
    "augment": ["SpecAugmentConfig", "spec_augment"],
    "connected_digits": ["ConnectedDigits", "ConnectedDigitsConfig"],
    "collator": [
        "DataCollatorCTCWithPadding",
        "SpecAugmentCallback",
        "ctc_min_output_length",
        "filter_ctc_feasible",
        "prepare_dataset",
    ],
    "length_grouping": ["LengthGroupedStream", "item_length"],
    "loading": ["BUNDLED_CORPORA", "bundled_data_path", "load_audio", "load_speech_dataset"],
    "processing": [
        "SupernetCTCTokenizer",
        "SupernetFeatureExtractor",
        "SupernetSpeechProcessor",
        "build_parakeet_processor",
        "build_processor",
        "train_tokenizer",
    ],
    "text": ["normalize_text", "number_to_words"],
    "waveforms": ["WaveformCollator", "prepare_waveforms"],
}
__getattr__, __dir__, __all__ = lazy_module_attributes(__name__, _import_structure, globals())
