"""What a Conformer subnet costs, counted from its block plans: parameters, FLOPs and the int8 size (the conventions
of :mod:`hf_supernet.costs`), and the dense block shapes extraction builds.
"""

from __future__ import annotations

import dataclasses

from ...costs import ParamCounts, SubnetCosts
from ...masks.base import BlockPlan
from ...slicing import kept_count, select_channels
from ...units import FEATURE_FRAMES_PER_SECOND, REFERENCE_SECONDS
from ..conformer.modeling_conformer import subsampled_lengths


def strided_conv_length(length, num_convs: int = 1):
    """Length (frames, or mel bins) after ``num_convs`` of the front end's stride-2 convolutions (kernel 3, padding
    1: ceil(length / 2) each; the dense model's own arithmetic); ``length`` is an int or a tensor of them."""
    return subsampled_lengths(length, num_convs)


@dataclasses.dataclass(frozen=True)
class BlockShape:
    """The dense architecture one plan gives a Conformer block (0 / False = the unit is gone), and the share of
    nonzero weights in each weight matrix a weight mask thins (1.0 for unmasked ones)."""

    ffn_dims: tuple[int, int]
    heads: int
    conv: bool
    densities: dict[str, float] = dataclasses.field(default_factory=dict)

    def density(self, name: str) -> float:
        return self.densities.get(name, 1.0)


def conformer_block_shape(config, plan: BlockPlan) -> BlockShape:
    """What a block runs under ``plan``: the widths the dense model gets, and the density of masked weights."""
    full_ffn = config.ffn_dims_of_layer(plan.layer_index)
    full_heads = config.heads_of_layer(plan.layer_index)
    ffn_dims = tuple(kept_count(plan.ffn_keep(i + 1), full_ffn[i]) if full_ffn[i] else 0 for i in range(2))
    heads = kept_count(plan.attention_heads, full_heads) if full_heads else 0
    conv = bool(plan.conv and config.has_conv_module(plan.layer_index))
    densities = {}
    head_dim = config.hidden_size // config.num_attention_heads
    for name, mask in (plan.weight_masks or {}).items():
        unit, _, param = name.partition(".")
        if unit in ("ffn1", "ffn2"):
            dim = 1 if param.startswith("output_dense") else 0
            mask = select_channels(mask, dim, plan.ffn_keep(int(unit[-1])))
        elif unit == "self_attn":
            dim = 1 if param.startswith("out_proj") else 0
            mask = select_channels(mask, dim, plan.attention_heads, head_dim)
        densities[name] = float(mask.float().mean()) if mask.numel() else 0.0
    return BlockShape(ffn_dims=ffn_dims, heads=heads, conv=conv, densities=densities)


# These functions cost supernet configs and the dense ConformerConfig alike; the dense model has no Parakeet blocks
# and always has biases.
def _is_parakeet(config) -> bool:
    return getattr(config, "architecture", "conformer") == "parakeet"


def _biases(config) -> tuple[bool, bool]:
    """(linear layers of the attention and feed-forward modules, convolutions) have biases."""
    return bool(getattr(config, "attention_bias", True)), bool(getattr(config, "convolution_bias", True))


def _linear(d_in: int, d_out: int, density: float = 1.0, bias: bool = True) -> ParamCounts:
    """A linear layer ``d_in -> d_out`` (with a bias unless ``bias=False``), whose weight keeps ``density`` of its
    entries."""
    return ParamCounts(linear_weights=round(d_in * d_out * density), linear_outputs=d_out, other=d_out * bias,
                       linear_layers=1)


