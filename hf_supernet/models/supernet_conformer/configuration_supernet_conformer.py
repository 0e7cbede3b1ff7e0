"""Configuration of the supernet Conformer-CTC model."""

from __future__ import annotations

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from ...config_validation import FLAG, PROBABILITY, SIZE, STEPS, Rule, check_fields
from ...masks.folding import resolve_folding_fields

MASK_TYPES = ("layer_width", "orthosoftmax", "omni_sparsity", "folding")
OMNI_SPARSITY_POOLINGS = ("matrix", "layer")

# OrthoSoftmax's FLOPs-aware budgets from the paper (fractions of the whole model's FLOPs).
ORTHOSOFTMAX_PAPER_BUDGETS = (0.337, 0.457, 0.578, 0.759, 1.0)

# TODM drops the top 0, 3 or 7 of its layers; for other depths we keep the same *fractions* of the stack.
_TODM_DEPTH = 16
_TODM_LAYER_DROPS = (0, 3, 7)


def default_layer_drop_choices(num_hidden_layers: int) -> list[int]:
    """TODM's (0, 3, 7) layer drops scaled to ``num_hidden_layers`` (e.g. 4 layers -> [0, 1, 2])."""
    drops = sorted({round(d * num_hidden_layers / _TODM_DEPTH) for d in _TODM_LAYER_DROPS})
    return [d for d in drops if d < num_hidden_layers]


