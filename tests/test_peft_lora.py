"""peft LoRA on the supernet: the adapter runs in every subnet, cut like the weights; a subnet extracts with its
adapter merged or sliced and gives the adapted supernet's logits; SupernetTrainer trains only the adapter."""

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCTC

import hf_supernet
from hf_supernet import ConformerForCTC, LayerWidthSpec, SupernetConformerForCTC
from hf_supernet.adapters import (
    SUPERNET_LORA_TARGET_MODULES,
    check_lora_config,
    extract_base_subnet,
    supernet_lora_config,
    unwrap_peft,
)
from hf_supernet.masks import BlockPlan
from hf_supernet.slicing import LinearSelection, subnet_linear

from .conftest import padded_batch, tiny_conformer_config
from .test_trainer import make_trainer

DEFAULT_TARGETS = set(SUPERNET_LORA_TARGET_MODULES["supernet_conformer"])


def randomize_lora(peft_model, seed=0, std=0.3):
    """Non-zero lora_B (peft initialises it to zero, which would make every equivalence test vacuous)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
    return peft_model


def adapted_model(config=None, lora=None, seed=0):
    torch.manual_seed(seed)
    model = SupernetConformerForCTC(config or tiny_conformer_config()).eval()
    return randomize_lora(get_peft_model(model, lora or LoraConfig(r=4, lora_alpha=8)), seed).eval()


def logits(model, spec, features, mask):
    with torch.no_grad(), unwrap_peft(model).use_subnet(spec):
        return model(features, attention_mask=mask).logits


# --------------------------------------------------------------------------------------- targets and parameters
def test_default_targets_are_the_attention_projections_and_feed_forward_linears():
    peft_model = get_peft_model(SupernetConformerForCTC(tiny_conformer_config()), LoraConfig(r=4))
    adapted = {name for name, m in peft_model.named_modules() if isinstance(m, LoraLayer)}
    layers = tiny_conformer_config().num_hidden_layers
    expected = {f"base_model.model.conformer.layers.{i}.self_attn.{p}" for i in range(layers) for p in ("q_proj", "k_proj", "v_proj", "out_proj")}
    expected |= {f"base_model.model.conformer.layers.{i}.{f}.{d}" for i in range(layers) for f in ("ffn1", "ffn2") for d in ("intermediate_dense", "output_dense")}
    assert adapted == expected
    assert set(supernet_lora_config(peft_model).target_modules) == DEFAULT_TARGETS
    # The plain dense model of an extracted subnet has the same module names and the same default targets.
    dense = SupernetConformerForCTC(tiny_conformer_config()).extract_subnet(LayerWidthSpec((16, 8)))
    dense_adapted = {n for n, m in get_peft_model(dense, LoraConfig(r=4)).named_modules() if isinstance(m, LoraLayer)}
    assert dense_adapted == {n for n in expected if int(n.split(".")[4]) < 2}


def test_trainable_parameter_counts():
    config = tiny_conformer_config()
    model = SupernetConformerForCTC(config)
    total = model.num_parameters()
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "intermediate_dense", "output_dense"]))
    hidden, ffn, r = config.hidden_size, config.intermediate_size, 4
    per_layer = r * (hidden + hidden) + 2 * (r * (hidden + ffn) + r * (ffn + hidden))  # q_proj + 2 FFNs x 2 linears
    trainable, all_params = peft_model.get_nb_trainable_parameters()
    assert trainable == config.num_hidden_layers * per_layer
    assert all_params == total + trainable
    assert all("lora_" in n for n, p in peft_model.named_parameters() if p.requires_grad)

    # The sliced adapter of a subnet has the kept rows/columns only: FFN factors shrink with the width.
    spec = LayerWidthSpec((16, 8))
    sub = peft_model.extract_subnet(spec)
    expected = sum(r * (hidden + hidden) + 2 * (r * (hidden + d) + r * (d + hidden)) for d in spec.ffn_dims)
    assert sub.get_nb_trainable_parameters()[0] == expected


@pytest.mark.parametrize("targets, message", [
    (["not_a_layer"], "match no module"),
    (["depthwise_conv"], "not linear layers"),
    (["layer_norm"], "not linear layers"),
])
def test_bad_target_modules_name_the_valid_ones(targets, message):
    model = SupernetConformerForCTC(tiny_conformer_config())
    with pytest.raises(ValueError, match=message) as err:
        supernet_lora_config(model, target_modules=targets)
    for name in ("q_proj", "intermediate_dense", "pointwise_in"):
        assert name in str(err.value)


def test_all_linear_and_default_configs_pass_the_check_and_extract_exactly():
    model = SupernetConformerForCTC(tiny_conformer_config()).eval()
    check_lora_config(model, LoraConfig())  # target_modules=None: peft takes the registered defaults
    peft_model = randomize_lora(get_peft_model(model, supernet_lora_config(model, target_modules="all-linear"))).eval()
    adapted = {n.rsplit(".", 1)[-1] for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)}
    assert {"out", "pointwise_in", "pointwise_out"} | DEFAULT_TARGETS <= adapted  # peft leaves lm_head out
    spec = model.subnet_space.smallest()
    features, mask = padded_batch([21])
    with torch.no_grad():
        extracted = peft_model.extract_subnet(spec)(features, attention_mask=mask).logits
    torch.testing.assert_close(extracted, logits(peft_model, spec, features, mask), atol=1e-4, rtol=0)


def test_top_level_extract_subnet_cuts_the_adapter_of_a_peft_wrapped_conformer():
    peft_model = adapted_model()
    spec = unwrap_peft(peft_model).subnet_space.smallest()
    features, mask = padded_batch([21, 17])
    sub = hf_supernet.extract_subnet(peft_model, spec)
    assert isinstance(sub, PeftModel) and type(sub.get_base_model()) is ConformerForCTC
    with torch.no_grad():
        extracted = sub(features, attention_mask=mask).logits
    torch.testing.assert_close(extracted, logits(peft_model, spec, features, mask), atol=1e-4, rtol=0)


def test_lora_variants_are_refused():
    model = SupernetConformerForCTC(tiny_conformer_config())
    with pytest.raises(ValueError, match="use_dora"):
        supernet_lora_config(model, use_dora=True)


def test_adapter_on_a_module_the_supernet_computes_functionally_fails_clearly():
    # peft happily wraps the depthwise Conv1d, but the conv module runs it as a masked F.conv1d.
    peft_model = get_peft_model(SupernetConformerForCTC(tiny_conformer_config()), LoraConfig(r=32, target_modules=["depthwise_conv"]))  # r divisible by groups
    features, mask = padded_batch([12])
    with pytest.raises(TypeError, match="depthwise_conv.*linear layers"):
        peft_model(features, attention_mask=mask)


# ---------------------------------------------------------------------------------------- the LoRA path runs
def test_lora_changes_logits_only_once_lora_B_is_nonzero():
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config()).eval()
    features, mask = padded_batch([20, 14])
    space = model.subnet_space
    base = {name: logits(model, spec, features, mask) for name, spec in (("largest", space.largest()), ("smallest", space.smallest()))}
    peft_model = get_peft_model(model, LoraConfig(r=4)).eval()
    for name, spec in (("largest", space.largest()), ("smallest", space.smallest())):
        torch.testing.assert_close(logits(peft_model, spec, features, mask), base[name], atol=0, rtol=0)  # B = 0
    randomize_lora(peft_model)
    for name, spec in (("largest", space.largest()), ("smallest", space.smallest())):
        assert (logits(peft_model, spec, features, mask) - base[name]).abs().max() > 1e-2
        with peft_model.disable_adapter():
            torch.testing.assert_close(logits(peft_model, spec, features, mask), base[name], atol=1e-6, rtol=0)


def _lora_layer(seed=0, **lora):
    torch.manual_seed(seed)
    holder = torch.nn.Sequential(torch.nn.Linear(12, 10))
    peft_model = get_peft_model(holder, LoraConfig(target_modules=["0"], r=3, lora_alpha=6, **lora))
    peft_model.add_adapter("second", LoraConfig(target_modules=["0"], r=2, lora_alpha=8, use_rslora=True, lora_bias=True))
    randomize_lora(peft_model, seed)
    peft_model.base_model.set_adapter(["default", "second"])
    return peft_model, holder[0]


@pytest.mark.parametrize("state", ["eval", "train_dropout", "disabled", "merged", "one_active"])
def test_subnet_linear_at_full_width_is_peft_lora_forward(state):
    peft_model, layer = _lora_layer(lora_dropout=0.3)
    x = torch.randn(5, 7, 12)
    layer.train(state == "train_dropout")
    if state == "disabled":
        layer.enable_adapters(False)
    elif state == "merged":
        layer.merge()
    elif state == "one_active":
        layer.set_adapter("second")
    torch.manual_seed(1)
    ours = subnet_linear(layer, x)
    torch.manual_seed(1)
    torch.testing.assert_close(ours, layer(x), atol=1e-6, rtol=0)


def test_subnet_linear_cuts_the_factors_like_the_weight():
    _, layer = _lora_layer()
    x = torch.randn(4, 12)
    rows, cols = (1, 4, 5, 9), (0, 2, 3, 7, 11)
    ours = subnet_linear(layer, x[:, list(cols)], LinearSelection(rows=rows, cols=cols))
    with torch.no_grad():
        full_input = torch.zeros(4, 12)
        full_input[:, list(cols)] = x[:, list(cols)]
        reference = layer(full_input)[:, list(rows)]  # dropping input columns = zeroing them
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)


def test_running_a_weight_masked_subnet_on_merged_weights_is_refused(monkeypatch):
    peft_model = adapted_model()
    supernet = unwrap_peft(peft_model)
    block = supernet.conformer.layers[0]
    plan = BlockPlan(layer_index=0, weight_masks={"ffn1.intermediate_dense.weight": torch.ones_like(block.ffn1.intermediate_dense.weight)})
    monkeypatch.setattr(supernet.mask, "block_plans", lambda spec: [plan])
    peft_model.merge_adapter()
    features, mask = padded_batch([12])
    with pytest.raises(ValueError, match="unmerge_adapter"):
        logits(peft_model, supernet.subnet_space.smallest(), features, mask)


# ---------------------------------------------------------------------------------------------- equivalence
# Uneven per-layer widths exercise per-layer FFN factor cuts; rank/alpha patterns and an adapted head and
# front end (outside the blocks) and a modules_to_save copy inside them exercise the rest of extraction.
PATTERNED = LoraConfig(
    r=4, lora_alpha=8, target_modules=sorted(DEFAULT_TARGETS | {"pointwise_in", "lm_head", "out"}),
    rank_pattern={"layers.1.ffn1.intermediate_dense": 2}, alpha_pattern={"layers.2.self_attn.q_proj": 3},
    modules_to_save=["final_layer_norm"],
)
ADAPTED = {
    "uniform": adapted_model(),
    "per_layer": adapted_model(tiny_conformer_config(num_hidden_layers=4, layer_ffn_dims=[64, 48, 32, 64]), PATTERNED),
}
with torch.no_grad():  # the modules_to_save copy must differ from the original to be tested
    for _wrapper in ADAPTED["per_layer"].base_model.model.conformer.layers[1].final_layer_norm.modules_to_save.values():
        _wrapper.weight.mul_(1.5)


@st.composite
def width_subnets(draw):
    name = draw(st.sampled_from(sorted(ADAPTED)))
    space = unwrap_peft(ADAPTED[name]).subnet_space
    depth = draw(st.sampled_from(space.depths))
    spec = LayerWidthSpec(tuple(draw(st.sampled_from(space.width_choices[i])) for i in range(depth)))
    return name, spec, draw(st.lists(st.integers(9, 40), min_size=1, max_size=3))


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=width_subnets())
def test_merged_and_sliced_extraction_match_the_adapted_supernet(case):
    name, spec, lengths = case
    peft_model = ADAPTED[name]
    features, mask = padded_batch(lengths)
    expected = logits(peft_model, spec, features, mask)

    sliced = peft_model.extract_subnet(spec)
    assert isinstance(sliced, PeftModel)
    with torch.no_grad():
        torch.testing.assert_close(sliced(features, attention_mask=mask).logits, expected, atol=1e-4, rtol=0)

    merged_supernet = copy.deepcopy(peft_model).merge_and_unload()
    dense = merged_supernet.extract_subnet(spec)
    assert type(dense) is ConformerForCTC
    with torch.no_grad():
        torch.testing.assert_close(dense(features, attention_mask=mask).logits, expected, atol=1e-4, rtol=0)


def subset(draw, n):
    return tuple(i for i in range(n) if draw(st.booleans()))


@st.composite
def any_plans(draw):
    """Channel/head subsets, dropped units, weight masks and repeated blocks — every reduction a BlockPlan has."""
    supernet = unwrap_peft(ADAPTED["per_layer"])
    config, plans = supernet.config, []
    for _ in range(draw(st.integers(1, 4))):
        layer = draw(st.integers(0, config.num_hidden_layers - 1))  # repeats allowed: unfolding
        ffn1, ffn2 = config.ffn_dims_of_layer(layer)
        masks = None
        if draw(st.booleans()):
            gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
            weight = supernet.conformer.layers[layer].ffn2.output_dense.base_layer.weight
            masks = {"ffn2.output_dense.weight": (torch.rand(weight.shape, generator=gen) > 0.5).float()}
        plans.append(BlockPlan(
            layer_index=layer,
            ffn1_channels=subset(draw, ffn1) if draw(st.booleans()) else None,
            ffn2_channels=subset(draw, ffn2) if draw(st.booleans()) else None,
            attention_heads=subset(draw, config.num_attention_heads) if draw(st.booleans()) else None,
            conv=draw(st.booleans()),
            weight_masks=masks,
        ))
    return plans


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(plans=any_plans(), lengths=st.lists(st.integers(9, 40), min_size=1, max_size=2))
def test_sliced_adapter_is_exact_for_any_plan(plans, lengths, monkeypatch):
    peft_model = ADAPTED["per_layer"]
    supernet = unwrap_peft(peft_model)
    monkeypatch.setattr(supernet.mask, "block_plans", lambda spec: plans)
    spec = supernet.subnet_space.smallest()
    features, mask = padded_batch(lengths)
    expected = logits(peft_model, spec, features, mask)

    sliced = peft_model.extract_subnet(spec)
    with torch.no_grad():
        torch.testing.assert_close(sliced(features, attention_mask=mask).logits, expected, atol=1e-4, rtol=0)
        # Merging the *extracted* subnet's adapter stays exact under weight masks (the update is dense there).
        merged = sliced.merge_and_unload()
        torch.testing.assert_close(merged(features, attention_mask=mask).logits, expected, atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------------ save / load
def test_sliced_adapter_round_trips_through_save_and_from_pretrained(tmp_path):
    peft_model = ADAPTED["per_layer"]
    spec = LayerWidthSpec((16, 24, 8))
    features, mask = padded_batch([25, 17])
    expected = logits(peft_model, spec, features, mask)

    peft_model.extract_subnet(spec).save_pretrained(tmp_path / "adapter")
    extract_base_subnet(peft_model, spec).save_pretrained(tmp_path / "base")
    base = AutoModelForCTC.from_pretrained(tmp_path / "base")
    assert not any("lora_" in k for k in base.state_dict())
    loaded = PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(features, attention_mask=mask).logits, expected, atol=1e-4, rtol=0)


def test_supernet_adapter_round_trips_and_loads_onto_the_base_supernet(tmp_path):
    torch.manual_seed(0)
    base = SupernetConformerForCTC(tiny_conformer_config()).eval()
    base.save_pretrained(tmp_path / "supernet")
    peft_model = randomize_lora(get_peft_model(base, LoraConfig(r=4))).eval()
    peft_model.save_pretrained(tmp_path / "adapter")
    spec = base.subnet_space.smallest()
    features, mask = padded_batch([20])
    expected = logits(peft_model, spec, features, mask)

    reloaded = PeftModel.from_pretrained(SupernetConformerForCTC.from_pretrained(tmp_path / "supernet"), tmp_path / "adapter")
    torch.testing.assert_close(logits(reloaded.eval(), spec, features, mask), expected, atol=0, rtol=0)


# ------------------------------------------------------------------------------------------------- training
def test_supernet_trainer_updates_only_the_adapter(tmp_path):
    torch.manual_seed(0)
    peft_model = get_peft_model(SupernetConformerForCTC(tiny_conformer_config()), LoraConfig(r=4, lora_alpha=8))
    before = {name: p.detach().clone() for name, p in peft_model.named_parameters()}
    trainer = make_trainer(tmp_path, max_steps=3, model=peft_model, num_random_subnets=1)
    assert trainer.supernet() is unwrap_peft(peft_model)
    trainer.train()
    changed = {name for name, p in peft_model.named_parameters() if not torch.equal(p, before[name])}
    lora = {name for name in before if "lora_" in name}
    assert changed == lora  # every factor of every block trained (lora_B starts at zero), nothing else moved
    logged = trainer.state.log_history[0]
    assert {"loss_largest", "loss_smallest", "loss_random"} <= set(logged)
    assert {"eval_largest_loss", "eval_smallest_loss"} <= set(trainer.evaluate())
