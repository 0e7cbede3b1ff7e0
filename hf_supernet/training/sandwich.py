"""The sandwich rule as small pure functions: which subnets train on a step, on which rows of the batch."""

from __future__ import annotations

from typing import Any

import torch

from ..subnets import SubnetSpace, SubnetSpec

LARGEST, SMALLEST, RANDOM = "largest", "smallest", "random"


def sandwich_subnets(
    space: SubnetSpace, num_random: int, generator: torch.Generator | None
) -> list[tuple[str, SubnetSpec]]:
    """(role, spec) of one step: the largest first (it is the teacher), the smallest, then ``num_random`` draws."""
    roles = [(LARGEST, space.largest()), (SMALLEST, space.smallest())]
    return roles + [(RANDOM, space.sample(generator)) for _ in range(num_random)]


def batch_rows(batch_size: int, num_subnets: int, mode: str) -> list[slice]:
    """Rows of the batch each subnet of a step trains on (index 0 = largest).

    ``"full"``: all rows for everyone. ``"quarter"`` (TODM): all rows for the largest, then consecutive quarters
    for the others (wrapping round when there are more than four of them). ``"split"`` (Omni-sparsity): the batch
    cut into ``num_subnets`` near-equal consecutive parts. A subnet never gets an empty part: with fewer rows
    than parts, parts are reused round-robin.
    """
    everything = slice(0, batch_size)
    if mode == "full":
        return [everything] * num_subnets
    if mode == "quarter":
        quarters = _even_parts(batch_size, 4)
        return [everything] + [quarters[i % len(quarters)] for i in range(num_subnets - 1)]
    if mode == "split":
        parts = _even_parts(batch_size, num_subnets)
        return [parts[i % len(parts)] for i in range(num_subnets)]
    raise ValueError(f"Unknown sandwich_batch_split {mode!r}; use 'full', 'quarter' or 'split'.")


def _even_parts(n: int, parts: int) -> list[slice]:
    parts = max(1, min(parts, n))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(parts)]


def take_rows(inputs: dict[str, Any], rows: slice) -> dict[str, Any]:
    """The ``rows`` of every batched tensor in ``inputs`` (other values pass through)."""
    return {k: v[rows] if isinstance(v, torch.Tensor) and v.dim() > 0 else v for k, v in inputs.items()}
