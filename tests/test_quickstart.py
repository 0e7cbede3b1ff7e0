"""The README's main job, end to end at toy size: data -> supernet -> search -> extraction -> results.json."""

import importlib.util
import json
import shlex
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCTC, AutoProcessor

import hf_supernet  # noqa: F401
from hf_supernet import ConformerForCTC, SubnetSpec, SupernetConformerForCTC

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "quickstart.py"


def load_script():
    spec = importlib.util.spec_from_file_location("quickstart", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_quickstart_smoke_writes_loadable_subnets(tmp_path):
    results = load_script().main(["--smoke", "--output_dir", str(tmp_path)])
    written = json.loads((tmp_path / "results.json").read_text())
    assert written == results
    names = [row["name"] for row in written]
    assert names[:2] == ["largest", "smallest"] and len(names) >= 4
    for row in written:
        assert set(row) == {"name", "params", "flops", "wer", "cer", "connected_wer", "connected_cer"}
        assert all(0 <= row[key] for key in ("wer", "cer", "connected_wer", "connected_cer"))
    by_name = {row["name"]: row for row in written}
    assert by_name["smallest"]["params"] < by_name["largest"]["params"]

    supernet = SupernetConformerForCTC.from_pretrained(tmp_path / "supernet").eval()
    assert [e["name"] for e in supernet.config.selected_subnets] == names[2:]
    processor = AutoProcessor.from_pretrained(tmp_path / "supernet")
    features = processor.feature_extractor([torch.randn(8000).numpy()], sampling_rate=16000, return_tensors="pt")
    for entry in supernet.config.selected_subnets:
        folder = tmp_path / "subnets" / entry["name"]
        dense = AutoModelForCTC.from_pretrained(folder).eval()
        # The plain dense model, saved with its code (and the processor's): it loads with trust_remote_code anywhere.
        assert type(dense) is ConformerForCTC and (folder / "modeling_conformer.py").is_file()
        assert dense.num_parameters() == by_name[entry["name"]]["params"]
        AutoProcessor.from_pretrained(folder)
        with torch.no_grad(), supernet.use_subnet(SubnetSpec.from_dict(entry["spec"])):
            expected = supernet(**features).logits
        torch.testing.assert_close(dense(**features).logits, expected, atol=1e-4, rtol=0)
    # The 50% budget resolves to the subnet the search selected for it.
    chosen = SupernetConformerForCTC.from_pretrained(tmp_path / "supernet", subnet_budget=0.5)
    selected_50 = next(e for e in supernet.config.selected_subnets if e["name"] == "params_50pct")
    assert type(chosen) is ConformerForCTC and chosen.config.subnet_spec == selected_50["spec"]


@pytest.mark.slow
def test_evaluate_checkpoint_reproduces_the_quickstart_table(tmp_path, monkeypatch):
    """The saved supernet, reloaded by scripts/evaluate_checkpoint.py, gives the table the quickstart printed."""
    import runpy

    load_script().main(["--smoke", "--output_dir", str(tmp_path)])
    written = {row["name"]: row for row in json.loads((tmp_path / "results.json").read_text())}
    table = tmp_path / "table.json"
    script = str(SCRIPT.parent / "evaluate_checkpoint.py")
    monkeypatch.setattr(sys, "argv", [script, str(tmp_path / "supernet"), "--dataset", "fsdd", "--split", "test", "--output_json", str(table)])
    runpy.run_path(script, run_name="__main__")
    rows = json.loads(table.read_text())
    assert {r["name"] for r in rows} == set(written)
    for row in rows:
        assert row["params"] == written[row["name"]]["params"] and row["rtf"] > 0
        assert 0 <= row["wer"] <= 1.5 and 0 <= row["cer"] <= 1.5


@pytest.mark.slow
def test_robustness_benchmark_scores_the_quickstart_subnets_through_the_pipeline(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_quickstart_robustness", SCRIPT.parent / "bench_quickstart_robustness.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with pytest.raises(FileNotFoundError, match="run scripts/quickstart.py first"):
        bench.main(["--smoke", "--skip_training", "--output_dir", str(tmp_path / "missing"), "--results_dir", str(tmp_path)])
    result = bench.main(["--smoke", "--output_dir", str(tmp_path / "quickstart"), "--results_dir", str(tmp_path), "--threads", "1",
                         "--quickstart_args", "--train_data isolated_then_connected"])
    assert result["main_job_minutes"] > 0
    # Paths outside the repository are recorded relative to it, like those inside: no machine's absolute paths.
    assert not any(Path(arg).is_absolute() for arg in shlex.split(result["command"]))
    assert "--results_dir ../" in result["command"]
    assert list(result["subnets"])[:2] == ["largest", "smallest"]
    assert set(result["sizes"]) == {"isolated", "isolated_silence_noise", "connected"}
    for subnet in result["subnets"].values():
        for scores in subnet["scores"].values():
            assert scores["wer"]["low"] <= scores["wer"]["rate"] <= scores["wer"]["high"]
    assert {row["goal"] for row in result["goals"]} == set(bench.GOALS)
    verdicts = {row["goal"]: row["verdict"] for row in result["goals"]}
    assert verdicts["largest_connected_wer"] in {"met", "missed", "undecided"}
    # A few smoke steps leave the model at chance: its ratios are no evidence, and the table says so.
    assert result["subnets"]["largest"]["scores"]["connected"]["wer"]["rate"] >= bench.CHANCE_WER
    assert verdicts["smallest_over_largest_connected"].startswith("not meaningful")
    assert "--train_data isolated_then_connected" in (tmp_path / "quickstart_robustness.md").read_text()
    # The connected WER by noise band: every string in one band, and the bands add up to the whole set's errors.
    by_noise = result["connected_by_noise"]
    assert list(by_noise) == list(result["subnets"])
    for name, bands in by_noise.items():
        assert sum(band["strings"] for band in bands) == result["sizes"]["connected"]
        errors = sum(band["wer"]["rate"] * band["words"] for band in bands)
        assert errors == pytest.approx(sum(result["subnets"][name]["scores"]["connected"]["word_errors"]))
    assert "| noise | strings | words |" in (tmp_path / "quickstart_robustness.md").read_text()
    # --render_only recomputes the goals from the JSON alone (the trained folders are gone).
    import shutil

    shutil.rmtree(tmp_path / "quickstart")
    rendered = bench.main(["--render_only", "--results_dir", str(tmp_path)])
    assert rendered["goals"] == result["goals"] and rendered["subnets"] == json.loads(json.dumps(result["subnets"]))
    assert rendered["connected_by_noise"] == json.loads(json.dumps(by_noise))
    assert json.loads((tmp_path / "quickstart_robustness.json").read_text()) == result
    assert "| goal |" in (tmp_path / "quickstart_robustness.md").read_text()
