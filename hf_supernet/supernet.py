"""The subnet API every supernet model has: ``subnet_space``, ``use_subnet``, ``active_subnet``,
``extract_subnet``, ``subnet_costs`` and ``from_pretrained(..., subnet_budget=...)``.

Mixed into each family's ``PreTrainedModel``; everything mask-specific goes through ``self.mask`` (a
:class:`~hf_supernet.masks.MaskMethod`), so this code never asks which mask type it holds. Everything
family-specific is the family's own method:

- ``extract_dense_subnet(spec)``: the dense model (no adapters) ``extract_subnet`` returns;
- ``subnet_config(spec)``: its config, without copying any weight;
- ``costs_of_plans(plans) -> SubnetCosts``: the analytic costs of the dense model that runs ``plans``;
- ``stored_blocks_name`` and ``block_linear_selection(plan, name)``: where the stored blocks are and what part of
  each linear layer a block runs under ``plan`` (used to cut peft adapters like the weights).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from safetensors import SafetensorError
from transformers import PreTrainedConfig

from .budgets import largest_fitting, normalize_budget, select_from_selected, verify_stored_costs
from .costs import SubnetCosts, costs_of
from .extraction import extract_subnet
from .subnets import SubnetSpace, SubnetSpec


# from_pretrained arguments that say where to find the config (passed on when reading its model_type).
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")


class SupernetMixin:
    @property
    def subnet_space(self) -> SubnetSpace:
        return self.mask.space()

    @property
    def active_subnet(self) -> SubnetSpec | None:
        """The subnet forward passes run as (innermost ``use_subnet``), or ``None`` for the whole model."""
        stack = self.__dict__.get("_subnet_stack")
        return stack[-1] if stack else None

    @contextlib.contextmanager
    def use_subnet(self, spec: SubnetSpec | None) -> Iterator[SubnetSpec | None]:
        """Run the supernet as ``spec`` inside the block (weights are sliced/masked, never copied).

        Nests (the innermost wins) and restores the previous subnet even when the block raises. ``None`` runs the
        whole model.
        """
        if spec is not None:
            self.subnet_space.validate(spec)
        stack = self.__dict__.setdefault("_subnet_stack", [])
        stack.append(spec)
        try:
            yield spec
        finally:
            stack.pop()

    def extract_subnet(self, spec: SubnetSpec, **calibration):
        """A physically smaller dense model whose outputs equal this supernet's run as ``spec``: the family's plain
        model (e.g. ``ConformerForCTC``, or a stock ``ParakeetForCTC``), with no subnet machinery; for a peft-adapted
        supernet, a ``PeftModel`` around it carrying the adapter cut to the subnet. ``calibration_data=`` /
        ``calibration_batches=`` re-estimate a subnet's BatchNorm statistics (see
        :func:`hf_supernet.extraction.extract_subnet`)."""
        return extract_subnet(self, spec, **calibration)

    def subnet_costs(self, spec: SubnetSpec | None = None, latency=False) -> SubnetCosts:
        """Analytic parameters / FLOPs per second of audio / int8 MB of ``spec`` (``None``: the whole model); with
        ``latency=True`` (or a :class:`~hf_supernet.latency.LatencyTable`) also its measured real-time factor."""
        return costs_of(self, spec, latency=latency)

    def select_subnet(self, budget: float | dict[str, float]) -> SubnetSpec:
        """The subnet ``from_pretrained(..., subnet_budget=budget)`` returns.

        First the best-measured entry of ``config.selected_subnets`` (written by search) that fits; otherwise the
        subnet of the space with the most parameters that fits. Raises ``ValueError`` naming the smallest
        achievable costs when nothing fits.
        """
        limits = normalize_budget(budget, self.subnet_costs())
        measure = "latency" in limits

        def cost_fn(spec):
            return self.subnet_costs(spec, latency=measure)

        selected = self.config.selected_subnets or []
        verify_stored_costs(selected, self.subnet_costs)  # a budget never trusts an edited or foreign entry
        if measure:  # latency is a property of this machine: measure (or look up) it here, not where search ran
            selected = [{**e, "costs": cost_fn(SubnetSpec.from_dict(e["spec"])).to_dict()} for e in selected]
        entry = select_from_selected(selected, limits)
        if entry is not None:
            return SubnetSpec.from_dict(entry["spec"])
        spec = largest_fitting(self.subnet_space, cost_fn, limits)
        if spec is None:
            smallest = cost_fn(self.subnet_space.smallest()).to_dict()
            needed = ", ".join(f"{k} >= {smallest[k]:.4g}" for k in limits)
            raise ValueError(
                f"No subnet fits the budget {budget!r} (limits {limits}). The smallest subnet needs {needed}; "
                "raise the budget."
            )
        return spec

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, subnet_budget=None, **kwargs):
        """As ``PreTrainedModel.from_pretrained``; with ``subnet_budget`` (a float fraction of the parameters, or a
        dict such as ``{"params": 3e6}`` / ``{"flops": 2e9}`` / ``{"int8_mb": 4}`` / ``{"latency": 0.02}`` (real-time
        factor measured on this machine)) it returns the extracted dense
        subnet chosen by :meth:`select_subnet` instead of the supernet: the family's plain model (a
        ``ConformerForCTC`` for a Conformer supernet, whose ``config.subnet_spec`` names the chosen subnet)."""
        from .atomic import recover

        recover(pretrained_model_name_or_path)  # a folder write killed between its two renames: restore it
        cls._check_checkpoint_type(pretrained_model_name_or_path, kwargs)
        try:  # (the family's ChecksummedModelMixin checks the weights against their recorded SHA-256 first)
            model = super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)
        except SafetensorError as err:
            raise ValueError(
                f"The weights in {pretrained_model_name_or_path} are not a readable safetensors file ({err}); the "
                "checkpoint is corrupt or truncated. Save it again with save_pretrained, or copy it again."
            ) from err
        if subnet_budget is None:
            return model
        return model.extract_subnet(model.select_subnet(subnet_budget))

    @classmethod
    def _check_checkpoint_type(cls, path, kwargs) -> None:
        """Refuse a checkpoint of another model type instead of loading it into freshly initialised weights."""
        if kwargs.get("config") is not None:
            return  # the caller chose the config explicitly
        config_dict, _ = PreTrainedConfig.get_config_dict(path, **{k: kwargs[k] for k in _HUB_KWARGS if k in kwargs})
        found, expected = config_dict.get("model_type"), cls.config_class.model_type
        if found != expected:
            raise ValueError(
                f"{path} holds a {found!r} checkpoint, not a {expected!r} one, so {cls.__name__} cannot load its "
                f"weights. Load it with the class of its model type (e.g. transformers.AutoModelForCTC)."
            )
