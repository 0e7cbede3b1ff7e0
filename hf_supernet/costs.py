"""What a subnet costs: parameters, FLOPs, int8 size — analytic functions of a ``SubnetSpec``.

Counting convention (the one ``torch.utils.flop_counter`` uses, checked by a test): a multiply-accumulate is 2
FLOPs; matrix multiplications, attention score/value products and convolutions are counted; element-wise work
(activations, norms, softmax, rotary embedding, residual adds) is not. FLOPs are for a batch of one utterance.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .masks import BlockPlan

# Log-mel features arrive at 100 frames per second (10 ms hop), the rate of every feature extractor we ship.
FEATURE_FRAMES_PER_SECOND = 100
# Attention cost grows with utterance length, so "FLOPs per second of audio" is quoted for this length.
REFERENCE_SECONDS = 10.0
# The costs every budget may name, and their units.
COST_NAMES = {"params": "parameters", "flops": "FLOPs per second of audio", "int8_mb": "MB at one byte per weight"}


@dataclasses.dataclass(frozen=True)
class SubnetCosts:
    """Costs of one subnet. ``flops`` is FLOPs per second of audio for a ``REFERENCE_SECONDS`` utterance;
    ``int8_mb`` stores every parameter in one byte (1 MB = 10^6 bytes)."""

    params: int
    flops: float
    int8_mb: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _frames_after_conv(n: int) -> int:
    # kernel 3, stride 2, padding 1
    return (n + 1) // 2


def _block_ffn_dim(config, plan: BlockPlan) -> int:
    return plan.ffn_dim if plan.ffn_dim is not None else config.ffn_dim_of_layer(plan.layer_index)


def conformer_block_params(config, plan: BlockPlan) -> int:
    d, w, k = config.hidden_size, _block_ffn_dim(config, plan), config.conv_kernel_size
    layer_norm = 2 * d
    ffn = layer_norm + (d * w + w) + (w * d + d)
    attention = layer_norm + 4 * (d * d + d)
    conv = layer_norm + (d * 2 * d + 2 * d) + (d * k + d) + layer_norm + (d * d + d)
    return 2 * ffn + attention + conv + layer_norm


def conformer_frontend_params(config) -> int:
    c, freq = config.subsampling_conv_channels, config.num_mel_bins
    num_convs = 2 if config.subsampling_factor == 4 else 3
    params = 9 * c + c  # first 3x3 conv, 1 -> c channels
    params += (num_convs - 1) * ((9 * c + c) + (c * c + c))  # depthwise 3x3 + pointwise 1x1
    for _ in range(num_convs):
        freq = _frames_after_conv(freq)
    return params + c * freq * config.hidden_size + config.hidden_size


def conformer_head_params(config) -> int:
    return config.hidden_size * config.vocab_size + config.vocab_size


def conformer_params(config, plans: list[BlockPlan], with_head: bool = True) -> int:
    """Parameters of the dense model that runs ``plans`` (what ``extract_subnet(...).num_parameters()`` gives)."""
    total = conformer_frontend_params(config) + sum(conformer_block_params(config, p) for p in plans)
    return total + (conformer_head_params(config) if with_head else 0)


def conformer_flops(config, plans: list[BlockPlan], num_frames: int, with_head: bool = True) -> int:
    """FLOPs of one forward pass over ``num_frames`` feature frames (batch of one)."""
    c, freq, frames = config.subsampling_conv_channels, config.num_mel_bins, num_frames
    num_convs = 2 if config.subsampling_factor == 4 else 3
    frames, freq = _frames_after_conv(frames), _frames_after_conv(freq)
    flops = 2 * c * 9 * frames * freq  # first 3x3 conv
    for _ in range(num_convs - 1):
        frames, freq = _frames_after_conv(frames), _frames_after_conv(freq)
        flops += 2 * c * 9 * frames * freq + 2 * c * c * frames * freq  # depthwise + pointwise
    t, d, k = frames, config.hidden_size, config.conv_kernel_size
    flops += 2 * t * c * freq * d
    for plan in plans:
        w = _block_ffn_dim(config, plan)
        flops += 2 * (2 * t * d * w + 2 * t * w * d)  # two feed-forward modules
        flops += 4 * 2 * t * d * d + 2 * 2 * t * t * d  # q/k/v/out projections, scores and weighted values
        flops += 2 * t * d * 2 * d + 2 * t * d * k + 2 * t * d * d  # pointwise, depthwise, pointwise
    if with_head:
        flops += 2 * t * d * config.vocab_size
    return flops


def costs_of_plans(config, plans: list[BlockPlan], with_head: bool = True) -> SubnetCosts:
    params = conformer_params(config, plans, with_head)
    frames = int(REFERENCE_SECONDS * FEATURE_FRAMES_PER_SECOND)
    flops = conformer_flops(config, plans, frames, with_head) / REFERENCE_SECONDS
    return SubnetCosts(params=params, flops=float(flops), int8_mb=params / 1e6)


def costs_of(model, spec) -> SubnetCosts:
    """Analytic costs of ``spec`` as a subnet of ``model`` (``spec=None``: the whole model).

    A model family other than the Conformer gives its own analytic costs by defining
    ``costs_of_plans(self, plans) -> SubnetCosts``; everything else (budgets, search, cards) only calls this.
    """
    plans = model.mask.full_plans() if spec is None else model.mask.block_plans(spec)
    family_costs = getattr(model, "costs_of_plans", None)
    if family_costs is not None:
        return family_costs(plans)
    return costs_of_plans(model.config, plans, with_head=hasattr(model, "lm_head"))
