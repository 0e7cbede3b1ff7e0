"""From a speech dataset to padded CTC batches: `prepare_dataset`, `filter_ctc_feasible`, the collator.

Two ways to feed a `Trainer`:

- **precomputed** — ``prepare_dataset(dataset, processor)`` adds `input_features`, `labels` and `length` (feature
  frames) with a cached ``datasets.map``; the collator only pads;
- **on the fly** — keep `audio` + `text` and let the collator run the processor per batch (less disk, more CPU per
  step). `Trainer` drops columns its model's `forward` does not take, so set
  ``TrainingArguments(remove_unused_columns=False)``; the collator reads only the columns it needs.

Length-grouped batching is transformers' own: ``TrainingArguments(train_sampling_strategy="group_by_length",
length_column_name="length")`` (``"duration"`` for on-the-fly datasets) plus ``remove_unused_columns=False`` so the
length column reaches the sampler (otherwise `Trainer` recomputes lengths from `input_features`, item by item).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from datasets.fingerprint import Hasher
from transformers import BatchFeature, TrainerCallback
from transformers.utils import logging

from .augment import SpecAugmentConfig, spec_augment
from .loading import DURATION_COLUMN, filter_with_count
from .processing import SupernetSpeechProcessor

logger = logging.get_logger(__name__)

__all__ = [
    "DataCollatorCTCWithPadding",
    "SpecAugmentCallback",
    "ctc_min_output_length",
    "filter_ctc_feasible",
    "prepare_dataset",
]

IGNORE_INDEX = -100


# --------------------------------------------------------------------------------------------------------------
# Dataset preparation
# --------------------------------------------------------------------------------------------------------------


@contextmanager
def single_torch_thread() -> Iterator[None]:
    """Run torch ops on one thread for a while.

    Feature extraction is many tiny STFTs and matmuls: intra-op threads do not speed them up, and when the cores are
    busy (a training step, other processes) OpenMP's spin-waiting makes them an order of magnitude slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _processor_fingerprint(processor: SupernetSpeechProcessor) -> str:
    """Content hash of the processor, stable across runs (pickled tokenizers carry temp paths and warning state):
    our SentencePiece tokenizer's model, or a fast tokenizer's (e.g. Parakeet's) serialized ``tokenizers`` model."""
    tokenizer = processor.tokenizer
    sp_model = getattr(tokenizer, "sp_model", None)
    vocabulary = sp_model.serialized_model_proto() if sp_model is not None else tokenizer.backend_tokenizer.to_str()
    return Hasher.hash(
        (processor.feature_extractor.to_json_string(), vocabulary, getattr(tokenizer, "do_normalize", None))
    )


def _audio_durations(audios: list[dict]) -> list[float]:
    return [len(audio["array"]) / audio["sampling_rate"] for audio in audios]


def _durations_at_most(audios: list[dict], max_duration: float) -> list[bool]:
    return [duration <= max_duration for duration in _audio_durations(audios)]


def _not_longer_than(durations: list[float], max_duration: float) -> list[bool]:
    return [duration <= max_duration for duration in durations]


def _utterance_error(error: ValueError, batch: dict[str, list], indices: list[int]) -> ValueError:
    """The feature extractor's "Utterance <i of the batch> ..." error, naming the utterance by its id (else its row
    in the dataset) instead of its place in a batch the user never sees."""
    match = re.match(r"Utterance (\d+)( of the batch)?", str(error))
    if match is None or int(match[1]) >= len(indices):
        return error
    index = int(match[1])
    ids = batch.get("id")
    name = f"id={ids[index]!r} (row {indices[index]})" if ids is not None else f"in row {indices[index]}"
    return ValueError(f"Utterance {name}{str(error)[match.end():]}")


def _features_and_labels(
    batch: dict[str, list], indices: list[int], processor: SupernetSpeechProcessor
) -> dict[str, list]:
    """``datasets.map`` function: unpadded `input_features`, `labels` and `length` (frames) per example."""
    rates = {audio["sampling_rate"] for audio in batch["audio"]}
    if len(rates) != 1:
        raise ValueError(f"Audio in one batch has several sampling rates {sorted(rates)}; load with one rate.")
    try:
        with single_torch_thread():
            features = processor.feature_extractor(
                [np.asarray(audio["array"], dtype=np.float32) for audio in batch["audio"]],
                sampling_rate=rates.pop(),
                return_tensors="np",
            )
    except ValueError as error:
        raise _utterance_error(error, batch, indices) from None
    lengths = features["attention_mask"].sum(-1).tolist()
    return {
        "input_features": [frames[:length] for frames, length in zip(features["input_features"], lengths)],
        "labels": processor.tokenizer(batch["text"], add_special_tokens=False)["input_ids"],
        "length": lengths,
    }


