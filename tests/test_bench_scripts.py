"""The benchmark scripts run end to end at toy size and write valid results."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from hf_supernet.training.samplers import SortaGradSampler

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
    assert written["batch_splits"] == ["quarter", "split"] == list(written["supernets"])
    for row in written["subnets"]:
        assert row["separate_train"]["steps"] == written["max_steps"] == 3
        assert row["separate_train"]["cpu_s"] > 0
        for scores in (row["separate"], *row["supernets"].values()):
            assert 0 <= scores["cer"] and 0 <= scores["wer"] and scores["loss"] > 0
    for split, supernet in written["supernets"].items():
        assert supernet["train"]["steps"] == 3 and supernet["train"]["cpu_s"] > 0
        assert abs(supernet["cost_ratio"] - supernet["train"]["cpu_s"] / written["separate_train_cpu_s"]) < 1e-9
        worst = max(row["supernets"][split]["wer_ratio"] for row in written["subnets"])
        assert supernet["worst_wer_ratio"] == worst and supernet["wer_met"] == (worst <= written["wer_goal"])
        assert isinstance(supernet["cost_met"], bool)
    markdown = (tmp_path / "supernet_vs_individual.md").read_text()
    assert "| largest |" in markdown and "## Goals" in markdown and "WER `split` (ratio)" in markdown


def test_bench_supernet_vs_individual_trials_are_rendered_against_the_separate_models(tmp_path):
    script = load_script("bench_supernet_vs_individual")
    common = ["--smoke", "--results_dir", str(tmp_path)]
    result = script.main([*common, "--batch_splits", "quarter"])
    trial = script.main([*common, "--supernet_only", "--batch_splits", "split", "--num_random_subnets", "1"])["trials"]
    trials = [json.loads(line) for line in (tmp_path / "supernet_vs_individual_trials.jsonl").read_text().splitlines()]
    assert trials == json.loads(json.dumps(trial)) and len(trials) == 1
    assert (trials[0]["sandwich_batch_split"], trials[0]["num_random_subnets"]) == ("split", 1)
    assert [row["name"] for row in trials[0]["subnets"]][::3] == ["largest", "smallest"]
    # The trial did not overwrite the full run's results; re-rendering adds it, scored against the separate models.
    assert json.loads((tmp_path / "supernet_vs_individual.json").read_text())["batch_splits"] == ["quarter"]
    script.main([*common, "--render_only"])
    markdown = (tmp_path / "supernet_vs_individual.md").read_text()
    row = next(line for line in markdown.splitlines() if line.startswith("| `split` | 1 |"))
    largest = result["subnets"][0]
    wer = trials[0]["subnets"][0]["wer"]
    assert f"{100 * wer:.1f}% ({script.ratio(wer, largest['separate']['wer']):.2f})" in row


@pytest.mark.slow
def test_bench_sandwich_step_times_every_split_against_the_same_dense_steps(tmp_path):
    load_script("bench_sandwich_step").main(["--repeats", "1", "--threads", "1", "--results_dir", str(tmp_path)])
    result = json.loads((tmp_path / "sandwich_step.json").read_text())
    assert set(result["ratio"]) == {"full", "quarter", "split"}
    for split, seconds in result["sandwich_step_s_median"].items():
        assert seconds > 0 and abs(result["ratio"][split] - seconds / result["separate_steps_s_median"]) < 1e-12
    assert result["met"] == (result["ratio"]["full"] <= result["goal"])
    assert "| `split` |" in (tmp_path / "sandwich_step.md").read_text()


def test_recipe_mini_librispeech_smoke_logs_evaluations(tmp_path):
    records = load_script("recipe_mini_librispeech").main(
        ["--smoke", "--sortagrad", "--run_name", "smoke", "--output_dir", str(tmp_path)]
    )
    lines = [json.loads(line) for line in (tmp_path / "smoke.jsonl").read_text().splitlines()]
    assert lines[:-1] == records and records
    assert lines[-1]["summary"] and lines[-1]["settings"]["sortagrad"] and lines[-1]["steps"] >= 1
    for record in records:
        assert 0 <= record["test_cer"] and record["train_cpu_s"] >= 0


def test_sortagrad_sampler_sorts_the_first_epoch_only():
    sampler = SortaGradSampler([5, 1, 4, 2, 3], batch_size=2, seed=0)
    assert list(sampler) == [1, 3, 4, 2, 0]
    second = list(sampler)
    assert sorted(second) == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_bench_claims_smoke_runs_every_arm_type_and_resumes(tmp_path, monkeypatch):
    bench = load_script("bench_claims")
    common = ["--smoke", "--seeds", "0", "--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "work")]
    arms = ["todm", "twin-smallest", "twin-largest", "twin-L8-ffn50", "twin-L6-ffn25", "todm-no_switch",
            "twin-L5-ffn100", "unfold"]

    # Interrupted after two finished arms: their JSON lines are kept.
    real_run_arm, calls = bench.run_arm, []

    def failing_after_two(args, arm, seed, data, test_batches):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(arm)
        return real_run_arm(args, arm, seed, data, test_batches)

    monkeypatch.setattr(bench, "run_arm", failing_after_two)
    try:
        bench.main(["--arms", ",".join(arms), *common])
    except KeyboardInterrupt:
        pass
    lines = (tmp_path / "claims_runs.jsonl").read_text().splitlines()
    assert [json.loads(line)["arm"] for line in lines] == arms[:2]

    # The rerun skips the finished arms and runs the rest.
    calls.clear()
    monkeypatch.setattr(bench, "run_arm", lambda *a: calls.append(a[1]) or real_run_arm(*a))
    result = bench.main(["--arms", ",".join(arms), *common])
    assert calls == arms[2:]
    runs = [json.loads(line) for line in (tmp_path / "claims_runs.jsonl").read_text().splitlines()]
    assert sorted(r["arm"] for r in runs) == sorted(arms)
    for run in runs:
        assert run["steps"] <= 4 and run["train_cpu_s"] > 0
        for scores in run["scores"].values():
            assert len(scores["word_errors"]) == len(scores["char_errors"]) == 8
    # Every supernet subnet is compared with its twin, with an interval around the ratio.
    claims = {(row["arm"], row["subnet"]): row for row in result["instruments"]["digits"]["claims"]}
    assert len(claims) == 8 and {arm for arm, _ in claims} == {"todm", "todm-no_switch"}
    for row in claims.values():
        ci = row["word_ratio"]
        assert ci["low"] <= ci["ratio"] <= ci["high"]
        worst_high, worst_low = max(ci["high"], row["char_ratio"]["high"]), max(ci["low"], row["char_ratio"]["low"])
        expected = "met" if worst_high <= bench.GOAL else "missed" if worst_low > bench.GOAL else "undecided"
        assert row["verdict"] == expected
    assert {row["arm"] for row in result["instruments"]["digits"]["costs"]} == {"todm", "todm-no_switch"}
    # The ablation against the full recipe, subnet by subnet, paired on the seed both ran.
    ablations = result["instruments"]["digits"]["ablations"]
    assert [(row["arm"], row["subnet"]) for row in ablations] == [("todm-no_switch", name) for name in bench.SUBNETS]
    assert all(row["paired_seeds"] and row["seeds"] == [0] and "verdict" not in row for row in ablations)
    # Unfolding: the folded trained twin against the deep model it came from and a plain shallow model.
    unfold = result["instruments"]["digits"]["unfolding"]
    assert len(unfold) == 3 and unfold[0]["stored_params_ratio"] < 0.7
    assert (unfold[0]["verdict"] == "met") == (max(unfold[0]["word_ratio"]["high"], unfold[0]["char_ratio"]["high"]) <= 1.02)
    assert not (tmp_path / "work" / "digits-todm-seed0").exists()  # finished runs leave no checkpoints behind
    assert (tmp_path / "work" / "trained" / "digits-twin-largest-seed0" / "model.safetensors").exists()
    markdown = (tmp_path / "claims.md").read_text()
    assert "| `todm` | smallest |" in markdown and "training cost" in markdown
    assert "| `todm-no_switch` | smallest | 0 |" in markdown
    # The runs table gives each run's own test WER per scored subnet.
    todm_run = next(r for r in runs if r["arm"] == "todm")
    assert f"smallest {100 * todm_run['scores']['smallest']['wer']:.1f}% |" in markdown
    # Each claim of the full recipe not met, with the ablation of it that came closest.
    shortfalls = result["instruments"]["digits"]["shortfalls"]
    assert [row["subnet"] for row in shortfalls] == [name for (arm, name), row in claims.items()
                                                     if arm == "todm" and row["verdict"] != "met"]
    assert all(row["closest_ablation"]["arm"] == "todm-no_switch" for row in shortfalls)
    assert "where a goal is not met" in markdown
    # What ran of the whole design (3 seeds of every group), and the CPU the rest would take at the measured costs.
    coverage = {(row["instrument"], row["group"]): row for row in result["coverage"]}
    assert (coverage["digits", "todm + twins"]["finished"], coverage["digits", "todm + twins"]["planned"]) == (5, 15)
    assert (coverage["digits", "ablations"]["finished"], coverage["digits", "unfolding"]["finished"]) == (1, 2)
    assert coverage["digits", "todm + twins"]["cpu_hours_left"] > 0
    assert coverage["digits", "omni_sparsity"]["finished"] == 0
    assert coverage["digits", "omni_sparsity"]["cpu_hours_left"] != coverage["digits", "omni_sparsity"]["cpu_hours_left"]
    assert "What ran, what is left" in markdown
    # Nothing left to do: a rerun trains nothing and only renders.
    calls.clear()
    bench.main(["--arms", ",".join(arms), *common])
    assert calls == []


def test_bench_claims_shortfalls_name_the_closest_ablation():
    bench = load_script("bench_claims")

    def claim(arm, subnet, ratio, verdict):
        return {"method": "TODM (layer/width)", "arm": arm, "subnet": subnet, "seeds": [0], "verdict": verdict,
                "word_ratio": {"ratio": ratio, "low": ratio - 0.1, "high": ratio + 0.1},
                "char_ratio": {"ratio": ratio, "low": ratio - 0.1, "high": ratio + 0.1}}

    claims = [claim("todm", "largest", 1.0, "met"), claim("todm", "smallest", 1.26, "missed"),
              claim("todm", "L8-ffn50", 1.1, "undecided"), claim("todm-kl", "smallest", 1.1, "undecided"),
              claim("todm-no_kd", "smallest", 1.4, "missed"), claim("todm-kl", "largest", 0.9, "met"),
              {"method": "TODM (layer/width)", "arm": "todm", "subnet": "L6-ffn25", "seeds": [0]}]  # no twin yet
    rows = bench.shortfall_rows(claims)
    assert [(row["subnet"], row["verdict"]) for row in rows] == [("smallest", "missed"), ("L8-ffn50", "undecided")]
    assert rows[0]["over_goal"] == pytest.approx(1.26 / bench.GOAL)
    assert rows[0]["closest_ablation"]["arm"] == "todm-kl" and rows[1]["closest_ablation"] is None
    table = "\n".join(bench.shortfalls_markdown(rows, bench.GOAL))
    assert "`todm-kl` (0): 1.10 [1.00, 1.20], undecided" in table and "none ran yet" in table
    assert bench.shortfalls_markdown([], bench.GOAL) == ["Every claim with a twin is met."]


@pytest.mark.slow
def test_bench_claims_resumes_an_interrupted_run_from_its_checkpoint(tmp_path, monkeypatch):
    bench = load_script("bench_claims")
    common = ["--smoke", "--seeds", "0", "--arms", "twin-smallest", "--results_dir", str(tmp_path),
              "--work_dir", str(tmp_path / "work")]

    class KilledAtStep3(bench.SpecAugmentCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt
            return super().on_step_end(args, state, control, **kwargs)

    monkeypatch.setattr(bench, "SpecAugmentCallback", KilledAtStep3)
    try:
        bench.main(common)
    except KeyboardInterrupt:
        pass
    assert (tmp_path / "work" / "digits-twin-smallest-seed0" / "checkpoint-2").is_dir()
    spent = json.loads((tmp_path / "work" / "digits-twin-smallest-seed0" / "cpu_seconds.json").read_text())
    assert spent["train_cpu_s"] > 0
    monkeypatch.undo()
    bench = load_script("bench_claims")
    run = bench.main(common)["runs"][0]
    assert run["resumed_from"] == "checkpoint-2" and run["steps"] == 4
    assert run["train_cpu_s"] > spent["train_cpu_s"]  # the resumed run counts what was spent before the kill


@pytest.mark.slow
def test_bench_claims_smoke_omni_sparsity_and_orthosoftmax_arms(tmp_path):
    bench = load_script("bench_claims")
    common = ["--smoke", "--seeds", "0", "--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "work")]
    # An arm that starts from another arm's trained model says which run to do first.
    with pytest.raises(FileNotFoundError, match="run `--arms ortho --seeds 0` first"):
        bench.main(["--arms", "ortho-twin-b0.337", *common])
    result = bench.main(["--arms", "omni_sparsity,orthosoftmax", *common])
    rows = {(row["arm"], row["subnet"]): row for row in result["instruments"]["digits"]["claims"]}
    assert set(rows) == {("omni", p) for p in bench.PRUNED} | {("ortho", f"b{b}") for b in (*bench.ORTHO_BUDGETS, 1.0)}
    for (arm, subnet), row in rows.items():
        assert row["twin"] == {"omni": f"pruned-{subnet}", "ortho": f"ortho-twin-{subnet}"}[arm] or subnet == "b1.0"
        assert "word_ratio" in row and "char_ratio" in row
    runs = {r["arm"]: r for r in result["runs"]}
    # The pruned twins are the dense twin pruned to one sparsity; OrthoSoftmax's twins have the learned shapes.
    assert runs["pruned-s80"]["params"]["s80"] < runs["pruned-s50"]["params"]["s50"] < runs["twin-largest"]["params"]["largest"]
    for budget in bench.ORTHO_TWINS:
        assert runs[f"ortho-twin-{budget}"]["params"][budget] == runs["ortho"]["params"][budget]
    assert {row["method"] for row in result["instruments"]["digits"]["costs"]} == {"Omni-sparsity", "OrthoSoftmax"}


@pytest.mark.slow
def test_bench_claims_smoke_librispeech_instrument(tmp_path):
    bench = load_script("bench_claims")
    common = ["--smoke", "--seeds", "0", "--results_dir", str(tmp_path), "--work_dir", str(tmp_path / "work")]
    result = bench.main(["--instrument", "librispeech", "--arms", "todm,twins", *common])
    runs = [r for r in result["runs"] if r["instrument"] == "librispeech"]
    assert sorted(r["arm"] for r in runs) == sorted(["todm", *(f"twin-{s}" for s in bench.SUBNETS)])
    # Each run stops on its CPU budget, not on a step count.
    assert all(r["steps"] < 10**6 and r["cpu_budget_minutes"] == 0.05 and r["learning_rate"] == 0.045 for r in runs)
    assert len(result["instruments"]["librispeech"]["claims"]) == 4
    assert "Mini LibriSpeech" in (tmp_path / "claims.md").read_text()
    with pytest.raises(SystemExit):
        bench.main(["--instrument", "librispeech", "--arms", "omni", *common])


def test_bench_deploy_smoke_writes_sizes_latency_and_error_rates(tmp_path):
    import torch

    from hf_supernet import SupernetConformerForCTC
    from hf_supernet.data import build_processor, train_tokenizer

    from .conftest import tiny_conformer_config

    torch.manual_seed(0)
    tokenizer = train_tokenizer(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"], model_type="char")
    model = SupernetConformerForCTC(tiny_conformer_config(num_mel_bins=80, vocab_size=len(tokenizer))).eval()
    folder = tmp_path / "smallest"
    model.extract_subnet(model.subnet_space.smallest()).save_pretrained(folder)
    build_processor(tokenizer).save_pretrained(folder)
    args = [str(folder), "--max_examples", "4", "--seconds", "1", "--repeats", "2", "--results_dir", str(tmp_path)]
    result = load_script("bench_deploy").main(args)
    written = json.loads((tmp_path / "deploy.json").read_text())
    assert written == json.loads(json.dumps(result))
    (row,) = written["subnets"]
    costs = model.subnet_costs(model.subnet_space.smallest())
    assert row["name"] == "smallest" and row["params"] == costs.params
    # The ONNX int8 file next to the cost model's estimate (this tiny model's graph outweighs its weights).
    assert row["int8_mb_cost_model"] == pytest.approx(costs.int8_mb)
    assert row["onnx_int8_over_cost_model"] == pytest.approx(row["sizes"]["onnx_int8_mb"] / costs.int8_mb)
    header = next(line for line in (tmp_path / "deploy.md").read_text().splitlines() if "cost model int8_mb" in line)
    assert "| ONNX int8 | cost model int8_mb | ONNX int8 / cost model |" in header
    assert row["sizes"]["onnx_int8_mb"] < row["sizes"]["onnx_mb"]
    assert set(row["latency"]) == set(row["scores"]) == {"eager", "torch_export", "ort_fp32", "ort_int8", "torchao_int8"}
    assert row["latency"]["eager"]["ratio_vs_eager"] == 1.0
    # fp32 runtimes compute the same logits: the same transcripts, so the same error rates.
    for name in ("torch_export", "ort_fp32"):
        assert row["scores"][name] == row["scores"]["eager"]
    assert written["utterances"] == 4
    markdown = (tmp_path / "deploy.md").read_text()
    assert "| smallest |" in markdown and "## Goals" in markdown


def test_bench_int8_size_quick_writes_the_estimate_next_to_the_file(tmp_path):
    result = load_script("bench_int8_size").main(["--quick", "--results_dir", str(tmp_path)])
    written = json.loads((tmp_path / "int8_size.json").read_text())
    assert written == json.loads(json.dumps(result))
    (row,) = written["subnets"]
    assert row["name"].startswith("toy") and row["onnx_int8_mb"] > 0
    assert row["cost_model_over_file"] == pytest.approx(row["int8_mb_cost_model"] / row["onnx_int8_mb"])
    assert row["within_goal"] == (abs(row["cost_model_over_file"] - 1) <= 0.1)
    assert "| cost model / file |" in (tmp_path / "int8_size.md").read_text()


@pytest.mark.slow
def test_bench_parakeet_smoke_compares_stock_subnets_with_twins_and_skips_finished_seeds(tmp_path, monkeypatch):
    bench = load_script("bench_parakeet")
    args = ["--smoke", "--seeds", "0", "--threads", "1", "--results_dir", str(tmp_path)]
    result = bench.main(args)
    assert result["seeds"] == [0]
    names = {row["name"] for row in result["rows"]}
    assert {"largest", "smallest"} <= names
    (run,) = bench.finished_runs(str(tmp_path))
    largest = run["subnets"]["largest"]
    assert set(largest) >= {"subnet", "twin", "shared_batch_norm"}
    assert len(largest["subnet"]["word_errors"]) == len(largest["twin"]["word_errors"]) > 0
    row = next(r for r in result["rows"] if r["name"] == "largest")
    assert row["wer_over_twin"]["low"] <= row["wer_over_twin"]["ratio"] <= row["wer_over_twin"]["high"]
    assert row["verdict"] in ("met", "missed", "undecided")
    assert "| largest |" in (tmp_path / "parakeet.md").read_text()
    # A finished seed is not run again.
    monkeypatch.setattr(bench, "run_seed", lambda *a: pytest.fail("seed 0 is finished"))
    assert bench.main(args)["seeds"] == [0]


@pytest.mark.slow
def test_bench_import_times_every_statement_against_the_floor_and_lists_what_hf_supernet_loads(tmp_path):
    bench = load_script("bench_import")
    result = bench.main(["--repeats", "1", "--results_dir", str(tmp_path), "--note", "a smoke test"])
    assert json.loads((tmp_path / "import_time.json").read_text()) == json.loads(json.dumps(result))
    assert set(result["timings"]) == set(bench.STATEMENTS)
    assert result["timings"]["transformers PreTrainedModel"]["median_ratio_to_floor"] == 1.0
    assert all(row["median_s"] > 0 for row in result["timings"].values())
    assert not any(result["loaded_by_import_hf_supernet"].values())  # no peft, Trainer, datasets, evaluate
    text = (tmp_path / "import_time.md").read_text()
    assert "a smoke test" in text and "loads none of peft" in text
