"""Foldable wav2vec2 / HuBERT CTC models (Unfolding, Li et al., 2024): transformers' own models, fewer blocks stored.

Each class here *is* the transformers class it extends (feature encoder, feature projection, positional
convolution, encoder layers, CTC head and forward are theirs, untouched) with two changes:

* the encoder stores ``config.num_physical_layers`` blocks instead of ``config.num_hidden_layers``;
* its block list is an :class:`UnfoldingLayerList`, which the stock encoder forward (``for layer in self.layers``)
  iterates along the active unfolding path, so a forward pass runs a stored block once per logical layer that
  uses it.

Because the module tree is the stock one, a path extracts to a stock ``Wav2Vec2ForCTC`` / ``HubertForCTC`` by
copying each block's weights to every logical layer that runs it (:meth:`FoldableMixin.extract_dense_subnet`), and a
stock checkpoint seeds the stored blocks by picking some of its layers (:meth:`FoldableMixin.from_pretrained_backbone`).

Padding: as in transformers, an utterance's output does not depend on the padding of its batch when the feature
encoder normalises per frame (``feat_extract_norm="layer"``, as the large checkpoints); wav2vec2-base's
``"group"`` norm spans the padded time axis, so those checkpoints should be run without padding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import ClassVar

import torch
from torch import nn
from transformers import (
    HubertConfig,
    HubertForCTC,
    HubertModel,
    PreTrainedConfig,
    PreTrainedModel,
    Wav2Vec2Config,
    Wav2Vec2ForCTC,
    Wav2Vec2Model,
)
from transformers.utils import logging

from ...costs import ParamCounts, SubnetCosts
from ...masks import BlockPlan, build_mask
from ...masks.folding import evenly_spaced_layers
from ...modeling_outputs import SupernetCTCOutput
from ...slicing import FULL, LinearSelection
from ...subnets import SubnetSpec
from ...units import REFERENCE_SECONDS
from ...supernet import _HUB_KWARGS, SupernetMixin
from ..conformer.checksums import ChecksummedModelMixin
from .configuration_foldable import (
    FOLDING_CONFIG_FIELDS,
    FoldableHubertConfig,
    FoldableWav2Vec2Config,
)

logger = logging.get_logger(__name__)

# wav2vec2 and HuBERT checkpoints take 16 kHz waveforms; FLOPs per second of audio are quoted at that rate.
WAVEFORM_SAMPLES_PER_SECOND = 16000


class UnfoldingLayerList(nn.ModuleList):
    """The encoder's stored blocks, iterated along an unfolding path.

    transformers' wav2vec2 / HuBERT encoders run their blocks with ``for layer in self.layers``. Iterating this
    list yields the blocks of the active path, repeats included, so the stock encoder forward (padding mask,
    LayerDrop, hidden-state and attention capture) runs the unfolded network as it is. Indexing, ``len``,
    ``state_dict`` and ``modules()`` see the stored blocks, each once.
    """

    def __init__(self, modules: Iterable[nn.Module] | None = None):
        super().__init__(modules)
        self.path: tuple[int, ...] | None = None  # None: the stored blocks once each, in order

    def __iter__(self) -> Iterator[nn.Module]:
        if self.path is None:
            return super().__iter__()
        return iter([self[i] for i in self.path])

    @contextlib.contextmanager
    def unfolded(self, path: Iterable[int]) -> Iterator[None]:
        """Iterate along ``path`` (physical block indices) inside the block; restores the previous path after."""
        path = tuple(path)
        if any(not 0 <= i < len(self) for i in path):
            raise IndexError(f"Unfolding path {path} names blocks outside the {len(self)} stored ones.")
        previous, self.path = self.path, path
        try:
            yield
        finally:
            self.path = previous


@contextlib.contextmanager
def _built_with_physical_depth(config: PreTrainedConfig) -> Iterator[None]:
    """transformers' constructors build ``config.num_hidden_layers`` encoder blocks; while a foldable model is
    built, that field holds the number of *stored* blocks, so the stock constructors build exactly those (and
    nothing is built only to be thrown away). The logical depth is restored afterwards, even on error."""
    logical = config.num_hidden_layers
    config.num_hidden_layers = config.num_physical_layers
    try:
        yield
    finally:
        config.num_hidden_layers = logical


def transformer_ctc_flops(config, num_layers: int, num_samples: int, with_head: bool = True) -> int:
    """FLOPs of one wav2vec2 / HuBERT forward pass over ``num_samples`` waveform samples (batch of one) running
    ``num_layers`` encoder blocks, counted as in :mod:`hf_supernet.costs` (2 per multiply-accumulate of matmuls,
    attention products and convolutions; norms, activations and residuals are free)."""
    flops, length, channels = 0, num_samples, 1
    for dim, kernel, stride in zip(config.conv_dim, config.conv_kernel, config.conv_stride):
        length = (length - kernel) // stride + 1
        flops += 2 * channels * dim * kernel * length
        channels = dim
    t, d = length, config.hidden_size
    flops += 2 * t * channels * d  # feature projection
    kernel, groups = config.num_conv_pos_embeddings, config.num_conv_pos_embedding_groups
    # The positional conv pads kernel // 2 on both sides; an even kernel computes one extra frame, then drops it.
    pos_frames = t + 2 * (kernel // 2) - kernel + 1
    flops += 2 * (d // groups) * d * kernel * pos_frames
    per_layer = 4 * 2 * t * d * d + 2 * 2 * t * t * d + 2 * 2 * t * d * config.intermediate_size
    flops += num_layers * per_layer
    out = d
    if getattr(config, "add_adapter", False):
        out = config.output_hidden_size
        if out != d:
            flops += 2 * t * d * out  # adapter input projection
        for _ in range(config.num_adapter_layers):
            length_in = t
            t = (length_in + 2 - config.adapter_kernel_size) // config.adapter_stride + 1  # padding 1
            flops += 2 * out * 2 * out * config.adapter_kernel_size * t
    if with_head:
        flops += 2 * t * out * config.vocab_size
    return flops


# The supernet families share one output type (kept under this name for code that imports it).
FoldableCTCOutput = SupernetCTCOutput


class FoldableMixin(SupernetMixin, ChecksummedModelMixin):
    """The subnet API on top of a transformers wav2vec2-family model (a subnet = an unfolding path).

    Subclasses name the transformers class they extend as ``stock_class`` (what a path is extracted to) and its
    config class as ``stock_config_class``.
    """

    stock_class: ClassVar[type[PreTrainedModel]]
    stock_config_class: ClassVar[type[PreTrainedConfig]]

    def __init__(self, config, *args, **kwargs):
        with _built_with_physical_depth(config):
            super().__init__(config, *args, **kwargs)
        encoder = self.base_model.encoder
        encoder.layers = UnfoldingLayerList(encoder.layers)
        self.mask = build_mask(config, plan_costs=self.costs_of_plans)
        self.mask.bind_blocks(encoder.layers)

    @property
    def stored_layers(self) -> UnfoldingLayerList:
        """The stored (physical) encoder blocks."""
        return self.base_model.encoder.layers

    def unfolded(self, subnet: SubnetSpec | None = None):
        """Context in which the encoder runs ``subnet``'s path (default: the active subnet, else the deepest path)."""
        spec = subnet if subnet is not None else self.active_subnet
        plans = self.mask.full_plans() if spec is None else self.mask.block_plans(spec)
        return self.stored_layers.unfolded(plan.layer_index for plan in plans)

    # ------------------------------------------------------------------ extraction
    def stock_config(self, num_hidden_layers: int) -> PreTrainedConfig:
        """The stock config of a model with ``num_hidden_layers`` blocks and otherwise this model's fields."""
        values = self.config.to_dict()
        for key in (*FOLDING_CONFIG_FIELDS, "model_type", "transformers_version", "architectures"):
            values.pop(key, None)
        values["num_hidden_layers"] = num_hidden_layers
        return self.stock_config_class.from_dict(values)

    def subnet_config(self, spec: SubnetSpec) -> PreTrainedConfig:
        """The stock config of the model ``extract_subnet(spec)`` returns (one layer per logical layer)."""
        self.subnet_space.validate(spec)
        return self.stock_config(len(self.mask.block_plans(spec)))

    @torch.no_grad()
    def extract_dense_subnet(self, spec: SubnetSpec) -> PreTrainedModel:
        """The path ``spec`` as a stock transformers model (``Wav2Vec2ForCTC``, ``HubertForCTC``, ...): one encoder
        layer per logical layer, each a copy of the stored block the path runs there. Its outputs equal this
        model's run as ``spec``, and its checkpoint loads without hf_supernet."""
        dense = self.stock_class(self.subnet_config(spec))
        path = [plan.layer_index for plan in self.mask.block_plans(spec)]
        layers_key = f"{self.stored_blocks_name}."
        state = {k: v.clone() for k, v in self.state_dict().items() if not k.startswith(layers_key)}
        for logical, physical in enumerate(path):
            block = self.stored_layers[physical].state_dict()
            state.update({f"{layers_key}{logical}.{k}": v.clone() for k, v in block.items()})
        dense.load_state_dict(state, strict=True)
        dense.to(self.device)
        dense.train(self.training)
        return dense

    @property
    def stored_blocks_name(self) -> str:
        """Module name of the stored blocks (``<name>.<index>`` is one block)."""
        return "encoder.layers" if self.base_model is self else f"{self.base_model_prefix}.encoder.layers"

    def block_linear_selection(self, plan: BlockPlan, name: str) -> LinearSelection:
        """Unfolding repeats blocks but never cuts one: every layer of a block runs whole."""
        return FULL

    # ------------------------------------------------------------------ costs
    def costs_of_plans(self, plans: list[BlockPlan]) -> SubnetCosts:
        """Costs of the model that runs ``plans``: ``params`` are those of the extracted stock model (a block
        counts once per logical layer that runs it; ``hf_supernet.costs.stored_params`` counts it once), FLOPs per
        second of 16 kHz audio for a ``REFERENCE_SECONDS`` utterance, and the dynamic int8 size (linear weights in one
        byte, the rest, the convolutional feature encoder included, in fp32; see
        :class:`~hf_supernet.costs.ParamCounts`)."""
        blocks = [ParamCounts.of_module(block, nonzero=False) for block in self.stored_layers]
        counts = ParamCounts.of_module(self, nonzero=False)
        for block in blocks:  # the stored blocks out, then each block once per logical layer that runs it
            counts -= block
        for plan in plans:
            counts += blocks[plan.layer_index]
        samples = int(REFERENCE_SECONDS * WAVEFORM_SAMPLES_PER_SECOND)
        flops = transformer_ctc_flops(self.config, len(plans), samples, with_head=hasattr(self, "lm_head"))
        return SubnetCosts(params=counts.params, flops=flops / REFERENCE_SECONDS, int8_mb=counts.int8_mb)

    # ------------------------------------------------------------------ loading
    @classmethod
    def _check_checkpoint_type(cls, path, kwargs) -> None:
        try:
            super()._check_checkpoint_type(path, kwargs)
        except ValueError as err:
            raise ValueError(
                f"{err} To seed the stored blocks of a {cls.__name__} from a stock {cls.stock_config_class.model_type}"
                f" checkpoint, use {cls.__name__}.from_pretrained_backbone(...)."
            ) from None

    @classmethod
    def from_pretrained_backbone(
        cls,
        pretrained_model_name_or_path,
        *,
        num_physical_layers: int,
        num_hidden_layers: int | None = None,
        seed_layers: list[int] | None = None,
        config_overrides: dict | None = None,
        **load_kwargs,
    ):
        """A foldable model whose stored blocks are layers of a stock checkpoint (e.g. to fine-tune with CTC).

        Everything but the encoder blocks (feature encoder, feature projection, positional convolution, encoder
        norm, and the CTC head when the checkpoint has one of the right size) is loaded as is; stored block ``j``
        is a copy of the checkpoint's layer ``seed_layers[j]``.

        Args:
            pretrained_model_name_or_path: a stock checkpoint (folder or Hub id) of this family's model type, saved
                from e.g. ``Wav2Vec2ForCTC``, ``Wav2Vec2Model`` or ``HubertModel``.
            num_physical_layers: how many blocks to store.
            num_hidden_layers: logical depth of the deepest unfolding path; defaults to the checkpoint's depth, so
                the deepest path emulates the pretrained model.
            seed_layers: the checkpoint layer each stored block starts from (may repeat); defaults to
                :func:`evenly_spaced_layers` (first and last layer included).
            config_overrides: config fields to change, e.g. ``{"vocab_size": 32, "pad_token_id": 0,
                "unfolding_depths": [8, 12]}``; a CTC head whose size changes is initialised afresh.
            **load_kwargs: passed to the stock ``from_pretrained`` (``revision``, ``cache_dir``,
                ``local_files_only``, ...).
        """
        source = cls.stock_config_class.model_type
        hub_kwargs = {k: load_kwargs[k] for k in _HUB_KWARGS if k in load_kwargs}
        found = PreTrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)[0].get("model_type")
        if found == cls.config_class.model_type:
            raise ValueError(
                f"{pretrained_model_name_or_path} is already a {found!r} checkpoint; load it with "
                f"{cls.__name__}.from_pretrained."
            )
        if found != source:
            raise ValueError(
                f"{pretrained_model_name_or_path} holds a {found!r} checkpoint; {cls.__name__}.from_pretrained_backbone"
                f" seeds its blocks from a {source!r} checkpoint."
            )
        stock_config = cls.stock_config_class.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        num_source_layers = stock_config.num_hidden_layers
        if seed_layers is None:
            seed_layers = evenly_spaced_layers(num_source_layers, num_physical_layers)
        seed_layers = [int(i) for i in seed_layers]
        if len(seed_layers) != num_physical_layers:
            raise ValueError(
                f"seed_layers={seed_layers} names {len(seed_layers)} layers for num_physical_layers="
                f"{num_physical_layers} stored blocks; give one checkpoint layer per stored block."
            )
        if not all(0 <= i < num_source_layers for i in seed_layers):
            raise ValueError(
                f"seed_layers={seed_layers} must index the checkpoint's {num_source_layers} layers "
                f"(0..{num_source_layers - 1})."
            )

        values = stock_config.to_dict()
        for key in ("model_type", "transformers_version", "architectures"):
            values.pop(key, None)
        values.update(config_overrides or {})
        values.update(
            num_physical_layers=num_physical_layers,
            num_hidden_layers=num_source_layers if num_hidden_layers is None else num_hidden_layers,
        )
        config = cls.config_class(**values)
        model = cls(config)
        # The checkpoint loaded by its own class, with this model's fields (head size, SpecAugment embedding, ...)
        # and the checkpoint's depth: whatever it lacks or has in another shape keeps the stock initialisation.
        stock = cls.stock_class.from_pretrained(
            pretrained_model_name_or_path,
            config=model.stock_config(num_source_layers),
            ignore_mismatched_sizes=True,
            **load_kwargs,
        )
        layers_key = f"{model.stored_blocks_name}."
        stock_state = stock.state_dict()
        state = {k: v for k, v in stock_state.items() if not k.startswith(layers_key)}
        for block, layer in enumerate(seed_layers):
            source_key = f"{layers_key}{layer}."
            state.update(
                {f"{layers_key}{block}.{k[len(source_key):]}": v for k, v in stock_state.items() if k.startswith(source_key)}
            )
        model.load_state_dict(state, strict=True)
        logger.info(
            "Seeded the %d stored blocks of %s from layers %s of %s.",
            num_physical_layers, cls.__name__, seed_layers, pretrained_model_name_or_path,
        )
        return model


