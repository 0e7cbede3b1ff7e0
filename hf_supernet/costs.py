"""What a subnet costs: parameters, FLOPs, int8 size — analytic functions of a ``SubnetSpec``, counted by the model
family — and, on request, its measured CPU latency (real-time factor, from the per-machine table in
:mod:`hf_supernet.latency`).

Counting convention (the one ``torch.utils.flop_counter`` uses, checked by a test): a multiply-accumulate is 2
FLOPs; matrix multiplications, attention score/value products and convolutions are counted; element-wise work
(activations, norms, softmax, rotary embedding, residual adds) is not. FLOPs are for a batch of one utterance.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .latency import LatencyTable, default_latency_table

# The costs every budget may name, and their units.
COST_NAMES = {
    "params": "parameters",
    "flops": "FLOPs per second of audio",
    "int8_mb": "MB at one byte per weight",
    "latency": "real-time factor on this CPU (compute seconds per second of audio, batch of one)",
}


@dataclasses.dataclass(frozen=True)
class SubnetCosts:
    """Costs of one subnet. ``flops`` is FLOPs per second of audio for a ``REFERENCE_SECONDS`` utterance;
    ``int8_mb`` stores every parameter in one byte (1 MB = 10^6 bytes); ``latency`` is the measured real-time
    factor of the extracted subnet on this machine, or ``None`` when it was not asked for."""

    params: int
    flops: float
    int8_mb: float
    latency: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def costs_of(model, spec, latency=False) -> SubnetCosts:
    """Costs of ``spec`` as a subnet of ``model`` (``spec=None``: the whole model).

    Analytic params/FLOPs/int8 MB always; with ``latency=True`` (or a :class:`~hf_supernet.latency.LatencyTable`)
    also the measured real-time factor, looked up in (or measured into) the per-machine table. Each model family
    counts its own analytic costs (``model.costs_of_plans(plans) -> SubnetCosts``, e.g.
    :mod:`hf_supernet.models.supernet_conformer.costs`); everything else (budgets, search, cards) only calls this.
    """
    plans = model.mask.full_plans() if spec is None else model.mask.block_plans(spec)
    costs = model.costs_of_plans(plans)
    if latency is False or latency is None:
        return costs
    table = latency if isinstance(latency, LatencyTable) else default_latency_table()
    return dataclasses.replace(costs, latency=table.rtf(model, spec))


def stored_params(model, spec=None) -> int:
    """Parameters ``spec`` keeps in memory inside the supernet: every stored block it runs, once.

    ``costs_of(...).params`` counts the extracted dense model, where a block that a path runs several times
    (``mask_type="folding"``) is stored once per run; this counts it once. For mask types that never repeat a
    block the two are equal.
    """
    plans = model.mask.full_plans() if spec is None else model.mask.block_plans(spec)
    first_run = {}
    for plan in plans:
        first_run.setdefault(plan.layer_index, plan)
    return model.costs_of_plans(list(first_run.values())).params
