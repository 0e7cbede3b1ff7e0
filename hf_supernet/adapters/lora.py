"""peft LoRA on a supernet: one adapter, trained with sandwich sampling, adapts every subnet.

``get_peft_model(supernet, LoraConfig(...))`` works as for any transformers model: supernet modules run an adapted
layer through :func:`~hf_supernet.slicing.subnet_linear`, which cuts the LoRA factors with the
layer's weight (``B[kept rows]``, ``A[:, kept columns]``), and ``SupernetTrainer`` trains the adapter like it
trains a supernet. Without ``target_modules`` peft takes this architecture's defaults, registered below
(:data:`SUPERNET_LORA_TARGET_MODULES`); :func:`supernet_lora_config` builds a config and checks its targets against
the model, naming the valid ones when they are wrong.

A subnet of an adapted supernet deploys two ways, both giving the adapted supernet's logits for that subnet:

- merged: ``peft_model.merge_and_unload()``, then ``extract_subnet(spec)`` — one dense checkpoint per subnet;
- sliced adapter: ``peft_model.extract_subnet(spec)`` returns a ``PeftModel``: the dense subnet plus the adapter cut
  exactly like its weights (:func:`extract_lora_subnet`). ``save_pretrained`` writes the small adapter, which loads
  with ``PeftModel.from_pretrained`` on the saved dense subnet, so every size can share one base checkpoint per
  size and ship adapters per domain.

Weight masks (e.g. ``omni_sparsity``) mask the *base* weight only; the LoRA update is a separate dense low-rank
term. An unmerged adapter therefore keeps the subnet's sparsity (the low-rank path is extra), and the sliced adapter
is exact. Merging makes the subnet's weights dense: merge an *extracted* subnet's sliced adapter
(``extract_subnet(spec).merge_and_unload()``) to get exactly the adapted logits; ``merge_and_unload()`` on the
supernet *before* extracting lets the extraction re-apply the masks to ``W + BA``, pruning the update too — sparse,
but no longer what the adapted supernet computed.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.abc
import importlib.util
import re
import sys
from collections.abc import Callable, Iterator

from torch import nn

from ..slicing import FULL, LinearSelection

# Default LoRA targets per model type (peft's convention: module-name suffixes): every attention projection and both
# feed-forward linears. These names are the ones transformers' wav2vec2/HuBERT layers use too, so the foldable models
# (which compose those layers) register the same list under their model types.
SUPERNET_LORA_TARGET_MODULES: dict[str, list[str]] = {
    "supernet_conformer": ["q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"],
    # The plain dense Conformer every Conformer subnet extracts to: the supernet's module names.
    "hf_supernet_conformer": ["q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"],
    # Foldable models run transformers' own wav2vec2/HuBERT layers, whose linears carry the same names; a block
    # repeated along an unfolding path reuses its adapter, as it reuses its weights.
    "foldable_wav2vec2": ["q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"],
    "foldable_hubert": ["q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense", "output_dense"],
}

# LoraConfig fields whose LoRA variants change the update in ways a subnet's row/column cut does not preserve.
_UNSUPPORTED_LORA_OPTIONS = ("use_dora", "use_bdlora", "alora_invocation_tokens", "velora_config", "monteclora_config",
                             "kasa_config", "layer_replication", "target_parameters", "trainable_token_indices")


def register_lora_target_modules(model_type: str, target_modules: list[str]) -> None:
    """Make ``target_modules`` peft's default LoRA targets for ``model_type`` (used when a ``LoraConfig`` leaves
    ``target_modules=None``). peft looks its defaults up by ``config.model_type`` in this mapping."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.setdefault(model_type, list(target_modules))


def _register_supernet_lora_targets(_constants) -> None:
    for model_type, targets in SUPERNET_LORA_TARGET_MODULES.items():
        register_lora_target_modules(model_type, targets)