def _prepare_split(dataset, processor, max_duration, num_proc, batch_size, keep_audio, load_from_cache_file):
    missing = {"audio", "text"} - set(dataset.column_names)
    if missing:
        raise ValueError(
            f"prepare_dataset needs `audio` and `text` columns (as load_speech_dataset returns); missing {missing}."
        )
    if max_duration is not None:
        if DURATION_COLUMN in dataset.column_names:
            function, column = _not_longer_than, DURATION_COLUMN
        else:
            function, column = _durations_at_most, "audio"
        dataset = filter_with_count(
            dataset,
            function,
            column,
            f"longer than max_duration={max_duration} s",
            fn_kwargs={"max_duration": max_duration},
            load_from_cache_file=load_from_cache_file,
        )
    fingerprint = Hasher.hash((dataset._fingerprint, _processor_fingerprint(processor), keep_audio, batch_size))
    return dataset.map(
        _features_and_labels,
        batched=True,
        with_indices=True,
        batch_size=batch_size,
        num_proc=num_proc,
        fn_kwargs={"processor": processor},
        remove_columns=[] if keep_audio else ["audio"],
        load_from_cache_file=load_from_cache_file,
        new_fingerprint=fingerprint,
        desc="Computing features and labels",
    )


def prepare_dataset(
    dataset: Dataset | DatasetDict,
    processor: SupernetSpeechProcessor,
    *,
    max_duration: float | None = None,
    num_proc: int | None = None,
    batch_size: int = 16,
    keep_audio: bool = False,
    load_from_cache_file: bool | None = None,
) -> Dataset | DatasetDict:
    """Add model inputs to a dataset from :func:`~hf_supernet.data.load_speech_dataset` (cached ``datasets.map``).

    Adds `input_features` (`(frames, bins)` per example, unpadded), `labels` (token ids of `text`) and `length`
    (number of feature frames, for length-grouped batching). Utterances longer than `max_duration` seconds are
    dropped first, with the count logged. Pair with :func:`filter_ctc_feasible` to drop utterances whose labels do
    not fit the model's output length.

    Args:
        dataset (`Dataset` or `DatasetDict`): with `audio` (``{"array", "sampling_rate"}``) and `text` columns.
        processor ([`SupernetSpeechProcessor`]): feature extractor + tokenizer.
        max_duration (`float`, *optional*): longest utterance kept, in seconds.
        num_proc (`int`, *optional*): worker processes for `map`.
        batch_size (`int`, *optional*, defaults to 16): utterances per feature-extractor call.
        keep_audio (`bool`, *optional*, defaults to `False`): keep the `audio` column (it is large).
        load_from_cache_file (`bool`, *optional*): `False` recomputes instead of reusing the `datasets` cache.
    """
    options = dict(
        processor=processor,
        max_duration=max_duration,
        num_proc=num_proc,
        batch_size=batch_size,
        keep_audio=keep_audio,
        load_from_cache_file=load_from_cache_file,
    )
    if isinstance(dataset, DatasetDict):
        return DatasetDict({name: _prepare_split(part, **options) for name, part in dataset.items()})
    return _prepare_split(dataset, **options)


def ctc_min_output_length(labels: list[int]) -> int:
    """Fewest output frames CTC needs for `labels`: one per label plus a blank between equal neighbours."""
    return len(labels) + sum(1 for left, right in zip(labels, labels[1:]) if left == right)


def _ctc_feasible(labels: list[list[int]], lengths: list[int], output_length_fn: Callable[[int], int]) -> list[bool]:
    return [
        int(output_length_fn(int(length))) >= ctc_min_output_length([i for i in ids if i >= 0])
        for ids, length in zip(labels, lengths)
    ]


