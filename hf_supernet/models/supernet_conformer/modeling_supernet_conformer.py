"""Supernet Conformer-CTC: a Conformer encoder whose forward runs as any subnet of its mask type's space.

The modules here execute :class:`~hf_supernet.masks.BlockPlan`\\ s (which physical block runs, how wide its
feed-forward modules are) and know how to cut their own weights down to a plan, so extraction is exact by
construction: the dense subnet runs the very same operations on the very same numbers.

Relative positions use rotary embeddings (RoFormer): relative by construction, no extra parameters, and unlike
Transformer-XL relative attention they keep attention a plain ``scaled_dot_product_attention`` call, which is
what makes attention fast on CPU and lets heads be sliced without a positional projection to slice with them.
The convolution module normalises with LayerNorm rather than BatchNorm: a supernet's subnets see different
activation statistics, and LayerNorm needs no per-subnet running statistics (no recalibration after training)
and is exactly invariant to padding.

``config.architecture="parakeet"`` builds the same supernet from transformers' Parakeet (FastConformer) blocks
instead, so that a pretrained ``ParakeetForCTC`` can be made elastic and its subnets exported as stock
``ParakeetForCTC``\\ s: Parakeet's own front end and relative position encoding (transformers' modules, imported),
Transformer-XL relative positional attention with the u/v biases (:class:`SupernetRelPositionSelfAttention`,
head-sliceable), BatchNorm in the convolution module. Its BatchNorm statistics are shared by every subnet; see
:func:`hf_supernet.recalibrate_batch_norm`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.models.parakeet.modeling_parakeet import (
    ParakeetEncoderAttention,
    ParakeetEncoderRelPositionalEncoding,
    ParakeetEncoderSubsamplingConv2D,
)
from transformers.utils import ModelOutput

from ...costs import SubnetCosts
from ...masks import BlockPlan, build_mask
from ...masks.folding import evenly_spaced_layers
from ...modeling_outputs import SupernetCTCOutput
from ...slicing import ChannelSelection, LinearSelection, kept_count, masked_weight, subnet_linear
from ...slicing import select_channels as _select
from ...subnets import SubnetSpec
from ...supernet import SupernetMixin
from ...units import FEATURE_FRAMES_PER_SECOND
from ..conformer import ConformerConfig, ConformerForCTC, ConformerModel
from ..conformer.checksums import ChecksummedModelMixin
from ..conformer.modeling_conformer import (
    ConformerBlock,
    ConformerSubsampling,
    apply_rotary,
    eager_attention_forward,
    frame_mask,
    rotary_cos_sin,
    spec_augment_input,
    spec_augment_masks,
    subsampled_lengths,
)
from . import costs, extraction, parakeet
from .costs import strided_conv_length
from .configuration_supernet_conformer import SupernetConformerConfig


@dataclass
class SupernetConformerModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, frames, hidden_size)`):
            Output of the last block of the active subnet.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            Front-end output and each block's output, when `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            Attention probabilities `(batch, heads, frames, frames)` of each block whose self-attention runs in the
            subnet (its kept heads), when `output_attentions=True`.
        output_attention_mask (`torch.BoolTensor` of shape `(batch, frames)`):
            Which output frames are real (not padding).
    """

    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    output_attention_mask: torch.BoolTensor | None = None


# The supernet families share one output type (kept under this name for code that imports it).
SupernetConformerCTCOutput = SupernetCTCOutput