class _AfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Runs ``callback(module)`` right after ``name`` is imported: finds the module with the other finders, then
    executes it with its own loader and calls back."""

    def __init__(self, name: str, callback: Callable):
        self.name, self.callback, self.loader = name, callback, None

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        self.callback(module)


def after_import(name: str, callback: Callable) -> None:
    """Call ``callback(module)`` once module ``name`` is imported: now if it already is, else right after its import."""
    if name in sys.modules:
        callback(sys.modules[name])
    else:
        sys.meta_path.insert(0, _AfterImport(name, callback))


# peft looks up the default targets in its constants module: register ours when peft is imported (importing
# hf_supernet does not import peft, so a user who never adapts a model never loads it).
after_import("peft.utils.constants", _register_supernet_lora_targets)


# ------------------------------------------------------------------------------------------------------ config
def lora_target_candidates(model: nn.Module) -> list[str]:
    """The module-name suffixes LoRA can target in ``model``: the names of its linear layers."""
    from peft.tuners.lora import Linear as LoraLinear

    return sorted(
        {name.rsplit(".", 1)[-1] for name, module in _own_modules(model) if isinstance(module, (nn.Linear, LoraLinear))}
    )


def _own_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``model``'s named modules, without the insides of peft layers (their base layer and LoRA factors)."""
    inner = tuple(f"{name}." for name in _adapted_modules(unwrap_peft(model)))
    for name, module in unwrap_peft(model).named_modules():
        if name and not name.startswith(inner):
            yield name, module


def supernet_lora_config(model: nn.Module, target_modules: list[str] | str | None = None, **lora_kwargs):
    """A ``peft.LoraConfig`` for ``model`` whose targets are checked against it.

    Args:
        model: the supernet (or a peft model around it).
        target_modules: module-name suffixes or a regex, as in ``LoraConfig``; defaults to this model type's
            :data:`SUPERNET_LORA_TARGET_MODULES`.
        **lora_kwargs: any other ``LoraConfig`` field (``r``, ``lora_alpha``, ``lora_dropout``, ...).

    Raises:
        ValueError: when the targets match no module, match a module that is not a linear layer, or ask for a LoRA
            variant (DoRA, ...) that cannot be cut to a subnet — naming the valid targets.
    """
    from peft import LoraConfig

    if target_modules is None:
        target_modules = default_lora_target_modules(model)
    config = LoraConfig(target_modules=target_modules, **lora_kwargs)
    check_lora_config(model, config)
    return config


def default_lora_target_modules(model: nn.Module) -> list[str]:
    model_type = unwrap_peft(model).config.model_type
    if model_type not in SUPERNET_LORA_TARGET_MODULES:
        raise ValueError(
            f"No default LoRA targets for model_type={model_type!r} (known: {sorted(SUPERNET_LORA_TARGET_MODULES)}); "
            f"pass target_modules, e.g. some of {lora_target_candidates(model)}."
        )
    return list(SUPERNET_LORA_TARGET_MODULES[model_type])


def check_lora_config(model: nn.Module, config) -> None:
    """Raise a ``ValueError`` saying what is wrong when ``config`` cannot adapt ``model``'s subnets."""
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.tuners_utils import check_target_module_exists

    for option in _UNSUPPORTED_LORA_OPTIONS:
        if getattr(config, option, None):
            raise ValueError(
                f"LoraConfig({option}=...) is not supported on a supernet: its update cannot be cut to a subnet's "
                "rows and columns like the weights. Use vanilla LoRA (r, lora_alpha, lora_dropout, rank/alpha patterns)."
            )
    model = unwrap_peft(model)
    valid = lora_target_candidates(model)
    if config.target_modules is None:  # peft will take this model type's defaults
        config = copy.copy(config)
        config.target_modules = default_lora_target_modules(model)
    if isinstance(config.target_modules, str) and config.target_modules.lower() == "all-linear":
        return  # peft expands it to the linear layers, every one of which a supernet runs with LoRA
    matched = {name: module for name, module in _own_modules(model) if _matches(check_target_module_exists(config, name))}
    if not matched:
        raise ValueError(
            f"target_modules={config.target_modules!r} match no module of this {model.config.model_type} model. "
            f"LoRA can adapt its linear layers: {valid} (default: {default_lora_target_modules(model)})."
        )
    wrong = {name: type(m).__name__ for name, m in matched.items() if not isinstance(m, (nn.Linear, LoraLinear))}
    if wrong:
        shown = ", ".join(f"{name} ({kind})" for name, kind in list(wrong.items())[:4])
        raise ValueError(
            f"target_modules={config.target_modules!r} match modules that are not linear layers: {shown}"
            f"{' ...' if len(wrong) > 4 else ''}. Supernet modules run LoRA on linear layers only; valid targets: "
            f"{valid}."
        )


def _matches(result) -> bool:
    from peft.tuners.tuners_utils import _ExcludedModule

    return bool(result) and not isinstance(result, _ExcludedModule)