def filter_ctc_feasible(
    dataset: Dataset | DatasetDict,
    output_length_fn: Callable[[int], int],
    *,
    label_column: str = "labels",
    length_column: str = "length",
    load_from_cache_file: bool | None = None,
) -> Dataset | DatasetDict:
    """Drop utterances whose labels cannot be aligned by CTC to the model's output frames (count logged).

    CTC needs at least :func:`ctc_min_output_length` output frames; with infeasible targets the loss is infinite
    (or zeroed by `ctc_zero_infinity`, wasting the utterance silently).

    Args:
        dataset (`Dataset` or `DatasetDict`): from :func:`prepare_dataset` (`labels` and `length` columns).
        output_length_fn (`Callable[[int], int]`): feature frames → model output frames, e.g.
            ``model._get_feat_extract_output_lengths`` or ``lambda frames: frames // 4`` for 4x subsampling.
        label_column (`str`, *optional*, defaults to `"labels"`): column of token ids.
        length_column (`str`, *optional*, defaults to `"length"`): column of feature frame counts.
        load_from_cache_file (`bool`, *optional*): passed to `datasets.filter`.
    """
    if isinstance(dataset, DatasetDict):
        return DatasetDict(
            {
                name: filter_ctc_feasible(
                    part,
                    output_length_fn,
                    label_column=label_column,
                    length_column=length_column,
                    load_from_cache_file=load_from_cache_file,
                )
                for name, part in dataset.items()
            }
        )
    return filter_with_count(
        dataset,
        _ctc_feasible,
        [label_column, length_column],
        "labels longer than the CTC output length allows",
        fn_kwargs={"output_length_fn": output_length_fn},
        load_from_cache_file=load_from_cache_file,
    )


# --------------------------------------------------------------------------------------------------------------
# Collator
# --------------------------------------------------------------------------------------------------------------


def _audio_array_and_rate(audio: Any) -> tuple[np.ndarray, int | None]:
    if isinstance(audio, dict):
        return np.asarray(audio["array"], dtype=np.float32), audio.get("sampling_rate")
    return np.asarray(audio, dtype=np.float32), None


