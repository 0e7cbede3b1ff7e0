"""Configurations of the foldable wav2vec2 / HuBERT CTC models: the stock configs plus the unfolding fields."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import HubertConfig, Wav2Vec2Config

from ...config_validation import Rule, check_fields
from ...masks.folding import FoldingConfigMixin

# How a foldable model's depth may be carved. Only unfolding for now; the field exists so a foldable checkpoint
# says how it was carved, as every hf_supernet config does.
FOLDABLE_MASK_TYPES = ("folding",)
# Config fields a foldable config adds to the stock one (dropped again when a path is extracted to a stock model).
FOLDING_CONFIG_FIELDS = (
    "num_physical_layers",
    "mask_type",
    "unfolding_depths",
    "unfolding_patterns",
    "selected_subnets",
    "adaptive_dropout",  # set by SupernetTrainer on every model it trains; unused by unfolding
)

_FOLDING_ARGS_DOC = r"""
        num_physical_layers (`int`, *optional*, defaults to 8):
            Number of stored Transformer blocks (the seed model). A foldable model holds only these.
        num_hidden_layers (`int`, *optional*, defaults to 12):
            Logical depth of the deepest unfolding path (the depth of the stock model it emulates).
        mask_type (`str`, *optional*, defaults to `"folding"`):
            How depth is carved into subnets; `"folding"` (the only one): a subnet is an unfolding path, the
            sequence of stored blocks its logical layers run.
        unfolding_depths (`list[int]`, *optional*):
            Logical depths the unfolding paths may have, each between `num_physical_layers` and
            `num_hidden_layers` (which must be the deepest). Defaults to every depth in that range.
        unfolding_patterns (`list[str]`, *optional*):
            How a path repeats the stored blocks: `"stack"` (the whole stack again: 0 1 2 0 1 2 ...) and/or
            `"layer"` (each block in place: 0 0 1 1 2 2). Defaults to `["stack", "layer"]`; the first gives the
            deepest path (the distillation teacher).
        selected_subnets (`list[dict]`, *optional*):
            Paths chosen by search, each `{"name", "spec", "costs", "metrics"}`; `from_pretrained(...,
            subnet_budget=...)` picks from them first."""


@dataclass(kw_only=True, repr=False)
class FoldableConfigMixin(FoldingConfigMixin):
    """The unfolding fields (:class:`~hf_supernet.masks.folding.FoldingConfigMixin`, documented in
    `_FOLDING_ARGS_DOC`) with a foldable model's defaults, added to a stock config by listing this class first among
    its bases; transformers turns the subclass into a dataclass that collects them."""

    num_physical_layers: int = 8
    mask_type: str = "folding"
    selected_subnets: list[dict] | None = None

    def __post_init__(self, **kwargs):
        self._validate_fields()
        if self.mask_type not in FOLDABLE_MASK_TYPES:
            raise ValueError(
                f"mask_type={self.mask_type!r} cannot carve a {self.model_type} model; valid values are "
                f"{list(FOLDABLE_MASK_TYPES)}."
            )
        super().__post_init__(**kwargs)

    def _validate_fields(self) -> None:
        """Type and range of the foldable config's own fields, checked first; the error names the field and its
        valid values."""
        check_fields(self, _FOLDABLE_FIELD_RULES)


# What a foldable config's own fields may hold (checked first at construction; the folding fields are checked by
# FoldingConfigMixin, mask_type's values just below).
_FOLDABLE_FIELD_RULES = {
    "num_hidden_layers": Rule(int, minimum=1),
    "mask_type": Rule(str),
    "selected_subnets": Rule(list, items=dict, optional=True),
}


class FoldableWav2Vec2Config(FoldableConfigMixin, Wav2Vec2Config):
    __doc__ = (
        r"""
    Configuration of a [`FoldableWav2Vec2ForCTC`]: a wav2vec2 CTC model that stores `num_physical_layers` encoder
    blocks and runs them along unfolding paths up to `num_hidden_layers` logical layers deep. Every other field is
    [`~transformers.Wav2Vec2Config`]'s, with the same meaning and default.

    Args:"""
        + _FOLDING_ARGS_DOC
        + r"""
        **kwargs: the fields of [`~transformers.Wav2Vec2Config`].

    Example:

    ```python
    >>> from hf_supernet import FoldableWav2Vec2Config, FoldableWav2Vec2ForCTC

    >>> config = FoldableWav2Vec2Config(num_physical_layers=4, num_hidden_layers=8, vocab_size=30)
    >>> model = FoldableWav2Vec2ForCTC(config)  # 4 stored blocks
    >>> stock = model.extract_subnet(model.subnet_space.largest())  # a transformers.Wav2Vec2ForCTC, 8 layers
    ```
    """
    )

    model_type = "foldable_wav2vec2"


class FoldableHubertConfig(FoldableConfigMixin, HubertConfig):
    __doc__ = (
        r"""
    Configuration of a [`FoldableHubertForCTC`]: a HuBERT CTC model that stores `num_physical_layers` encoder
    blocks and runs them along unfolding paths up to `num_hidden_layers` logical layers deep. Every other field is
    [`~transformers.HubertConfig`]'s, with the same meaning and default.

    Args:"""
        + _FOLDING_ARGS_DOC
        + r"""
        **kwargs: the fields of [`~transformers.HubertConfig`].
    """
    )

    model_type = "foldable_hubert"


__all__ = ["FoldableHubertConfig", "FoldableWav2Vec2Config"]