class _FoldableEncoderMixin(FoldableMixin):
    """Forward of the bare encoder models: the stock one, run along the active path."""

    def forward(self, input_values: torch.Tensor | None, attention_mask: torch.Tensor | None = None, subnet=None, **kwargs):
        r"""
        As the stock model's forward, plus:

        subnet (`SubnetSpec`, *optional*):
            Run as this unfolding path; defaults to the active one (`with model.use_subnet(spec)`), else the deepest.
        """
        with self.unfolded(subnet):
            return super().forward(input_values, attention_mask=attention_mask, **kwargs)


class _FoldableCTCMixin(FoldableMixin):
    """Forward of the CTC models: the stock one, run along the active path, plus which output frames are real."""

    def forward(
        self,
        input_values: torch.Tensor | None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        subnet=None,
        **kwargs,
    ) -> SupernetCTCOutput | tuple:
        r"""
        As the stock model's forward (`labels` padded with -100), plus:

        subnet (`SubnetSpec`, *optional*):
            Run as this unfolding path; defaults to the active one (`with model.use_subnet(spec)`), else the deepest.
        """
        return_dict = kwargs.pop("return_dict", None)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        with self.unfolded(subnet):
            outputs = super().forward(input_values, attention_mask=attention_mask, labels=labels, return_dict=True, **kwargs)
        batch, frames = outputs.logits.shape[:2]
        if attention_mask is None:
            frame_mask = torch.ones(batch, frames, dtype=torch.bool, device=outputs.logits.device)
        else:
            frame_mask = self._get_feature_vector_attention_mask(frames, attention_mask)
        output = SupernetCTCOutput(**outputs, output_attention_mask=frame_mask)
        return output if return_dict else output.to_tuple()


