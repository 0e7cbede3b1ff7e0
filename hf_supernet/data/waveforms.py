"""Raw-waveform CTC data for the models that read samples (the foldable wav2vec2 / HuBERT family): each waveform
normalised to zero mean and unit variance (what wav2vec2's feature extractor does with ``do_normalize=True``),
labels from a tokenizer, and a collator that pads both.
"""

from __future__ import annotations

import numpy as np
import torch


class WaveformCollator:
    """Pads zero-mean unit-variance waveforms (``input_values``) and labels (-100) for the wav2vec2 family."""

    def __call__(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        audio = [torch.tensor(e["input_values"]) for e in examples]
        labels = [torch.tensor(e["labels"]) for e in examples]
        return {
            "input_values": torch.nn.utils.rnn.pad_sequence(audio, batch_first=True),
            "attention_mask": torch.nn.utils.rnn.pad_sequence([torch.ones(len(a), dtype=torch.long) for a in audio], batch_first=True),
            "labels": torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=-100),
        }


def prepare_waveforms(dataset, tokenizer):
    """``dataset`` (with ``audio`` and ``text`` columns, as :func:`~hf_supernet.data.load_speech_dataset` gives) as
    ``input_values`` (normalised waveforms), ``labels`` (token ids) and ``length`` (samples)."""

    def encode(batch):
        audio = [np.asarray(a["array"], dtype=np.float32) for a in batch["audio"]]
        return {
            "input_values": [(a - a.mean()) / np.sqrt(a.var() + 1e-7) for a in audio],
            "labels": tokenizer(batch["text"], add_special_tokens=False)["input_ids"],
            "length": [len(a) for a in audio],
        }

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="Waveforms and labels")
