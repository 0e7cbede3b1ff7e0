"""The plain dense Conformer-CTC (hf_supernet.models.conformer): every subnet of every mask type converts to it with
the masked supernet's logits; eager and SDPA attention agree; it saves with auto_map and reloads."""

import copy
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoConfig, AutoModelForCTC

from hf_supernet import SupernetConformerForCTC, SupernetConformerModel
from hf_supernet.costs import ParamCounts
from hf_supernet.models.conformer import ConformerConfig, ConformerForCTC, ConformerModel
from hf_supernet.models.supernet_conformer import dense_conformer_from_subnet

from .conftest import old_style_subnet, padded_batch, tiny_conformer_config
from .test_extraction import MODELS as EXTRACTION_MODELS
from .test_masks_omni_sparsity import EQUIVALENCE_MODELS as OMNI_MODELS
from .test_masks_orthosoftmax import MODELS as ORTHO_MODELS
from .test_masks_orthosoftmax import set_scores


def _models():
    """A model of every mask type (and the extraction tests' uneven / depth-head ones)."""
    torch.manual_seed(0)
    return {
        "layer_width": EXTRACTION_MODELS["uniform"],
        "layer_width_uneven_sub8": EXTRACTION_MODELS["per_layer"],
        "ctc_head_per_depth": EXTRACTION_MODELS["depth_heads"],
        "orthosoftmax": ORTHO_MODELS["per_layer"],
        "omni_sparsity": OMNI_MODELS["matrix_8x1"],
        "folding": SupernetConformerForCTC(
            tiny_conformer_config(mask_type="folding", num_physical_layers=2, num_hidden_layers=4)
        ).eval(),
    }


MODELS = _models()


@st.composite
def cases(draw):
    name = draw(st.sampled_from(sorted(MODELS)))
    spec = MODELS[name].subnet_space.sample(torch.Generator().manual_seed(draw(st.integers(0, 2**16))))
    lengths = draw(st.lists(st.integers(min_value=9, max_value=48), min_size=1, max_size=3))
    return name, spec, lengths, draw(st.integers(0, 2**16))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_dense_model_of_any_subnet_matches_the_masked_supernet(case):
    name, spec, lengths, seed = case
    model = MODELS[name]
    if name == "orthosoftmax":
        set_scores(model.mask, seed, frozen=True)  # learned masks, frozen: what extraction sees after training
    features, mask = padded_batch(lengths, seed=seed)
    with torch.no_grad(), model.use_subnet(spec):
        masked = model(features, attention_mask=mask)
    dense = model.extract_subnet(spec)  # extraction gives the plain dense model, for every mask type
    assert type(dense) is ConformerForCTC and not dense.training
    with torch.no_grad():
        out = dense(features, attention_mask=mask)
    assert torch.equal(out.output_attention_mask, masked.output_attention_mask)
    # Every frame, padded ones included: the dense model masks padding exactly as the supernet does.
    torch.testing.assert_close(out.logits, masked.logits, atol=1e-4, rtol=0)
    # The cost model counts what the dense model holds: nonzero parameters, and the int8 size from them.
    costs, counts = model.subnet_costs(spec), ParamCounts.of_module(dense)
    assert counts.params == costs.params and counts.int8_mb == pytest.approx(costs.int8_mb, rel=1e-12)
    assert dense.config.subnet_spec == spec.to_dict()


def test_spec_argument_extracts_first_and_a_supernet_without_it_is_refused():
    model = MODELS["orthosoftmax"]
    set_scores(model.mask, seed=3, frozen=True)
    spec = model.subnet_space.smallest()
    features, mask = padded_batch([30, 12])
    dense = model.extract_subnet(spec)
    assert dense_conformer_from_subnet(dense) is dense  # already the plain dense model
    torch.testing.assert_close(
        dense_conformer_from_subnet(model, spec)(features, mask).logits, dense(features, mask).logits, rtol=0, atol=0
    )
    for name in ("layer_width", "ctc_head_per_depth", "folding"):
        with pytest.raises(ValueError, match="extract"):
            dense_conformer_from_subnet(MODELS[name])
    with pytest.raises(TypeError, match="SupernetConformerForCTC"):
        dense_conformer_from_subnet(torch.nn.Linear(2, 2))