def _time_mask(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero padded frames of ``x`` (batch, time, ...) so convolutions never read padding as signal."""
    if mask is None:
        return x
    return x * mask.view(mask.shape[0], mask.shape[1], *([1] * (x.dim() - 2))).to(x.dtype)


class SupernetConformerSubsampling(ConformerSubsampling):
    """The dense model's convolutional front end (a stride-2 3x3 conv, then depthwise-separable stride-2 convs, as
    NeMo's "dw_striding" in Parakeet): every subnet shares it whole."""


class SupernetParakeetSubsampling(ParakeetEncoderSubsamplingConv2D):
    """``architecture="parakeet"``: transformers' Parakeet front end itself (same modules, names and computation: it
    does not mask the input features, only each convolution's output), with the supernet's ``(features, lengths) ->
    (hidden, lengths)`` interface."""

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = super().forward(features, frame_mask(lengths, features.shape[1]))
        return hidden, subsampled_lengths(lengths, self.num_layers)


def _reduced_module_state(
    module: nn.Module, masks: dict[str, torch.Tensor], selections: dict[str, LinearSelection]
) -> dict:
    """A copy of ``module``'s state with weight masks baked in, then the weight and bias of each linear layer in
    ``selections`` cut by its selection — the very selection the forward pass makes, so the dense module computes
    the same."""
    state = {}
    for key, value in module.state_dict().items():
        value = masked_weight(value.detach(), masks.get(key))
        layer, _, kind = key.rpartition(".")
        if layer in selections and kind in ("weight", "bias"):
            value = getattr(selections[layer], kind)(value)
        state[key] = value.clone()
    return state


class SupernetConformerFeedForward(nn.Module):
    """Pre-norm feed-forward module whose hidden channels can be trimmed (any subset, a prefix being the cheap case)
    and soft-masked at run time."""

    def __init__(self, config: SupernetConformerConfig, ffn_dim: int):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate_dense = nn.Linear(config.hidden_size, ffn_dim, bias=config.attention_bias)
        self.activation = ACT2FN[config.hidden_act]
        self.activation_dropout = config.activation_dropout
        self.output_dense = nn.Linear(ffn_dim, config.hidden_size, bias=config.attention_bias)

    def forward(
        self,
        x: torch.Tensor,
        *,
        keep: ChannelSelection = None,
        dropout_scale: float = 1.0,
        scale: torch.Tensor | None = None,
        weight_masks: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        masks = weight_masks or {}
        cut = self.linear_selections(keep)
        x = self.layer_norm(x)
        x = self.activation(
            subnet_linear(self.intermediate_dense, x, cut["intermediate_dense"], masks.get("intermediate_dense.weight"))
        )
        if scale is not None:
            x = x * _select(scale, 0, keep)
        x = F.dropout(x, self.activation_dropout * dropout_scale, self.training)
        return subnet_linear(self.output_dense, x, cut["output_dense"], masks.get("output_dense.weight"))

    @staticmethod
    def linear_selections(keep: ChannelSelection) -> dict[str, LinearSelection]:
        """What each linear layer runs when ``keep`` hidden channels are kept."""
        return {"intermediate_dense": LinearSelection(rows=keep), "output_dense": LinearSelection(cols=keep)}

    def reduced_state_dict(self, keep: ChannelSelection, weight_masks: dict[str, torch.Tensor]) -> dict:
        return _reduced_module_state(self, weight_masks, self.linear_selections(keep))


class SupernetConformerSelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with rotary relative positions, via ``scaled_dot_product_attention``.
    Any subset of heads can run (the q/k/v rows and out_proj columns of the others are skipped)."""

    def __init__(self, config: SupernetConformerConfig, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout = config.attention_dropout
        inner = num_heads * self.head_dim
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, inner, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, inner, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, inner, bias=bias)
        self.out_proj = nn.Linear(inner, config.hidden_size, bias=bias)

    def forward(
        self,
        x,
        *,
        positions,
        key_mask: torch.Tensor | None,
        heads: tuple[int, ...] | None = None,
        scale: torch.Tensor | None = None,
        weight_masks: dict[str, torch.Tensor] | None = None,
        dropout_scale: float = 1.0,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``positions``: what :meth:`_rotate` and :meth:`_score_terms` read positions from; ``key_mask``: which
        frames are real, (batch, frames), or ``None`` when none is padding. Returns the output and, with
        ``output_attentions``, the attention probabilities (batch, kept heads, frames, frames), else ``None``."""
        batch, time, _ = x.shape
        x = self.layer_norm(x)
        q, k, v = (self._project(name, x, heads, weight_masks) for name in ("q_proj", "k_proj", "v_proj"))
        dropout = self.dropout * dropout_scale if self.training else 0.0
        scores_bias, query_offset = self._score_terms(q, positions, key_mask, heads, weight_masks)
        q, k = self._rotate(q, k, positions)
        if query_offset is not None:
            q = q + query_offset
        scaling = self.head_dim**-0.5
        if output_attentions:  # SDPA cannot return its probabilities: this call runs the dense model's eager path
            out, weights = eager_attention_forward(self, q, k, v, scores_bias, scaling, dropout)
            out = out.transpose(1, 2)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=scores_bias, dropout_p=dropout, scale=scaling)
            weights = None
        if scale is not None:
            out = out * _select(scale, 0, heads)[None, :, None, None]
        out = out.transpose(1, 2).reshape(batch, time, -1)
        out = subnet_linear(self.out_proj, out, self.linear_selections(heads)["out_proj"],
                            (weight_masks or {}).get("out_proj.weight"))
        return out, weights

    def _project(self, name: str, inputs: torch.Tensor, heads, weight_masks) -> torch.Tensor:
        """Projection ``name`` of ``inputs`` (batch, frames, hidden) for the kept ``heads``: (batch, heads, frames,
        head_dim)."""
        cut = self.linear_selections(heads)[name]
        out = subnet_linear(getattr(self, name), inputs, cut, (weight_masks or {}).get(f"{name}.weight"))
        return out.view(inputs.shape[0], inputs.shape[1], kept_count(heads, self.num_heads), self.head_dim).transpose(1, 2)

    def _rotate(self, q, k, positions):
        """Rotary positions on queries and keys (``positions`` = the ``(cos, sin)`` tables)."""
        cos, sin = positions
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)

    def _score_terms(self, q, positions, key_mask, heads, weight_masks):
        """What the attention adds to the scaled scores q·k (here an additive mask: padded keys get the dtype's
        minimum; ``None`` without padding) and to the queries before them (here nothing: ``None``)."""
        if key_mask is None:
            return None, None
        return (~key_mask)[:, None, None, :].to(q.dtype) * torch.finfo(q.dtype).min, None

    def linear_selections(self, heads: tuple[int, ...] | None) -> dict[str, LinearSelection]:
        """What each projection runs when ``heads`` are kept (rows / columns in groups of ``head_dim``)."""
        qkv = LinearSelection(rows=heads, group=self.head_dim)
        return {"q_proj": qkv, "k_proj": qkv, "v_proj": qkv, "out_proj": LinearSelection(cols=heads, group=self.head_dim)}

    def reduced_state_dict(self, heads: tuple[int, ...] | None, weight_masks: dict[str, torch.Tensor]) -> dict:
        return _reduced_module_state(self, weight_masks, self.linear_selections(heads))


