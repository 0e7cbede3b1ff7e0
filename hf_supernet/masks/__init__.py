"""How subnets are carved: one module per ``mask_type``, all behind :class:`MaskMethod`."""

from .base import BlockPlan, MaskMethod
from .folding import FoldingMask, FoldingSpace, FoldingSpec
from .layer_width import LayerWidthMask, LayerWidthSpace, LayerWidthSpec
from .omni_sparsity import OmniSparsityMask, OmniSparsitySpace, OmniSparsitySpec
from .orthosoftmax import OrthoSoftmaxMask, OrthoSoftmaxSpace, OrthoSoftmaxSpec

# mask_type -> implementation. Adding a method = one module under masks/ + one line here.
MASK_METHODS: dict[str, type[MaskMethod]] = {
    "layer_width": LayerWidthMask,
    "omni_sparsity": OmniSparsityMask,
    "orthosoftmax": OrthoSoftmaxMask,
    "folding": FoldingMask,
}


def build_mask(config, plan_costs=None) -> MaskMethod:
    """The mask method named by ``config.mask_type``; ``plan_costs(plans) -> SubnetCosts`` is the model family's
    cost of the dense model that runs ``plans`` (see :class:`MaskMethod`)."""
    try:
        cls = MASK_METHODS[config.mask_type]
    except KeyError:
        raise ValueError(
            f"Unknown mask_type={config.mask_type!r}; implemented mask types are {sorted(MASK_METHODS)}."
        ) from None
    return cls(config, plan_costs)


__all__ = [
    "BlockPlan",
    "MaskMethod",
    "MASK_METHODS",
    "build_mask",
    "FoldingMask",
    "FoldingSpace",
    "FoldingSpec",
    "LayerWidthMask",
    "LayerWidthSpace",
    "LayerWidthSpec",
    "OmniSparsityMask",
    "OmniSparsitySpace",
    "OmniSparsitySpec",
    "OrthoSoftmaxMask",
    "OrthoSoftmaxSpace",
    "OrthoSoftmaxSpec",
]
