"""prepare_dataset, filter_ctc_feasible, DataCollatorCTCWithPadding and SpecAugment."""

import logging

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import TrainerControl, TrainerState, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from hf_supernet.data import (
    DataCollatorCTCWithPadding,
    SpecAugmentCallback,
    SpecAugmentConfig,
    build_processor,
    ctc_min_output_length,
    filter_ctc_feasible,
    load_speech_dataset,
    prepare_dataset,
    spec_augment,
    train_tokenizer,
)

DIGITS = "zero one two three four five six seven eight nine".split()


def noise(seconds, seed):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * 16000))).astype(np.float32)


@pytest.fixture(scope="module")
def processor():
    return build_processor(train_tokenizer(DIGITS, model_type="char"))


@pytest.fixture(scope="module")
def speech():
    """Five in-memory utterances of 0.3–1.1 s, through load_speech_dataset."""
    seconds = [0.5, 1.1, 0.3, 0.8, 0.6]
    raw = Dataset.from_dict(
        {
            "audio": [{"array": noise(s, i), "sampling_rate": 16000} for i, s in enumerate(seconds)],
            "text": ["One", "two three", "four", "five six seven", "eight"],
            "id": [f"u{i}" for i in range(5)],
        }
    )
    return load_speech_dataset(raw)


@pytest.fixture(scope="module")
def prepared(speech, processor):
    return prepare_dataset(speech, processor)


# ---------------------------------------------------------------------------------------------------- preparation


def test_prepare_dataset_adds_features_labels_and_length(speech, prepared, processor):
    assert {"input_features", "labels", "length", "text", "id"} <= set(prepared.column_names)
    assert "audio" not in prepared.column_names
    for example, source in zip(prepared, speech):
        features = np.asarray(example["input_features"])
        assert features.shape == (example["length"], 80)
        assert example["length"] == len(source["audio"]["array"]) // 160
        assert processor.tokenizer.decode(example["labels"], group_tokens=False) == source["text"]
    reference = processor.feature_extractor(speech[1]["audio"]["array"], sampling_rate=16000, return_tensors="np")
    np.testing.assert_allclose(
        prepared[1]["input_features"], reference["input_features"][0, : prepared[1]["length"]], atol=1e-5
    )


def test_prepare_dataset_filters_long_utterances_with_a_logged_count(speech, processor, caplog):
    with caplog.at_level(logging.WARNING):
        prepared = prepare_dataset(speech, processor, max_duration=0.7)
    assert prepared["id"] == ["u0", "u2", "u4"]
    assert "Filtered out 2 of 5 utterances: longer than max_duration=0.7 s" in caplog.text


def test_ctc_min_output_length_counts_blanks_between_repeats():
    assert ctc_min_output_length([]) == 0
    assert ctc_min_output_length([3, 4, 5]) == 3
    assert ctc_min_output_length([3, 3, 4, 4, 4]) == 8


