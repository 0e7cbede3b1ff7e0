"""Deploy many: pick the best subnet per budget (evolutionary search, scored on a split); budgets resolve to
subnets in :mod:`hf_supernet.budgets`."""

from ..budgets import normalize_budget
from .evaluation import collate_batches, evaluate_subnet, score_utterances
from .evolution import Candidate, evolutionary_search, pareto_front
from .subnet_search import (
    budget_name,
    calibration_batches_from_record,
    merge_selected,
    plot_pareto,
    search_subnets,
)

__all__ = [
    "Candidate",
    "budget_name",
    "calibration_batches_from_record",
    "collate_batches",
    "evaluate_subnet",
    "evolutionary_search",
    "merge_selected",
    "normalize_budget",
    "pareto_front",
    "plot_pareto",
    "score_utterances",
    "search_subnets",
]
