"""Plain dense Conformer-CTC: the model every Conformer subnet of a supernet extracts to.

It computes exactly what ``SupernetConformerForCTC`` computes for the subnet it was cut from (same front end, rotary
self-attention, LayerNorm convolution module, padding handling), but its forward has no masks, no block plans, no
slicing and no data-dependent Python control flow, so ``torch.export`` (dynamic time), ONNX export and int8
quantization work on it. Per-layer widths, heads and convolution modules come from the config; a module a layer does
not have is ``None``.

This file imports only ``torch``, ``transformers`` and its two siblings (``configuration_conformer.py``,
``checksums.py``: standard library only) so that it travels as remote code (``auto_map``) with a saved model:
``AutoModelForCTC.from_pretrained(folder, trust_remote_code=True)`` needs no hf_supernet.
"""

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
from transformers.modeling_outputs import CausalLMOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices
from transformers.utils import ModelOutput

from .checksums import ChecksummedModelMixin
from .configuration_conformer import ConformerConfig


@dataclass
class ConformerModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, frames, hidden_size)`): output of the last block.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): front-end output and each block's output, when
            `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): attention probabilities `(batch, heads, frames, frames)`
            of each block that has self-attention, when `output_attentions=True`.
        output_attention_mask (`torch.BoolTensor` of shape `(batch, frames)`): which output frames are real.
    """

    last_hidden_state: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    output_attention_mask: torch.BoolTensor | None = None


@dataclass
class ConformerCTCOutput(CausalLMOutput):
    """[`~transformers.modeling_outputs.CausalLMOutput`] plus `output_attention_mask` (`(batch, frames)`, which
    logit frames are real, not padding)."""

    output_attention_mask: torch.BoolTensor | None = None


def subsampled_lengths(lengths, num_convs: int):
    """Frames after ``num_convs`` stride-2 convolutions (kernel 3, padding 1: ``ceil(L / 2)`` each); ints or tensors."""
    for _ in range(num_convs):
        lengths = (lengths + 1) // 2
    return lengths


def spec_augment_masks(config, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None) -> dict:
    """SpecAugment masks for a batch of log-mel features, drawn from the config's ``mask_time_*`` and
    ``mask_feature_*`` fields as wav2vec2 draws them (transformers' ``_compute_mask_indices``, on valid frames only):
    ``{"mask_time_indices": (batch, frames) bool, "mask_feature_indices": (batch, num_mel_bins) bool}``, each
    present where its probability is above 0. A supernet trainer draws them once per batch and passes them to every
    subnet it trains on the batch, so that distillation compares subnets that saw the same input."""
    batch, frames, bins = input_features.shape
    masks = {}
    if config.mask_time_prob > 0:
        time = _compute_mask_indices((batch, frames), config.mask_time_prob, config.mask_time_length,
                                     attention_mask=attention_mask, min_masks=config.mask_time_min_masks)
        masks["mask_time_indices"] = torch.tensor(time, dtype=torch.bool, device=input_features.device)
    if config.mask_feature_prob > 0:
        feature = _compute_mask_indices((batch, bins), config.mask_feature_prob, config.mask_feature_length,
                                        min_masks=config.mask_feature_min_masks)
        masks["mask_feature_indices"] = torch.tensor(feature, dtype=torch.bool, device=input_features.device)
    return masks


def spec_augment_input(
    module: nn.Module,
    input_features: torch.Tensor,
    attention_mask: torch.Tensor | None,
    mask_time_indices: torch.Tensor | None,
    mask_feature_indices: torch.Tensor | None,
) -> torch.Tensor:
    """``input_features`` with SpecAugment's masked frames and bins set to 0 (the per-utterance mean of normalised
    log-mels): the given masks, else, in training, masks drawn from ``module.config``; in evaluation without given
    masks the features pass unchanged."""
    if mask_time_indices is None and mask_feature_indices is None and module.training:
        drawn = spec_augment_masks(module.config, input_features, attention_mask)
        mask_time_indices, mask_feature_indices = drawn.get("mask_time_indices"), drawn.get("mask_feature_indices")
    if mask_time_indices is not None:
        input_features = input_features.masked_fill(mask_time_indices[:, :, None], 0.0)
    if mask_feature_indices is not None:
        input_features = input_features.masked_fill(mask_feature_indices[:, None, :], 0.0)
    return input_features


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(batch, frames) bool mask of the first ``lengths`` frames of each row."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def rotary_cos_sin(length: int, head_dim: int, theta: float, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (length, head_dim) of the rotary position embedding."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(length, device=device, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-second, first), dim=-1) * sin


class ConformerSubsampling(nn.Module):
    """Convolutional front end over (time, mel): a stride-2 3x3 conv, then depthwise-separable stride-2 convs
    (depthwise 3x3 + pointwise 1x1), ReLU after each, then a linear projection to ``hidden_size``. Padded frames are
    zeroed before every conv so they never leak into real ones."""

    def __init__(self, config: ConformerConfig):
        super().__init__()
        self.num_convs = int(math.log2(config.subsampling_factor))
        channels = config.subsampling_conv_channels
        self.first_conv = nn.Conv2d(1, channels, kernel_size=3, stride=2, padding=1)
        self.depthwise_convs = nn.ModuleList(
            nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1, groups=channels)
            for _ in range(self.num_convs - 1)
        )
        self.pointwise_convs = nn.ModuleList(
            nn.Conv2d(channels, channels, kernel_size=1) for _ in range(self.num_convs - 1)
        )
        self.out = nn.Linear(channels * subsampled_lengths(config.num_mel_bins, self.num_convs), config.hidden_size)

    @staticmethod
    def _mask_time(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return x * frame_mask(lengths, x.shape[2])[:, None, :, None].to(x.dtype)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self._mask_time(features.unsqueeze(1), lengths)  # (batch, 1, time, mel)
        x = F.relu(self.first_conv(x))
        lengths = subsampled_lengths(lengths, 1)
        for depthwise, pointwise in zip(self.depthwise_convs, self.pointwise_convs):
            x = F.relu(pointwise(depthwise(self._mask_time(x, lengths))))
            lengths = subsampled_lengths(lengths, 1)
        x = self._mask_time(x, lengths)
        return self.out(x.transpose(1, 2).contiguous().flatten(2)), lengths  # (batch, time, channels * freq)


class ConformerFeedForward(nn.Module):
    """Pre-norm feed-forward module of hidden width ``ffn_dim``."""

    def __init__(self, config: ConformerConfig, ffn_dim: int):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate_dense = nn.Linear(config.hidden_size, ffn_dim)
        self.activation = ACT2FN[config.hidden_act]
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.output_dense = nn.Linear(ffn_dim, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation_dropout(self.activation(self.intermediate_dense(self.layer_norm(x))))
        return self.output_dense(x)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention in plain matmuls (transformers' attention-interface signature); returns the output as
    (batch, frames, heads, head_dim) and the attention probabilities."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class ConformerSelfAttention(nn.Module):
    """Pre-norm multi-head self-attention with rotary relative positions, through transformers' attention interface
    (`config._attn_implementation`: "sdpa" or "eager"; `output_attentions=True` always runs eager)."""

    def __init__(self, config: ConformerConfig, num_heads: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        inner = num_heads * self.head_dim
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.q_proj = nn.Linear(config.hidden_size, inner)
        self.k_proj = nn.Linear(config.hidden_size, inner)
        self.v_proj = nn.Linear(config.hidden_size, inner)
        self.out_proj = nn.Linear(inner, config.hidden_size)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attention_mask: torch.Tensor,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, time, _ = x.shape
        x = self.layer_norm(x)
        shape = (batch, time, self.num_heads, self.head_dim)
        query = apply_rotary(self.q_proj(x).view(shape).transpose(1, 2), cos, sin)
        key = apply_rotary(self.k_proj(x).view(shape).transpose(1, 2), cos, sin)
        value = self.v_proj(x).view(shape).transpose(1, 2)
        implementation = "eager" if output_attentions else self.config._attn_implementation
        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        out, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.config.attention_dropout if self.training else 0.0,
        )
        return self.out_proj(out.reshape(batch, time, self.num_heads * self.head_dim)), weights


class ConformerConvModule(nn.Module):
    """Pre-norm convolution module: pointwise + GLU, depthwise conv, LayerNorm, SiLU, pointwise. LayerNorm (not
    BatchNorm) after the depthwise conv: exact under padding and free of running statistics."""

    def __init__(self, config: ConformerConfig):
        super().__init__()
        hidden = config.hidden_size
        self.layer_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.pointwise_in = nn.Linear(hidden, 2 * hidden)
        self.depthwise_conv = nn.Conv1d(
            hidden, hidden, config.conv_kernel_size, padding=config.conv_kernel_size // 2, groups=hidden
        )
        self.depthwise_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.pointwise_out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        x = F.glu(self.pointwise_in(self.layer_norm(x)), dim=-1)
        x = x * frames[..., None].to(x.dtype)  # the depthwise conv must read zeros past the end, not padding
        x = self.depthwise_conv(x.transpose(1, 2)).transpose(1, 2)
        return self.pointwise_out(F.silu(self.depthwise_norm(x)))


class ConformerBlock(GradientCheckpointingLayer):
    """Macaron Conformer block: ½ FFN, MHSA, conv module, ½ FFN, final LayerNorm (residual, pre-norm). A unit the
    config gives this layer no width for is ``None`` and skipped (fixed at construction, not per input)."""

    def __init__(self, config: ConformerConfig, layer_idx: int):
        super().__init__()
        ffn1_dim, ffn2_dim = config.ffn_dims_of_layer(layer_idx)
        num_heads = config.heads_of_layer(layer_idx)
        self.ffn1 = ConformerFeedForward(config, ffn1_dim) if ffn1_dim else None
        self.self_attn = ConformerSelfAttention(config, num_heads) if num_heads else None
        self.conv_module = ConformerConvModule(config) if config.has_conv_module(layer_idx) else None
        self.ffn2 = ConformerFeedForward(config, ffn2_dim) if ffn2_dim else None
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attention_mask: torch.Tensor,
        frames: torch.Tensor,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        weights = None
        if self.ffn1 is not None:
            x = x + 0.5 * self.dropout(self.ffn1(x))
        if self.self_attn is not None:
            out, weights = self.self_attn(x, cos, sin, attention_mask, output_attentions)
            x = x + self.dropout(out)
        if self.conv_module is not None:
            x = x + self.dropout(self.conv_module(x, frames))
        if self.ffn2 is not None:
            x = x + 0.5 * self.dropout(self.ffn2(x))
        return self.final_layer_norm(x), weights


class ConformerPreTrainedModel(ChecksummedModelMixin, PreTrainedModel):
    """(``save_pretrained`` also records the SHA-256 of the weights files, which ``from_pretrained`` of the folder
    checks: a flipped bit is an error naming the file; see ``checksums.py``.)"""

    config_class = ConformerConfig
    config: ConformerConfig
    base_model_prefix = "conformer"
    main_input_name = "input_features"
    input_modalities = "audio"
    supports_gradient_checkpointing = True
    _no_split_modules = ["ConformerBlock"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            init.kaiming_normal_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)

    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor | int) -> torch.Tensor | int:
        """Number of encoder output frames for ``input_lengths`` feature frames."""
        return subsampled_lengths(input_lengths, int(math.log2(self.config.subsampling_factor)))

    def get_input_embeddings(self) -> None:
        """None: the model reads log-mel features, not token ids. (peft asks when saving an adapter that targets
        ``lm_head``, a name it treats as an embedding.)"""
        return None


class ConformerModel(ConformerPreTrainedModel):
    """The Conformer encoder (front end + blocks) without a head."""

    def __init__(self, config: ConformerConfig):
        super().__init__(config)
        self.subsampling = ConformerSubsampling(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList(ConformerBlock(config, i) for i in range(config.num_hidden_layers))
        self.gradient_checkpointing = False
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        mask_time_indices: torch.Tensor | None = None,
        mask_feature_indices: torch.Tensor | None = None,
        **kwargs,
    ) -> ConformerModelOutput | tuple:
        r"""
        input_features (`torch.FloatTensor` of shape `(batch, frames, num_mel_bins)`):
            Log-mel features, e.g. from the processor's feature extractor.
        attention_mask (`torch.LongTensor` of shape `(batch, frames)`, *optional*):
            1 for real frames, 0 for padding (padding at the end of each row).
        mask_time_indices (`torch.BoolTensor` of shape `(batch, frames)`, *optional*):
            SpecAugment time masks to apply (see `spec_augment_masks`); in training without them, masks are drawn
            from `config.mask_time_prob` / `config.mask_feature_prob`.
        mask_feature_indices (`torch.BoolTensor` of shape `(batch, num_mel_bins)`, *optional*):
            SpecAugment frequency masks to apply.
        """
        if input_features.dim() != 3 or input_features.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_features must have shape (batch, frames, {self.config.num_mel_bins}), got "
                f"{tuple(input_features.shape)}. Compute them with the model's processor / feature extractor."
            )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if attention_mask is None:
            lengths = torch.ones_like(input_features[:, :, 0], dtype=torch.long).sum(-1)
        else:
            lengths = attention_mask.sum(-1).long()
        input_features = spec_augment_input(self, input_features, attention_mask, mask_time_indices, mask_feature_indices)

        x, lengths = self.subsampling(input_features, lengths)
        x = self.dropout(x)
        frames = frame_mask(lengths, x.shape[1])
        # Additive key mask, the same for every query and head: padded keys get the dtype's minimum.
        key_mask = (~frames)[:, None, None, :].to(x.dtype) * torch.finfo(x.dtype).min
        cos, sin = rotary_cos_sin(x.shape[1], self.config.head_dim, self.config.rope_theta, x.device, x.dtype)

        hidden_states = (x,) if output_hidden_states else None
        attentions = () if output_attentions else None
        for layer in self.layers:
            x, weights = layer(x, cos, sin, key_mask, frames, output_attentions=output_attentions)
            if output_hidden_states:
                hidden_states += (x,)
            if output_attentions and weights is not None:
                attentions += (weights,)

        output = ConformerModelOutput(
            last_hidden_state=x, hidden_states=hidden_states, attentions=attentions, output_attention_mask=frames
        )
        return output if return_dict else output.to_tuple()


class ConformerForCTC(ConformerPreTrainedModel):
    """Conformer encoder with a linear CTC head."""

    def __init__(self, config: ConformerConfig):
        super().__init__(config)
        self.conformer = ConformerModel(config)
        self.dropout = nn.Dropout(config.final_dropout)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        mask_time_indices: torch.Tensor | None = None,
        mask_feature_indices: torch.Tensor | None = None,
        **kwargs,
    ) -> ConformerCTCOutput | tuple:
        r"""
        labels (`torch.LongTensor` of shape `(batch, target_length)`, *optional*):
            Token ids of the transcripts, padded with -100; ids must be `< config.vocab_size`.
        mask_time_indices, mask_feature_indices (`torch.BoolTensor`, *optional*):
            SpecAugment masks, see [`ConformerModel.forward`].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoder_out = self.conformer(
            input_features,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            mask_time_indices=mask_time_indices,
            mask_feature_indices=mask_feature_indices,
        )
        logits = self.lm_head(self.dropout(encoder_out.last_hidden_state))
        loss = None
        if labels is not None:
            if labels.numel() and labels.max() >= self.config.vocab_size:
                raise ValueError(
                    f"Label id {int(labels.max())} is outside the vocabulary (vocab_size={self.config.vocab_size}); "
                    "the tokenizer and model config disagree."
                )
            loss = self.loss_function(
                logits=logits,
                labels=labels,
                logit_lengths=encoder_out.output_attention_mask.sum(-1),
                blank_token_id=self.config.pad_token_id,
                reduction=self.config.ctc_loss_reduction,
                zero_infinity=self.config.ctc_zero_infinity,
            )
        output = ConformerCTCOutput(
            loss=loss,
            logits=logits,
            hidden_states=encoder_out.hidden_states,
            attentions=encoder_out.attentions,
            output_attention_mask=encoder_out.output_attention_mask,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "ConformerCTCOutput",
    "ConformerForCTC",
    "ConformerModel",
    "ConformerModelOutput",
    "ConformerPreTrainedModel",
]
