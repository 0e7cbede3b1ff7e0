"""Every reduction a ``BlockPlan`` can describe — channel subsets of either feed-forward module, head subsets,
dropped units, weight masks, repeated physical blocks — runs in the supernet, extracts exactly, and is costed like
the dense model it extracts to. Mask types only choose plans, so this is the equivalence promise for all of them."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_supernet import SupernetConformerForCTC
from hf_supernet.costs import ParamCounts
from hf_supernet.models.supernet_conformer.costs import conformer_flops
from hf_supernet.masks import BlockPlan

from .conftest import padded_batch, tiny_conformer_config

torch.manual_seed(0)
CONFIG = tiny_conformer_config(num_hidden_layers=3, layer_ffn_dims=[64, [48, 40], 32])
MODEL = SupernetConformerForCTC(CONFIG).eval()
HEADS, HIDDEN = CONFIG.num_attention_heads, CONFIG.hidden_size
MASKABLE = ("ffn1.intermediate_dense.weight", "self_attn.q_proj.weight", "self_attn.out_proj.weight",
            "conv_module.pointwise_in.weight", "conv_module.depthwise_conv.weight", "ffn2.output_dense.weight")


def subset(draw, n: int) -> tuple[int, ...]:
    """Any subset of range(n) (possibly empty), in increasing order as masks keep them."""
    return tuple(i for i in range(n) if draw(st.booleans()))


@st.composite
def plans(draw):
    result = []
    for _ in range(draw(st.integers(1, 4))):
        layer = draw(st.integers(0, CONFIG.num_hidden_layers - 1))  # repeats allowed: unfolding
        ffn1, ffn2 = CONFIG.ffn_dims_of_layer(layer)
        weight_masks = None
        if draw(st.booleans()):
            block = MODEL.conformer.layers[layer]
            gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
            weight_masks = {
                name: (torch.rand(block.get_parameter(name).shape, generator=gen) > 0.5).float()
                for name in MASKABLE
                if draw(st.booleans())
            }
        result.append(
            BlockPlan(
                layer_index=layer,
                ffn1_channels=subset(draw, ffn1) if draw(st.booleans()) else None,
                ffn2_channels=subset(draw, ffn2) if draw(st.booleans()) else None,
                ffn_dim=draw(st.sampled_from([None, min(ffn1, ffn2) // 2])),
                attention_heads=subset(draw, HEADS) if draw(st.booleans()) else None,
                conv=draw(st.booleans()),
                weight_masks=weight_masks,
            )
        )
    return result


def run_with_plans(model, plan_list, monkeypatch):
    """Make the model's mask answer ``plan_list`` for its smallest subnet (the plan is what matters here)."""
    monkeypatch.setattr(model.mask, "block_plans", lambda spec: plan_list)
    return model.subnet_space.smallest()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(plan_list=plans(), lengths=st.lists(st.integers(9, 40), min_size=1, max_size=3))
def test_any_plan_extracts_exactly(plan_list, lengths, monkeypatch):
    spec = run_with_plans(MODEL, plan_list, monkeypatch)
    features, mask = padded_batch(lengths)
    with torch.no_grad(), MODEL.use_subnet(spec):
        masked = MODEL(features, attention_mask=mask).logits
    dense = MODEL.extract_subnet(spec)
    with torch.no_grad():
        extracted = dense(features, attention_mask=mask).logits
    torch.testing.assert_close(extracted, masked, atol=1e-4, rtol=0)

    costs = MODEL.subnet_costs(spec)
    # Costs count the weights a mask zeroes out as gone (vectors such as biases, initialised to 0, always count).
    nonzero = sum(int(p.count_nonzero()) if p.dim() > 1 else p.numel() for p in dense.parameters())
    assert costs.params == nonzero
    assert costs.int8_mb == pytest.approx(ParamCounts.of_module(dense).int8_mb, rel=1e-12)
    if not any(p.weight_masks for p in plan_list):
        assert costs.params == dense.num_parameters()
    # Without masks the dense model's architecture (its config alone) costs the same FLOPs as the supernet running
    # the subnet.
    if not any(p.weight_masks for p in plan_list):
        frames = 100
        dense_plans = [BlockPlan(layer_index=i) for i in range(dense.config.num_hidden_layers)]
        assert conformer_flops(dense.config, dense_plans, frames) == conformer_flops(CONFIG, plan_list, frames)


