"""Parakeet in, stock Parakeet out: a transformers ``ParakeetForCTC`` made elastic, its subnets exported as plain
``ParakeetForCTC``\\ s.

A supernet built with ``architecture="parakeet"`` runs Parakeet's (FastConformer's) exact computation (see
:mod:`.modeling_supernet_conformer`), with the supernet's module names. This module maps between the two:

- :func:`from_parakeet` (``SupernetConformerForCTC.from_parakeet``): a ``ParakeetForCTC`` (or a folder / Hub id of
  one) -> a supernet whose largest subnet computes the source's logits; the subnet space comes from the mask type's
  fields, given as keyword arguments.
- :func:`extract_stock_parakeet` (what ``extract_subnet`` does for this architecture): a subnet -> a stock
  ``transformers.ParakeetForCTC`` (``ParakeetEncoder`` for a bare encoder) whose logits equal the masked
  supernet's. Stock Parakeet has one feed-forward width and one number of heads for every layer and a convolution
  module in each, so a subnet is exportable when its layers agree on those; any sequence of blocks is (layers
  dropped from the top, or repeated by unfolding, are just the blocks the subnet runs, copied in order). Otherwise
  :class:`NotStockParakeetError` (a ``ValueError``) names the field that differs and the fix.

BatchNorm: the supernet's running statistics are shared by every subnet; re-estimate them for the subnet before it
is exported (:func:`hf_supernet.recalibrate_batch_norm`, or ``calibration_data=`` of ``extract_subnet``).
"""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import nn

from ...masks.base import BlockPlan
from ...subnets import SubnetSpec
from .costs import conformer_block_shape

# Module names inside one block: the supernet's -> transformers' ParakeetEncoderBlock's.
_BLOCK_MODULES = {
    "ffn1.layer_norm": "norm_feed_forward1",
    "ffn1.intermediate_dense": "feed_forward1.linear1",
    "ffn1.output_dense": "feed_forward1.linear2",
    "self_attn.layer_norm": "norm_self_att",
    "self_attn.q_proj": "self_attn.q_proj",
    "self_attn.k_proj": "self_attn.k_proj",
    "self_attn.v_proj": "self_attn.v_proj",
    "self_attn.out_proj": "self_attn.o_proj",
    "self_attn.relative_k_proj": "self_attn.relative_k_proj",
    "self_attn": "self_attn",  # bias_u, bias_v
    "conv_module.layer_norm": "norm_conv",
    "conv_module.pointwise_in": "conv.pointwise_conv1",
    "conv_module.depthwise_conv": "conv.depthwise_conv",
    "conv_module.depthwise_norm": "conv.norm",
    "conv_module.pointwise_out": "conv.pointwise_conv2",
    "ffn2.layer_norm": "norm_feed_forward2",
    "ffn2.intermediate_dense": "feed_forward2.linear1",
    "ffn2.output_dense": "feed_forward2.linear2",
    "final_layer_norm": "norm_out",
}
_BLOCK_MODULES_BACK = {parakeet: ours for ours, parakeet in _BLOCK_MODULES.items()}
# Parakeet computes these as 1x1 Conv1d (weights (out, in, 1)); the supernet as linear layers (weights (out, in)).
_POINTWISE = {"conv_module.pointwise_in", "conv_module.pointwise_out"}
# The encoder and head of each side, as (supernet, Parakeet) key prefixes.
_PREFIXES = {"ctc": ("conformer.", "encoder."), "encoder": ("", "")}
_HEAD = ("lm_head.", "ctc_head.")

# Supernet config fields a Parakeet checkpoint decides (from_parakeet refuses them as overrides).
_ARCHITECTURE_FIELDS = (
    "vocab_size", "pad_token_id", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "hidden_act", "attention_bias", "convolution_bias", "conv_kernel_size", "subsampling_factor",
    "subsampling_conv_channels", "num_mel_bins", "scale_input", "architecture", "layer_norm_eps",
)


class NotStockParakeetError(ValueError):
    """A subnet that a stock ``ParakeetForCTC`` cannot express (its layers differ in width, heads or convolution
    modules); the message names what differs and how to pick an exportable subnet."""


