"""Budget -> subnet: which subnet ``from_pretrained(..., subnet_budget=...)`` returns.

A budget is a float (fraction of the whole model's parameters) or a dict of absolute limits over
:data:`~hf_supernet.costs.COST_NAMES`, e.g. ``{"params": 3e6}`` or ``{"flops": 2e9, "int8_mb": 4}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .costs import COST_NAMES, SubnetCosts
from .subnets import SubnetSpec

# Spaces up to this size are scanned exhaustively (cost functions are analytic, a scan takes well under a second).
EXACT_SEARCH_LIMIT = 20000


def normalize_budget(budget: float | dict[str, float], full_costs: SubnetCosts) -> dict[str, float]:
    """A budget as absolute limits ``{cost name: max value}``."""
    if isinstance(budget, bool):
        raise TypeError("subnet_budget must be a float fraction of the parameters or a dict of cost limits.")
    if isinstance(budget, (int, float)):
        if not 0 < budget <= 1:
            raise ValueError(f"A fractional subnet_budget must be in (0, 1], got {budget}.")
        return {"params": budget * full_costs.params}
    if not isinstance(budget, dict) or not budget:
        raise TypeError(f"subnet_budget must be a float or a non-empty dict of cost limits, got {budget!r}.")
    unknown = set(budget) - set(COST_NAMES)
    if unknown:
        raise ValueError(f"Unknown budget keys {sorted(unknown)}; budgets may limit {sorted(COST_NAMES)}.")
    return {k: float(v) for k, v in budget.items()}


def fits(costs: SubnetCosts | dict[str, float], limits: dict[str, float]) -> bool:
    values = costs.to_dict() if isinstance(costs, SubnetCosts) else costs
    missing = [name for name in limits if values.get(name) is None]
    if missing:
        raise ValueError(f"Costs {values} lack {missing}, which the budget limits; compute them (e.g. latency=True).")
    return all(values[name] <= limit for name, limit in limits.items())


def select_from_selected(selected: Iterable[dict[str, Any]], limits: dict[str, float], metric: str = "wer"):
    """The best-measured entry of ``config.selected_subnets`` that fits ``limits`` (lowest ``metric``; ties go
    to the bigger subnet), or ``None``."""
    candidates = [s for s in selected if fits(s["costs"], limits)]
    if not candidates:
        return None

    def key(entry):
        value = entry.get("metrics", {}).get(metric)
        return (float("inf") if value is None else value, -entry["costs"]["params"])

    return min(candidates, key=key)


ANALYTIC_COST_NAMES = ("params", "flops", "int8_mb")


def verify_stored_costs(selected: Sequence[dict[str, Any]], cost_fn: Callable[[SubnetSpec], SubnetCosts]) -> None:
    """Check every entry of ``config.selected_subnets`` before a budget trusts it: its spec must be a subnet of the
    model and its stored analytic costs (params, FLOPs, int8 size) what ``cost_fn`` computes from the spec. A
    mismatch (an edited config, or entries of another model) raises ``ValueError`` naming the entry."""
    for index, entry in enumerate(selected):
        name = entry.get("name", f"#{index}") if isinstance(entry, dict) else f"#{index}"
        how = "Run the search again (scripts/search.py) or correct that entry of config.json."
        try:
            actual = cost_fn(SubnetSpec.from_dict(entry["spec"])).to_dict()
            stored = dict(entry["costs"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise ValueError(
                f"config.selected_subnets entry {name!r} is not a valid subnet of this model ({error!r}). {how}"
            ) from None
        wrong = [
            f"{key} {stored.get(key)!r} (its spec has {actual[key]:.6g})"
            for key in ANALYTIC_COST_NAMES
            if actual.get(key) is not None
            and not (
                isinstance(stored.get(key), (int, float))
                and math.isclose(stored[key], actual[key], rel_tol=1e-6, abs_tol=1e-9)
            )
        ]
        if wrong:
            raise ValueError(
                f"config.selected_subnets entry {name!r} states costs that its spec does not have: {', '.join(wrong)}. "
                f"The config was edited or the entry belongs to another model. {how}"
            )


def largest_fitting(
    space, cost_fn: Callable[[SubnetSpec], SubnetCosts], limits: dict[str, float]
) -> SubnetSpec | None:
    """The subnet with the most parameters that fits, searched exactly over small spaces and greedily otherwise.

    Greedy: start from the smallest subnet and repeatedly take the single-step enlargement that adds the most
    parameters while still fitting (mask types expose steps through ``space.neighbors_up``).
    """
    size = _space_size(space)
    # Latency is a table lookup per subnet (after its parts are timed once), ~100x slower than analytic costs.
    measured = "latency" in limits
    if size is not None and size <= (EXACT_SEARCH_LIMIT if not measured else EXACT_SEARCH_LIMIT // 100):
        fitting = [(cost_fn(s), s) for s in space]
        fitting = [(c, s) for c, s in fitting if fits(c, limits)]
        return max(fitting, key=lambda cs: cs[0].params)[1] if fitting else None
    current = space.smallest()
    if not fits(cost_fn(current), limits):
        return None
    while True:
        options = [(cost_fn(s), s) for s in space.neighbors_up(current)]
        options = [(c, s) for c, s in options if fits(c, limits)]
        if not options:
            return current
        current = max(options, key=lambda cs: cs[0].params)[1]


def _space_size(space) -> int | None:
    try:
        return len(space)
    except TypeError:  # infinite or uncountable spaces
        return None