def test_bare_encoder_converts_to_the_dense_encoder():
    torch.manual_seed(0)
    encoder = SupernetConformerModel(tiny_conformer_config()).eval()
    spec = encoder.subnet_space.smallest()
    dense = dense_conformer_from_subnet(encoder, spec)
    assert type(dense) is ConformerModel
    features, mask = padded_batch([30, 17])
    with torch.no_grad(), encoder.use_subnet(spec):
        expected = encoder(features, mask).last_hidden_state
    torch.testing.assert_close(dense(features, mask).last_hidden_state, expected, atol=1e-4, rtol=0)


def test_a_subnet_checkpoint_saved_by_the_supernet_class_converts(tmp_path):
    model = MODELS["omni_sparsity"]
    spec = model.subnet_space.sample(torch.Generator().manual_seed(5))
    old_style_subnet(model.extract_subnet(spec)).save_pretrained(tmp_path)  # as earlier versions saved subnets
    dense = dense_conformer_from_subnet(SupernetConformerForCTC.from_pretrained(tmp_path).eval())
    assert type(dense) is ConformerForCTC and dense.config.subnet_spec == spec.to_dict()
    features, mask = padded_batch([25, 40])
    with torch.no_grad(), model.use_subnet(spec):
        expected = model(features, attention_mask=mask).logits
    torch.testing.assert_close(dense(features, mask).logits, expected, atol=1e-4, rtol=0)


