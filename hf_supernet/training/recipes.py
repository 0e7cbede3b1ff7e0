"""A recipe that learns spoken digits in minutes on 2 CPU cores, shared by the quickstart and the benchmarks.

The quickstart, the method comparison and the supernet-vs-separate benchmark must train the *same* way for their
numbers to be comparable, so the data split, model size and training arguments live here once:

- data: FSDD (the bundled subset, or any folder/name :func:`~hf_supernet.load_speech_dataset` takes, e.g. the staged
  ``../shared/data/fsdd``), 10% of the train split held out as a dev split for search — as isolated clips
  (:func:`load_digits`, the method comparisons) or as connected-digit strings built on the fly with pauses, silence
  and noise (:func:`load_connected_digits`, the quickstart: what a person's own recording sounds like);
- a character tokenizer (10 words, 15 letters and the space), the one the benchmarks compare on; the quickstart's
  default is one piece per digit word (``load_connected_digits(tokenizer_model_type="word")``) with 8x subsampling;
- a 4 x 144 Conformer (FFN 576, kernel 15, ~2.2 M parameters: the size of the 2.5 M-parameter Parakeet baseline);
- AdamW at 2e-3 with 100 warm-up steps and linear decay, batches of 32 grouped by length (connected strings: batches
  of 16 drawn at random), SpecAugment (5% time and frequency masks), sandwich with TODM's quarter batch split and KL
  distillation.

:func:`recipe_trainer_class` adds the Mini LibriSpeech recipe's SortaGrad sampling and Eden schedule to a trainer.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import Trainer

from ..data import (
    ConnectedDigits,
    ConnectedDigitsConfig,
    DataCollatorCTCWithPadding,
    build_processor,
    filter_ctc_feasible,
    load_speech_dataset,
    prepare_dataset,
    train_tokenizer,
)
from ..models.supernet_conformer import SupernetConformerConfig
from .arguments import SupernetTrainingArguments
from .optim import get_eden_schedule
from .samplers import SortaGradSampler

SPEC_AUGMENT = {"mask_time_prob": 0.05, "mask_feature_prob": 0.05}


@dataclass
class SpeechData:
    """Prepared splits, the processor that made them and a training collator."""

    train: Any
    dev: Any
    test: Any
    processor: Any
    collator: DataCollatorCTCWithPadding

    # Connected-digit strings built from the test recordings (``None`` for corpora of sentences): the recordings a
    # person makes — several digits, pauses, silence, noise.
    test_connected: Any = None

    @property
    def tokenizer(self):
        return self.processor.tokenizer


def load_digits(
    source: str = "fsdd",
    seed: int = 0,
    smoke: bool = False,
    spec_augment: bool = True,
    make_processor: Callable[[list[str]], Any] | None = None,
) -> SpeechData:
    """FSDD from ``source`` split into train/dev/test, a character tokenizer trained on train, features computed.

    ``smoke`` keeps every 20th train and 10th test utterance (a pipeline check in seconds). ``make_processor`` builds
    the processor from the training transcripts instead (e.g. :func:`~hf_supernet.data.build_parakeet_processor`, or
    a function returning a pretrained checkpoint's own processor)."""
    splits = load_speech_dataset(source)
    train, test = splits["train"], splits["test"]
    if smoke:
        train, test = train.select(range(0, len(train), 20)), test.select(range(0, len(test), 10))
    held_out = train.train_test_split(test_size=0.1, seed=seed)
    train, dev = held_out["train"], held_out["test"]
    if make_processor is None:
        processor = build_processor(train_tokenizer(train["text"], model_type="char"))
    else:
        processor = make_processor(train["text"])
    train, dev, test = (prepare_dataset(d, processor) for d in (train, dev, test))
    collator = DataCollatorCTCWithPadding(processor, spec_augment=SPEC_AUGMENT if spec_augment and not smoke else None)
    return SpeechData(train, dev, test, processor, collator)


# Training strings are shorter than the test's (at most 5 digits, at most half a second of edge silence): a step
# costs about the audio it holds, and the quickstart has minutes; the model still meets silence, noise, pauses and
# several words in every batch.
CONNECTED_TRAIN = ConnectedDigitsConfig(min_digits=1, max_digits=5, edge_silence_seconds=(0.0, 0.5))
# The connected test: 2-7 digits with 0-1 s of silence around them and noise at 5-30 dB SNR (ConnectedDigitsConfig's
# defaults, the recordings a person makes of a PIN or a phone number).
CONNECTED_TEST = ConnectedDigitsConfig(min_digits=2)
# Fixed seeds of the connected dev/test sets, the same for every run seed, so runs are scored on the same strings.
CONNECTED_DEV_SEED, CONNECTED_TEST_SEED = 2000, 3000
# The first stage of train_on="isolated_then_connected": one clean recording as it is (no silence, noise, speed or
# gain), drawn at random. From scratch, connected strings left the quickstart's model and the claims benchmark's on the
# CTC blank plateau for hundreds of steps, where isolated clips did not (README, Results); a model that already spells
# the digits learns the pauses and the space from the strings.
ISOLATED_TRAIN = ConnectedDigitsConfig(min_digits=1, max_digits=1, pause_seconds=(0.0, 0.0),
                                       edge_silence_seconds=(0.0, 0.0), noise_probability=0.0, gain_db=(0.0, 0.0),
                                       speed=(1.0, 1.0))
# train_on="isolated_augmented": one recording, drawn at random, half of the time as recorded (FSDD's trimmed clean
# clip) and half with the connected strings' silence around it (up to 0.5 s a side, as CONNECTED_TRAIN), noise, gain
# and speed: what a person's recording of one digit adds, without the several words the model cannot learn in the
# quickstart's minutes. (Without the clean half, a pilot run of the quickstart lost the clean clips: 63% WER.)
ISOLATED_AUGMENTED = dataclasses.replace(CONNECTED_TRAIN, min_digits=1, max_digits=1, clean_probability=0.5)
# train_on="short_strings": as isolated_augmented, but strings of one to three recordings (uniformly): the strings
# teach the space and the next word, which single clips never do, at about twice a clip's audio rather than the 1-5
# digit strings' three times. In single-seed pilots of the quickstart (outside the repository), up to two digits lost
# much on single clips, up to four lost single clips for a little on strings; the measured default is in README.
SHORT_STRINGS = dataclasses.replace(ISOLATED_AUGMENTED, max_digits=3)
# The train_on modes drawn on the fly from one config, whose dev items are drawn the same way (the search and early
# stopping score on what the model learns).
ON_THE_FLY_TRAIN = {"isolated_augmented": ISOLATED_AUGMENTED, "short_strings": SHORT_STRINGS}
TRAIN_ON = ("connected", "isolated", "isolated_then_connected", "isolated_augmented", "short_strings")


def load_connected_digits(
    source: str = "fsdd",
    seed: int = 0,
    smoke: bool = False,
    spec_augment: bool = True,
    num_dev: int = 200,
    num_test: int = 200,
    train_config: ConnectedDigitsConfig = CONNECTED_TRAIN,
    test_config: ConnectedDigitsConfig = CONNECTED_TEST,
    train_on: str = "connected",
    isolated_items: int = 0,
    split_seed: int | None = None,
    tokenizer_model_type: str = "char",
) -> SpeechData:
    """Spoken digits for a model that must work on a person's own recording.

    - ``train``: :class:`~hf_supernet.data.ConnectedDigits` strings drawn on the fly from 90% of the train recordings
      (raw audio: the collator computes features per batch; every index is a new string), or with
      ``train_on="isolated"`` those recordings as they are (features computed, a ``length`` column), or with
      ``train_on="isolated_augmented"`` single recordings drawn on the fly, half as recorded and half with silence,
      noise, gain and speed (:data:`ISOLATED_AUGMENTED`), or with ``train_on="short_strings"`` one to three
      recordings drawn so (:data:`SHORT_STRINGS`), or with ``train_on="isolated_then_connected"`` a
      curriculum: ``isolated_items`` clean recordings drawn at random (:data:`ISOLATED_TRAIN`), then connected
      strings. The stages follow the item index, so the trainer must read the items in order:
      ``TrainingArguments(train_sampling_strategy="sequential")`` (each item is a fresh random draw, so the order is
      as random as a shuffled one);
    - ``dev``: ``num_dev`` fixed connected strings from the held-out 10% of the train recordings (search and early
      stopping never see a test recording); with ``train_on="isolated_augmented"`` or ``"short_strings"``, fixed items
      drawn as its training items are;
    - ``test``: the isolated test clips, features computed (the clean score, comparable with earlier tables);
    - ``test_connected``: ``num_test`` fixed connected strings from the test recordings only.

    ``seed`` draws the training strings and, unless ``split_seed`` is given, which tenth of the train recordings is
    held out (several run seeds on the same dev split: pass ``split_seed``). ``tokenizer_model_type``: ``"char"``
    (letters and the space) or ``"word"`` (one piece per digit word, its word boundary included), or any other
    :func:`~hf_supernet.data.train_tokenizer` model type, trained on the train transcripts. ``smoke`` keeps every
    20th train and 10th test recording and a handful of strings."""
    if train_on not in TRAIN_ON:
        raise ValueError(f"train_on must be one of {TRAIN_ON}, got {train_on!r}.")
    if train_on == "isolated_then_connected" and isolated_items < 1:
        raise ValueError("train_on='isolated_then_connected' needs isolated_items >= 1 (optimizer steps of the "
                         "isolated stage x batch size).")
    splits = load_speech_dataset(source)
    recordings, test_recordings = splits["train"], splits["test"]
    if tokenizer_model_type == "char":
        # The digit words' letters and the space between them (isolated clips have no space).
        tokenizer = train_tokenizer([" ".join(sorted(set(recordings["text"])))], model_type="char")
    else:
        tokenizer = train_tokenizer(recordings["text"], model_type=tokenizer_model_type)
    if smoke:
        recordings = recordings.select(range(0, len(recordings), 20))
        test_recordings = test_recordings.select(range(0, len(test_recordings), 10))
        num_dev, num_test = min(num_dev, 8), min(num_test, 8)
    held_out = recordings.train_test_split(test_size=0.1, seed=seed if split_seed is None else split_seed)
    processor = build_processor(tokenizer)
    if train_on == "isolated":
        train = prepare_dataset(held_out["train"], processor)
    else:
        config = ON_THE_FLY_TRAIN.get(train_on, train_config)
        train = ConnectedDigits(held_out["train"], 64 if smoke else 10**7, config, seed=seed)
    if train_on == "isolated_then_connected":
        # Another seed for the first stage, so its draws are not the connected stage's first picks.
        isolated = ConnectedDigits(held_out["train"], isolated_items, ISOLATED_TRAIN, seed=seed + 1)
        train = torch.utils.data.ConcatDataset([isolated, train])
    # The search and early stopping score on what the model is trained for: a model of single clips is at chance on
    # strings, where every subnet scores alike and a budget's search picks at random.
    dev_config = ON_THE_FLY_TRAIN.get(train_on, test_config)
    dev = ConnectedDigits(held_out["test"], num_dev, dev_config, seed=CONNECTED_DEV_SEED)
    test_connected = ConnectedDigits(test_recordings, num_test, test_config, seed=CONNECTED_TEST_SEED)
    collator = DataCollatorCTCWithPadding(processor, spec_augment=SPEC_AUGMENT if spec_augment and not smoke else None)
    return SpeechData(
        train=train,
        dev=[dev[i] for i in range(len(dev))],
        test=prepare_dataset(test_recordings, processor),
        processor=processor,
        collator=collator,
        test_connected=[test_connected[i] for i in range(len(test_connected))],
    )


def small_conformer_config(tokenizer, smoke: bool = False, **overrides) -> SupernetConformerConfig:
    """4 x 144 Conformer (or a toy 2 x 32 one with ``smoke``); ``overrides`` set any config field (e.g. mask_type)."""
    size = (
        {"hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64, "subsampling_conv_channels": 16}
        if smoke
        else {"hidden_size": 144, "num_hidden_layers": 4, "intermediate_size": 576, "subsampling_conv_channels": 96}
    )
    values = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "num_attention_heads": 4,
        "conv_kernel_size": 15,
        **size,
    }
    values.update(overrides)
    return SupernetConformerConfig(**values)


def small_parakeet_config(tokenizer, num_mel_bins: int = 80, smoke: bool = False):
    """The recipe's Conformer size (4 x 144, FFN 576, kernel 15; a toy 2 x 32 one with ``smoke``) as a transformers
    ``ParakeetCTCConfig``, for training a ``ParakeetForCTC`` from scratch. Its front end subsamples 4x, not
    Parakeet's usual 8x: an isolated digit lasts ~0.4 s, too few 80 ms frames for its letters."""
    from transformers import ParakeetCTCConfig, ParakeetEncoderConfig

    size = (
        {"hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64, "subsampling_conv_channels": 16}
        if smoke
        else {"hidden_size": 144, "num_hidden_layers": 4, "intermediate_size": 576, "subsampling_conv_channels": 96}
    )
    encoder = ParakeetEncoderConfig(
        num_attention_heads=4, conv_kernel_size=15, subsampling_factor=4, num_mel_bins=num_mel_bins, layerdrop=0.0,
        **size,
    )
    return ParakeetCTCConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, encoder_config=encoder.to_dict()
    )


def feasible_train_split(data: SpeechData, model):
    """Drop training utterances whose labels cannot fit the model's output frames (CTC would return inf)."""
    return filter_ctc_feasible(data.train, model._get_feat_extract_output_lengths)


def digits_training_arguments(
    output_dir: str, max_steps: int, seed: int = 0, smoke: bool = False, **overrides
) -> SupernetTrainingArguments:
    """The recipe's training arguments; ``overrides`` replace any of them (e.g. ``sandwich_batch_split``)."""
    values = {
        "output_dir": output_dir,
        "per_device_train_batch_size": 32,
        "max_steps": 3 if smoke else max_steps,
        "learning_rate": 2e-3,
        "warmup_steps": 0 if smoke else 100,
        "lr_scheduler_type": "linear",
        "weight_decay": 0.01,
        "num_random_subnets": 2,
        "sandwich_batch_split": "quarter",
        "distillation": "kl",
        "logging_steps": 50,
        # Batches of similar lengths: less padding, so more audio per second of CPU.
        "train_sampling_strategy": "group_by_length",
        "length_column_name": "length",
        "remove_unused_columns": False,
        "save_strategy": "no",
        "report_to": [],
        "seed": seed,
        "dataloader_num_workers": 0,
        "use_cpu": not torch.cuda.is_available(),
    }
    values.update(overrides)
    return SupernetTrainingArguments(**values)


def staged_or_bundled_fsdd(repo_root: str | os.PathLike) -> str:
    """The full staged FSDD (``../shared/data/fsdd`` beside the repository, 2700 train recordings) when it is there,
    else the bundled subset (1680)."""
    staged = os.path.join(os.path.dirname(os.path.abspath(repo_root)), "shared", "data", "fsdd")
    return staged if os.path.isdir(staged) else "fsdd"


def recipe_trainer_class(base: type[Trainer], recipe) -> type[Trainer]:
    """``base`` (Trainer or SupernetTrainer) with the recipe's sampler and Eden schedule. ``recipe`` carries the
    settings (e.g. the parsed arguments of ``scripts/recipe_mini_librispeech.py``): ``sortagrad``, ``batch_size``,
    ``seed`` (:class:`~hf_supernet.training.samplers.SortaGradSampler` over the dataset's ``length`` column) and
    ``schedule`` (``"eden"``: :func:`~hf_supernet.training.optim.get_eden_schedule` with ``eden_lr_batches``,
    ``eden_lr_epochs``, ``warmup_steps``; anything else: the trainer's own)."""

    class RecipeTrainer(base):
        def _get_train_sampler(self, train_dataset=None):
            if recipe.sortagrad:
                return SortaGradSampler(self.train_dataset["length"], recipe.batch_size, recipe.seed)
            return super()._get_train_sampler(train_dataset)

        def create_scheduler(self, num_training_steps, optimizer=None):
            if recipe.schedule != "eden":
                return super().create_scheduler(num_training_steps, optimizer)
            if self.lr_scheduler is None:
                steps_per_epoch = math.ceil(len(self.train_dataset) / recipe.batch_size)
                self.lr_scheduler = get_eden_schedule(
                    optimizer or self.optimizer, recipe.eden_lr_batches, recipe.eden_lr_epochs, recipe.warmup_steps,
                    steps_per_epoch=steps_per_epoch,
                )
            return self.lr_scheduler

    return RecipeTrainer
