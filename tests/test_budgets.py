import re

import pytest

from hf_supernet import LayerWidthSpec, SupernetConformerForCTC
import hf_supernet.budgets as budgets
from hf_supernet.budgets import largest_fitting

from .conftest import tiny_conformer_config


@pytest.fixture
def saved_supernet(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    return tiny_model, tmp_path


def test_no_budget_loads_the_supernet(saved_supernet):
    model, path = saved_supernet
    loaded = SupernetConformerForCTC.from_pretrained(path)
    assert loaded.num_parameters() == model.num_parameters()


def test_fractional_budget_returns_the_largest_fitting_subnet(saved_supernet):
    model, path = saved_supernet
    limit = 0.6 * model.num_parameters()
    dense = SupernetConformerForCTC.from_pretrained(path, subnet_budget=0.6)
    assert dense.num_parameters() <= limit
    # Exhaustive check: nothing in the space that fits has more parameters.
    best = max(model.subnet_costs(s).params for s in model.subnet_space if model.subnet_costs(s).params <= limit)
    assert dense.num_parameters() == best


@pytest.mark.parametrize("key", ["params", "flops", "int8_mb"])
def test_absolute_budgets_are_respected(saved_supernet, key):
    model, path = saved_supernet
    full = model.subnet_costs().to_dict()[key]
    dense = SupernetConformerForCTC.from_pretrained(path, subnet_budget={key: 0.7 * full})
    spec = LayerWidthSpec(tuple(dense.config.subnet_spec["ffn_dims"]))
    assert model.subnet_costs(spec).to_dict()[key] <= 0.7 * full


def test_full_budget_returns_the_whole_model(saved_supernet):
    model, path = saved_supernet
    assert SupernetConformerForCTC.from_pretrained(path, subnet_budget=1.0).num_parameters() == model.num_parameters()


def test_impossible_budget_names_the_smallest_achievable_cost(saved_supernet):
    model, path = saved_supernet
    smallest = model.subnet_costs(model.subnet_space.smallest()).params
    with pytest.raises(ValueError, match=re.escape(f"params >= {smallest:.4g}")):
        SupernetConformerForCTC.from_pretrained(path, subnet_budget={"params": smallest - 1})


@pytest.mark.parametrize(
    "budget, error",
    [(0.0, ValueError), (1.5, ValueError), ({"watts": 3}, ValueError), ({}, TypeError), ("big", TypeError), (True, TypeError)],
)
def test_malformed_budgets(tiny_model, budget, error):
    with pytest.raises(error):
        tiny_model.select_subnet(budget)


def test_selected_subnets_take_precedence_and_best_metric_wins(tiny_model, tmp_path):
    space = tiny_model.subnet_space
    a, b = LayerWidthSpec((16, 16, 16)), LayerWidthSpec((64, 8))
    tiny_model.config.selected_subnets = [
        {"name": n, "spec": s.to_dict(), "costs": tiny_model.subnet_costs(s).to_dict(), "metrics": {"wer": w}}
        for n, s, w in [("a", a, 0.30), ("b", b, 0.20), ("big", space.largest(), 0.10)]
    ]
    tiny_model.save_pretrained(tmp_path)
    limit = max(tiny_model.subnet_costs(a).params, tiny_model.subnet_costs(b).params)
    dense = SupernetConformerForCTC.from_pretrained(tmp_path, subnet_budget={"params": limit})
    assert dense.config.subnet_spec == b.to_dict()  # lower WER among the fitting selected subnets


def test_greedy_path_for_spaces_too_large_to_scan():
    model = SupernetConformerForCTC(tiny_conformer_config(num_hidden_layers=8, ffn_width_choices=[0.25, 0.5, 0.75, 1.0]))
    space = model.subnet_space
    limit = {"params": 0.8 * model.num_parameters()}
    exact = budgets.largest_fitting(space, model.subnet_costs, limit)
    old, budgets.EXACT_SEARCH_LIMIT = budgets.EXACT_SEARCH_LIMIT, 0
    try:
        greedy = largest_fitting(space, model.subnet_costs, limit)
    finally:
        budgets.EXACT_SEARCH_LIMIT = old
    assert greedy in space and model.subnet_costs(greedy).params <= limit["params"]
    # Greedy is close to the exhaustive optimum (within one width step of one layer).
    assert model.subnet_costs(greedy).params >= 0.95 * model.subnet_costs(exact).params
