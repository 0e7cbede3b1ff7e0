"""mask_type="folding": unfolding paths, their space, and the config fields that define it."""

import json
from collections import Counter

import pytest
import torch

from hf_supernet import (
    FoldableHubertConfig,
    FoldableWav2Vec2Config,
    FoldingSpec,
    SubnetSpec,
    SupernetConformerForCTC,
)
from hf_supernet.masks import MASK_METHODS, FoldingMask, FoldingSpace
from hf_supernet.masks.folding import UNFOLDING_PATTERNS, unfolding_path

from .conftest import padded_batch, tiny_conformer_config


@pytest.mark.parametrize("physical", [1, 2, 3, 5])
@pytest.mark.parametrize("depth_over", [0, 1, 2, 4, 7])
def test_stack_path_repeats_the_whole_stack(physical, depth_over):
    depth = physical + depth_over
    path = unfolding_path("stack", physical, depth)
    assert len(path) == depth
    assert path[:physical] == tuple(range(physical))  # the seed first
    assert all(path[i] == path[i - physical] for i in range(physical, depth))  # then the same stack again


@pytest.mark.parametrize("physical", [1, 2, 3, 5])
@pytest.mark.parametrize("depth_over", [0, 1, 2, 4, 7])
def test_layer_path_repeats_each_block_in_place(physical, depth_over):
    depth = physical + depth_over
    path = unfolding_path("layer", physical, depth)
    assert len(path) == depth
    assert list(path) == sorted(path)  # every block's runs are consecutive, blocks in stack order
    counts = Counter(path)
    assert set(counts) == set(range(physical))
    assert max(counts.values()) - min(counts.values()) <= 1  # repeats spread as evenly as possible
    assert [counts[b] for b in range(physical)] == sorted(counts.values(), reverse=True)  # extras go to low blocks


def test_unknown_pattern_is_named():
    with pytest.raises(ValueError, match="spiral.*stack.*layer"):
        unfolding_path("spiral", 2, 4)


def folding_config(**overrides):
    values = dict(mask_type="folding", num_physical_layers=3, num_hidden_layers=7)
    values.update(overrides)
    return tiny_conformer_config(**values)


def test_space_holds_each_pattern_and_depth_once():
    config = folding_config()
    space = FoldingSpace(config)
    assert config.unfolding_depths == list(range(3, 8))
    assert config.unfolding_patterns == list(UNFOLDING_PATTERNS)
    expected = {FoldingSpec(unfolding_path(p, 3, d)) for p in UNFOLDING_PATTERNS for d in range(3, 8)}
    members = list(space)
    assert set(members) == expected
    assert len(members) == len(space) == len(expected)  # the seed path, shared by both patterns, counts once
    assert all(m in space for m in members)
    assert space.smallest() == FoldingSpec((0, 1, 2))
    assert space.largest() == FoldingSpec(unfolding_path("stack", 3, 7))
    assert FoldingSpace(folding_config(unfolding_patterns=["layer", "stack"])).largest() == FoldingSpec(
        unfolding_path("layer", 3, 7)
    )


def test_sampling_is_deterministic_and_covers_every_path():
    space = FoldingSpace(folding_config())
    draw = lambda seed: [space.sample(torch.Generator().manual_seed(seed)) for _ in range(5)]
    assert draw(4) == draw(4)
    gen = torch.Generator().manual_seed(0)
    assert {space.sample(gen) for _ in range(300)} == set(space)


def test_genome_round_trips_and_neighbors_are_deeper():
    space = FoldingSpace(folding_config())
    for spec in space:
        genes = space.to_genes(spec)
        assert all(0 <= g < c for g, c in zip(genes, space.gene_choices()))
        assert space.from_genes(genes) == spec
        for up in space.neighbors_up(spec):
            assert up in space and up.num_layers > spec.num_layers
    assert space.neighbors_up(space.largest()) == []


def test_block_plans_repeat_physical_blocks():
    config = folding_config()
    mask = MASK_METHODS["folding"](config)
    assert isinstance(mask, FoldingMask)
    spec = FoldingSpec(unfolding_path("layer", 3, 7))
    assert [p.layer_index for p in mask.block_plans(spec)] == list(spec.path)
    assert [p.layer_index for p in mask.full_plans()] == list(mask.space().largest().path)


@pytest.mark.parametrize(
    "path, message",
    [
        ((0, 1, 2, 0, 1, 2, 0, 1), "8 logical layers, more than a path of this model allows"),
        ((0, 1, 5), r"physical blocks \[5\]"),
        ((2, 1, 0), "not one of this model's unfolding paths"),
    ],
)
def test_paths_outside_the_space_are_refused_with_the_reason(path, message):
    space = FoldingSpace(folding_config())
    assert FoldingSpec(path) not in space
    with pytest.raises(ValueError, match=message):
        space.validate(FoldingSpec(path))