# ---------------------------------------------------------------------------------------------------- import
def supernet_config_from_parakeet(parakeet_config, mask_type: str = "layer_width", **fields):
    """The ``SupernetConformerConfig`` (``architecture="parakeet"``) of a supernet whose largest subnet is the
    ``ParakeetForCTC`` of ``parakeet_config`` (a ``ParakeetCTCConfig``); ``fields`` set the mask type's fields (the
    subnet space) and training-only ones (dropout rates, ``ctc_head_per_depth``, ...)."""
    from .configuration_supernet_conformer import SupernetConformerConfig

    if getattr(parakeet_config, "model_type", None) != "parakeet_ctc":
        raise TypeError(
            f"from_parakeet takes a ParakeetForCTC (config model_type 'parakeet_ctc'), got model_type "
            f"{getattr(parakeet_config, 'model_type', None)!r}. Parakeet's transducers (RNN-T, TDT) have no CTC head."
        )
    encoder = parakeet_config.encoder_config
    for name, supported in (("subsampling_conv_kernel_size", 3), ("subsampling_conv_stride", 2)):
        if getattr(encoder, name) != supported:
            raise ValueError(
                f"encoder_config.{name}={getattr(encoder, name)}: the supernet's Parakeet front end supports "
                f"{name}={supported} only (every released Parakeet checkpoint)."
            )
    head_dim = getattr(encoder, "head_dim", None)
    if head_dim is not None and head_dim * encoder.num_attention_heads != encoder.hidden_size:
        raise ValueError(
            f"encoder_config.head_dim={head_dim} with {encoder.num_attention_heads} heads does not span hidden_size="
            f"{encoder.hidden_size}; the supernet's heads split hidden_size evenly."
        )
    known = {f.name for f in dataclasses.fields(SupernetConformerConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"from_parakeet: {unknown} are not SupernetConformerConfig fields; valid: {sorted(known)}.")
    decided = sorted(set(fields) & set(_ARCHITECTURE_FIELDS))
    if decided:
        raise ValueError(
            f"from_parakeet: {decided} come from the Parakeet checkpoint and cannot be overridden (the weights would "
            "no longer fit); pass only subnet-space and training fields."
        )
    values = dict(
        architecture="parakeet",
        vocab_size=parakeet_config.vocab_size,
        pad_token_id=parakeet_config.pad_token_id,
        ctc_loss_reduction=parakeet_config.ctc_loss_reduction,
        ctc_zero_infinity=parakeet_config.ctc_zero_infinity,
        hidden_size=encoder.hidden_size,
        num_hidden_layers=encoder.num_hidden_layers,
        num_attention_heads=encoder.num_attention_heads,
        intermediate_size=encoder.intermediate_size,
        hidden_act=encoder.hidden_act,
        attention_bias=encoder.attention_bias,
        convolution_bias=encoder.convolution_bias,
        conv_kernel_size=encoder.conv_kernel_size,
        subsampling_factor=encoder.subsampling_factor,
        subsampling_conv_channels=encoder.subsampling_conv_channels,
        num_mel_bins=encoder.num_mel_bins,
        scale_input=encoder.scale_input,
        hidden_dropout=float(encoder.dropout),
        dropout_positions=float(encoder.dropout_positions),
        activation_dropout=float(encoder.activation_dropout),
        attention_dropout=float(encoder.attention_dropout),
        max_position_embeddings=encoder.max_position_embeddings,
        initializer_range=encoder.initializer_range,
        final_dropout=0.0,  # Parakeet has no dropout before its CTC head
        mask_type=mask_type,
    )
    if mask_type == "layer_width":
        # One width for all layers: every subnet of the space is then a stock ParakeetForCTC.
        values["ffn_width_per_layer"] = False
    values.update(fields)
    return SupernetConformerConfig(**values)


def _rename(key: str, table: dict[str, str]) -> str:
    module, _, param = key.rpartition(".")
    if module not in table:
        raise KeyError(key)
    return f"{table[module]}.{param}"


def supernet_state_from_parakeet(parakeet_state: dict[str, torch.Tensor], kind: str = "ctc") -> dict:
    """A ``ParakeetForCTC`` (``kind="ctc"``) or ``ParakeetEncoder`` (``"encoder"``) state dict under the supernet's
    names and shapes."""
    ours_prefix, their_prefix = _PREFIXES[kind]
    state = {}
    for key, value in parakeet_state.items():
        if kind == "ctc" and key.startswith(_HEAD[1]):
            state[_HEAD[0] + key[len(_HEAD[1]) :]] = value.squeeze(-1) if value.dim() == 3 else value
            continue
        rest = key[len(their_prefix) :]
        if rest.startswith("layers."):
            _, index, inner = rest.split(".", 2)
            inner = _rename(inner, _BLOCK_MODULES_BACK)
            if inner.rpartition(".")[0] in _POINTWISE and value.dim() == 3:
                value = value.squeeze(-1)
            state[f"{ours_prefix}layers.{index}.{inner}"] = value
        else:  # the front end: the same transformers module on both sides
            state[ours_prefix + rest] = value
    return state


def _load_parakeet(model_or_path, **load_kwargs):
    if isinstance(model_or_path, (str, os.PathLike)):
        from transformers import AutoModelForCTC

        return AutoModelForCTC.from_pretrained(model_or_path, **load_kwargs)
    if load_kwargs:
        raise ValueError(f"from_parakeet got a model and loading arguments {sorted(load_kwargs)}; pass a path to load.")
    return model_or_path


def load_parakeet_processor(path):
    """The processor (Parakeet's feature extractor and tokenizer) saved with the checkpoint at ``path``, or ``None``
    when the folder has none."""
    from transformers import AutoProcessor

    if os.path.isdir(path) and not any(
        os.path.exists(os.path.join(path, name))
        for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
    ):
        return None
    try:
        return AutoProcessor.from_pretrained(path)
    except (OSError, ValueError):
        return None


@torch.no_grad()
def from_parakeet(cls, model_or_path, mask_type: str = "layer_width", *, return_processor: bool = False,
                  load_kwargs: dict | None = None, **fields):
    """See :meth:`SupernetConformerForCTC.from_parakeet`."""
    from transformers import ParakeetForCTC

    source = _load_parakeet(model_or_path, **(load_kwargs or {}))
    if not isinstance(source, ParakeetForCTC):
        raise TypeError(
            f"from_parakeet takes a transformers ParakeetForCTC (or the path of one), got a {type(source).__name__}."
        )
    config = supernet_config_from_parakeet(source.config, mask_type, **fields)
    parameter = next(source.parameters())
    model = cls(config).to(device=parameter.device, dtype=parameter.dtype)
    state = supernet_state_from_parakeet(source.state_dict(), "ctc")
    if getattr(model, "depth_heads", None):  # every depth's head starts as the source's CTC head
        for name in model.depth_heads:
            state.update({f"depth_heads.{name}.{k}": state[f"lm_head.{k}"] for k in ("weight", "bias")})
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Only the mask type's own state (e.g. OrthoSoftmax's scores) is not in a Parakeet checkpoint: it starts as
    # the mask type initialises it.
    missing = [k for k in missing if not k.startswith("conformer.mask.")]
    if missing or unexpected:
        raise ValueError(
            f"The Parakeet checkpoint does not fit the supernet built from its config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}."
        )
    model.train(source.training)
    if not return_processor:
        return model
    processor = load_parakeet_processor(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else None
    return model, processor


# ---------------------------------------------------------------------------------------------------- export
def stock_obstacle(config, plans: list[BlockPlan]) -> str | None:
    """Why a stock ``ParakeetForCTC`` cannot express the subnet running ``plans`` of a supernet of ``config``, or
    ``None`` when it can."""
    if config.architecture != "parakeet":
        return f"the supernet is built of architecture={config.architecture!r} blocks, not Parakeet's"
    shapes = [conformer_block_shape(config, plan) for plan in plans]
    widths = [s.ffn_dims for s in shapes]
    if any(a != b for a, b in widths) or len(set(widths)) > 1:
        return (
            f"its layers' feed-forward widths differ ({[list(w) if w[0] != w[1] else w[0] for w in widths]}), but a "
            "stock ParakeetForCTC has one intermediate_size for every feed-forward module. Pick a subnet whose layers "
            "share one width (with mask_type='layer_width', set ffn_width_per_layer=False so every subnet does)"
        )
    if widths[0][0] == 0:
        return "its layers have no feed-forward modules, which every stock Parakeet block has"
    heads = [s.heads for s in shapes]
    if len(set(heads)) > 1 or heads[0] == 0:
        return (
            f"its layers keep different numbers of attention heads ({heads}), but a stock ParakeetForCTC has one "
            "num_attention_heads for every layer (and at least one)"
        )
    if not all(s.conv for s in shapes):
        return (
            f"it drops the convolution module of layers {[i for i, s in enumerate(shapes) if not s.conv]}, which "
            "every stock Parakeet block has"
        )
    return None


def stock_parakeet_config(config, plans: list[BlockPlan]):
    """The ``ParakeetCTCConfig`` of the subnet running ``plans``; :class:`NotStockParakeetError` when stock Parakeet
    cannot express it."""
    from transformers import ParakeetCTCConfig

    reason = stock_obstacle(config, plans)
    if reason is not None:
        raise NotStockParakeetError(f"This subnet cannot be a stock transformers ParakeetForCTC: {reason}.")
    shape = conformer_block_shape(config, plans[0])
    head_dim = config.hidden_size // config.num_attention_heads
    encoder = config.parakeet_encoder_config(
        num_hidden_layers=len(plans),
        intermediate_size=shape.ffn_dims[0],
        num_attention_heads=shape.heads,
        # Parakeet derives head_dim = hidden_size // heads unless told: a subnet that dropped heads keeps their size.
        **({"head_dim": head_dim} if shape.heads != config.num_attention_heads else {}),
    )
    return ParakeetCTCConfig(
        vocab_size=config.vocab_size,
        pad_token_id=config.pad_token_id,
        ctc_loss_reduction=config.ctc_loss_reduction,
        ctc_zero_infinity=config.ctc_zero_infinity,
        encoder_config=encoder.to_dict(),
    )


def _parakeet_block_state(block_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in block_state.items():
        module = key.rpartition(".")[0]
        if module in _POINTWISE and key.endswith(".weight"):
            value = value[..., None]
        state[_rename(key, _BLOCK_MODULES)] = value
    return state


@torch.no_grad()
def extract_stock_parakeet(model, spec: SubnetSpec):
    """The subnet ``spec`` of ``model`` (a ``SupernetConformerForCTC`` or bare ``SupernetConformerModel`` of
    ``architecture="parakeet"``, without adapters) as a stock ``transformers.ParakeetForCTC`` (``ParakeetEncoder``)
    on the same device and dtype, in the same train/eval mode, whose outputs equal the masked supernet's.
    :class:`NotStockParakeetError` when stock Parakeet cannot express it (see :func:`stock_obstacle`)."""
    from transformers import ParakeetEncoder, ParakeetForCTC

    model.subnet_space.validate(spec)
    plans = model.mask.block_plans(spec)
    config = stock_parakeet_config(model.config, plans)
    encoder = model.base_model
    with_head = encoder is not model
    stock = ParakeetForCTC(config) if with_head else ParakeetEncoder(config.encoder_config)
    their_prefix = _PREFIXES["ctc" if with_head else "encoder"][1]
    state = {
        f"{their_prefix}subsampling.{k}": v.detach().clone() for k, v in encoder.subsampling.state_dict().items()
    }
    for i, plan in enumerate(plans):
        block_state = _parakeet_block_state(encoder.layers[plan.layer_index].reduced_state_dict(plan))
        state.update({f"{their_prefix}layers.{i}.{k}": v for k, v in block_state.items()})
    if with_head:
        head = model.ctc_head(spec)  # the subnet's depth's own head when the supernet has one per depth
        state["ctc_head.weight"] = head.weight.detach()[..., None].clone()
        state["ctc_head.bias"] = head.bias.detach().clone()
    stock.load_state_dict(state, strict=True)
    parameter = next(model.parameters())
    return stock.to(device=parameter.device, dtype=parameter.dtype).train(model.training)


def subnet_config(model, spec: SubnetSpec):
    """The stock ``ParakeetCTCConfig`` :func:`extract_stock_parakeet` gives ``spec``, without copying weights."""
    model.subnet_space.validate(spec)
    return stock_parakeet_config(model.config, model.mask.block_plans(spec))


def latency_parts(model, config, seconds: float):
    """Latency parts (see ``SupernetConformerForCTC.latency_parts``) of the stock ``ParakeetForCTC`` of ``config``
    (a ``ParakeetCTCConfig``, or the supernet's own config for the whole model): the front end with the CTC head,
    then each block, all transformers' own modules, which is what an exported subnet runs."""
    from transformers import ParakeetCTCConfig
    from transformers.models.parakeet.modeling_parakeet import (
        ParakeetEncoderBlock,
        ParakeetEncoderRelPositionalEncoding,
        ParakeetEncoderSubsamplingConv2D,
    )

    from ...units import FEATURE_FRAMES_PER_SECOND

    if not isinstance(config, ParakeetCTCConfig):
        config = stock_parakeet_config(config, model.mask.full_plans())
    encoder = config.encoder_config
    if encoder._attn_implementation is None:  # a config no model was built from: transformers' default
        encoder._attn_implementation = "sdpa"
    frames = int(seconds * FEATURE_FRAMES_PER_SECOND)
    t = model._get_feat_extract_output_lengths(frames)
    d = encoder.hidden_size

    def front_and_head():
        subsampling = ParakeetEncoderSubsamplingConv2D(encoder).eval()
        head = nn.Conv1d(d, config.vocab_size, kernel_size=1).eval()
        features = torch.randn(1, frames, encoder.num_mel_bins)
        return lambda: head(subsampling(features).transpose(1, 2))

    def block():
        layer = ParakeetEncoderBlock(encoder).eval()
        x = torch.randn(1, t, d)
        positions = ParakeetEncoderRelPositionalEncoding(encoder)(x)
        return lambda: layer(x, position_embeddings=positions)

    front_key = (encoder.num_mel_bins, encoder.subsampling_factor, encoder.subsampling_conv_channels, d,
                 config.vocab_size, frames)
    block_key = (d, getattr(encoder, "head_dim", d // encoder.num_attention_heads), encoder.num_attention_heads,
                 encoder.intermediate_size, encoder.conv_kernel_size, encoder.hidden_act, encoder.attention_bias,
                 encoder.convolution_bias, encoder._attn_implementation, t)
    return [(f"parakeet_front_head:{front_key}", front_and_head)] + [
        (f"parakeet_block:{block_key}", block) for _ in range(encoder.num_hidden_layers)
    ]
