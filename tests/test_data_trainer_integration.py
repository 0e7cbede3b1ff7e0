"""The data pipeline end to end with transformers' Trainer: bundled FSDD, prepare, collate, train/evaluate, WER."""

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import Trainer, TrainingArguments  # noqa: E402

from hf_supernet import SupernetConformerConfig, SupernetConformerForCTC  # noqa: E402
from hf_supernet.data import (  # noqa: E402
    DataCollatorCTCWithPadding,
    SpecAugmentCallback,
    build_processor,
    filter_ctc_feasible,
    load_speech_dataset,
    prepare_dataset,
    train_tokenizer,
)
from hf_supernet.metrics import make_compute_metrics, preprocess_logits_for_metrics  # noqa: E402


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    cache_dir = str(tmp_path_factory.mktemp("hf_cache"))
    speech = load_speech_dataset("fsdd", "test", cache_dir=cache_dir).select(range(0, 300, 25))
    processor = build_processor(train_tokenizer(speech["text"], model_type="char"), feature_size=16)
    torch.manual_seed(0)
    config = SupernetConformerConfig(
        num_mel_bins=16, subsampling_conv_channels=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, conv_kernel_size=5, vocab_size=len(processor.tokenizer),
        pad_token_id=processor.tokenizer.pad_token_id,
    )
    model = SupernetConformerForCTC(config)
    dataset = filter_ctc_feasible(prepare_dataset(speech, processor), model._get_feat_extract_output_lengths)
    return processor, model, speech, dataset


def arguments(tmp_path, **overrides):
    values = dict(output_dir=str(tmp_path), per_device_eval_batch_size=4, per_device_train_batch_size=4,
                  report_to=[], use_cpu=True, disable_tqdm=True, save_strategy="no", logging_strategy="no")
    values.update(overrides)
    return TrainingArguments(**values)


@pytest.mark.parametrize("keep_logits", [True, False])
def test_trainer_evaluate_reports_wer_and_cer(pipeline, tmp_path, keep_logits):
    processor, model, _, dataset = pipeline
    trainer = Trainer(
        model=model,
        args=arguments(tmp_path),
        eval_dataset=dataset,
        data_collator=DataCollatorCTCWithPadding(processor),
        compute_metrics=make_compute_metrics(processor),
        preprocess_logits_for_metrics=None if keep_logits else preprocess_logits_for_metrics,
    )
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"])
    assert metrics["eval_wer"] >= 0.0 and metrics["eval_cer"] >= 0.0


def test_trainer_trains_on_the_fly_with_length_grouping_and_spec_augment(pipeline, tmp_path):
    processor, model, speech, _ = pipeline
    collator = DataCollatorCTCWithPadding(processor, spec_augment={"mask_time_prob": 0.1, "mask_time_length": 5})
    trainer = Trainer(
        model=model,
        args=arguments(tmp_path, max_steps=2, train_sampling_strategy="group_by_length",
                       length_column_name="duration", remove_unused_columns=False),
        train_dataset=speech,
        data_collator=collator,
        callbacks=[SpecAugmentCallback(collator)],
    )
    result = trainer.train()
    assert result.global_step == 2 and math.isfinite(result.training_loss)
    assert not collator.training  # SpecAugment is off again once training ends


class TwoEvaluationsTrainer(Trainer):
    """Like SupernetTrainer: one evaluation runs Trainer.evaluate several times (once per subnet)."""

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        metrics = super().evaluate(eval_dataset, ignore_keys, f"{metric_key_prefix}_a")
        metrics.update(super().evaluate(eval_dataset, ignore_keys, f"{metric_key_prefix}_b"))
        return metrics


def test_spec_augment_is_off_for_every_evaluation_batch_during_training(pipeline, tmp_path):
    processor, model, speech, dataset = pipeline
    collator = DataCollatorCTCWithPadding(processor, spec_augment={"mask_time_prob": 0.1, "mask_time_length": 5})
    seen = []  # (training batch?, SpecAugment on?) per collated batch

    def spying_collator(examples):
        seen.append(("audio" in examples[0], collator.training))
        return collator(examples)

    trainer = TwoEvaluationsTrainer(
        model=model,
        args=arguments(tmp_path, max_steps=5, eval_strategy="steps", eval_steps=2, remove_unused_columns=False),
        train_dataset=speech,  # raw audio: collated on the fly
        eval_dataset=dataset.select(range(4)),  # precomputed features: tells evaluation batches apart
        data_collator=spying_collator,
        callbacks=[SpecAugmentCallback(collator)],
    )
    trainer.train()
    evaluation = [augmented for is_training, augmented in seen if not is_training]
    training = [augmented for is_training, augmented in seen if is_training]
    # steps 2, 4 (and the last step, in this transformers version) x 2 evaluate() calls x 1 batch
    assert len(evaluation) >= 4 and not any(evaluation)
    assert sum(training) >= len(training) - 2  # at most the first batch after each evaluation is clean
