"""scripts/compare_methods.py end to end at toy size: every method trains, is searched per budget and reported."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_methods.py"


@pytest.mark.slow
def test_compare_methods_smoke_reports_every_method_and_budget(tmp_path):
    spec = importlib.util.spec_from_file_location("compare_methods", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    methods = ["layer_width", "omni_sparsity"]
    result = module.main(
        ["--smoke", "--methods", ",".join(methods), "--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "w")]
    )
    assert json.loads((tmp_path / "compare_methods.json").read_text()) == result
    assert (tmp_path / "compare_methods.png").stat().st_size > 0
    assert list(result["methods"]) == methods
    for run in result["methods"].values():
        assert run["training"]["steps"] == 3
        rows = run["budgets"]
        assert [(r["budget"], r["fraction"]) for r in rows] == [
            (kind, f) for kind in ("params", "flops") for f in module.FRACTIONS
        ]
        full = [r for r in rows if r["fraction"] == 1.0]
        assert all(r["fits"] and r["params_share"] == 1.0 for r in full)
        for r in rows:
            if r["fits"]:
                assert r[f"{r['budget']}_share"] <= r["fraction"] + 1e-9
                assert 0 <= r["wer"]
    assert "| omni_sparsity | params | 0.50 |" in (tmp_path / "compare_methods.md").read_text()