def test_spec_json_round_trip():
    spec = FoldingSpec([0, 0, 1, 1])
    data = json.loads(spec.to_json())
    assert data == {"mask_type": "folding", "path": [0, 0, 1, 1]}
    assert SubnetSpec.from_dict(data) == spec and hash(SubnetSpec.from_dict(data)) == hash(spec)


FOLDING_CONFIGS = {
    "conformer": lambda **kw: tiny_conformer_config(mask_type="folding", **kw),
    "wav2vec2": FoldableWav2Vec2Config,
    "hubert": FoldableHubertConfig,
}


@pytest.mark.parametrize("family", sorted(FOLDING_CONFIGS))
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_physical_layers": 0, "num_hidden_layers": 4}, "num_physical_layers must be >= 1"),
        ({"num_physical_layers": 4, "num_hidden_layers": 3}, "cannot be smaller than num_physical_layers"),
        (
            {"num_physical_layers": 2, "num_hidden_layers": 4, "unfolding_depths": [2, 4, 6]},
            r"\[6\] have more logical layers than num_hidden_layers=4 allows",
        ),
        ({"num_physical_layers": 2, "num_hidden_layers": 4, "unfolding_depths": [1, 4]}, "shallower than"),
        ({"num_physical_layers": 2, "num_hidden_layers": 4, "unfolding_depths": [2, 3]}, "Add 4 to unfolding_depths"),
        ({"num_physical_layers": 2, "num_hidden_layers": 4, "unfolding_depths": []}, "unfolding_depths is empty"),
        ({"num_physical_layers": 2, "num_hidden_layers": 4, "unfolding_patterns": ["zigzag"]}, "unfolding_patterns"),
    ],
)
def test_bad_folding_configs_raise_clear_errors(family, kwargs, message):
    with pytest.raises(ValueError, match=message):
        FOLDING_CONFIGS[family](**kwargs)


def test_conformer_stores_every_layer_unless_folding():
    assert tiny_conformer_config(num_hidden_layers=3).num_physical_layers == 3
    with pytest.raises(ValueError, match="only mask_type='folding' allows"):
        tiny_conformer_config(num_hidden_layers=4, num_physical_layers=2)
    with pytest.raises(ValueError, match="one entry per layer"):
        folding_config(layer_ffn_dims=[64] * 7)  # per-layer widths describe the 3 stored blocks


def test_foldable_configs_accept_only_folding():
    with pytest.raises(ValueError, match="mask_type='layer_width' cannot carve.*folding"):
        FoldableWav2Vec2Config(mask_type="layer_width")


@pytest.mark.parametrize("config_class", [FoldableWav2Vec2Config, FoldableHubertConfig])
def test_foldable_config_round_trips(tmp_path, config_class):
    config = config_class(num_physical_layers=3, num_hidden_layers=9, unfolding_depths=[9, 3, 6], unfolding_patterns=["layer"])
    assert config.unfolding_depths == [3, 6, 9]
    config.save_pretrained(tmp_path)
    loaded = config_class.from_pretrained(tmp_path)
    assert (loaded.num_physical_layers, loaded.num_hidden_layers) == (3, 9)
    assert loaded.unfolding_depths == [3, 6, 9] and loaded.unfolding_patterns == ["layer"]
    assert loaded.model_type == config_class.model_type


def test_fold_a_trained_plain_conformer_into_fewer_stored_blocks():
    torch.manual_seed(0)
    plain = SupernetConformerForCTC(tiny_conformer_config(num_hidden_layers=6)).eval()
    # Folding into as many stored blocks as layers changes nothing: the deepest path is the model itself.
    same = SupernetConformerForCTC.fold(plain, 6).eval()
    features, mask = padded_batch([40, 31])
    with torch.no_grad():
        torch.testing.assert_close(same(features, attention_mask=mask).logits, plain(features, attention_mask=mask).logits)

    folded = SupernetConformerForCTC.fold(plain, 4)
    assert folded.config.mask_type == "folding" and folded.config.num_physical_layers == 4
    assert folded.config.num_hidden_layers == 6 and folded.subnet_space.largest().num_layers == 6
    source = plain.state_dict()
    for j, layer in enumerate([0, 2, 3, 5]):  # evenly spaced, first and last included
        for name, value in folded.conformer.layers[j].state_dict().items():
            torch.testing.assert_close(value, source[f"conformer.layers.{layer}.{name}"])
    torch.testing.assert_close(folded.lm_head.weight, plain.lm_head.weight)
    assert folded.num_parameters() < plain.num_parameters()

    # A trained dense model (e.g. an extracted subnet trained on its own) folds the same way.
    dense = plain.extract_subnet(plain.subnet_space.largest())
    from_dense = SupernetConformerForCTC.fold(dense, 4)
    assert from_dense.config == folded.config
    for (name, a), b in zip(from_dense.state_dict().items(), folded.state_dict().values()):
        assert torch.equal(a, b), name

    with pytest.raises(ValueError, match="plain Conformer"):
        SupernetConformerForCTC.fold(folded, 2)
    with pytest.raises(ValueError, match="seed_layers"):
        SupernetConformerForCTC.fold(plain, 2, seed_layers=[0, 9])
