"""The benchmark scripts run end to end at toy size and write valid results."""

import importlib.util
import json
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_supernet_vs_individual_smoke_writes_json_and_markdown(tmp_path):
    result = load_script("bench_supernet_vs_individual").main(["--smoke", "--results_dir", str(tmp_path)])
    written = json.loads((tmp_path / "supernet_vs_individual.json").read_text())
    assert written["subnets"] == json.loads(json.dumps(result["subnets"]))
    assert [row["name"] for row in written["subnets"]][::3] == ["largest", "smallest"]
    assert len(written["subnets"]) == 4
    params = [row["params"] for row in written["subnets"]]
    assert params == sorted(params, reverse=True) and len(set(params)) == 4
    for row in written["subnets"]:
        assert row["separate_train"]["steps"] == written["max_steps"] == 3
        assert row["separate_train"]["cpu_s"] > 0
        for side in ("supernet", "separate"):
            assert 0 <= row[side]["cer"] and 0 <= row[side]["wer"] and row[side]["loss"] > 0
    assert written["supernet_train"]["steps"] == 3 and written["supernet_train"]["cpu_s"] > 0
    assert abs(written["cost_ratio"] - written["supernet_train"]["cpu_s"] / written["separate_train_cpu_s"]) < 1e-9
    assert isinstance(written["cost_met"], bool) and isinstance(written["wer_met"], bool)
    markdown = (tmp_path / "supernet_vs_individual.md").read_text()
    assert "| largest |" in markdown and "## Goals" in markdown