def conformer_block_counts(config, shape: BlockShape) -> ParamCounts:
    """Nonzero parameters of one block of ``shape`` (weights a mask zeroes are not counted), split as int8 stores
    them (see :class:`~hf_supernet.costs.ParamCounts`)."""
    d, k = config.hidden_size, config.conv_kernel_size
    inner = shape.heads * (d // config.num_attention_heads)
    # A BatchNorm (architecture="parakeet") has as many parameters as a LayerNorm (its statistics are buffers).
    layer_norm = ParamCounts(other=2 * d)
    linear_bias, conv_bias = _biases(config)
    counts = layer_norm  # the final LayerNorm: all that is left of a block whose units are all gone
    for i, w in enumerate(shape.ffn_dims):
        if w:
            unit = f"ffn{i + 1}"
            counts += layer_norm + _linear(d, w, shape.density(f"{unit}.intermediate_dense.weight"), linear_bias)
            counts += _linear(w, d, shape.density(f"{unit}.output_dense.weight"), linear_bias)
    if inner:
        counts += layer_norm + _linear(inner, d, shape.density("self_attn.out_proj.weight"), linear_bias)
        for proj in ("q_proj", "k_proj", "v_proj"):
            counts += _linear(d, inner, shape.density(f"self_attn.{proj}.weight"), linear_bias)
        if _is_parakeet(config):  # relative_k_proj (no bias), bias_u, bias_v
            counts += _linear(d, inner, shape.density("self_attn.relative_k_proj.weight"), bias=False)
            counts += ParamCounts(other=2 * inner)
    if shape.conv:
        counts += layer_norm + layer_norm  # before the module and after the depthwise conv
        counts += _linear(d, 2 * d, shape.density("conv_module.pointwise_in.weight"), conv_bias)
        depthwise = round(d * k * shape.density("conv_module.depthwise_conv.weight")) + d * conv_bias
        counts += ParamCounts(other=depthwise)
        counts += _linear(d, d, shape.density("conv_module.pointwise_out.weight"), conv_bias)
    return counts


def conformer_frontend_counts(config) -> ParamCounts:
    c, freq = config.subsampling_conv_channels, config.num_mel_bins
    num_convs = 2 if config.subsampling_factor == 4 else 3
    convs = 9 * c + c  # first 3x3 conv, 1 -> c channels
    convs += (num_convs - 1) * ((9 * c + c) + (c * c + c))  # depthwise 3x3 + pointwise 1x1
    freq = strided_conv_length(freq, num_convs)
    return ParamCounts(other=convs) + _linear(c * freq, config.hidden_size)


def conformer_head_counts(config) -> ParamCounts:
    return _linear(config.hidden_size, config.vocab_size)


def conformer_params(config, plans: list[BlockPlan], with_head: bool = True) -> int:
    """Parameters of the dense model that runs ``plans`` (what ``extract_subnet(...).num_parameters()`` gives)."""
    return _counts_of_shapes(config, [conformer_block_shape(config, p) for p in plans], with_head).params


def _counts_of_shapes(config, shapes: list[BlockShape], with_head: bool) -> ParamCounts:
    total = conformer_frontend_counts(config)
    for shape in shapes:
        total += conformer_block_counts(config, shape)
    return total + (conformer_head_counts(config) if with_head else ParamCounts())


def conformer_flops(config, plans: list[BlockPlan], num_frames: int, with_head: bool = True) -> int:
    """FLOPs of one forward pass over ``num_frames`` feature frames (batch of one)."""
    return _flops_of_shapes(config, [conformer_block_shape(config, p) for p in plans], num_frames, with_head)


def _flops_of_shapes(config, shapes: list[BlockShape], num_frames: int, with_head: bool) -> int:
    c, freq, frames = config.subsampling_conv_channels, config.num_mel_bins, num_frames
    num_convs = 2 if config.subsampling_factor == 4 else 3
    frames, freq = strided_conv_length(frames), strided_conv_length(freq)
    flops = 2 * c * 9 * frames * freq  # first 3x3 conv
    for _ in range(num_convs - 1):
        frames, freq = strided_conv_length(frames), strided_conv_length(freq)
        flops += 2 * c * 9 * frames * freq + 2 * c * c * frames * freq  # depthwise + pointwise
    t, d = frames, config.hidden_size
    flops += 2 * t * c * freq * d
    for shape in shapes:
        flops += conformer_block_flops(config, shape, t)
    if with_head:
        flops += 2 * t * d * config.vocab_size
    return flops


def conformer_block_flops(config, shape: BlockShape, t: int) -> float:
    """FLOPs of one block of ``shape`` over ``t`` frames. A weight mask scales its matmul's FLOPs by the share of
    nonzero weights (what a sparse kernel would do; dense kernels do the full product)."""
    d, k = config.hidden_size, config.conv_kernel_size
    inner = shape.heads * (d // config.num_attention_heads)
    flops = 0.0
    for i, w in enumerate(shape.ffn_dims):
        unit = f"ffn{i + 1}"
        flops += 2 * t * d * w * (shape.density(f"{unit}.intermediate_dense.weight") + shape.density(f"{unit}.output_dense.weight"))
    if inner:
        flops += sum(2 * t * d * inner * shape.density(f"self_attn.{p}.weight") for p in ("q_proj", "k_proj", "v_proj", "out_proj"))
        flops += 2 * 2 * t * t * inner  # scores and weighted values
        if _is_parakeet(config):  # relative keys of the 2t - 1 relative positions, their scores
            positions = 2 * t - 1
            flops += 2 * positions * d * inner * shape.density("self_attn.relative_k_proj.weight")
            flops += 2 * t * positions * inner
    if shape.conv:
        flops += 2 * t * d * 2 * d * shape.density("conv_module.pointwise_in.weight")
        flops += 2 * t * d * k * shape.density("conv_module.depthwise_conv.weight")
        flops += 2 * t * d * d * shape.density("conv_module.pointwise_out.weight")
    return flops


def costs_of_plans(config, plans: list[BlockPlan], with_head: bool = True) -> SubnetCosts:
    shapes = [conformer_block_shape(config, p) for p in plans]  # once: search scores thousands of subnets
    counts = _counts_of_shapes(config, shapes, with_head)
    frames = int(REFERENCE_SECONDS * FEATURE_FRAMES_PER_SECOND)
    flops = _flops_of_shapes(config, shapes, frames, with_head) / REFERENCE_SECONDS
    return SubnetCosts(params=counts.params, flops=float(flops), int8_mb=counts.int8_mb)


def dense_conformer_costs(config, with_head: bool = True) -> SubnetCosts:
    """Costs of the plain dense Conformer of ``config`` (a ``ConformerConfig``, e.g. an extracted subnet's or a
    deployed folder's), counted from its architecture alone: every weight (a pruned subnet's zeros are in its weights,
    not its config; the supernet's ``subnet_costs(spec)`` counts them out)."""
    plans = [BlockPlan(layer_index=i) for i in range(config.num_hidden_layers)]
    return costs_of_plans(config, plans, with_head=with_head)