def _eager_and_sdpa(config):
    torch.manual_seed(0)
    sdpa = ConformerForCTC(config).eval()
    eager = ConformerForCTC._from_config(copy.deepcopy(config), attn_implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    return eager, sdpa


def test_eager_and_sdpa_attention_agree_and_eager_returns_attention_maps():
    config = ConformerConfig(
        num_mel_bins=16, subsampling_conv_channels=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, conv_kernel_size=5, vocab_size=12, layer_attention_heads=[4, 0, 2],
    )
    eager, sdpa = _eager_and_sdpa(config)
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    lengths = [40, 23]
    features, mask = padded_batch(lengths)
    with torch.no_grad():
        out_eager = eager(features, attention_mask=mask, output_attentions=True, output_hidden_states=True)
        out_sdpa = sdpa(features, attention_mask=mask)
        # SDPA cannot return probabilities: asking for them runs that call eagerly.
        out_sdpa_maps = sdpa(features, attention_mask=mask, output_attentions=True)
    torch.testing.assert_close(out_eager.logits, out_sdpa.logits, atol=1e-4, rtol=0)
    assert out_sdpa.attentions is None
    frames = out_eager.logits.shape[1]
    # One map per layer with self-attention (layer 1 has none), of that layer's heads.
    assert [a.shape for a in out_eager.attentions] == [(2, 4, frames, frames), (2, 2, frames, frames)]
    assert len(out_eager.hidden_states) == 4
    valid = out_eager.output_attention_mask
    for maps, maps_sdpa in zip(out_eager.attentions, out_sdpa_maps.attentions):
        torch.testing.assert_close(maps, maps_sdpa, atol=1e-6, rtol=0)
        torch.testing.assert_close(maps.sum(-1), torch.ones(maps.shape[:-1]), atol=1e-5, rtol=0)
        assert maps[1][..., ~valid[1]].abs().max() == 0  # padded keys get no attention
    # The whole model: probabilities of a row are those of softmax over its own valid frames only.
    with torch.no_grad():
        alone = eager(features[1:, : lengths[1]], attention_mask=mask[1:, : lengths[1]], output_attentions=True)
    t = int(valid[1].sum())
    torch.testing.assert_close(out_eager.attentions[0][1, :, :t, :t], alone.attentions[0][0], atol=1e-5, rtol=0)


def test_ctc_loss_and_output_lengths_match_the_supernet():
    model = MODELS["layer_width_uneven_sub8"]
    spec = model.subnet_space.smallest()
    dense = dense_conformer_from_subnet(model, spec)
    features, mask = padded_batch([48, 30, 17])
    labels = torch.tensor([[1, 2, 3], [4, 5, -100], [3, -100, -100]])
    with torch.no_grad():
        expected = model(features, attention_mask=mask, labels=labels, subnet=spec)
        out = dense(features, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, expected.loss, atol=1e-5, rtol=0)
    assert torch.equal(dense._get_feat_extract_output_lengths(mask.sum(-1)), out.output_attention_mask.sum(-1))
    assert dense._get_feat_extract_output_lengths(48) == 6
    with pytest.raises(ValueError, match="outside the vocabulary"):
        dense(features, attention_mask=mask, labels=torch.full((3, 2), 99))


def test_a_layer_without_units_is_its_layer_norm_and_the_config_checks_per_layer_lists():
    config = ConformerConfig(
        num_mel_bins=16, subsampling_conv_channels=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, conv_kernel_size=5, vocab_size=12, layer_ffn_dims=[[64, 16], 0],
        layer_attention_heads=[4, 0], layer_conv_modules=[True, False],
    )
    model = ConformerForCTC(config)
    block = model.conformer.layers[1]
    assert [name for name, child in block.named_children() if child is not None] == ["final_layer_norm", "dropout"]
    assert model.conformer.layers[0].ffn2.intermediate_dense.out_features == 16
    assert config.inputs_to_logits_ratio == 4 * 160
    with pytest.raises(ValueError, match="one entry per layer"):
        ConformerConfig(num_hidden_layers=2, layer_conv_modules=[True])
    with pytest.raises(ValueError, match="even size"):
        ConformerConfig(hidden_size=36, num_attention_heads=4)
    with pytest.raises(ValueError, match=r"shape \(batch, frames, 16\)"):
        model(torch.zeros(1, 20, 8))


def test_save_pretrained_writes_auto_map_and_the_model_files_and_reloads(tmp_path):
    dense = dense_conformer_from_subnet(MODELS["omni_sparsity"], MODELS["omni_sparsity"].subnet_space.smallest())
    dense.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "hf_supernet_conformer"
    assert saved["auto_map"] == {
        "AutoConfig": "configuration_conformer.ConformerConfig",
        "AutoModelForCTC": "modeling_conformer.ConformerForCTC",
    }
    assert (tmp_path / "modeling_conformer.py").is_file() and (tmp_path / "configuration_conformer.py").is_file()
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["model.safetensors"]
    assert isinstance(AutoConfig.from_pretrained(tmp_path), ConformerConfig)
    loaded = AutoModelForCTC.from_pretrained(tmp_path)
    assert type(loaded) is ConformerForCTC
    features, mask = padded_batch([30, 20])
    torch.testing.assert_close(loaded(features, mask).logits, dense(features, mask).logits, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["layer_width", "orthosoftmax", "folding"])
def test_supernet_returns_the_attention_maps_its_extracted_subnet_returns(name):
    """`output_attentions=True` on the supernet runs the kept heads eagerly: same logits as SDPA, and the maps of
    every block whose self-attention runs in the subnet equal the extracted dense model's."""
    model = MODELS[name]
    spec = model.subnet_space.sample(torch.Generator().manual_seed(3))
    features, mask = padded_batch([40, 23])
    dense = dense_conformer_from_subnet(model, spec)
    with torch.no_grad():
        sdpa = model(features, attention_mask=mask, subnet=spec)
        eager = model(features, attention_mask=mask, subnet=spec, output_attentions=True)
        expected = dense(features, attention_mask=mask, output_attentions=True)
    assert sdpa.attentions is None and eager.attentions
    torch.testing.assert_close(eager.logits, sdpa.logits, atol=1e-5, rtol=0)
    assert [a.shape for a in eager.attentions] == [a.shape for a in expected.attentions]
    for ours, theirs in zip(eager.attentions, expected.attentions):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
