"""Hostile and careless use: nothing the user had is lost, no result is silently wrong, and every error names what is
wrong (the file, field or utterance) instead of surfacing a raw error from a dependency.

The kill-during-write tests run the write in a subprocess that SIGKILLs itself between two steps of the atomic write
(``hf_supernet.atomic.test_hook``) and check that the previous state is intact and that the next read or write
cleans up what the killed process left."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from hf_supernet import SupernetConformerForCTC
from hf_supernet.data import build_processor, train_tokenizer
from hf_supernet.search import budget_name

from .conftest import padded_batch, tiny_conformer_config

REPO = Path(__file__).resolve().parents[1]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"{name}_script_under_test", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def write_manifest(folder: Path, split: str, n: int, seed: int = 0) -> Path:
    """A manifest folder with ``n`` short noise recordings labelled with digit words."""
    rng = np.random.default_rng(seed)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    with open(folder / f"{split}.jsonl", "w") as f:
        for i in range(n):
            name = f"audio/{split}_{i}.flac"
            soundfile.write(folder / name, (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
            f.write(json.dumps({"id": f"{split}_{i}", "file": name, "text": DIGITS[i % 10]}) + "\n")
    return folder


def run_killed(code: str, step: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that SIGKILLs itself at the atomic write's ``step``."""
    prelude = textwrap.dedent(
        f"""
        import os, signal
        import hf_supernet.atomic as atomic
        def kill(name):
            if name == {step!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        atomic.test_hook = kill
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    return result


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def searched_dir(tmp_path_factory):
    """A tiny supernet folder with a processor, two earlier selected entries and a pareto plot, plus a dev manifest
    of six utterances to search on."""
    root = tmp_path_factory.mktemp("searched")
    tokenizer = train_tokenizer(DIGITS * 3, model_type="char")
    processor = build_processor(tokenizer, feature_size=16)
    torch.manual_seed(0)
    model = SupernetConformerForCTC(tiny_conformer_config(vocab_size=len(tokenizer))).eval()
    space = model.subnet_space

    def entry(name, spec, wer):
        costs = model.subnet_costs(spec).to_dict()
        return {"name": name, "budget": 0.5, "spec": spec.to_dict(), "costs": costs, "metrics": {"wer": wer}}

    model.config.selected_subnets = [
        entry(budget_name({"params": 10}), space.smallest(), 0.5),
        entry("earlier", space.largest(), 0.25),
    ]
    supernet = root / "supernet"
    model.save_pretrained(supernet)
    processor.save_pretrained(supernet)
    (supernet / "pareto.png").write_bytes(b"the earlier plot")
    write_manifest(root / "data", "dev", 6)
    return root


# ------------------------------------------------------------------------------------------------ 1. search


def search_argv(root: Path, budgets: str, output_dir: Path | None = None) -> list[str]:
    argv = [str(root / "supernet"), "--dataset", str(root / "data"), "--split", "dev", "--budgets", budgets]
    argv += ["--population", "4", "--generations", "1", "--proxy_examples", "4"]
    return argv + (["--output_dir", str(output_dir)] if output_dir else [])


def test_search_with_nothing_fitting_writes_nothing_and_fails(searched_dir, capsys):
    before = files_of(searched_dir / "supernet")
    assert load_script("search").main(search_argv(searched_dir, '{"params": 10}')) == 1
    assert files_of(searched_dir / "supernet") == before  # config.json and pareto.png untouched
    err = capsys.readouterr().err
    assert "No subnet fits params_10" in err and "kept unchanged" in err and "nothing was written" in err


def test_search_merges_into_the_earlier_selection(searched_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")  # a file the search did not write survives its atomic save
    assert load_script("search").main(search_argv(searched_dir, '[{"params": 10}, 0.9]', out)) == 0
    before = json.loads((searched_dir / "supernet" / "config.json").read_text())["selected_subnets"]
    after = json.loads((out / "config.json").read_text())["selected_subnets"]
    assert [e["name"] for e in after] == ["params_10", "earlier", "params_90pct"]
    assert after[:2] == before  # the unserved budget's entry and the other entry are kept as they were
    assert after[2]["measured_on"] == {"dataset": str(searched_dir / "data"), "split": "dev", "num_utterances": 6}
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "pareto.png").read_bytes() != b"the earlier plot" and (out / "model.safetensors").is_file()
    assert hidden_leftovers(tmp_path) == []
