import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hf_supernet import SupernetConformerForCTC
from hf_supernet.costs import INT8_GRAPH_BYTES, INT8_GRAPH_BYTES_PER_LINEAR, ParamCounts
from hf_supernet.models.supernet_conformer.costs import conformer_flops, dense_conformer_costs
from hf_supernet.units import FEATURE_FRAMES_PER_SECOND, REFERENCE_SECONDS

from .conftest import tiny_conformer_config


@pytest.mark.parametrize("subsampling_factor", [4, 8])
@pytest.mark.parametrize("which", ["largest", "smallest", "sampled"])
def test_analytic_flops_match_torch_flop_counter(subsampling_factor, which):
    model = SupernetConformerForCTC(tiny_conformer_config(subsampling_factor=subsampling_factor)).eval()
    space = model.subnet_space
    spec = {"largest": space.largest(), "smallest": space.smallest(), "sampled": space.sample(torch.Generator().manual_seed(2))}[which]
    frames = 123
    # The math SDPA backend runs attention as counted matmuls (the fused CPU kernel is not counted by torch).
    with torch.no_grad(), model.use_subnet(spec), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, frames, 16))
    assert counter.get_total_flops() == conformer_flops(model.config, model.mask.block_plans(spec), frames)


def test_costs_are_monotone_and_consistent(tiny_model):
    space = tiny_model.subnet_space
    small, large = tiny_model.subnet_costs(space.smallest()), tiny_model.subnet_costs(space.largest())
    assert small.params < large.params and small.flops < large.flops and small.int8_mb < large.int8_mb
    assert large.params == tiny_model.num_parameters() == tiny_model.subnet_costs().params
    # int8: linear weights in one byte (+ a 4-byte scale and a 1-byte zero point per output channel), the rest fp32.
    assert large.int8_mb == pytest.approx(ParamCounts.of_module(tiny_model).int8_mb, rel=1e-12)
    assert large.int8_mb > large.params / 1e6
    frames = int(REFERENCE_SECONDS * FEATURE_FRAMES_PER_SECOND)
    assert large.flops == pytest.approx(conformer_flops(tiny_model.config, tiny_model.mask.full_plans(), frames) / REFERENCE_SECONDS)


def test_encoder_costs_exclude_the_head(tiny_model):
    encoder = tiny_model.conformer
    head = tiny_model.lm_head.weight.numel() + tiny_model.lm_head.bias.numel()
    assert encoder.subnet_costs().params == tiny_model.subnet_costs().params - head == encoder.num_parameters()


def test_int8_size_counts_linear_weights_in_one_byte_and_the_rest_in_fp32():
    graph = INT8_GRAPH_BYTES  # the graph's own bytes, and per linear layer
    linear = torch.nn.Linear(10, 3)  # 30 weights, 3 output channels (scale + zero point each), 3 biases
    assert ParamCounts.of_module(linear) == ParamCounts(linear_weights=30, linear_outputs=3, other=3, linear_layers=1)
    assert ParamCounts.of_module(linear).int8_mb == (30 + 5 * 3 + 4 * 3 + INT8_GRAPH_BYTES_PER_LINEAR + graph) / 1e6
    with torch.no_grad():
        linear.weight[0].zero_()  # pruned weights are not stored (the params convention); vectors always are
        linear.bias.zero_()
    assert ParamCounts.of_module(linear) == ParamCounts(linear_weights=20, linear_outputs=3, other=3, linear_layers=1)
    conv = torch.nn.Conv1d(4, 4, 3, groups=4)  # convolutions stay fp32
    assert ParamCounts.of_module(conv).int8_mb == (4 * (12 + 4) + graph) / 1e6


def test_a_dense_configs_costs_are_its_supernets_costs_of_that_subnet(tiny_model):
    for spec in (tiny_model.subnet_space.smallest(), tiny_model.subnet_space.sample(torch.Generator().manual_seed(1))):
        dense = tiny_model.extract_subnet(spec)
        assert dense_conformer_costs(dense.config) == tiny_model.subnet_costs(spec)
        assert dense_conformer_costs(dense.config).int8_mb == pytest.approx(ParamCounts.of_module(dense).int8_mb)