class FoldableWav2Vec2Model(_FoldableEncoderMixin, Wav2Vec2Model):
    """[`~transformers.Wav2Vec2Model`] storing `config.num_physical_layers` blocks, run along unfolding paths."""

    config_class = FoldableWav2Vec2Config
    stock_class = Wav2Vec2Model
    stock_config_class = Wav2Vec2Config


class FoldableWav2Vec2ForCTC(_FoldableCTCMixin, Wav2Vec2ForCTC):
    """[`~transformers.Wav2Vec2ForCTC`] storing `config.num_physical_layers` blocks, run along unfolding paths;
    `extract_subnet(path)` returns a stock `Wav2Vec2ForCTC`."""

    config_class = FoldableWav2Vec2Config
    stock_class = Wav2Vec2ForCTC
    stock_config_class = Wav2Vec2Config


class FoldableHubertModel(_FoldableEncoderMixin, HubertModel):
    """[`~transformers.HubertModel`] storing `config.num_physical_layers` blocks, run along unfolding paths."""

    config_class = FoldableHubertConfig
    stock_class = HubertModel
    stock_config_class = HubertConfig


class FoldableHubertForCTC(_FoldableCTCMixin, HubertForCTC):
    """[`~transformers.HubertForCTC`] storing `config.num_physical_layers` blocks, run along unfolding paths;
    `extract_subnet(path)` returns a stock `HubertForCTC`."""

    config_class = FoldableHubertConfig
    stock_class = HubertForCTC
    stock_config_class = HubertConfig


__all__ = [
    "FoldableCTCOutput",
    "FoldableHubertForCTC",
    "FoldableHubertModel",
    "FoldableWav2Vec2ForCTC",
    "FoldableWav2Vec2Model",
    "UnfoldingLayerList",
    "evenly_spaced_layers",
    "transformer_ctc_flops",
]
