"""How subnets are carved: one module per ``mask_type``, all behind :class:`MaskMethod`."""

from .base import BlockPlan, MaskMethod
from .folding import FoldingMask, FoldingSpace, FoldingSpec
from .layer_width import LayerWidthMask, LayerWidthSpace, LayerWidthSpec
from .omni_sparsity import OmniSparsityMask, OmniSparsitySpace, OmniSparsitySpec
from .orthosoftmax import OrthoSoftmaxMask, OrthoSoftmaxSpace, OrthoSoftmaxSpec

# mask_type -> implementation. Adding a method = one module under masks/ + one line here (or, from outside the
# package, one register_mask_type call). A mask type's config fields live with it (e.g. OrthoSoftmaxConfigMixin).
MASK_METHODS: dict[str, type[MaskMethod]] = {
    "layer_width": LayerWidthMask,
    "orthosoftmax": OrthoSoftmaxMask,
    "omni_sparsity": OmniSparsityMask,
    "folding": FoldingMask,
}
# The valid values of ``config.mask_type``: a live view of the registry.
MASK_TYPES = MASK_METHODS.keys()


def register_mask_type(cls: type[MaskMethod]) -> type[MaskMethod]:
    """Make ``cls`` the implementation of ``mask_type=cls.mask_type`` (usable as a class decorator). Its spec class
    is registered with :func:`hf_supernet.subnets.register_spec`; hyperparameters it reads from the config that no
    config declares are accepted as extra config attributes (saved in ``config.json`` like any field)."""
    MASK_METHODS[cls.mask_type] = cls
    return cls


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
    "MASK_TYPES",
    "build_mask",
    "register_mask_type",
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