class SupernetRelPositionSelfAttention(SupernetConformerSelfAttention):
    """``architecture="parakeet"``: Parakeet's pre-norm multi-head self-attention with Transformer-XL relative
    positions (a projection ``relative_k_proj`` of the relative position embeddings, a content bias ``bias_u`` and a
    position bias ``bias_v`` per head; Dai et al. 2019, section 3.3), computed as transformers'
    ``ParakeetEncoderAttention`` computes it, whose relative shift it calls. Any subset of heads can run: the
    q/k/v/relative_k rows, u/v bias rows and out_proj columns of the others are skipped."""

    def __init__(self, config: SupernetConformerConfig, num_heads: int):
        super().__init__(config, num_heads)
        self.relative_k_proj = nn.Linear(config.hidden_size, num_heads * self.head_dim, bias=False)
        self.bias_u = nn.Parameter(torch.zeros(num_heads, self.head_dim))
        self.bias_v = nn.Parameter(torch.zeros(num_heads, self.head_dim))

    def _rotate(self, q, k, positions):
        return q, k  # positions enter through the scores

    def _score_terms(self, q, positions, key_mask, heads, weight_masks):
        """``positions``: the relative position embeddings, (1, 2 * frames - 1, hidden_size). Terms (b) and (d) of
        Transformer-XL's score, shifted from relative to absolute key positions, enter the attention as an additive
        mask, as in ParakeetEncoderAttention (padded query rows and key columns masked); the content bias u is added
        to the queries."""
        time = q.shape[2]
        relative_k = self._project("relative_k_proj", positions, heads, weight_masks)
        bias_u = _select(self.bias_u, 0, heads)[None, :, None, :]
        bias_v = _select(self.bias_v, 0, heads)[None, :, None, :]
        position_scores = (q + bias_v) @ relative_k.transpose(-1, -2)
        position_scores = ParakeetEncoderAttention._rel_shift(self, position_scores)[..., :time] * self.head_dim**-0.5
        if key_mask is not None:
            pairs = key_mask[:, None, :, None] & key_mask[:, None, None, :]
            position_scores = position_scores.masked_fill(~pairs, torch.finfo(position_scores.dtype).min)
        return position_scores, bias_u

    def linear_selections(self, heads: tuple[int, ...] | None) -> dict[str, LinearSelection]:
        cuts = super().linear_selections(heads)
        cuts["relative_k_proj"] = cuts["q_proj"]
        return cuts

    def reduced_state_dict(self, heads: tuple[int, ...] | None, weight_masks: dict[str, torch.Tensor]) -> dict:
        state = super().reduced_state_dict(heads, weight_masks)
        for name in ("bias_u", "bias_v"):
            state[name] = _select(getattr(self, name).detach(), 0, heads).clone()
        return state


