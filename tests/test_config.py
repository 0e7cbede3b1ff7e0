import pytest

from hf_supernet import SupernetConformerConfig
from hf_supernet.masks.layer_width import default_layer_drop_choices
from hf_supernet.models.supernet_conformer.configuration_supernet_conformer import MASK_TYPES

from .conftest import tiny_conformer_config


def test_unknown_mask_type_lists_valid_values():
    with pytest.raises(ValueError, match="layer_width.*orthosoftmax.*omni_sparsity"):
        SupernetConformerConfig(mask_type="magic")


@pytest.mark.parametrize("mask_type", MASK_TYPES)
def test_every_mask_type_builds_a_model(mask_type):
    from hf_supernet import SupernetConformerForCTC

    model = SupernetConformerForCTC(tiny_conformer_config(mask_type=mask_type))
    assert model.mask.mask_type == mask_type


def test_layer_drop_defaults_scale_todm_to_depth():
    assert default_layer_drop_choices(16) == [0, 3, 7]
    assert default_layer_drop_choices(4) == [0, 1, 2]
    assert SupernetConformerConfig(num_hidden_layers=8).layer_drop_choices == [0, 2, 4]
    assert SupernetConformerConfig(num_hidden_layers=1).layer_drop_choices == [0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"subsampling_factor": 2}, "subsampling_factor"),
        ({"hidden_size": 30, "num_attention_heads": 4}, "even size"),
        ({"conv_kernel_size": 4}, "odd"),
        ({"num_hidden_layers": 4, "layer_drop_choices": [0, 4]}, "keep at least one"),
        ({"ffn_width_choices": [0.0, 1.0]}, "fractions"),
        ({"num_hidden_layers": 2, "layer_ffn_dims": [8]}, "one entry per layer"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"omni_sparsity_levels": [0.0, 1.0]}, "omni_sparsity_levels"),
        ({"omni_sparsity_levels": [0.5, 0.5]}, "omni_sparsity_levels"),
        ({"omni_sparsity_block_shape": [8]}, "omni_sparsity_block_shape"),
        ({"omni_sparsity_block_shape": [0, 1]}, "omni_sparsity_block_shape"),
        ({"omni_sparsity_pooling": "global"}, "omni_sparsity_pooling"),
        ({"omni_sparsity_prune_interval": 0}, "omni_sparsity_prune_interval"),
        ({"omni_sparsity_schedule_steps": -1}, "omni_sparsity_schedule"),
        ({"omni_sparsity_initial_max_sparsity": 0.9}, "omni_sparsity_initial_max_sparsity"),
    ],
)
def test_bad_configs_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SupernetConformerConfig(**kwargs)


def test_config_json_round_trip(tmp_path):
    config = SupernetConformerConfig(num_hidden_layers=3, layer_ffn_dims=[8, 16, 32], ffn_width_choices=[0.5, 1])
    config.save_pretrained(tmp_path)
    loaded = SupernetConformerConfig.from_pretrained(tmp_path)
    assert loaded.layer_ffn_dims == [8, 16, 32]
    assert loaded.ffn_width_choices == [0.5, 1.0]
    assert loaded.layer_drop_choices == config.layer_drop_choices
