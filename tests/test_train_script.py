"""`scripts/train.py`'s model arguments: the sizing flags and `--config_overrides` for every other config field."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoProcessor, ParakeetForCTC, ParakeetProcessor

from hf_supernet import SupernetConformerForCTC

from .test_parakeet import DIGIT_CHARACTERS, fsdd_manifest, tiny_parakeet, tiny_parakeet_processor

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"


class FakeTokenizer:
    pad_token_id = 0

    def __len__(self):
        return 13


@pytest.fixture(scope="module")
def train_script():
    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_config_overrides_set_any_config_field(train_script):
    overrides = {"mask_type": "orthosoftmax", "orthosoftmax_stage1_steps": 7, "orthosoftmax_budgets": [0.5, 0.75]}
    model_args, _, _, _ = train_script.parse_args(
        ["--output_dir", "x", "--num_hidden_layers", "3", "--dropout", "0.2", "--config_overrides", json.dumps(overrides)]
    )
    config = train_script.config_from_arguments(model_args, FakeTokenizer())
    assert (config.mask_type, config.orthosoftmax_stage1_steps) == ("orthosoftmax", 7)
    assert config.orthosoftmax_budgets[:2] == [0.5, 0.75]  # the config appends the full budget
    assert (config.num_hidden_layers, config.vocab_size, config.attention_dropout) == (3, 13, 0.2)


def test_spec_augment_flags_set_the_model_config_as_in_wav2vec2(train_script):
    model_args, _, _, _ = train_script.parse_args(["--output_dir", "x", "--mask_time_prob", "0.1"])
    config = train_script.config_from_arguments(model_args, FakeTokenizer())
    assert (config.mask_time_prob, config.mask_feature_prob) == (0.1, 0.05)


def test_config_overrides_from_a_json_config_file(train_script, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"output_dir": "x", "config_overrides": {"mask_type": "folding", "num_physical_layers": 2}}))
    model_args, _, _, _ = train_script.parse_args([str(path)])
    assert train_script.config_from_arguments(model_args, FakeTokenizer()).num_physical_layers == 2


@pytest.mark.parametrize(
    "overrides, message",
    [('{"orthosoftmax_stage_steps": 5}', "orthosoftmax_stage_steps.*not SupernetConformerConfig fields"),
     ("stage1=5", "must be a JSON object"),
     ("[1, 2]", "must be a JSON object")],
)
def test_bad_config_overrides_say_what_is_wrong(train_script, overrides, message):
    model_args, _, _, _ = train_script.parse_args(["--output_dir", "x", "--config_overrides", overrides])
    with pytest.raises(ValueError, match=message):
        train_script.config_from_arguments(model_args, FakeTokenizer())


def test_train_script_fine_tunes_a_parakeet_checkpoint_with_its_processor(train_script, tmp_path):
    """`scripts/train.py --init_from_parakeet PATH`: the supernet starts from the checkpoint, trains on its processor's
    features and labels, and is saved with that processor; its subnets are stock ParakeetForCTC models."""
    data = fsdd_manifest(tmp_path / "data", {"train": 12, "test": 4})
    processor = tiny_parakeet_processor(DIGIT_CHARACTERS)
    source = tiny_parakeet(8, vocab_size=len(processor.tokenizer))
    checkpoint = tmp_path / "parakeet"
    source.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)

    out = tmp_path / "out"
    trainer = train_script.main([
        "--init_from_parakeet", str(checkpoint), "--dataset", str(data), "--output_dir", str(out),
        "--max_steps", "2", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
        "--report_to", "none", "--save_strategy", "no", "--num_random_subnets", "1",
        "--config_overrides", '{"layer_drop_choices": [0, 1]}',
    ])
    model = trainer.model
    assert model.config.architecture == "parakeet" and model.config.layer_drop_choices == [0, 1]
    assert (model.config.mask_time_prob, model.config.mask_feature_prob) == (0.05, 0.05)  # SpecAugment in the model
    assert trainer.data_collator.spec_augment is None
    assert trainer.state.global_step == 2
    assert type(AutoProcessor.from_pretrained(out)) is ParakeetProcessor
    saved = SupernetConformerForCTC.from_pretrained(out)
    assert type(saved.extract_subnet(saved.subnet_space.smallest())) is ParakeetForCTC
    # It trained: the weights moved away from the checkpoint's.
    assert not torch.equal(saved.lm_head.weight, source.ctc_head.weight.squeeze(-1))