class SupernetConformerConvModule(nn.Module):
    """Pre-norm convolution module: pointwise + GLU, depthwise conv, LayerNorm, SiLU, pointwise
    (``architecture="parakeet"``: BatchNorm and ``hidden_act`` instead of LayerNorm and SiLU, as Parakeet)."""

    def __init__(self, config: SupernetConformerConfig):
        super().__init__()
        hidden = config.hidden_size
        bias = config.convolution_bias
        self.layer_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.pointwise_in = nn.Linear(hidden, 2 * hidden, bias=bias)
        self.depthwise_conv = nn.Conv1d(
            hidden, hidden, config.conv_kernel_size, padding=config.conv_kernel_size // 2, groups=hidden, bias=bias
        )
        if config.architecture == "parakeet":
            self.depthwise_norm = nn.BatchNorm1d(hidden)
            self.activation = ACT2FN[config.hidden_act]
        else:
            self.depthwise_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
            self.activation = F.silu
        self.pointwise_out = nn.Linear(hidden, hidden, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None,
        scale: torch.Tensor | None = None,
        weight_masks: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        masks = weight_masks or {}
        x = subnet_linear(self.pointwise_in, self.layer_norm(x), weight_mask=masks.get("pointwise_in.weight"))
        x = _time_mask(F.glu(x, dim=-1), mask)  # the depthwise conv must see zeros, not padding garbage, past the end
        conv = self.depthwise_conv
        if not isinstance(conv, nn.Conv1d):
            raise TypeError(
                f"conv_module.depthwise_conv is a {type(conv).__name__}; the supernet runs it as a masked "
                "torch.nn.Conv1d and cannot run adapters on it. Adapt only linear layers (e.g. LoRA target_modules "
                "from hf_supernet.adapters.supernet_lora_config)."
            )
        w_dw = masked_weight(conv.weight, masks.get("depthwise_conv.weight"))
        x = F.conv1d(x.transpose(1, 2), w_dw, conv.bias, padding=conv.padding, groups=conv.groups)  # (batch, ch, time)
        if isinstance(self.depthwise_norm, nn.BatchNorm1d):
            x = self.depthwise_norm(x).transpose(1, 2)
        else:
            x = self.depthwise_norm(x.transpose(1, 2))
        x = subnet_linear(self.pointwise_out, self.activation(x), weight_mask=masks.get("pointwise_out.weight"))
        return x if scale is None else x * scale

    @staticmethod
    def linear_selections() -> dict[str, LinearSelection]:
        """The convolution module is never cut: both pointwise layers run whole."""
        return {"pointwise_in": LinearSelection(), "pointwise_out": LinearSelection()}

    def reduced_state_dict(self, weight_masks: dict[str, torch.Tensor]) -> dict:
        return _reduced_module_state(self, weight_masks, {})


class SupernetConformerBlock(GradientCheckpointingLayer):
    """Macaron Conformer block: ½ FFN, MHSA, conv module, ½ FFN, LayerNorm (all residual, pre-norm).

    A plan may drop any of the four units; a dense (extracted) block built from a config that lacks a unit has
    ``None`` in its place, so a block with no units left is just its final LayerNorm."""

    def __init__(self, config: SupernetConformerConfig, layer_idx: int):
        super().__init__()
        ffn1_dim, ffn2_dim = config.ffn_dims_of_layer(layer_idx)
        num_heads = config.heads_of_layer(layer_idx)
        self.ffn1 = SupernetConformerFeedForward(config, ffn1_dim) if ffn1_dim else None
        attention = SupernetRelPositionSelfAttention if config.architecture == "parakeet" else SupernetConformerSelfAttention
        self.self_attn = attention(config, num_heads) if num_heads else None
        self.conv_module = SupernetConformerConvModule(config) if config.has_conv_module(layer_idx) else None
        self.ffn2 = SupernetConformerFeedForward(config, ffn2_dim) if ffn2_dim else None
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = config.hidden_dropout

    UNITS = ("ffn1", "self_attn", "conv_module", "ffn2")

    def runs(self, plan: BlockPlan) -> dict[str, bool]:
        """Which units run under ``plan`` (present in this block and not removed by the plan)."""
        return {
            "ffn1": self.ffn1 is not None and kept_count(plan.ffn_keep(1), 1) > 0,
            "self_attn": self.self_attn is not None and kept_count(plan.attention_heads, 1) > 0,
            "conv_module": self.conv_module is not None and plan.conv,
            "ffn2": self.ffn2 is not None and kept_count(plan.ffn_keep(2), 1) > 0,
        }

    def forward(
        self, x, positions, mask, plan: BlockPlan, dropout_scale: float = 1.0, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``positions``: the rotary ``(cos, sin)`` tables, or Parakeet's relative position embeddings; ``mask``:
        which frames are real, (batch, frames), or ``None`` when none is padding. Returns the block's output and,
        with ``output_attentions``, its attention probabilities (``None`` when its self-attention does not run)."""
        # dropout_scale (adaptive dropout) applies to the units the plan names; the others keep their rate.
        unit_scale = {unit: dropout_scale if unit in plan.dropout_scaled_units else 1.0 for unit in self.UNITS}
        scales = plan.unit_scales or {}
        runs = self.runs(plan)
        weights = None
        if runs["ffn1"]:
            s = unit_scale["ffn1"]
            out = self.ffn1(
                x, keep=plan.ffn_keep(1), dropout_scale=s, scale=scales.get("ffn1"),
                weight_masks=plan.weight_masks_of("ffn1"),
            )
            x = x + 0.5 * F.dropout(out, self.dropout * s, self.training)
        if runs["self_attn"]:
            s = unit_scale["self_attn"]
            out, weights = self.self_attn(
                x, positions=positions, key_mask=mask, heads=plan.attention_heads, scale=scales.get("self_attn"),
                weight_masks=plan.weight_masks_of("self_attn"), dropout_scale=s, output_attentions=output_attentions,
            )
            x = x + F.dropout(out, self.dropout * s, self.training)
        if runs["conv_module"]:
            out = self.conv_module(
                x, mask=mask, scale=scales.get("conv_module"), weight_masks=plan.weight_masks_of("conv_module")
            )
            x = x + F.dropout(out, self.dropout * unit_scale["conv_module"], self.training)
        if runs["ffn2"]:
            s = unit_scale["ffn2"]
            out = self.ffn2(
                x, keep=plan.ffn_keep(2), dropout_scale=s, scale=scales.get("ffn2"),
                weight_masks=plan.weight_masks_of("ffn2"),
            )
            x = x + 0.5 * F.dropout(out, self.dropout * s, self.training)
        return self.final_layer_norm(x), weights

    def linear_selections(self, plan: BlockPlan) -> dict[str, LinearSelection]:
        """What each linear layer of the units that run under ``plan`` runs, keyed by name inside the block (e.g.
        ``"ffn1.intermediate_dense"``); used to cut adapters of an extracted subnet like the weights."""
        runs = self.runs(plan)
        units = {
            "ffn1": lambda: self.ffn1.linear_selections(plan.ffn_keep(1)),
            "self_attn": lambda: self.self_attn.linear_selections(plan.attention_heads),
            "conv_module": lambda: self.conv_module.linear_selections(),
            "ffn2": lambda: self.ffn2.linear_selections(plan.ffn_keep(2)),
        }
        return {f"{unit}.{name}": cut for unit, get in units.items() if runs[unit] for name, cut in get().items()}

    def reduced_state_dict(self, plan: BlockPlan) -> dict[str, torch.Tensor]:
        """This block's weights cut down to ``plan`` (for extraction); units the plan drops are left out."""
        if not plan.extractable:
            raise ValueError(
                "This subnet's plan carries soft masks (a learned mask still in its soft stage), which only the "
                "supernet can run; extract after the mask type has frozen its masks."
            )
        runs = self.runs(plan)
        parts = {"final_layer_norm": {k: v.detach().clone() for k, v in self.final_layer_norm.state_dict().items()}}
        if runs["ffn1"]:
            parts["ffn1"] = self.ffn1.reduced_state_dict(plan.ffn_keep(1), plan.weight_masks_of("ffn1"))
        if runs["self_attn"]:
            parts["self_attn"] = self.self_attn.reduced_state_dict(plan.attention_heads, plan.weight_masks_of("self_attn"))
        if runs["conv_module"]:
            parts["conv_module"] = self.conv_module.reduced_state_dict(plan.weight_masks_of("conv_module"))
        if runs["ffn2"]:
            parts["ffn2"] = self.ffn2.reduced_state_dict(plan.ffn_keep(2), plan.weight_masks_of("ffn2"))
        return {f"{unit}.{k}": v for unit, state in parts.items() for k, v in state.items()}


class SupernetConformerPreTrainedModel(SupernetMixin, ChecksummedModelMixin, PreTrainedModel):
    """(``save_pretrained`` also records the SHA-256 of the weights, which ``from_pretrained`` checks: a bit flip is
    an error; see :mod:`hf_supernet.integrity`.)"""

    config_class = SupernetConformerConfig
    config: SupernetConformerConfig
    base_model_prefix = "conformer"
    main_input_name = "input_features"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    _no_split_modules = ["SupernetConformerBlock"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            init.kaiming_normal_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, SupernetRelPositionSelfAttention):  # as ParakeetPreTrainedModel
            init.normal_(module.bias_u, mean=0.0, std=self.config.initializer_range)
            init.normal_(module.bias_v, mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, ParakeetEncoderRelPositionalEncoding):  # a non-persistent buffer, computed
            init.copy_(module.inv_freq, module.compute_default_relative_positional_parameters(module.config))

    def get_input_embeddings(self) -> None:
        """None: the model reads log-mel features, not token ids. (peft asks when saving an adapter that targets
        ``lm_head``, a name it treats as an embedding.)"""
        return None

    # ------------------------------------------------------------------ the family's part of the subnet API
    @torch.no_grad()
    def extract_dense_subnet(self, spec: SubnetSpec) -> ConformerForCTC | ConformerModel:
        """The plain dense Conformer ``spec`` runs: a ``ConformerForCTC`` (``ConformerModel`` for the bare encoder)
        of the subnet's architecture, without adapters (see
        :meth:`~hf_supernet.supernet.SupernetMixin.extract_subnet`)."""
        return extraction.extract_dense_subnet(self, spec)

    def subnet_config(self, spec: SubnetSpec) -> ConformerConfig:
        """The config of the dense model ``extract_subnet(spec)`` returns, without copying any weight."""
        if self.config.architecture == "parakeet":
            return parakeet.subnet_config(self, spec)
        self.subnet_space.validate(spec)
        return extraction.subnet_config(self.config, self.mask.block_plans(spec), spec)

    def costs_of_plans(self, plans: list[BlockPlan]) -> SubnetCosts:
        """Analytic costs of the dense Conformer that runs ``plans`` (see :mod:`.costs`)."""
        return costs.costs_of_plans(self.config, plans, with_head=hasattr(self, "lm_head"))

    @property
    def stored_blocks_name(self) -> str:
        """Module name of the stored blocks (``<name>.<index>`` is one block)."""
        return "layers" if self.base_model is self else f"{self.base_model_prefix}.layers"

    def block_linear_selection(self, plan: BlockPlan, name: str) -> LinearSelection | None:
        """The part of linear layer ``name`` (inside a block, e.g. ``"ffn1.intermediate_dense"``) the block runs
        under ``plan``; ``None`` for a module the block does not run as a cut linear layer."""
        return self.base_model.layers[plan.layer_index].linear_selections(plan).get(name)

    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor | int) -> torch.Tensor | int:
        """Number of encoder output frames for ``input_lengths`` feature frames."""
        return strided_conv_length(input_lengths, int(math.log2(self.config.subsampling_factor)))


class SupernetConformerModel(SupernetConformerPreTrainedModel):
    """The Conformer encoder (front end + blocks) without a head."""

    def __init__(self, config: SupernetConformerConfig):
        super().__init__(config)
        self.encode_positions = None
        if config.architecture == "parakeet":
            self.subsampling = SupernetParakeetSubsampling(config.parakeet_encoder_config())
            self.input_scale = math.sqrt(config.hidden_size) if config.scale_input else 1.0
            self.encode_positions = ParakeetEncoderRelPositionalEncoding(config.parakeet_encoder_config())
        else:
            self.subsampling = SupernetConformerSubsampling(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        # The stored blocks; subnets index them through their plans (folding runs some of them several times).
        self.layers = nn.ModuleList(SupernetConformerBlock(config, i) for i in range(config.num_physical_layers))
        # Masks that carve by cost count the whole CTC model's (the head included), whichever class holds them.
        self.mask = build_mask(config, plan_costs=functools.partial(costs.costs_of_plans, config, with_head=True))
        self.mask.bind_blocks(self.layers)
        self.gradient_checkpointing = False
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        subnet=None,
        mask_time_indices: torch.Tensor | None = None,
        mask_feature_indices: torch.Tensor | None = None,
        **kwargs,
    ) -> SupernetConformerModelOutput | tuple:
        r"""
        input_features (`torch.FloatTensor` of shape `(batch, frames, num_mel_bins)`):
            Log-mel features, e.g. from the processor's feature extractor.
        attention_mask (`torch.LongTensor` of shape `(batch, frames)`, *optional*):
            1 for real frames, 0 for padding.
        subnet (`SubnetSpec`, *optional*):
            Run as this subnet; defaults to the active one (`with model.use_subnet(spec)`), else the whole model.
        mask_time_indices (`torch.BoolTensor` of shape `(batch, frames)`, *optional*):
            SpecAugment time masks to apply (`SupernetTrainer` draws one set per batch for all its subnets); in
            training without them, masks are drawn from `config.mask_time_prob` / `config.mask_feature_prob`.
        mask_feature_indices (`torch.BoolTensor` of shape `(batch, num_mel_bins)`, *optional*):
            SpecAugment frequency masks to apply.
        output_attentions (`bool`, *optional*):
            Return each running self-attention's probabilities (computed eagerly for this call; SDPA otherwise).
        """
        self._check_input_features(input_features)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        batch, frames, _ = input_features.shape
        if attention_mask is None:
            lengths = torch.full((batch,), frames, dtype=torch.long, device=input_features.device)
        else:
            lengths = attention_mask.sum(-1).long()
        input_features = spec_augment_input(self, input_features, attention_mask, mask_time_indices, mask_feature_indices)

        x, lengths = self.subsampling(input_features, lengths)
        if self.encode_positions is not None:
            x = x * self.input_scale  # Parakeet's scale_input
        positions = self._positions(x)
        x = self.dropout(x)
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        # An unpadded batch needs no mask: lets SDPA take its fastest path.
        key_mask = None if bool(mask.all()) else mask

        spec = subnet if subnet is not None else self.active_subnet
        plans = self.mask.block_plans(spec) if spec is not None else self.mask.full_plans()
        hidden_states = (x,) if output_hidden_states else None
        attentions = () if output_attentions else None
        for plan in plans:
            scale = plan.dropout_scale if (self.config.adaptive_dropout and self.training) else 1.0
            x, weights = self.layers[plan.layer_index](
                x, positions, key_mask, plan=plan, dropout_scale=scale, output_attentions=output_attentions
            )
            if output_hidden_states:
                hidden_states += (x,)
            if output_attentions and weights is not None:
                attentions += (weights,)

        output = SupernetConformerModelOutput(
            last_hidden_state=x, hidden_states=hidden_states, attentions=attentions, output_attention_mask=mask
        )
        return output if return_dict else output.to_tuple()

    def _positions(self, x: torch.Tensor):
        """What self-attention reads positions from, for the front end's output ``x``: the rotary ``(cos, sin)``
        tables, or (``architecture="parakeet"``) the relative position embeddings, (1, 2 * frames - 1,
        hidden_size)."""
        if self.encode_positions is None:
            head_dim = self.config.hidden_size // self.config.num_attention_heads
            return rotary_cos_sin(x.shape[1], head_dim, self.config.rope_theta, x.device, x.dtype)
        positions = self.encode_positions(x[:1])
        return F.dropout(positions, self.config.dropout_positions, self.training)

    def _check_input_features(self, input_features: torch.Tensor) -> None:
        if input_features.dim() != 3 or input_features.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_features must have shape (batch, frames, {self.config.num_mel_bins}), got "
                f"{tuple(input_features.shape)}. Compute them with the model's processor / feature extractor."
            )
        if input_features.shape[1] == 0:
            raise ValueError("input_features has zero frames: the audio is empty.")
        if not torch.isfinite(input_features).all():
            raise ValueError("input_features contain NaN or Inf values; check the audio for NaN/Inf samples.")