def test_block_with_every_unit_dropped_keeps_only_its_layer_norm(monkeypatch):
    plan = BlockPlan(layer_index=1, ffn1_channels=(), ffn2_channels=(), attention_heads=(), conv=False)
    spec = run_with_plans(MODEL, [BlockPlan(layer_index=0), plan], monkeypatch)
    dense = MODEL.extract_subnet(spec)
    block = dense.conformer.layers[1]
    assert block.ffn1 is None and block.self_attn is None and block.conv_module is None and block.ffn2 is None
    assert [name for name, _ in block.named_parameters()] == ["final_layer_norm.weight", "final_layer_norm.bias"]
    assert dense.config.layer_attention_heads == [HEADS, 0]
    assert dense.config.layer_conv_modules == [True, False]


def test_unit_scales_run_in_the_supernet_but_cannot_be_extracted(monkeypatch):
    scales = {"ffn1": torch.full((64,), 0.5), "self_attn": torch.tensor([1.0, 0.0, 1.0, 1.0]), "conv_module": torch.tensor(0.0)}
    spec = run_with_plans(MODEL, [BlockPlan(layer_index=0, unit_scales=scales)], monkeypatch)
    features, mask = padded_batch([20])
    with torch.no_grad(), MODEL.use_subnet(spec):
        scaled = MODEL(features, attention_mask=mask).logits
    # A zero scale on the conv module is the same as dropping it.
    no_conv = dict(scales, conv_module=torch.tensor(1.0))
    spec = run_with_plans(MODEL, [BlockPlan(layer_index=0, unit_scales=no_conv, conv=False)], monkeypatch)
    with torch.no_grad(), MODEL.use_subnet(spec):
        dropped = MODEL(features, attention_mask=mask).logits
    torch.testing.assert_close(scaled, dropped, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="soft masks"):
        MODEL.extract_subnet(spec)


def test_soft_scales_carry_gradients(monkeypatch):
    score = torch.zeros(HEADS, requires_grad=True)
    plan = BlockPlan(layer_index=0, unit_scales={"self_attn": torch.sigmoid(score)})
    spec = run_with_plans(MODEL, [plan], monkeypatch)
    features, mask = padded_batch([20])
    with MODEL.use_subnet(spec):
        MODEL(features, attention_mask=mask).logits.square().sum().backward()
    assert score.grad is not None and score.grad.abs().sum() > 0


def test_config_rejects_bad_per_layer_architecture():
    with pytest.raises(ValueError, match="layer_attention_heads"):
        tiny_conformer_config(num_hidden_layers=2, layer_attention_heads=[4, 9])
    with pytest.raises(ValueError, match="layer_ffn_dims entries"):
        tiny_conformer_config(num_hidden_layers=2, layer_ffn_dims=[8, [8, 8, 8]])
    with pytest.raises(ValueError, match="one entry per layer"):
        tiny_conformer_config(num_hidden_layers=2, layer_conv_modules=[True])


def test_layer_width_subnets_of_a_model_with_uneven_feed_forward_modules_extract_exactly():
    # Such configs come out of orthosoftmax extraction; their own (layer_width) subnets must still run.
    features, mask = padded_batch([20, 13])
    for spec in MODEL.subnet_space:
        with torch.no_grad(), MODEL.use_subnet(spec):
            masked = MODEL(features, attention_mask=mask).logits
        dense = MODEL.extract_subnet(spec)
        with torch.no_grad():
            torch.testing.assert_close(dense(features, attention_mask=mask).logits, masked, atol=1e-4, rtol=0)
        assert dense.num_parameters() == MODEL.subnet_costs(spec).params
