"""The core promise: an extracted subnet gives the masked supernet's logits, for any subnet of the space."""

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoModelForCTC

import hf_supernet
from hf_supernet import (
    ConformerForCTC,
    ConformerModel,
    LayerWidthSpec,
    SupernetConformerForCTC,
    SupernetConformerModel,
    dense_conformer_from_subnet,
)

from .conftest import assert_extraction_matches, old_style_subnet, padded_batch, tiny_conformer_config

torch.manual_seed(0)
# Uneven per-layer widths and subsampling 8 exercise the fixed-architecture path of the config too.
MODELS = {
    "uniform": SupernetConformerForCTC(tiny_conformer_config()).eval(),
    "per_layer": SupernetConformerForCTC(
        tiny_conformer_config(num_hidden_layers=5, layer_ffn_dims=[64, 48, 40, 64, 24], subsampling_factor=8)
    ).eval(),
    # A CTC head per depth: the subnet keeps its own depth's head.
    "depth_heads": SupernetConformerForCTC(tiny_conformer_config(ctc_head_per_depth=True)).eval(),
}


@st.composite
def subnets(draw, model):
    space = model.subnet_space
    depth = draw(st.sampled_from(space.depths))
    return LayerWidthSpec(tuple(draw(st.sampled_from(space.width_choices[i])) for i in range(depth)))


@st.composite
def model_subnet_batch(draw):
    name = draw(st.sampled_from(sorted(MODELS)))
    model = MODELS[name]
    spec = draw(subnets(model))
    lengths = draw(st.lists(st.integers(min_value=9, max_value=48), min_size=1, max_size=3))
    seed = draw(st.integers(0, 2**16))
    return model, spec, lengths, seed


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_subnet_batch())
def test_extracted_subnet_matches_masked_supernet(case):
    model, spec, lengths, seed = case
    features, mask = padded_batch(lengths, seed=seed)
    assert spec in model.subnet_space
    dense, _ = assert_extraction_matches(model, spec, features, mask)
    # Analytic parameter count == what the dense model really holds.
    assert dense.num_parameters() == model.subnet_costs(spec).params
    assert dense.config.num_hidden_layers == spec.num_layers


def test_extracted_subnet_is_physically_smaller_and_reloads(tmp_path):
    model = MODELS["uniform"]
    spec = model.subnet_space.smallest()
    dense = model.extract_subnet(spec)
    assert len(dense.conformer.layers) == 2
    assert dense.conformer.layers[0].ffn1.intermediate_dense.weight.shape == (8, 32)
    # One architecture, nothing left to carve: the plain dense model, without masks or a subnet space.
    assert type(dense) is ConformerForCTC and not hasattr(dense, "subnet_space") and not hasattr(dense, "mask")
    assert not any("mask" in k for k in dense.state_dict()) and "mask_type" not in dense.config.to_dict()
    assert dense.config.subnet_spec == spec.to_dict()
    assert dense_conformer_from_subnet(dense) is dense  # already plain: nothing to convert
    dense.save_pretrained(tmp_path)
    loaded = AutoModelForCTC.from_pretrained(tmp_path)
    assert type(loaded) is ConformerForCTC and loaded.config.subnet_spec == spec.to_dict()
    features, mask = padded_batch([30, 20])
    torch.testing.assert_close(loaded(features, mask).logits, dense(features, mask).logits, rtol=0, atol=0)


def test_extracting_the_largest_subnet_reproduces_the_supernet():
    model = MODELS["per_layer"]
    dense = model.extract_subnet(model.subnet_space.largest())
    assert dense.num_parameters() == model.num_parameters()
    features, mask = padded_batch([33, 21])
    torch.testing.assert_close(dense(features, mask).logits, model(features, mask).logits, rtol=0, atol=0)


def test_extraction_from_the_bare_encoder():
    torch.manual_seed(0)
    encoder = SupernetConformerModel(tiny_conformer_config()).eval()
    spec = encoder.subnet_space.sample(torch.Generator().manual_seed(1))
    features, mask = padded_batch([30, 17])
    with encoder.use_subnet(spec):
        expected = encoder(features, mask).last_hidden_state
    dense = encoder.extract_subnet(spec)
    assert type(dense) is ConformerModel
    assert dense.num_parameters() == encoder.subnet_costs(spec).params
    got = dense(features, mask).last_hidden_state
    valid = torch.tensor([[True] * 8, [True] * 5 + [False] * 3])
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-4, rtol=0)


def test_extract_rejects_a_spec_outside_the_space():
    with pytest.raises(ValueError, match="not a subnet"):
        MODELS["uniform"].extract_subnet(LayerWidthSpec((64,)))


def test_top_level_extract_subnet_dispatches_to_the_conformer_family():
    model = MODELS["uniform"]
    spec = model.subnet_space.smallest()
    features, mask = padded_batch([30, 21])
    dense = hf_supernet.extract_subnet(model, spec)
    assert type(dense) is ConformerForCTC
    labels = torch.tensor([[3, 4, 5], [6, 7, -100]])
    with torch.no_grad(), model.use_subnet(spec):
        masked = model(features, attention_mask=mask, labels=labels)
    with torch.no_grad():
        out = dense(features, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.logits, masked.logits, atol=1e-4, rtol=0)
    # The same CTC loss too: an extracted subnet trains (e.g. as a benchmark's separately trained twin) as it ran.
    torch.testing.assert_close(out.loss, masked.loss, atol=1e-5, rtol=0)


def test_a_subnet_checkpoint_of_an_earlier_version_still_loads_and_converts(tmp_path):
    """Subnets were once saved as one-architecture SupernetConformerForCTC checkpoints: they load as they did, and
    convert to the plain dense model with the same logits and the spec they recorded."""
    model = MODELS["per_layer"]
    spec = model.subnet_space.sample(torch.Generator().manual_seed(3))
    old_style_subnet(model.extract_subnet(spec)).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "supernet_conformer"
    old = AutoModelForCTC.from_pretrained(tmp_path).eval()
    assert type(old) is SupernetConformerForCTC and old.config.subnet_spec == spec.to_dict()
    dense = dense_conformer_from_subnet(old)
    assert type(dense) is ConformerForCTC and dense.config.subnet_spec == spec.to_dict() and not dense.training
    # extract_subnet of the old checkpoint's one subnet is the same conversion.
    again = old.extract_subnet(old.subnet_space.largest())
    features, mask = padded_batch([41, 26])
    with torch.no_grad(), model.use_subnet(spec):
        expected = model(features, attention_mask=mask).logits
    with torch.no_grad():
        torch.testing.assert_close(dense(features, mask).logits, expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(again(features, mask).logits, dense(features, mask).logits, atol=0, rtol=0)
    # The dense class refuses the old folder with the way to convert it instead of loading it half-understood.
    with pytest.raises(ValueError, match="dense_conformer_from_subnet"):
        ConformerForCTC.from_pretrained(tmp_path)