class SupernetConformerForCTC(SupernetConformerPreTrainedModel):
    """Supernet Conformer encoder with a linear CTC head. Every subnet shares the head, or, with
    `config.ctc_head_per_depth`, every depth has its own (`lm_head` for the deepest, `depth_heads[str(d)]` for the
    others)."""

    def __init__(self, config: SupernetConformerConfig):
        super().__init__(config)
        self.conformer = SupernetConformerModel(config)
        self.dropout = nn.Dropout(config.final_dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.depth_heads = None
        if config.ctc_head_per_depth:
            *shallower, _deepest = self.mask.subnet_depths()
            self.depth_heads = nn.ModuleDict(
                {str(d): nn.Linear(config.hidden_size, config.vocab_size) for d in shallower}
            )
        self.post_init()

    @property
    def mask(self):
        return self.conformer.mask

    @classmethod
    def fold(cls, model: SupernetConformerForCTC | ConformerForCTC, num_physical_layers: int, *,
             seed_layers: list[int] | None = None, **config_overrides) -> SupernetConformerForCTC:
        """A ``mask_type="folding"`` supernet storing ``num_physical_layers`` blocks copied from a trained plain
        Conformer ``model`` (Unfolding starts from a trained model): a dense ``ConformerForCTC`` (e.g. an extracted
        subnet trained on its own) or a supernet of one architecture. The front end and the CTC head are ``model``'s,
        stored block ``j`` is a copy of its layer ``seed_layers[j]`` (default: evenly spaced, first and last
        included), and the deepest unfolding path has ``model``'s depth. ``config_overrides`` set other config
        fields (e.g. ``unfolding_depths``)."""
        source = model.config
        plain = isinstance(model, ConformerForCTC) or (
            source.mask_type != "folding" and source.num_physical_layers == source.num_hidden_layers
            and not source.ctc_head_per_depth
        )
        if not plain or source.layer_ffn_dims or source.layer_attention_heads or source.layer_conv_modules:
            raise ValueError(
                "fold() copies the layers of a plain Conformer (every layer the same shape, one CTC head, not itself "
                "folded); extract a subnet of the same width in every layer first."
            )
        depth = source.num_hidden_layers
        seed_layers = [int(i) for i in (seed_layers or evenly_spaced_layers(depth, num_physical_layers))]
        if len(seed_layers) != num_physical_layers or not all(0 <= i < depth for i in seed_layers):
            raise ValueError(
                f"seed_layers={seed_layers} must name {num_physical_layers} layers of the model's 0..{depth - 1}."
            )
        # The supernet config's own fields (a dense config's provenance and feature hop are not among them).
        not_copied = (
            "model_type", "transformers_version", "architectures", "feature_hop_length", "sparsity_block_shape"
        )
        values = {k: v for k, v in source.to_dict().items() if k not in not_copied}
        values.update(mask_type="folding", num_physical_layers=num_physical_layers, selected_subnets=None,
                      subnet_spec=None, unfolding_depths=None, unfolding_patterns=None)
        values.update(config_overrides)
        folded = cls(SupernetConformerConfig(**values))
        weights = model.state_dict()
        prefix = "conformer.layers."
        state = {}
        for key in folded.state_dict():
            if key.startswith(prefix):
                index, rest = key[len(prefix):].split(".", 1)
                key_in_source = f"{prefix}{seed_layers[int(index)]}.{rest}"
            else:
                key_in_source = key
            state[key] = weights[key_in_source]
        folded.load_state_dict(state)
        return folded

    @classmethod
    def from_parakeet(cls, model_or_path, mask_type: str = "layer_width", *, return_processor: bool = False,
                      load_kwargs: dict | None = None, **subnet_space_fields):
        """A supernet (``architecture="parakeet"``) made from a transformers ``ParakeetForCTC``, whose largest subnet
        computes the source's logits (<= 1e-4), and whose subnets extract to stock ``ParakeetForCTC``\\ s.

        Args:
            model_or_path: a ``ParakeetForCTC``, or a folder / Hub id of one (loaded with ``AutoModelForCTC``, with
                ``load_kwargs``).
            mask_type: how subnets are carved (``"layer_width"``, ``"omni_sparsity"``, ``"orthosoftmax"``,
                ``"folding"``).
            return_processor: also return the processor (Parakeet's feature extractor and tokenizer) saved with
                the checkpoint at ``model_or_path`` (``None`` if there is none, or for a model object): train on
                features and labels it makes, and save it next to the supernet and every exported subnet.
            subnet_space_fields: the mask type's fields (e.g. ``layer_drop_choices``, ``ffn_width_choices``,
                ``ffn_width_per_layer``) and training-only fields (dropout rates, ``ctc_head_per_depth``);
                the architecture comes from the checkpoint. Parakeet's own ``layerdrop`` is not used (the mask
                drops layers).

        Returns:
            The supernet, in the source's train/eval mode, on its device and dtype; with ``return_processor``,
            ``(supernet, processor)``.
        """
        return parakeet.from_parakeet(
            cls, model_or_path, mask_type, return_processor=return_processor, load_kwargs=load_kwargs,
            **subnet_space_fields,
        )

    def ctc_head(self, subnet=None) -> nn.Linear:
        """The output layer ``subnet`` (default: the active one, else the whole model) reads its logits from."""
        subnet = subnet if subnet is not None else self.active_subnet
        if not self.depth_heads or subnet is None:  # no head per depth (or one depth only): nothing to look up
            return self.lm_head
        depth = str(len(self.mask.block_plans(subnet)))
        return self.depth_heads[depth] if depth in self.depth_heads else self.lm_head

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        subnet=None,
        mask_time_indices: torch.Tensor | None = None,
        mask_feature_indices: torch.Tensor | None = None,
        **kwargs,
    ) -> SupernetCTCOutput | tuple:
        r"""
        labels (`torch.LongTensor` of shape `(batch, target_length)`, *optional*):
            Token ids of the transcripts, padded with -100. All ids must be `< config.vocab_size` and differ from the
            blank (`config.pad_token_id`).
        subnet (`SubnetSpec`, *optional*):
            Run as this subnet; defaults to the active one (`with model.use_subnet(spec)`), else the whole model.
        mask_time_indices, mask_feature_indices (`torch.BoolTensor`, *optional*):
            SpecAugment masks, see [`SupernetConformerModel.forward`].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        subnet = subnet if subnet is not None else self.active_subnet
        encoder_out = self.conformer(
            input_features,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            subnet=subnet,
            mask_time_indices=mask_time_indices,
            mask_feature_indices=mask_feature_indices,
        )
        logits = self.ctc_head(subnet)(self.dropout(encoder_out.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.ctc_loss(logits, encoder_out.output_attention_mask.sum(-1), labels)
        output = SupernetCTCOutput(
            loss=loss,
            logits=logits,
            output_attention_mask=encoder_out.output_attention_mask,
            hidden_states=encoder_out.hidden_states,
            attentions=encoder_out.attentions,
        )
        return output if return_dict else output.to_tuple()

    def spec_augment_masks(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict:
        """SpecAugment masks for a batch from this config's ``mask_time_*`` / ``mask_feature_*`` fields (empty when
        both probabilities are 0): what ``SupernetTrainer`` draws once per batch and hands to every subnet."""
        return spec_augment_masks(self.config, input_features, attention_mask)

    def latency_parts(self, config, seconds: float) -> list[tuple[str, Callable]]:
        """The parts whose latencies add up to the dense model of ``config`` (a ``ConformerConfig``, or this
        supernet's config for the whole model) on ``seconds`` of audio (front end + head, then each block), each as
        ``(key, make_runner)``: equal keys time the same computation, so a latency table times each distinct part
        once (see :mod:`hf_supernet.latency`). The parts are the plain dense model's own modules, which is what an
        extracted subnet runs (for a Parakeet-architecture supernet, the stock ``ParakeetForCTC``'s)."""
        if self.config.architecture == "parakeet":
            return parakeet.latency_parts(self, config, seconds)
        if not isinstance(config, ConformerConfig):
            config = extraction.subnet_config(config, self.mask.full_plans(), None)
        if config._attn_implementation is None:  # a config no model was built from: the dense model's default
            config._attn_implementation = "sdpa"
        frames = int(seconds * FEATURE_FRAMES_PER_SECOND)
        t = self._get_feat_extract_output_lengths(frames)
        d = config.hidden_size
        front_key = (config.num_mel_bins, config.subsampling_factor, config.subsampling_conv_channels, d, config.vocab_size, frames)

        def front_and_head():
            subsampling, head = ConformerSubsampling(config).eval(), nn.Linear(d, config.vocab_size)
            features, lengths = torch.randn(1, frames, config.num_mel_bins), torch.tensor([frames])
            return lambda: head(subsampling(features, lengths)[0])

        def block_runner(layer: int):
            def make():
                block = ConformerBlock(config, layer).eval()
                cos, sin = rotary_cos_sin(t, config.head_dim, config.rope_theta, "cpu", torch.float32)
                x, frames_mask = torch.randn(1, t, d), frame_mask(torch.tensor([t]), t)
                key_mask = torch.zeros(1, 1, 1, t)
                return lambda: block(x, cos, sin, key_mask, frames_mask)

            return make

        parts = [(f"dense_conformer_front_head:{front_key}", front_and_head)]
        for i in range(config.num_hidden_layers):
            shape = (d, config.head_dim, config.heads_of_layer(i), config.ffn_dims_of_layer(i),
                     config.has_conv_module(i), config.conv_kernel_size, config.hidden_act,
                     config._attn_implementation, t)
            parts.append((f"dense_conformer_block:{shape}", block_runner(i)))
        return parts

    def ctc_loss(self, logits: torch.Tensor, output_lengths: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CTC loss of ``logits`` (batch, frames, vocab) against ``labels`` padded with -100 (computed in fp32)."""
        if labels.numel() and labels.max() >= self.config.vocab_size:
            raise ValueError(
                f"Label id {int(labels.max())} is outside the vocabulary (vocab_size={self.config.vocab_size}); "
                "the tokenizer and model config disagree."
            )
        label_mask = labels >= 0
        log_probs = F.log_softmax(logits, dim=-1, dtype=torch.float32).transpose(0, 1)
        return F.ctc_loss(
            log_probs,
            labels.masked_select(label_mask),
            output_lengths,
            label_mask.sum(-1),
            blank=self.config.pad_token_id,
            reduction=self.config.ctc_loss_reduction,
            zero_infinity=self.config.ctc_zero_infinity,
        )


__all__ = [
    "SupernetConformerModel",
    "SupernetConformerForCTC",
    "SupernetConformerPreTrainedModel",
    "SupernetConformerModelOutput",
    "SupernetConformerCTCOutput",
]
