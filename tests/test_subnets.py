import json

import pytest
import torch

from hf_supernet import LayerWidthSpec, SubnetSpec
from hf_supernet.masks import LayerWidthSpace

from .conftest import tiny_conformer_config


def test_spec_is_frozen_hashable_and_json_round_trips():
    spec = LayerWidthSpec((64, 16, 8))
    assert hash(spec) == hash(LayerWidthSpec([64, 16, 8]))
    with pytest.raises(AttributeError):
        spec.ffn_dims = (1,)
    data = json.loads(json.dumps(spec.to_dict()))
    assert data == {"mask_type": "layer_width", "ffn_dims": [64, 16, 8]}
    assert SubnetSpec.from_dict(data) == spec
    assert SubnetSpec.from_json(spec.to_json()) == spec


def test_from_dict_rejects_unknown_mask_type_and_fields():
    with pytest.raises(ValueError, match="known mask types"):
        SubnetSpec.from_dict({"mask_type": "nope", "ffn_dims": [1]})
    with pytest.raises(ValueError, match="Unknown fields"):
        SubnetSpec.from_dict({"mask_type": "layer_width", "ffn_dims": [1], "heads": 2})


def test_layer_width_space_extremes_size_and_membership():
    config = tiny_conformer_config()  # 4 layers, drops [0, 1, 2], widths 8/16/32/64
    space = LayerWidthSpace(config)
    assert space.depths == [2, 3, 4]
    assert space.largest() == LayerWidthSpec((64, 64, 64, 64))
    assert space.smallest() == LayerWidthSpec((8, 8))
    assert len(space) == 4**2 + 4**3 + 4**4
    members = list(space)
    assert len(members) == len(space) == len(set(members))
    assert all(m in space for m in members)
    assert LayerWidthSpec((8,)) not in space  # depth 1 is not a choice
    assert LayerWidthSpec((8, 12)) not in space  # 12 is not a width choice
    with pytest.raises(ValueError, match="not a subnet"):
        space.validate(LayerWidthSpec((8, 12)))


def test_sampling_is_deterministic_for_a_generator_and_covers_the_space():
    space = LayerWidthSpace(tiny_conformer_config())
    draw = lambda seed: [space.sample(torch.Generator().manual_seed(seed)) for _ in range(1)]  # noqa: E731
    assert draw(3) == draw(3)
    gen = torch.Generator().manual_seed(0)
    samples = [space.sample(gen) for _ in range(400)]
    assert all(s in space for s in samples)
    assert {s.num_layers for s in samples} == {2, 3, 4}
    assert {d for s in samples for d in s.ffn_dims} == {8, 16, 32, 64}


def test_neighbors_up_are_members_and_strictly_bigger():
    space = LayerWidthSpace(tiny_conformer_config())
    spec = space.smallest()
    for up in space.neighbors_up(spec):
        assert up in space
        assert up.num_layers > spec.num_layers or sum(up.ffn_dims) > sum(spec.ffn_dims)
    assert space.neighbors_up(space.largest()) == []