@dataclass
class DataCollatorCTCWithPadding:
    """Pad speech examples into a CTC batch: `input_features`, `attention_mask` and `labels`.

    Examples are either precomputed (`input_features` + optional `labels`, from :func:`prepare_dataset`) or raw
    (`audio` + optional `text`, from :func:`~hf_supernet.data.load_speech_dataset`), in which case the processor runs
    here. Features are padded with 0 and `attention_mask` marks the valid frames; labels are padded with -100 (the
    index CTC loss ignores). Other columns are ignored.

    SpecAugment is applied only when `spec_augment` is set and the collator is in training mode (`train()`, the
    default; `eval()` switches it off). `Trainer` uses one collator for training and evaluation, so add
    ``SpecAugmentCallback(collator)`` to its callbacks to keep evaluation batches clean.

    Args:
        processor ([`SupernetSpeechProcessor`]): feature extractor + tokenizer.
        padding (`bool` or `str`, *optional*, defaults to `True`): padding strategy (`True`/`"longest"`).
        pad_to_multiple_of (`int`, *optional*): round the padded frame count up to a multiple of this.
        spec_augment ([`SpecAugmentConfig`] or `dict`, *optional*): SpecAugment settings; `None` disables it.
        seed (`int`, *optional*, defaults to 0): seed of the SpecAugment generator. In DataLoader workers it is
            added to the seed torch gives each worker, so workers and epochs draw different masks (reproducibly
            under a fixed torch seed, e.g. `TrainingArguments.seed`).
    """

    processor: SupernetSpeechProcessor
    padding: bool | str = True
    pad_to_multiple_of: int | None = None
    spec_augment: SpecAugmentConfig | dict | None = None
    seed: int = 0
    training: bool = True
    _generator: torch.Generator | None = field(default=None, init=False, repr=False)
    _generator_key: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if isinstance(self.spec_augment, dict):
            self.spec_augment = SpecAugmentConfig(**self.spec_augment)

    def train(self, mode: bool = True) -> DataCollatorCTCWithPadding:
        """Switch SpecAugment on (`mode=True`) or off, like `nn.Module.train`."""
        self.training = mode
        return self

    def eval(self) -> DataCollatorCTCWithPadding:
        """Switch SpecAugment off."""
        return self.train(False)

    def _spec_augment_generator(self) -> torch.Generator:
        # Each DataLoader worker process gets a copy of this collator; torch gives every worker (per epoch) its own
        # seed, so seeding from it keeps workers and epochs from repeating each other's masks.
        worker = torch.utils.data.get_worker_info()
        key = worker.seed if worker is not None else None
        if self._generator is None or self._generator_key != key:
            seed = self.seed if key is None else (self.seed + key) % 2**63
            self._generator = torch.Generator().manual_seed(seed)
            self._generator_key = key
        return self._generator

    def _features_of_audio(self, examples: list[dict]) -> list[np.ndarray]:
        """Unpadded `(frames, bins)` features of each example's `audio`, computed with the processor."""
        feature_extractor = self.processor.feature_extractor
        arrays, rates = zip(*(_audio_array_and_rate(e["audio"]) for e in examples))
        known_rates = {rate for rate in rates if rate is not None}
        if len(known_rates) > 1:
            raise ValueError(f"Audio in one batch has several sampling rates {sorted(known_rates)}.")
        with single_torch_thread():
            features = feature_extractor(
                list(arrays),
                sampling_rate=known_rates.pop() if known_rates else feature_extractor.sampling_rate,
                return_tensors="np",
            )
        lengths = features["attention_mask"].sum(-1)
        return [frames[:length] for frames, length in zip(features["input_features"], lengths)]

    def _pad_features(self, examples: list[dict]) -> BatchFeature:
        if "input_features" in examples[0]:
            features = [np.asarray(e["input_features"], dtype=np.float32) for e in examples]
        elif "audio" in examples[0]:
            features = self._features_of_audio(examples)
        else:
            raise ValueError(
                f"Examples need `input_features` (prepare_dataset) or `audio` (load_speech_dataset); got keys "
                f"{sorted(examples[0])}. With Trainer, set `remove_unused_columns=False` to keep `audio`/`text`."
            )
        # One padding path for both kinds of examples: zeros after each utterance's last valid frame.
        batch = self.processor.feature_extractor.pad(
            [{"input_features": frames} for frames in features],
            padding=self.padding,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_attention_mask=True,
            return_tensors="pt",
        )
        batch["attention_mask"] = batch["attention_mask"].long()
        return batch

    def _pad_labels(self, examples: list[dict]) -> torch.Tensor | None:
        tokenizer = self.processor.tokenizer
        if "labels" in examples[0]:
            ids = [[i for i in e["labels"] if i != IGNORE_INDEX] for e in examples]
        elif "text" in examples[0]:
            ids = tokenizer([e["text"] for e in examples], add_special_tokens=False)["input_ids"]
        else:
            return None
        padded = tokenizer.pad({"input_ids": ids}, padding=self.padding, return_tensors="pt")
        return padded["input_ids"].masked_fill(padded["attention_mask"].ne(1), IGNORE_INDEX)

    def __call__(self, examples: list[dict]) -> BatchFeature:
        batch = self._pad_features(examples)
        labels = self._pad_labels(examples)
        if labels is not None:
            batch["labels"] = labels
        if self.spec_augment is not None and self.training:
            batch["input_features"] = spec_augment(
                batch["input_features"],
                batch["attention_mask"],
                self.spec_augment,
                generator=self._spec_augment_generator(),
            )
        return batch


class SpecAugmentCallback(TrainerCallback):
    """Keeps a collator's SpecAugment on for `Trainer` training batches and off for evaluation/prediction batches.

    The collator starts in eval mode (so `trainer.evaluate()` before training, or `eval_on_start`, sees clean
    features); it is switched on at the start of each epoch and each optimizer step, off when a step or epoch ends
    with an evaluation scheduled, and off when training ends. Switching back on at the next step, rather than in
    `on_evaluate`, keeps evaluation clean however many `evaluate()` calls one evaluation makes (`SupernetTrainer`
    evaluates several subnets); the price is that the first training batch fetched after an evaluation is not
    augmented. The mode is read when a DataLoader iterator starts its workers, so this also holds with
    `dataloader_num_workers > 0`.
    """

    def __init__(self, collator: DataCollatorCTCWithPadding):
        self.collator = collator.eval()

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.train()

    def on_step_begin(self, args, state, control, **kwargs):
        self.collator.train()

    def _eval_if_evaluation_is_next(self, control):
        if control.should_evaluate:
            self.collator.eval()

    def on_step_end(self, args, state, control, **kwargs):
        self._eval_if_evaluation_is_next(control)

    def on_epoch_end(self, args, state, control, **kwargs):
        self._eval_if_evaluation_is_next(control)

    def on_train_end(self, args, state, control, **kwargs):
        self.collator.eval()
