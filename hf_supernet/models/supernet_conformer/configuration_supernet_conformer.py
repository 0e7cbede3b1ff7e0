"""Configuration of the supernet Conformer-CTC model."""

from __future__ import annotations

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from ...config_validation import FLAG, PROBABILITY, SIZE, Rule, check_fields
from ...masks import MASK_TYPES
from ...masks.folding import FoldingConfigMixin
from ...masks.layer_width import LayerWidthConfigMixin
from ...masks.omni_sparsity import OmniSparsityConfigMixin
from ...masks.orthosoftmax import OrthoSoftmaxConfigMixin
from ...paper_recipes import recipe_config_fields


class SupernetConformerConfig(
    LayerWidthConfigMixin, OrthoSoftmaxConfigMixin, OmniSparsityConfigMixin, FoldingConfigMixin, PreTrainedConfig
):
    r"""
    Configuration of a [`SupernetConformerForCTC`]: a Conformer-CTC encoder whose subnets (fewer layers, narrower
    feed-forward modules, ...) are trained jointly and can be extracted as smaller dense models.

    Args:
        vocab_size (`int`, *optional*, defaults to 32):
            Number of output classes of the CTC head, blank included.
        num_mel_bins (`int`, *optional*, defaults to 80):
            Number of log-mel features per input frame.
        subsampling_factor (`int`, *optional*, defaults to 4):
            Time reduction of the convolutional front end: 4 (two stride-2 conv layers) or 8 (three).
        subsampling_conv_channels (`int`, *optional*, defaults to 144):
            Channels of the 3x3 conv layers of the front end.
        hidden_size (`int`, *optional*, defaults to 144):
            Model dimension of the Conformer blocks.
        num_hidden_layers (`int`, *optional*, defaults to 16):
            Number of Conformer blocks of the largest subnet (with `mask_type="folding"`: the logical depth of the
            deepest unfolding path).
        num_attention_heads (`int`, *optional*, defaults to 4):
            Attention heads per block; must divide `hidden_size` into an even head size (rotary positions).
        intermediate_size (`int`, *optional*, defaults to 576):
            Hidden width of each of the two (macaron) feed-forward modules of a block.
        hidden_act (`str`, *optional*, defaults to `"silu"`):
            Activation of the feed-forward modules.
        conv_kernel_size (`int`, *optional*, defaults to 31):
            Kernel size (odd) of the depthwise convolution of the convolution module.
        rope_theta (`float`, *optional*, defaults to 10000.0):
            Base of the rotary position embedding used for the relative positions of self-attention.
        hidden_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the output of every residual branch and after the front end.
        activation_dropout (`float`, *optional*, defaults to 0.1):
            Dropout inside the feed-forward modules, after the activation.
        attention_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the attention probabilities.
        final_dropout (`float`, *optional*, defaults to 0.1):
            Dropout before the CTC head.
        mask_time_prob, mask_time_length, mask_time_min_masks, mask_feature_prob, mask_feature_length,
        mask_feature_min_masks (*optional*, default 0.0, 10, 2, 0.0, 10, 0):
            SpecAugment on the log-mel input in training, as in wav2vec2 (see [`ConformerConfig`]); `SupernetTrainer`
            draws one set of masks per batch for all the subnets it trains on it. Probabilities 0 disable it.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of every LayerNorm.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialiser of linear layers.
        ctc_loss_reduction (`str`, *optional*, defaults to `"mean"`):
            Reduction of `torch.nn.functional.ctc_loss` (`"mean"` divides each utterance's loss by its label length).
        ctc_zero_infinity (`bool`, *optional*, defaults to `True`):
            Zero infinite CTC losses (labels longer than the output) instead of propagating them.
        pad_token_id (`int`, *optional*, defaults to 0):
            Padding id of the tokenizer, used as the CTC blank.
        mask_type (`str`, *optional*, defaults to `"layer_width"`):
            How subnets are carved: `"layer_width"` (TODM: drop top layers, prefix-trim feed-forward width),
            `"orthosoftmax"` (OrthoSoftmax: learned nested masks over feed-forward chunks, heads and conv modules;
            see the `orthosoftmax_*` fields), `"omni_sparsity"` (Omni-sparsity: per-layer 8x1 block sparsity from
            Adam-pruning importance; see the `omni_sparsity_*` fields) or `"folding"` (Unfolding:
            `num_physical_layers` stored blocks run along unfolding paths up to `num_hidden_layers` deep; see
            `hf_supernet.masks.folding`). Each mask type's own fields (`layer_drop_choices`, `orthosoftmax_*`,
            `omni_sparsity_*`, `num_physical_layers` / `unfolding_*`) are documented with the mask type:
            [`~hf_supernet.masks.layer_width.LayerWidthConfigMixin`],
            [`~hf_supernet.masks.orthosoftmax.OrthoSoftmaxConfigMixin`],
            [`~hf_supernet.masks.omni_sparsity.OmniSparsityConfigMixin`],
            [`~hf_supernet.masks.folding.FoldingConfigMixin`].
        layer_ffn_dims (`list[int | list[int]]`, *optional*):
            Fixed per-layer feed-forward width (one entry per stored layer): an int for both feed-forward modules of the
            layer, or a pair `[ffn1, ffn2]`; 0 means the layer has no such module. Extracted subnets use it so that a
            subnet is an ordinary instance of this class; `None` means `intermediate_size` everywhere.
        layer_attention_heads (`list[int]`, *optional*):
            Fixed per-layer number of self-attention heads (0 = no self-attention in that layer); `None` means
            `num_attention_heads` everywhere. The head size stays `hidden_size // num_attention_heads`.
        layer_conv_modules (`list[bool]`, *optional*):
            Fixed per-layer presence of the convolution module; `None` means every layer has one.
        selected_subnets (`list[dict]`, *optional*):
            Subnets chosen by search, each `{"name", "spec", "costs", "metrics"}`; `from_pretrained(...,
            subnet_budget=...)` picks from them first.
        subnet_spec (`dict`, *optional*):
            On an extracted subnet: the spec it was cut with, for provenance.
        ctc_head_per_depth (`bool`, *optional*, defaults to `False`):
            Give every depth a subnet may have (`layer_drop_choices`, or `unfolding_depths` with `mask_type="folding"`)
            its own CTC output layer: a subnet that stops after fewer blocks reads its transcript through the head
            trained for that depth instead of sharing the deepest one (as OrthoSoftmax's authors do per budget). An
            extracted subnet keeps its depth's head as `lm_head`. Each head costs `hidden_size x vocab_size`
            parameters in the supernet, none in a subnet.
        adaptive_dropout (`bool`, *optional*, defaults to `False`):
            Scale the dropout of a reduced module by the share of it a subnet keeps (TODM). Set by
            `SupernetTrainingArguments(adaptive_dropout=True)`; has no effect in eval mode.
        architecture (`str`, *optional*, defaults to `"conformer"`):
            The blocks the supernet is built of. `"conformer"`: rotary self-attention, LayerNorm in the convolution
            module (see the module docstring of `modeling_supernet_conformer`). `"parakeet"`: exactly transformers'
            `ParakeetForCTC` (NVIDIA's FastConformer-CTC): its subsampling front end (`ParakeetEncoderSubsamplingConv2D`,
            inputs scaled by `sqrt(hidden_size)` when `scale_input`), Transformer-XL relative positional
            self-attention with the u/v biases, BatchNorm and `hidden_act` in the convolution module, LayerNorms
            with torch's default epsilon (`layer_norm_eps` must stay 1e-5). [`SupernetConformerForCTC.from_parakeet`] builds one from a
            `ParakeetForCTC`, and its subnets extract to stock `ParakeetForCTC`s (see
            `hf_supernet.models.supernet_conformer.parakeet`); BatchNorm statistics are re-estimated per subnet with
            [`~hf_supernet.recalibrate_batch_norm`]. `rope_theta` is not used by it.
        attention_bias (`bool`, *optional*, defaults to `True`):
            `"parakeet"` only: whether the attention projections and feed-forward layers have biases (Parakeet's
            `attention_bias`).
        convolution_bias (`bool`, *optional*, defaults to `True`):
            `"parakeet"` only: whether the convolution module's convolutions have biases.
        scale_input (`bool`, *optional*, defaults to `False`):
            `"parakeet"` only: multiply the front end's output by `sqrt(hidden_size)` (Parakeet's `scale_input`).
        dropout_positions (`float`, *optional*, defaults to 0.0):
            `"parakeet"` only: dropout on the relative position embeddings.
        max_position_embeddings (`int`, *optional*, defaults to 5000):
            `"parakeet"` only: carried to the exported `ParakeetEncoderConfig` (positions are computed for any
            length).

    Example:

    ```python
    >>> from hf_supernet import SupernetConformerConfig, SupernetConformerForCTC

    >>> config = SupernetConformerConfig(num_hidden_layers=4, vocab_size=30)
    >>> model = SupernetConformerForCTC(config)
    >>> small = model.extract_subnet(model.subnet_space.smallest())
    ```
    """

    model_type = "supernet_conformer"

    vocab_size: int = 32
    num_mel_bins: int = 80
    subsampling_factor: int = 4
    subsampling_conv_channels: int = 144
    hidden_size: int = 144
    num_hidden_layers: int = 16
    num_attention_heads: int = 4
    intermediate_size: int = 576
    hidden_act: str = "silu"
    conv_kernel_size: int = 31
    rope_theta: float = 10000.0
    hidden_dropout: float = 0.1
    activation_dropout: float = 0.1
    attention_dropout: float = 0.1
    final_dropout: float = 0.1
    mask_time_prob: float = 0.0
    mask_time_length: int = 10
    mask_time_min_masks: int = 2
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10
    mask_feature_min_masks: int = 0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    ctc_loss_reduction: str = "mean"
    ctc_zero_infinity: bool = True
    pad_token_id: int | None = 0
    mask_type: str = "layer_width"
    layer_ffn_dims: list[int | list[int]] | None = None
    layer_attention_heads: list[int] | None = None
    layer_conv_modules: list[bool] | None = None
    selected_subnets: list[dict] | None = None
    subnet_spec: dict | None = None
    ctc_head_per_depth: bool = False
    adaptive_dropout: bool = False
    architecture: str = "conformer"
    attention_bias: bool = True
    convolution_bias: bool = True
    scale_input: bool = False
    dropout_positions: float = 0.0
    max_position_embeddings: int = 5000

    def __post_init__(self, **kwargs):
        self._validate_fields()
        if self.layer_ffn_dims is not None:
            self.layer_ffn_dims = [int(d) if isinstance(d, int) else [int(x) for x in d] for d in self.layer_ffn_dims]
        if self.layer_attention_heads is not None:
            self.layer_attention_heads = [int(h) for h in self.layer_attention_heads]
        if self.layer_conv_modules is not None:
            self.layer_conv_modules = [bool(c) for c in self.layer_conv_modules]
        self._validate_architecture_fields()
        # The mask types' config mixins (bases of this class) fill and check their own fields in here.
        super().__post_init__(**kwargs)
        self._validate_per_layer_fields()

    @classmethod
    def from_recipe(cls, name: str, **overrides) -> SupernetConformerConfig:
        """The config fields a paper's recipe sets (mask type, search space; see :mod:`hf_supernet.paper_recipes`),
        with ``overrides`` for the rest (sizes, vocabulary) or to replace them."""
        return cls(**recipe_config_fields(name, **overrides))

    def _validate_fields(self) -> None:
        """Type and range of the family's own fields, checked before anything uses them (each mask type's mixin
        checks its fields the same way); the error names the field and its valid values."""
        check_fields(self, _FIELD_RULES)
        if self.pad_token_id >= self.vocab_size:
            raise ValueError(
                f"pad_token_id={self.pad_token_id} is the CTC blank and must be an id below vocab_size="
                f"{self.vocab_size}."
            )

    def _validate_architecture_fields(self) -> None:
        if self.mask_type not in MASK_TYPES:
            raise ValueError(f"Unknown mask_type={self.mask_type!r}; valid values are {list(MASK_TYPES)}.")
        if self.subsampling_factor not in (4, 8):
            raise ValueError(f"subsampling_factor must be 4 or 8, got {self.subsampling_factor}.")
        if self.num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be >= 1, got {self.num_hidden_layers}.")
        head_dim, rest = divmod(self.hidden_size, self.num_attention_heads)
        if self.architecture == "parakeet":
            self._validate_parakeet_fields(rest)
        elif rest or head_dim % 2:
            raise ValueError(
                f"hidden_size={self.hidden_size} must split into num_attention_heads={self.num_attention_heads} "
                "heads of even size (rotary position embedding rotates pairs of channels)."
            )
        else:
            parakeet_only = {k: v for k, v in _PARAKEET_ONLY_DEFAULTS.items() if getattr(self, k) != v}
            if parakeet_only:
                raise ValueError(
                    f"{sorted(parakeet_only)} are options of architecture='parakeet' (Parakeet's blocks); the "
                    f"'conformer' blocks have biases everywhere and no input scaling. Leave them at their defaults "
                    f"{ {k: _PARAKEET_ONLY_DEFAULTS[k] for k in parakeet_only} } or set architecture='parakeet'."
                )
        if self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd to keep frames aligned, got {self.conv_kernel_size}.")

    def _validate_parakeet_fields(self, heads_remainder: int) -> None:
        if self.layer_norm_eps != 1e-5:
            raise ValueError(
                f"layer_norm_eps={self.layer_norm_eps} with architecture='parakeet': Parakeet's LayerNorms use torch's "
                "default epsilon; leave layer_norm_eps at 1e-5."
            )
        if heads_remainder:
            raise ValueError(
                f"hidden_size={self.hidden_size} must split into num_attention_heads={self.num_attention_heads} "
                "equal heads."
            )
        if self.num_mel_bins % self.subsampling_factor:
            raise ValueError(
                f"num_mel_bins={self.num_mel_bins} must be a multiple of subsampling_factor={self.subsampling_factor} "
                "with architecture='parakeet': Parakeet's front end sizes its projection for num_mel_bins // "
                "subsampling_factor mel bins."
            )

    def _validate_per_layer_fields(self) -> None:
        for name in ("layer_ffn_dims", "layer_attention_heads", "layer_conv_modules"):
            values = getattr(self, name)
            if values is not None and len(values) != self.num_physical_layers:
                raise ValueError(
                    f"{name} has {len(values)} entries but the model stores {self.num_physical_layers} layers "
                    "(num_physical_layers, = num_hidden_layers unless folding); give one entry per layer."
                )
        if self.layer_ffn_dims is not None:
            for entry in self.layer_ffn_dims:
                dims = [entry] if isinstance(entry, int) else entry
                if len(dims) not in (1, 2) or min(dims) < 0:
                    raise ValueError(
                        f"layer_ffn_dims entries must be a width >= 0 or a pair [ffn1, ffn2] of them, got {entry!r}."
                    )
        if self.layer_attention_heads is not None and not all(
            0 <= h <= self.num_attention_heads for h in self.layer_attention_heads
        ):
            raise ValueError(
                f"layer_attention_heads must be between 0 and num_attention_heads={self.num_attention_heads}, got "
                f"{self.layer_attention_heads}."
            )

    def parakeet_encoder_config(self, **overrides):
        """The ``transformers.ParakeetEncoderConfig`` of this architecture (``architecture="parakeet"``; every layer
        as wide as ``intermediate_size``, with ``num_attention_heads`` heads): what Parakeet's own modules in the
        supernet are built from, and the encoder of an exported stock ``ParakeetForCTC``. ``hidden_dropout`` is
        Parakeet's ``dropout`` (after the front end); ``layerdrop`` is 0 (the supernet drops layers by its mask)."""
        from transformers import ParakeetEncoderConfig

        values = dict(
            hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act, attention_bias=self.attention_bias, convolution_bias=self.convolution_bias,
            conv_kernel_size=self.conv_kernel_size, subsampling_factor=self.subsampling_factor,
            subsampling_conv_channels=self.subsampling_conv_channels, num_mel_bins=self.num_mel_bins,
            dropout=self.hidden_dropout, dropout_positions=self.dropout_positions, layerdrop=0.0,
            activation_dropout=self.activation_dropout, attention_dropout=self.attention_dropout,
            max_position_embeddings=self.max_position_embeddings, scale_input=self.scale_input,
            initializer_range=self.initializer_range,
        )
        values.update(overrides)
        return ParakeetEncoderConfig(**values)

    def ffn_dims_of_layer(self, layer: int) -> tuple[int, int]:
        """Hidden widths of feed-forward modules 1 and 2 of physical layer ``layer`` (0 = no such module)."""
        if self.layer_ffn_dims is None:
            return self.intermediate_size, self.intermediate_size
        entry = self.layer_ffn_dims[layer]
        return (entry, entry) if isinstance(entry, int) else (entry[0], entry[-1])

    def ffn_dim_of_layer(self, layer: int, which: int = 1) -> int:
        """Hidden width of feed-forward module ``which`` (1 or 2) of physical layer ``layer``."""
        return self.ffn_dims_of_layer(layer)[which - 1]

    def heads_of_layer(self, layer: int) -> int:
        """Number of self-attention heads of physical layer ``layer`` (0 = none)."""
        return self.num_attention_heads if self.layer_attention_heads is None else self.layer_attention_heads[layer]

    def has_conv_module(self, layer: int) -> bool:
        return True if self.layer_conv_modules is None else self.layer_conv_modules[layer]