class SupernetConformerConfig(PreTrainedConfig):
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
            `hf_supernet.masks.folding`).
        num_physical_layers (`int`, *optional*):
            `folding`: number of stored Conformer blocks (the seed). Defaults to `num_hidden_layers`; any other value
            needs `mask_type="folding"`.
        unfolding_depths (`list[int]`, *optional*):
            `folding`: logical depths of the unfolding paths, between `num_physical_layers` and `num_hidden_layers`
            (which must be the deepest). Defaults to every depth in that range.
        unfolding_patterns (`list[str]`, *optional*):
            `folding`: how paths repeat the stored blocks, `"stack"` (the whole stack again) and/or `"layer"` (each
            block in place). Defaults to `["stack", "layer"]`; the first one gives the deepest path.
        layer_drop_choices (`list[int]`, *optional*):
            `layer_width`: how many top layers a subnet may drop. Defaults to TODM's (0, 3, 7) of 16 layers scaled to
            `num_hidden_layers`.
        ffn_width_choices (`list[float]`, *optional*, defaults to `[0.125, 0.25, 0.5, 1.0]`):
            `layer_width`: feed-forward widths a kept layer may use, as fractions of its full width.
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
        orthosoftmax_granularity (`str`, *optional*, defaults to `"component"`):
            `orthosoftmax`: the maskable units of a block. `"component"`: each feed-forward module in
            `orthosoftmax_ffn_chunks` chunks of hidden channels, each attention head, the conv module (15 units per
            block with 4 heads); `"layer"`: the four modules whole (FF1, MHSA, Conv, FF2).
        orthosoftmax_ffn_chunks (`int`, *optional*, defaults to 4):
            `orthosoftmax`, component-wise: chunks (contiguous, near-equal) each feed-forward module is cut into.
        orthosoftmax_budgets (`list[float]`, *optional*, defaults to `[0.337, 0.457, 0.578, 0.759, 1.0]`):
            `orthosoftmax`: the subnets, as fractions of the whole model's cost (`orthosoftmax_budget_cost`); the
            paper's FLOPs-aware budgets by default. 1.0 (the whole model, the sandwich's largest) is added if absent;
            at least one budget must be below 1.
        orthosoftmax_budget_cost (`str`, *optional*, defaults to `"flops"`):
            `orthosoftmax`: what budgets are fractions of, `"flops"` (FLOPs-aware, the paper's best) or `"params"`.
        orthosoftmax_stage1_steps (`int`, *optional*, defaults to 1000):
            `orthosoftmax`: optimizer steps of stage 1 (soft masks, orthogonality loss); the binary masks are frozen
            after this many steps and stage 2 (sandwich with binary masks) runs to the end. The paper spends about
            60% of training in stage 1: set it to ~0.6 x `max_steps`. 0 freezes the initial masks at once.
        orthosoftmax_temperature_decay (`float`, *optional*):
            `orthosoftmax`: γ of the softmax temperature `τ_t = max(γ^t, orthosoftmax_min_temperature)` (the
            authors use 0.999992). `None`: the γ that reaches the floor exactly at the end of stage 1.
        orthosoftmax_min_temperature (`float`, *optional*, defaults to 0.01):
            `orthosoftmax`: the floor of the temperature.
        orthosoftmax_orth_weight (`float`, *optional*, defaults to 1.0):
            `orthosoftmax`: final weight of the orthogonality loss, ramped linearly from 0 over stage 1.
        orthosoftmax_stochastic_depth (`float`, *optional*, defaults to 0.1):
            `orthosoftmax`, stage 2: probability that the full model skips each unit outside the smallest budget's
            mask on a training step (0 disables it).
        omni_sparsity_levels (`list[float]`, *optional*, defaults to `[0.0, 0.5, 0.6, 0.7, 0.8]`):
            `omni_sparsity`: the sparsities each layer may take (share of pruned weights in its prunable matrices).
            The largest subnet has every layer at the lowest level, the smallest at the highest.
        omni_sparsity_block_shape (`list[int]`, *optional*, defaults to `[8, 1]`):
            `omni_sparsity`: pruning block `[rows, cols]` over a weight of shape (out_features, in_features): `[8,
            1]` is QNNPACK/fbgemm's 8x1 pattern (8 consecutive output channels of one input channel); `[1, 8]` runs
            along the input instead.
        omni_sparsity_pooling (`str`, *optional*, defaults to `"matrix"`):
            `omni_sparsity`: where blocks compete: `"matrix"` (each prunable matrix of a layer keeps its own
            `round((1 - s) * blocks)`, so no matrix can be emptied) or `"layer"` (all of a layer's blocks ranked
            together, `round((1 - s) * blocks)` kept per layer).
        omni_sparsity_prune_interval (`int`, *optional*, defaults to 256):
            `omni_sparsity`: optimizer steps between pruning steps; at each one the masks are recomputed from the
            Adam importance and the largest sparsity the trainer may sample is raised (paper: 256).
        omni_sparsity_schedule_start (`int`, *optional*, defaults to 0):
            `omni_sparsity`: step `t0` where the cubic schedule of the largest trainable sparsity starts.
        omni_sparsity_schedule_steps (`int`, *optional*, defaults to 2560):
            `omni_sparsity`: length `n * interval` of the cubic ramp from `omni_sparsity_initial_max_sparsity` to the
            highest level; about half to two thirds of the training steps.
        omni_sparsity_initial_max_sparsity (`float`, *optional*, defaults to 0.0):
            `omni_sparsity`: largest trainable sparsity at the start of the schedule (`s_i`; 0 = dense warm-up).

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
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    ctc_loss_reduction: str = "mean"
    ctc_zero_infinity: bool = True
    pad_token_id: int | None = 0
    mask_type: str = "layer_width"
    num_physical_layers: int | None = None
    unfolding_depths: list[int] | None = None
    unfolding_patterns: list[str] | None = None
    layer_drop_choices: list[int] | None = None
    ffn_width_choices: list[float] | None = None
    layer_ffn_dims: list[int | list[int]] | None = None
    layer_attention_heads: list[int] | None = None
    layer_conv_modules: list[bool] | None = None
    selected_subnets: list[dict] | None = None
    subnet_spec: dict | None = None
    ctc_head_per_depth: bool = False
    adaptive_dropout: bool = False
    orthosoftmax_granularity: str = "component"
    orthosoftmax_ffn_chunks: int = 4
    orthosoftmax_budgets: list[float] | None = None
    orthosoftmax_budget_cost: str = "flops"
    orthosoftmax_stage1_steps: int = 1000
    orthosoftmax_temperature_decay: float | None = None
    orthosoftmax_min_temperature: float = 0.01
    orthosoftmax_orth_weight: float = 1.0
    orthosoftmax_stochastic_depth: float = 0.1
    omni_sparsity_levels: list[float] | None = None
    omni_sparsity_block_shape: list[int] | None = None
    omni_sparsity_pooling: str = "matrix"
    omni_sparsity_prune_interval: int = 256
    omni_sparsity_schedule_start: int = 0
    omni_sparsity_schedule_steps: int = 2560
    omni_sparsity_initial_max_sparsity: float = 0.0

    def __post_init__(self, **kwargs):
        self._validate_fields()
        if self.layer_drop_choices is None:
            self.layer_drop_choices = default_layer_drop_choices(self.num_hidden_layers)
        if self.ffn_width_choices is None:
            self.ffn_width_choices = [0.125, 0.25, 0.5, 1.0]
        self.layer_drop_choices = sorted(int(d) for d in self.layer_drop_choices)
        self.ffn_width_choices = sorted(float(f) for f in self.ffn_width_choices)
        if self.omni_sparsity_levels is None:
            self.omni_sparsity_levels = [0.0, 0.5, 0.6, 0.7, 0.8]
        # Rounded so that levels read back from JSON (or typed as 0.6000000001) compare equal to spec entries.
        self.omni_sparsity_levels = sorted(round(float(s), 6) for s in self.omni_sparsity_levels)
        if self.omni_sparsity_block_shape is None:
            self.omni_sparsity_block_shape = [8, 1]
        self.omni_sparsity_block_shape = [int(b) for b in self.omni_sparsity_block_shape]
        if self.num_physical_layers is None:
            self.num_physical_layers = self.num_hidden_layers
        if self.layer_ffn_dims is not None:
            self.layer_ffn_dims = [int(d) if isinstance(d, int) else [int(x) for x in d] for d in self.layer_ffn_dims]
        if self.layer_attention_heads is not None:
            self.layer_attention_heads = [int(h) for h in self.layer_attention_heads]
        if self.layer_conv_modules is not None:
            self.layer_conv_modules = [bool(c) for c in self.layer_conv_modules]
        if self.orthosoftmax_budgets is None:
            self.orthosoftmax_budgets = list(ORTHOSOFTMAX_PAPER_BUDGETS)
        self.orthosoftmax_budgets = sorted({float(b) for b in self.orthosoftmax_budgets} | {1.0})
        super().__post_init__(**kwargs)
        self._validate_supernet_fields()

    # ------------------------------------------------------------------------------------------------ field checks
    def _validate_fields(self) -> None:
        """Type and range of every user-settable field, checked before anything uses them (the checks between
        fields follow in ``_validate_supernet_fields``); the error names the field and its valid values."""
        check_fields(self, _FIELD_RULES)
        if self.pad_token_id >= self.vocab_size:
            raise ValueError(
                f"pad_token_id={self.pad_token_id} is the CTC blank and must be an id below vocab_size="
                f"{self.vocab_size}."
            )

    def _validate_supernet_fields(self) -> None:
        if self.mask_type not in MASK_TYPES:
            raise ValueError(f"Unknown mask_type={self.mask_type!r}; valid values are {list(MASK_TYPES)}.")
        if self.subsampling_factor not in (4, 8):
            raise ValueError(f"subsampling_factor must be 4 or 8, got {self.subsampling_factor}.")
        if self.num_hidden_layers < 1:
            raise ValueError(f"num_hidden_layers must be >= 1, got {self.num_hidden_layers}.")
        if self.mask_type == "folding":
            resolve_folding_fields(self)
        elif self.num_physical_layers != self.num_hidden_layers:
            raise ValueError(
                f"num_physical_layers={self.num_physical_layers} differs from num_hidden_layers="
                f"{self.num_hidden_layers}, which only mask_type='folding' allows (blocks run several times); set "
                "mask_type='folding' or leave num_physical_layers unset."
            )
        head_dim, rest = divmod(self.hidden_size, self.num_attention_heads)
        if rest or head_dim % 2:
            raise ValueError(
                f"hidden_size={self.hidden_size} must split into num_attention_heads={self.num_attention_heads} "
                "heads of even size (rotary position embedding rotates pairs of channels)."
            )
        if self.conv_kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel_size must be odd to keep frames aligned, got {self.conv_kernel_size}.")
        if not self.layer_drop_choices or min(self.layer_drop_choices) < 0:
            raise ValueError(f"layer_drop_choices must be non-negative and non-empty, got {self.layer_drop_choices}.")
        if max(self.layer_drop_choices) >= self.num_hidden_layers:
            raise ValueError(
                f"layer_drop_choices={self.layer_drop_choices} would drop every one of the "
                f"{self.num_hidden_layers} layers; keep at least one."
            )
        if not self.ffn_width_choices or not all(0 < f <= 1 for f in self.ffn_width_choices):
            raise ValueError(f"ffn_width_choices must be fractions in (0, 1], got {self.ffn_width_choices}.")
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
        self._validate_orthosoftmax_fields()
        if self.layer_attention_heads is not None and not all(
            0 <= h <= self.num_attention_heads for h in self.layer_attention_heads
        ):
            raise ValueError(
                f"layer_attention_heads must be between 0 and num_attention_heads={self.num_attention_heads}, got "
                f"{self.layer_attention_heads}."
            )
        self._validate_omni_sparsity_fields()

    def _validate_omni_sparsity_fields(self) -> None:
        levels = self.omni_sparsity_levels
        if not levels or not all(0 <= s < 1 for s in levels) or len(set(levels)) != len(levels):
            raise ValueError(f"omni_sparsity_levels must be distinct sparsities in [0, 1), got {levels}.")
        block = self.omni_sparsity_block_shape
        if len(block) != 2 or min(block) < 1:
            raise ValueError(f"omni_sparsity_block_shape must be [rows, cols] of positive ints, got {block}.")
        if self.omni_sparsity_pooling not in OMNI_SPARSITY_POOLINGS:
            raise ValueError(
                f"omni_sparsity_pooling must be one of {list(OMNI_SPARSITY_POOLINGS)}, got {self.omni_sparsity_pooling!r}."
            )
        if self.omni_sparsity_prune_interval < 1:
            raise ValueError(f"omni_sparsity_prune_interval must be >= 1, got {self.omni_sparsity_prune_interval}.")
        if self.omni_sparsity_schedule_start < 0 or self.omni_sparsity_schedule_steps < 0:
            raise ValueError(
                "omni_sparsity_schedule_start and omni_sparsity_schedule_steps must be >= 0, got "
                f"{self.omni_sparsity_schedule_start} and {self.omni_sparsity_schedule_steps}."
            )
        if not 0 <= self.omni_sparsity_initial_max_sparsity <= max(levels):
            raise ValueError(
                f"omni_sparsity_initial_max_sparsity must be in [0, {max(levels)}] (the highest level), got "
                f"{self.omni_sparsity_initial_max_sparsity}."
            )

    def _validate_orthosoftmax_fields(self) -> None:
        if self.orthosoftmax_granularity not in ("component", "layer"):
            raise ValueError(
                f"orthosoftmax_granularity must be 'component' or 'layer', got {self.orthosoftmax_granularity!r}."
            )
        if self.orthosoftmax_budget_cost not in ("flops", "params"):
            raise ValueError(
                f"orthosoftmax_budget_cost must be 'flops' or 'params', got {self.orthosoftmax_budget_cost!r}."
            )
        if self.orthosoftmax_ffn_chunks < 1:
            raise ValueError(f"orthosoftmax_ffn_chunks must be >= 1, got {self.orthosoftmax_ffn_chunks}.")
        budgets = self.orthosoftmax_budgets
        if not all(0 < b <= 1 for b in budgets) or len(budgets) < 2:
            raise ValueError(
                f"orthosoftmax_budgets must be fractions in (0, 1] with at least one below 1 (1.0, the whole "
                f"model, is implied), got {budgets}."
            )
        if self.orthosoftmax_stage1_steps < 0:
            raise ValueError(f"orthosoftmax_stage1_steps must be >= 0, got {self.orthosoftmax_stage1_steps}.")
        decay = self.orthosoftmax_temperature_decay
        if decay is not None and not 0 < decay <= 1:
            raise ValueError(f"orthosoftmax_temperature_decay must be in (0, 1] or None, got {decay}.")
        if not 0 < self.orthosoftmax_min_temperature <= 1:
            raise ValueError(
                f"orthosoftmax_min_temperature must be in (0, 1], got {self.orthosoftmax_min_temperature}."
            )
        if self.orthosoftmax_orth_weight < 0:
            raise ValueError(f"orthosoftmax_orth_weight must be >= 0, got {self.orthosoftmax_orth_weight}.")
        if not 0 <= self.orthosoftmax_stochastic_depth < 1:
            raise ValueError(
                f"orthosoftmax_stochastic_depth must be in [0, 1), got {self.orthosoftmax_stochastic_depth}."
            )

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


# What each user-settable field may hold (checked by SupernetConformerConfig._validate_fields at construction).
_FIELD_RULES = {
    "vocab_size": SIZE,
    "num_mel_bins": SIZE,
    "subsampling_factor": Rule(int, choices=(4, 8)),
    "subsampling_conv_channels": SIZE,
    "hidden_size": SIZE,
    "num_hidden_layers": SIZE,
    "num_attention_heads": SIZE,
    "intermediate_size": SIZE,
    "hidden_act": Rule(str, choices=tuple(ACT2FN)),
    "conv_kernel_size": SIZE,
    "rope_theta": Rule(float, minimum=0.0, positive=True),
    "hidden_dropout": PROBABILITY,
    "activation_dropout": PROBABILITY,
    "attention_dropout": PROBABILITY,
    "final_dropout": PROBABILITY,
    "layer_norm_eps": Rule(float, minimum=0.0, positive=True),
    "initializer_range": Rule(float, minimum=0.0),
    "ctc_loss_reduction": Rule(str, choices=("mean", "sum")),
    "ctc_zero_infinity": FLAG,
    "pad_token_id": Rule(int, minimum=0),
    "mask_type": Rule(str),  # its values, and the folding fields' ranges, are checked with the other fields
    "num_physical_layers": Rule(int, optional=True),
    "unfolding_depths": Rule(list, items=int, optional=True),
    "unfolding_patterns": Rule(list, items=str, optional=True),
    "layer_drop_choices": Rule(list, items=int, optional=True),
    "ffn_width_choices": Rule(list, items=float, optional=True),
    "layer_ffn_dims": Rule(list, items="int_or_pair", optional=True),
    "layer_attention_heads": Rule(list, items=int, optional=True),
    "layer_conv_modules": Rule(list, items=bool, optional=True),
    "selected_subnets": Rule(list, items=dict, optional=True),
    "subnet_spec": Rule(dict, optional=True),
    "ctc_head_per_depth": FLAG,
    "adaptive_dropout": FLAG,
    "orthosoftmax_granularity": Rule(str),
    "orthosoftmax_ffn_chunks": Rule(int),
    "orthosoftmax_budgets": Rule(list, items=float, optional=True),
    "orthosoftmax_budget_cost": Rule(str),
    "orthosoftmax_stage1_steps": Rule(int),
    "orthosoftmax_temperature_decay": Rule(float, optional=True),
    "orthosoftmax_min_temperature": Rule(float),
    "orthosoftmax_orth_weight": Rule(float),
    "orthosoftmax_stochastic_depth": Rule(float),
    "omni_sparsity_levels": Rule(list, items=float, optional=True),
    "omni_sparsity_block_shape": Rule(list, items=int, optional=True),
    "omni_sparsity_pooling": Rule(str),
    "omni_sparsity_prune_interval": Rule(int),
    "omni_sparsity_schedule_start": STEPS,
    "omni_sparsity_schedule_steps": STEPS,
    "omni_sparsity_initial_max_sparsity": Rule(float),
}


__all__ = ["SupernetConformerConfig", "MASK_TYPES"]
