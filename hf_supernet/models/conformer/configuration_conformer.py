"""Configuration of the plain dense Conformer-CTC that every Conformer subnet extracts to.

This file imports only ``transformers`` so that it travels as remote code (``auto_map``) with a saved model.
"""

from transformers import PreTrainedConfig


class ConformerConfig(PreTrainedConfig):
    r"""
    Configuration of a [`ConformerForCTC`]: a Conformer-CTC encoder of fixed architecture, with per-layer feed-forward
    widths, attention heads and convolution modules so that any subnet carved out of a `SupernetConformerForCTC` is
    one of these. The model has no masks and no subnet machinery: it is what gets exported, quantized and published.

    Args:
        vocab_size (`int`, *optional*, defaults to 32):
            Number of output classes of the CTC head, blank included.
        num_mel_bins (`int`, *optional*, defaults to 80):
            Number of log-mel features per input frame.
        feature_hop_length (`int`, *optional*, defaults to 160):
            Audio samples per feature frame (the feature extractor's hop, 10 ms at 16 kHz); with
            `subsampling_factor` it gives `inputs_to_logits_ratio`, which the ASR pipeline needs to chunk long audio.
        subsampling_factor (`int`, *optional*, defaults to 4):
            Time reduction of the convolutional front end: 4 (two stride-2 conv layers) or 8 (three).
        subsampling_conv_channels (`int`, *optional*, defaults to 144):
            Channels of the 3x3 conv layers of the front end.
        hidden_size (`int`, *optional*, defaults to 144):
            Model dimension of the Conformer blocks.
        num_hidden_layers (`int`, *optional*, defaults to 16):
            Number of Conformer blocks.
        num_attention_heads (`int`, *optional*, defaults to 4):
            Reference number of heads: the head size is `hidden_size // num_attention_heads` (even, for the rotary
            position embedding), and a layer without an entry in `layer_attention_heads` has this many heads.
        intermediate_size (`int`, *optional*, defaults to 576):
            Hidden width of each of the two (macaron) feed-forward modules of a block without an entry in
            `layer_ffn_dims`.
        hidden_act (`str`, *optional*, defaults to `"silu"`):
            Activation of the feed-forward modules.
        conv_kernel_size (`int`, *optional*, defaults to 31):
            Kernel size (odd) of the depthwise convolution of the convolution module.
        rope_theta (`float`, *optional*, defaults to 10000.0):
            Base of the rotary position embedding of self-attention.
        hidden_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the output of every residual branch and after the front end.
        activation_dropout (`float`, *optional*, defaults to 0.1):
            Dropout inside the feed-forward modules, after the activation.
        attention_dropout (`float`, *optional*, defaults to 0.1):
            Dropout on the attention probabilities.
        final_dropout (`float`, *optional*, defaults to 0.1):
            Dropout before the CTC head.
        mask_time_prob (`float`, *optional*, defaults to 0.0):
            SpecAugment in training: expected fraction of valid input frames masked (set to 0), drawn as wav2vec2
            draws its masks; 0 disables time masks.
        mask_time_length (`int`, *optional*, defaults to 10):
            Input frames per time mask (100 frames = 1 s).
        mask_time_min_masks (`int`, *optional*, defaults to 2):
            Time masks per utterance at least, when `mask_time_prob > 0`.
        mask_feature_prob (`float`, *optional*, defaults to 0.0):
            SpecAugment in training: expected fraction of mel bins masked; 0 disables frequency masks.
        mask_feature_length (`int`, *optional*, defaults to 10):
            Mel bins per frequency mask.
        mask_feature_min_masks (`int`, *optional*, defaults to 0):
            Frequency masks per utterance at least, when `mask_feature_prob > 0`.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of every LayerNorm.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialiser of linear layers.
        ctc_loss_reduction (`str`, *optional*, defaults to `"mean"`):
            Reduction of the CTC loss.
        ctc_zero_infinity (`bool`, *optional*, defaults to `True`):
            Zero infinite CTC losses (labels longer than the output) instead of propagating them.
        pad_token_id (`int`, *optional*, defaults to 0):
            Padding id of the tokenizer, used as the CTC blank.
        layer_ffn_dims (`list[int | list[int]]`, *optional*):
            Per-layer feed-forward widths: an int for both feed-forward modules of the layer or a pair `[ffn1, ffn2]`;
            0 means the layer has no such module. `None`: `intermediate_size` everywhere.
        layer_attention_heads (`list[int]`, *optional*):
            Per-layer number of self-attention heads (0 = no self-attention). `None`: `num_attention_heads`
            everywhere.
        layer_conv_modules (`list[bool]`, *optional*):
            Per-layer presence of the convolution module. `None`: every layer has one. A layer with no feed-forward
            module, no heads and no convolution module is just its final LayerNorm.
        subnet_spec (`dict`, *optional*):
            Provenance: the spec of the supernet subnet this model was extracted from.
        sparsity_block_shape (`list[int]`, *optional*):
            Provenance: the `[rows, cols]` blocks of zeros the weights hold when the subnet was pruned in blocks
            (Omni-sparsity); block-sparse storage (`hf_supernet.save_sparse`) stores the weights by these blocks.
            `None`: the weights are dense. Does not change what the model computes.

    Example:

    ```python
    >>> from hf_supernet.models.conformer import ConformerConfig, ConformerForCTC

    >>> config = ConformerConfig(num_hidden_layers=2, layer_ffn_dims=[[144, 72], 0], layer_attention_heads=[4, 2])
    >>> model = ConformerForCTC(config)
    ```
    """

    model_type = "hf_supernet_conformer"

    vocab_size: int = 32
    num_mel_bins: int = 80
    feature_hop_length: int = 160
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
    layer_ffn_dims: list[int | list[int]] | None = None
    layer_attention_heads: list[int] | None = None
    layer_conv_modules: list[bool] | None = None
    subnet_spec: dict | None = None
    sparsity_block_shape: list[int] | None = None

    def __post_init__(self, **kwargs):
        if self.layer_ffn_dims is not None:
            self.layer_ffn_dims = [int(d) if isinstance(d, int) else [int(x) for x in d] for d in self.layer_ffn_dims]
        if self.layer_attention_heads is not None:
            self.layer_attention_heads = [int(h) for h in self.layer_attention_heads]
        if self.layer_conv_modules is not None:
            self.layer_conv_modules = [bool(c) for c in self.layer_conv_modules]
        if self.sparsity_block_shape is not None:
            self.sparsity_block_shape = [int(b) for b in self.sparsity_block_shape]
        super().__post_init__(**kwargs)
        self._validate_architecture()

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """As `PreTrainedConfig.from_dict`, refusing the config of another model type (e.g. a subnet saved as a
        `SupernetConformerForCTC` by earlier versions of hf_supernet) instead of reading its fields half-understood."""
        found = config_dict.get("model_type")
        if found is not None and found != cls.model_type:
            how = (
                " It is a supernet, or a subnet saved by an earlier version of hf_supernet: with hf_supernet "
                "installed, load it with `hf_supernet.SupernetConformerForCTC.from_pretrained(folder)` and convert "
                "it with `hf_supernet.dense_conformer_from_subnet(model)` (or `model.extract_subnet(spec)` for a "
                "supernet), then `save_pretrained` the result."
                if found == "supernet_conformer"
                else ""
            )
            raise ValueError(f"This is a {found!r} config, not a {cls.model_type!r} (ConformerConfig) one.{how}")
        return super().from_dict(config_dict, **kwargs)

    def _validate_architecture(self) -> None:
        if self.subsampling_factor not in (4, 8):
            raise ValueError(f"subsampling_factor must be 4 or 8, got {self.subsampling_factor}.")
        if self.num_hidden_layers < 0:
            raise ValueError(f"num_hidden_layers must be >= 0, got {self.num_hidden_layers}.")
        head_dim, rest = divmod(self.hidden_size, self.num_attention_heads)
        if rest or head_dim % 2:
            raise ValueError(
                f"hidden_size={self.hidden_size} must split into num_attention_heads={self.num_attention_heads} "
                "heads of even size (rotary position embedding rotates pairs of channels)."
            )
        if self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd to keep frames aligned, got {self.conv_kernel_size}.")
        for name in ("layer_ffn_dims", "layer_attention_heads", "layer_conv_modules"):
            values = getattr(self, name)
            if values is not None and len(values) != self.num_hidden_layers:
                raise ValueError(
                    f"{name} has {len(values)} entries for num_hidden_layers={self.num_hidden_layers}; give one entry "
                    "per layer."
                )
        for entry in self.layer_ffn_dims or ():
            dims = [entry] if isinstance(entry, int) else entry
            if len(dims) not in (1, 2) or min(dims) < 0:
                raise ValueError(f"layer_ffn_dims entries must be a width >= 0 or a pair [ffn1, ffn2], got {entry!r}.")
        if any(h < 0 for h in self.layer_attention_heads or ()):
            raise ValueError(f"layer_attention_heads must be >= 0, got {self.layer_attention_heads}.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def inputs_to_logits_ratio(self) -> int:
        """Audio samples per output frame (what `pipeline("automatic-speech-recognition")` aligns chunks to)."""
        return self.feature_hop_length * self.subsampling_factor

    def ffn_dims_of_layer(self, layer: int) -> tuple[int, int]:
        """Hidden widths of feed-forward modules 1 and 2 of ``layer`` (0 = no such module)."""
        if self.layer_ffn_dims is None:
            return self.intermediate_size, self.intermediate_size
        entry = self.layer_ffn_dims[layer]
        return (entry, entry) if isinstance(entry, int) else (entry[0], entry[-1])

    def heads_of_layer(self, layer: int) -> int:
        """Self-attention heads of ``layer`` (0 = none)."""
        return self.num_attention_heads if self.layer_attention_heads is None else self.layer_attention_heads[layer]

    def has_conv_module(self, layer: int) -> bool:
        return True if self.layer_conv_modules is None else self.layer_conv_modules[layer]


__all__ = ["ConformerConfig"]
