"""Budget -> subnet: which subnet ``from_pretrained(..., subnet_budget=...)`` returns.

A budget is a float (fraction of the whole model's parameters) or a dict of absolute limits over
:data:`~hf_supernet.costs.COST_NAMES`, e.g. ``{"params": 3e6}`` or ``{"flops": 2e9, "int8_mb": 4}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
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
