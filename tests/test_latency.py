"""Measured latency: a per-machine table that measures each extracted architecture once, and latency budgets."""

import json
import re

import pytest
import torch

from hf_supernet import SupernetConformerForCTC
from hf_supernet.latency import LatencyTable, architecture_key, measure_rtf

from .conftest import tiny_conformer_config


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_SUPERNET_CACHE", str(tmp_path))
    return tmp_path


def fake_seconds(key: str) -> float:
    """A deterministic stand-in for a part's time that grows with its dimensions (the numbers in its key)."""
    return sum(int(n) for n in re.findall(r"\d+", key)) * 1e-6


@pytest.fixture
def fake_measure(monkeypatch):
    """Replace the stopwatch by :func:`fake_seconds`, and record which parts were timed."""
    calls = []

    def measure_part(self, key, make_runner):
        calls.append(key)
        return fake_seconds(key)

    monkeypatch.setattr(LatencyTable, "measure_part", measure_part)
    return calls


def test_measure_rtf_times_a_real_forward_pass(tiny_model):
    rtf = measure_rtf(tiny_model, seconds=1.0, repeats=2)
    assert 0 < rtf < 10
    assert not tiny_model.training


def test_real_parts_are_timed_and_add_up(tiny_model):
    table = LatencyTable(repeats=2)
    spec = tiny_model.subnet_space.smallest()
    rtf = table.rtf(tiny_model, spec)
    parts = tiny_model.latency_parts(tiny_model.subnet_config(spec), 10.0)
    assert len(table) == len({key for key, _ in parts}) and rtf > 0
    assert rtf == pytest.approx(sum(table.entries[key] for key, _ in parts))


def test_each_part_is_timed_once_and_kept_on_disk(tiny_model, fake_measure, cache_dir):
    space = tiny_model.subnet_space
    table = LatencyTable()
    first = table.rtf(tiny_model, space.smallest())
    # The smallest subnet's blocks all have the same shape: front end + head, and one block.
    assert len(fake_measure) == 2
    assert table.rtf(tiny_model, space.smallest()) == first
    table.rtf(tiny_model, space.largest())
    assert len(fake_measure) == 3  # only the full-width block was new
    assert table.path.is_relative_to(cache_dir)

    reloaded = LatencyTable()  # another process on the same machine
    assert reloaded.rtf(tiny_model, space.smallest()) == first
    assert len(fake_measure) == 3


def test_families_without_parts_are_timed_end_to_end(tiny_model, monkeypatch):
    timed = []
    monkeypatch.setattr(LatencyTable, "measure_model", lambda self, dense: timed.append(dense) or 0.5)
    monkeypatch.setattr(type(tiny_model), "latency_parts", None)
    table = LatencyTable()
    spec = tiny_model.subnet_space.smallest()
    assert table.rtf(tiny_model, spec) == table.rtf(tiny_model, spec) == 0.5
    assert len(timed) == 1 and timed[0].num_parameters() == tiny_model.subnet_costs(spec).params


def test_table_from_another_machine_or_damaged_is_not_trusted(tiny_model, fake_measure):
    table = LatencyTable()
    table.rtf(tiny_model, None)
    data = json.loads(table.path.read_text())
    data["machine"]["cpu"] = "some other CPU"
    table.path.write_text(json.dumps(data))
    assert len(LatencyTable()) == 0
    table.path.write_text("{not json")
    assert LatencyTable().rtf(tiny_model, None) == table.rtf(tiny_model, None)


def test_architecture_key_ignores_provenance_but_not_shape(tiny_model):
    spec = tiny_model.subnet_space.smallest()
    a = tiny_model.extract_subnet(spec)
    torch.manual_seed(1)
    other = SupernetConformerForCTC(tiny_conformer_config(hidden_dropout=0.3))
    other.config.selected_subnets = [{"name": "x"}]
    b = other.extract_subnet(spec)
    assert architecture_key(a.config) == architecture_key(b.config)
    b.config.sparsity_block_shape = [8, 1]  # provenance of pruned weights, not architecture
    assert architecture_key(a.config) == architecture_key(b.config)
    assert architecture_key(a.config) != architecture_key(tiny_model.extract_subnet(tiny_model.subnet_space.largest()).config)


def test_latency_budget_picks_the_largest_subnet_that_is_fast_enough(tiny_model, fake_measure):
    costs = {s: tiny_model.subnet_costs(s, latency=True) for s in tiny_model.subnet_space}
    assert len({c.latency for c in costs.values()}) > 10
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