__all__ = ["SupernetConformerConfig", "MASK_TYPES"]


# What each of the Conformer's own fields may hold (the mask types' fields are checked by their mixins).
_FIELD_RULES = {
    "vocab_size": SIZE,
    "num_mel_bins": SIZE,
    "subsampling_factor": Rule(int, choices=(4, 8)),
    "subsampling_conv_channels": SIZE,
    "hidden_size": SIZE,
    "num_hidden_layers": SIZE,
    "num_attention_heads": SIZE,
    "intermediate_size": Rule(int, minimum=0),  # 0: no layer keeps a feed-forward module (an extracted subnet)
    "hidden_act": Rule(str, choices=tuple(ACT2FN)),
    "conv_kernel_size": SIZE,
    "rope_theta": Rule(float, minimum=0.0, positive=True),
    "hidden_dropout": PROBABILITY,
    "activation_dropout": PROBABILITY,
    "attention_dropout": PROBABILITY,
    "final_dropout": PROBABILITY,
    "mask_time_prob": PROBABILITY,
    "mask_time_length": SIZE,
    "mask_time_min_masks": Rule(int, minimum=0),
    "mask_feature_prob": PROBABILITY,
    "mask_feature_length": SIZE,
    "mask_feature_min_masks": Rule(int, minimum=0),
    "layer_norm_eps": Rule(float, minimum=0.0, positive=True),
    "initializer_range": Rule(float, minimum=0.0),
    "ctc_loss_reduction": Rule(str, choices=("mean", "sum")),
    "ctc_zero_infinity": FLAG,
    "pad_token_id": Rule(int, minimum=0),
    "mask_type": Rule(str),  # its values are the registry's, checked with the architecture
    "layer_ffn_dims": Rule(list, items="int_or_pair", optional=True),
    "layer_attention_heads": Rule(list, items=int, optional=True),
    "layer_conv_modules": Rule(list, items=bool, optional=True),
    "selected_subnets": Rule(list, items=dict, optional=True),
    "subnet_spec": Rule(dict, optional=True),
    "ctc_head_per_depth": FLAG,
    "adaptive_dropout": FLAG,
    "architecture": Rule(str, choices=("conformer", "parakeet")),
    "attention_bias": FLAG,
    "convolution_bias": FLAG,
    "scale_input": FLAG,
    "dropout_positions": PROBABILITY,
    "max_position_embeddings": SIZE,
}

# The Parakeet-only fields and the value the "conformer" blocks imply for each.
_PARAKEET_ONLY_DEFAULTS = {"attention_bias": True, "convolution_bias": True, "scale_input": False, "dropout_positions": 0.0}
