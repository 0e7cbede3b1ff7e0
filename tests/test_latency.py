"""Measured latency: a per-machine table that measures each extracted architecture once, and latency budgets."""

import json

import pytest
import torch

from hf_supernet import SupernetConformerForCTC, latency
from hf_supernet.latency import LatencyTable, architecture_key, measure_rtf

from .conftest import tiny_conformer_config


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_SUPERNET_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def fake_measure(monkeypatch):
    """Replace the stopwatch by a deterministic 'latency' proportional to the parameters, and count calls."""
    calls = []

    def measure(model, seconds=None, repeats=5, warmup=1):
        calls.append(model.config)
        return model.num_parameters() * 1e-8

    monkeypatch.setattr(latency, "measure_rtf", measure)
    return calls


def test_measure_rtf_times_a_real_forward_pass(tiny_model):
    rtf = measure_rtf(tiny_model, seconds=1.0, repeats=2)
    assert 0 < rtf < 10
    assert not tiny_model.training


def test_each_architecture_is_measured_once_and_kept_on_disk(tiny_model, fake_measure, cache_dir):
    space = tiny_model.subnet_space
    table = LatencyTable()
    first = table.rtf(tiny_model, space.smallest())
    assert table.rtf(tiny_model, space.smallest()) == first
    table.rtf(tiny_model, space.largest())
    assert len(fake_measure) == 2
    assert table.path.is_relative_to(cache_dir)

    reloaded = LatencyTable()  # another process on the same machine
    assert reloaded.rtf(tiny_model, space.smallest()) == first
    assert len(fake_measure) == 2


def test_table_from_another_machine_or_damaged_is_not_trusted(tiny_model, fake_measure):
    table = LatencyTable()
    table.rtf(tiny_model, None)
    data = json.loads(table.path.read_text())
    data["machine"]["cpu"] = "some other CPU"
    table.path.write_text(json.dumps(data))
    assert len(LatencyTable()) == 0
    table.path.write_text("{not json")
    assert LatencyTable().rtf(tiny_model, None) == pytest.approx(tiny_model.num_parameters() * 1e-8)


def test_architecture_key_ignores_provenance_but_not_shape(tiny_model):
    spec = tiny_model.subnet_space.smallest()
    a = tiny_model.extract_subnet(spec)
    torch.manual_seed(1)
    other = SupernetConformerForCTC(tiny_conformer_config(hidden_dropout=0.3))
    other.config.selected_subnets = [{"name": "x"}]
    b = other.extract_subnet(spec)
    assert architecture_key(a.config) == architecture_key(b.config)
    assert architecture_key(a.config) != architecture_key(tiny_model.extract_subnet(tiny_model.subnet_space.largest()).config)


def test_latency_budget_picks_the_largest_subnet_that_is_fast_enough(tiny_model, fake_measure):
    costs = {s: tiny_model.subnet_costs(s, latency=True) for s in tiny_model.subnet_space}
    assert all(c.latency == pytest.approx(c.params * 1e-8) for c in costs.values())
    limit = sorted(c.latency for c in costs.values())[len(costs) // 2]
    spec = tiny_model.select_subnet({"latency": limit})
    assert costs[spec].latency <= limit
    # Nothing fits: the error says what the smallest subnet needs.
    with pytest.raises(ValueError, match="latency >="):
        tiny_model.select_subnet({"latency": 1e-12})


def test_latency_budget_reads_selected_subnets_with_this_machines_latency(tiny_model, fake_measure):
    space = tiny_model.subnet_space
    small, large = space.smallest(), space.largest()
    # Entries searched elsewhere carry no (or another machine's) latency; the large one is "more accurate".
    tiny_model.config.selected_subnets = [
        {"name": "small", "spec": small.to_dict(), "costs": tiny_model.subnet_costs(small).to_dict(), "metrics": {"wer": 0.3}},
        {"name": "large", "spec": large.to_dict(), "costs": {**tiny_model.subnet_costs(large).to_dict(), "latency": 0.0}, "metrics": {"wer": 0.1}},
    ]
    small_rtf = tiny_model.subnet_costs(small, latency=True).latency
    assert tiny_model.select_subnet({"latency": small_rtf}) == small