def test_filter_ctc_feasible_drops_labels_longer_than_the_output(prepared, caplog):
    # 16x subsampling leaves some of these utterances fewer output frames than labels; 4x leaves all enough.
    output_length = lambda frames: frames // 16  # noqa: E731
    expected = [
        example["id"]
        for example in prepared
        if example["length"] // 16 >= ctc_min_output_length(example["labels"])
    ]
    assert 0 < len(expected) < len(prepared)
    with caplog.at_level(logging.WARNING):
        feasible = filter_ctc_feasible(prepared, output_length)
    assert feasible["id"] == expected
    assert f"Filtered out {len(prepared) - len(expected)} of {len(prepared)} utterances: labels longer" in caplog.text
    assert len(filter_ctc_feasible(prepared, lambda frames: frames // 4)) == len(prepared)


def test_length_column_works_with_transformers_length_grouped_sampler(prepared):
    sampler = LengthGroupedSampler(batch_size=2, lengths=prepared["length"], generator=torch.Generator().manual_seed(0))
    order = list(sampler)
    assert sorted(order) == list(range(len(prepared)))
    assert prepared[order[0]]["length"] == max(prepared["length"])  # transformers puts the longest batch first


# ---------------------------------------------------------------------------------------------------- collator


def test_collator_pads_precomputed_features_with_zeros_and_labels_with_minus_100(prepared, processor):
    examples = [prepared[i] for i in range(3)]
    batch = DataCollatorCTCWithPadding(processor)(examples)
    lengths = [example["length"] for example in examples]
    assert batch["input_features"].shape == (3, max(lengths), 80)
    assert batch["attention_mask"].tolist() == [[1] * n + [0] * (max(lengths) - n) for n in lengths]
    label_width = max(len(example["labels"]) for example in examples)
    for row, example in enumerate(examples):
        n, ids = example["length"], example["labels"]
        torch.testing.assert_close(batch["input_features"][row, :n], torch.tensor(example["input_features"]))
        assert torch.all(batch["input_features"][row, n:] == 0)
        assert batch["labels"][row].tolist() == ids + [-100] * (label_width - len(ids))
    rounded = DataCollatorCTCWithPadding(processor, pad_to_multiple_of=16)(examples)
    assert rounded["input_features"].shape[1] % 16 == 0 and rounded["input_features"].shape[1] >= max(lengths)
    torch.testing.assert_close(rounded["attention_mask"].sum(-1), torch.tensor(lengths))


def test_collator_runs_the_processor_on_audio_and_text(speech, prepared, processor):
    on_the_fly = DataCollatorCTCWithPadding(processor)([speech[i] for i in range(4)])
    precomputed = DataCollatorCTCWithPadding(processor)([prepared[i] for i in range(4)])
    assert set(on_the_fly) == {"input_features", "attention_mask", "labels"}
    torch.testing.assert_close(on_the_fly["attention_mask"], precomputed["attention_mask"])
    torch.testing.assert_close(on_the_fly["labels"], precomputed["labels"])
    mask = on_the_fly["attention_mask"].bool()
    torch.testing.assert_close(on_the_fly["input_features"][mask], precomputed["input_features"][mask], atol=1e-4,
                               rtol=0)


def test_collator_without_transcripts_returns_no_labels(speech, processor):
    batch = DataCollatorCTCWithPadding(processor)([{"audio": speech[0]["audio"]}])
    assert "labels" not in batch


def test_collator_rejects_examples_without_audio_or_features(processor):
    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        DataCollatorCTCWithPadding(processor)([{"text": "one"}])


def test_collator_applies_spec_augment_only_in_training_mode(prepared, processor):
    examples = [prepared[i] for i in range(4)]
    clean = DataCollatorCTCWithPadding(processor)(examples)["input_features"]
    collator = DataCollatorCTCWithPadding(processor, spec_augment={"mask_time_prob": 0.3, "mask_feature_prob": 0.2})
    assert isinstance(collator.spec_augment, SpecAugmentConfig)
    augmented = collator(examples)["input_features"]
    assert not torch.equal(augmented, clean)
    assert torch.all((augmented == clean) | (augmented == 0))
    torch.testing.assert_close(collator.eval()(examples)["input_features"], clean)


def test_spec_augment_callback_switches_the_collator_around_evaluation(processor):
    collator = DataCollatorCTCWithPadding(processor, spec_augment=SpecAugmentConfig())
    callback = SpecAugmentCallback(collator)
    args, state, control = TrainingArguments(output_dir="unused", report_to=[]), TrainerState(), TrainerControl()
    assert not collator.training  # trainer.evaluate() before training sees clean features
    callback.on_train_begin(args, state, control)
    assert not collator.training  # eval_on_start runs here
    callback.on_epoch_begin(args, state, control)
    callback.on_step_begin(args, state, control)
    assert collator.training
    callback.on_step_end(args, state, control)
    assert collator.training  # no evaluation scheduled
    control.should_evaluate = True
    callback.on_step_end(args, state, control)
    assert not collator.training
    for _ in range(3):  # SupernetTrainer.evaluate runs one Trainer.evaluate per subnet
        callback.on_evaluate(args, state, control)
        assert not collator.training
    control.should_evaluate = False
    callback.on_step_begin(args, state, control)
    assert collator.training
    control.should_evaluate = True
    callback.on_epoch_end(args, state, control)
    assert not collator.training
    callback.on_epoch_begin(args, state, control)  # before the next epoch's DataLoader iterator starts
    assert collator.training
    callback.on_train_end(args, state, control)
    assert not collator.training


# ---------------------------------------------------------------------------------------------------- SpecAugment


def padded_ones(lengths, bins=20):
    """Features of 1 on valid frames *and* on padding, so a mask written into the padding would show."""
    frames = max(lengths)
    mask = (torch.arange(frames)[None, :] < torch.tensor(lengths)[:, None]).long()
    return torch.ones(len(lengths), frames, bins), mask


def test_spec_augment_time_masks_fall_inside_valid_frames_only():
    features, mask = padded_ones([30, 100, 55])
    config = SpecAugmentConfig(mask_time_prob=0.5, mask_time_length=7, mask_time_min_masks=1)
    for seed in range(20):
        out = spec_augment(features, mask, config, generator=torch.Generator().manual_seed(seed))
        masked_frames = (out == 0).all(-1)
        assert masked_frames.any(-1).all()  # every utterance got at least one time mask
        assert not (masked_frames & ~mask.bool()).any()
        assert torch.all(out[~mask.bool()] == 1)


def test_spec_augment_masks_whole_bands_on_valid_frames():
    features, mask = padded_ones([40, 25], bins=30)
    config = SpecAugmentConfig(mask_time_prob=0.0, mask_time_min_masks=0, mask_feature_prob=0.3,
                               mask_feature_length=4, mask_feature_min_masks=1)
    out = spec_augment(features, mask, config, generator=torch.Generator().manual_seed(0))
    for row, length in enumerate([40, 25]):
        zero_bins = (out[row, :length] == 0).all(0)
        assert 4 <= int(zero_bins.sum()) < 30
        assert torch.all(out[row, :length][:, ~zero_bins] == 1)
        assert torch.all(out[row, length:] == 1)


def test_spec_augment_masks_the_expected_fraction():
    features, mask = padded_ones([1000] * 8)
    config = SpecAugmentConfig(mask_time_prob=0.2, mask_time_length=10, mask_time_min_masks=0)
    out = spec_augment(features, mask, config, generator=torch.Generator().manual_seed(0))
    fraction = (out == 0).all(-1).float().mean().item()
    assert 0.12 < fraction <= 0.2  # spans overlap, so a little under mask_time_prob


def test_spec_augment_is_deterministic_for_a_seed():
    features, mask = padded_ones([80, 60])
    config = SpecAugmentConfig(mask_time_prob=0.2, mask_feature_prob=0.2, mask_feature_length=3)
    first = spec_augment(features, mask, config, generator=torch.Generator().manual_seed(7))
    again = spec_augment(features, mask, config, generator=torch.Generator().manual_seed(7))
    other = spec_augment(features, mask, config, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_spec_augment_config_validates_and_reads_model_configs():
    with pytest.raises(ValueError, match="mask_time_prob"):
        SpecAugmentConfig(mask_time_prob=1.5)
    from transformers import Wav2Vec2Config

    config = SpecAugmentConfig.from_model_config(Wav2Vec2Config(mask_time_prob=0.1, mask_feature_length=7))
    assert config.mask_time_prob == 0.1 and config.mask_feature_length == 7