# -------------------------------------------------------------------------------------------------- extraction
def unwrap_peft(model: nn.Module) -> nn.Module:
    """The transformers model inside a ``PeftModel`` / ``LoraModel`` (``model`` itself otherwise)."""
    if "peft" not in sys.modules:
        return model  # nothing can be wrapped by peft before peft is imported
    from peft import PeftMixedModel, PeftModel
    from peft.tuners.tuners_utils import BaseTuner

    if isinstance(model, (PeftModel, PeftMixedModel)):
        model = model.get_base_model()
    return model.model if isinstance(model, BaseTuner) else model


def has_peft_layers(model: nn.Module) -> bool:
    """Whether peft has injected adapter layers (or modules_to_save copies) into ``model``."""
    if "peft" not in sys.modules:
        return False  # nothing can hold peft layers before peft is imported
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    return any(isinstance(m, (BaseTunerLayer, AuxiliaryTrainingWrapper)) for m in unwrap_peft(model).modules())


def extract_lora_subnet(model: nn.Module, spec):
    """The dense subnet ``spec`` of a LoRA-adapted supernet, as a ``PeftModel`` carrying the supernet's adapters cut
    to the subnet (rows/columns of each factor selected like the weights; a physical block repeated by the plan gets
    a copy of its adapter per repetition). Its logits equal the adapted supernet's run as ``spec``.

    ``sub.save_pretrained(adapter_dir)`` writes the sliced adapter. It loads onto the un-adapted dense subnet — the
    base supernet's own extraction, :func:`extract_base_subnet` (or ``from_pretrained(..., subnet_budget=...)`` of
    the published supernet): ``PeftModel.from_pretrained(base_subnet, adapter_dir)``. ``sub.merge_and_unload()``
    gives one dense model instead.
    """
    from peft import LoraConfig, get_peft_model

    supernet = unwrap_peft(model)
    configs = dict(getattr(supernet, "peft_config", {}) or {})
    if not configs:
        raise ValueError("This model has no peft adapter (peft_config is empty); use extract_subnet directly.")
    for name, config in configs.items():
        if not isinstance(config, LoraConfig):
            raise ValueError(f"Adapter {name!r} is a {type(config).__name__}; only LoRA adapters can be cut to a subnet.")
        check_lora_config(supernet, config)
    adapted = _adapted_modules(supernet)
    if any(getattr(m, "merged", False) for m in adapted.values()):
        raise ValueError(
            "The adapter is merged into the supernet's weights, so its base weights are no longer the supernet's: "
            "call unmerge_adapter() first, or merge_and_unload() and extract the merged supernet instead."
        )
    active = _active_adapters(adapted, configs)

    dense = extract_base_subnet(supernet, spec)
    sources = _dense_sources(supernet, spec, dense)

    peft_dense = None
    for adapter_name, config in configs.items():
        dense_config, copies = _dense_adapter(config, adapter_name, adapted, sources)
        if peft_dense is None:
            peft_dense = get_peft_model(dense, dense_config, adapter_name=adapter_name)
        else:
            peft_dense.add_adapter(adapter_name, dense_config)
        inner = peft_dense.get_base_model()
        for dense_name, (source, selection) in copies.items():
            _copy_adapter(source, inner.get_submodule(dense_name), adapter_name, selection)
    peft_dense.base_model.set_adapter(active if len(active) > 1 else active[0])
    peft_dense.train(supernet.training)
    return peft_dense


def extract_base_subnet(model: nn.Module, spec):
    """The dense subnet ``spec`` of a peft-adapted supernet *without* its adapters: the base weights, cut as
    ``extract_subnet`` cuts them — what a sliced adapter from :func:`extract_lora_subnet` loads onto."""
    supernet = unwrap_peft(model)
    with _base_modules_in_place(supernet, _adapted_modules(supernet)):
        return supernet.extract_dense_subnet(spec)


def _adapted_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Outermost peft layers and modules_to_save wrappers of ``model``, by name."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if isinstance(module, (BaseTunerLayer, AuxiliaryTrainingWrapper)) and not any(
            name.startswith(outer + ".") for outer in found
        ):
            found[name] = module
    return found


def _active_adapters(adapted: dict[str, nn.Module], configs: dict) -> list[str]:
    for module in adapted.values():
        names = getattr(module, "active_adapters", None)
        if names:
            return list(names)
    return list(configs)[:1]


