"""A fifth mask type needs no package file: one MaskMethod, one spec, one register_mask_type call.

The toy mask type below keeps every layer and trims every feed-forward module to the same fraction of its width,
a fraction read from its own config hyperparameter (``toy_width_fractions``), which no package config declares.
It trains with the sandwich and extracts exactly, through the generic paths only.
"""

import dataclasses

import pytest
import torch

import hf_supernet.subnets
from hf_supernet import ConformerForCTC, SupernetConformerConfig, SupernetConformerForCTC
from hf_supernet.masks import MASK_METHODS, MASK_TYPES, BlockPlan, MaskMethod, register_mask_type
from hf_supernet.subnets import SubnetSpace, SubnetSpec, randint

from .conftest import assert_extraction_matches, padded_batch, tiny_conformer_config
from .test_trainer import make_trainer

TOY = "toy_uniform_width"


@dataclasses.dataclass(frozen=True)
class ToyWidthSpec(SubnetSpec):
    fraction: float


class ToyWidthSpace(SubnetSpace):
    def __init__(self, fractions):
        self.fractions = sorted(fractions)

    def largest(self):
        return ToyWidthSpec(self.fractions[-1])

    def smallest(self):
        return ToyWidthSpec(self.fractions[0])

    def sample(self, generator=None):
        return ToyWidthSpec(self.fractions[randint(len(self.fractions), generator)])

    def __contains__(self, spec):
        return isinstance(spec, ToyWidthSpec) and spec.fraction in self.fractions

    def __len__(self):
        return len(self.fractions)

    def __iter__(self):
        return (ToyWidthSpec(f) for f in self.fractions)


class ToyWidthMask(MaskMethod):
    mask_type = TOY
    spec_class = ToyWidthSpec

    def __init__(self, config, plan_costs=None):
        super().__init__(config, plan_costs)
        # The mask type's own hyperparameter: an extra config attribute, with the mask type's default.
        self.fractions = list(getattr(config, "toy_width_fractions", [0.5, 1.0]))
        if not all(0 < f <= 1 for f in self.fractions):
            raise ValueError(f"toy_width_fractions must be in (0, 1], got {self.fractions}")

    def space(self):
        return ToyWidthSpace(self.fractions)

    def block_plans(self, spec):
        self.space().validate(spec)
        return [
            BlockPlan(layer_index=i, ffn_dim=max(1, round(spec.fraction * self.config.ffn_dim_of_layer(i))))
            for i in range(self.config.num_hidden_layers)
        ]


@pytest.fixture
def toy_mask_type(monkeypatch):
    """Registered for the test only: the spec through the registry ``register_spec`` fills, the mask type through
    the public ``register_mask_type``; both are restored afterwards."""
    monkeypatch.setitem(hf_supernet.subnets._SPEC_CLASSES, TOY, ToyWidthSpec)
    monkeypatch.setattr(ToyWidthSpec, "mask_type", TOY, raising=False)
    register_mask_type(ToyWidthMask)
    yield ToyWidthMask
    del MASK_METHODS[TOY]


def test_an_unregistered_mask_type_is_refused():
    with pytest.raises(ValueError, match="Unknown mask_type"):
        SupernetConformerConfig(mask_type=TOY)


def test_a_mask_type_registered_from_outside_the_package_trains_and_extracts(toy_mask_type, tmp_path):
    assert TOY in MASK_TYPES
    config = tiny_conformer_config(mask_type=TOY, toy_width_fractions=[0.25, 0.5, 1.0])
    assert SupernetConformerConfig.from_dict(config.to_dict()).toy_width_fractions == [0.25, 0.5, 1.0]
    torch.manual_seed(0)
    model = SupernetConformerForCTC(config)
    assert isinstance(model.mask, ToyWidthMask) and len(model.subnet_space) == 3

    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = make_trainer(tmp_path, max_steps=2, model=model)
    trainer.train()
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert logged and all({"loss_largest", "loss_smallest"} <= set(e) for e in logged)
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())

    model.eval()
    features, mask = padded_batch([40, 29])
    for spec in model.subnet_space:
        dense, _ = assert_extraction_matches(model, spec, features, mask)
        # A dense subnet is one fixed architecture, whatever mask type carved it: the plain dense model.
        assert type(dense) is ConformerForCTC and dense.config.subnet_spec == spec.to_dict()
        assert dense.num_parameters() == model.subnet_costs(spec).params
    small = model.subnet_costs(ToyWidthSpec(0.25))
    assert small.params < model.subnet_costs(ToyWidthSpec(1.0)).params
    assert model.select_subnet(0.8) in model.subnet_space