@contextlib.contextmanager
def _base_modules_in_place(model: nn.Module, adapted: dict[str, nn.Module]) -> Iterator[None]:
    """Temporarily put each adapted module's original module back, so the supernet's own extraction sees the plain
    architecture and the un-adapted weights (peft's ``unload`` does the same, but for good)."""
    swapped = []
    try:
        for name, module in adapted.items():
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            original = module.original_module if hasattr(module, "original_module") else module.get_base_layer()
            setattr(parent, child, original)
            swapped.append((parent, child, module))
        yield
    finally:
        for parent, child, module in reversed(swapped):
            setattr(parent, child, module)


def _dense_sources(supernet: nn.Module, spec, dense: nn.Module) -> dict[str, tuple[str, LinearSelection | None]]:
    """For each module of the dense subnet: the supernet module it was cut from, and the selection it runs — the
    family's (``supernet.block_linear_selection``, one source of truth with the forward pass and the weight cut)
    inside a block, ``FULL`` outside the blocks (``None`` for a module of a block the family does not run as a
    linear layer)."""
    plans = supernet.mask.block_plans(spec)
    blocks = supernet.stored_blocks_name
    pattern = re.compile(rf"^{re.escape(blocks)}\.(\d+)(?:\.(.*))?$")
    sources = {}
    for name, _ in dense.named_modules():
        match = pattern.match(name)
        if match is None:
            sources[name] = (name, FULL)  # front end, head: the same module, called whole
            continue
        plan, rest = plans[int(match.group(1))], match.group(2)
        source = f"{blocks}.{plan.layer_index}" + (f".{rest}" if rest else "")
        sources[name] = (source, supernet.block_linear_selection(plan, rest) if rest else None)
    return sources


def _dense_adapter(config, adapter_name: str, adapted: dict[str, nn.Module], sources: dict):
    """The config of ``adapter_name`` on the dense subnet (explicit module names, since layer indices change) and
    which supernet module each dense adapted module copies from."""
    from peft.tuners.lora import LoraLayer

    targets, to_save, copies, ranks, alphas = [], [], {}, {}, {}
    for dense_name, (source_name, selection) in sources.items():
        source = adapted.get(source_name)
        if source is None:
            continue
        if isinstance(source, LoraLayer):
            if adapter_name not in source.lora_A:
                continue
            if selection is None:
                raise ValueError(
                    f"{source_name} is adapted by a {type(source).__name__}, but supernet blocks run LoRA on their linear "
                    f"layers only ({sorted(SUPERNET_LORA_TARGET_MODULES['supernet_conformer'])}, pointwise_in/out)."
                )
            targets.append(dense_name)
            ranks[re.escape(dense_name)] = source.r[adapter_name]
            alphas[re.escape(dense_name)] = source.lora_alpha[adapter_name]
        elif adapter_name in getattr(source, "modules_to_save", {}):
            to_save.append(dense_name)
        else:
            continue
        copies[dense_name] = (source, selection or FULL)  # modules_to_save copies are copied whole
    dense_config = copy.deepcopy(config)
    dense_config.target_modules = sorted(targets)
    dense_config.modules_to_save = sorted(to_save) or None
    dense_config.exclude_modules = None
    dense_config.layers_to_transform = None
    dense_config.layers_pattern = None
    # Per-module rank and alpha, spelled out: patterns written for the supernet's layer indices would not apply.
    dense_config.rank_pattern = {k: v for k, v in ranks.items() if v != config.r}
    dense_config.alpha_pattern = {k: v for k, v in alphas.items() if v != config.lora_alpha}
    dense_config.init_lora_weights = False  # every factor is overwritten by the supernet's below
    return dense_config, copies


def _copy_adapter(source: nn.Module, target: nn.Module, adapter_name: str, selection: LinearSelection) -> None:
    """Copy ``adapter_name``'s weights from a supernet peft module into the dense one, cut by ``selection``."""
    if hasattr(source, "modules_to_save"):
        target.modules_to_save[adapter_name].load_state_dict(source.modules_to_save[adapter_name].state_dict())
        return
    lora_A, lora_B = source.lora_A[adapter_name], source.lora_B[adapter_name]
    target.lora_A[adapter_name].weight.data.copy_(selection.lora_A(lora_A.weight.detach()))
    target.lora_B[adapter_name].weight.data.copy_(selection.lora_B(lora_B.weight.detach()))
    if lora_B.bias is not None:
        target.lora_B[adapter_name].bias.data.copy_(selection.bias(lora_B.bias.detach()))
