"""`scripts/train.py` under `accelerate launch` with 2 CPU processes (gloo) vs 1 process with the same global batch.

Data order differs between 1- and 2-process runs (accelerate shards a different sampler), so the corpus here is
one recording repeated: every global batch is then the same, and what is compared is what our code controls —
the sandwich subnets drawn on each process, DDP's gradient averaging, and the per-role loss logging.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_supernet.data import bundled_data_path

ROOT = Path(__file__).resolve().parents[1]
ARGS = (
    "--max_steps 3 --hidden_size 32 --intermediate_size 64 --num_hidden_layers 2 --subsampling_conv_channels 16 "
    "--eval_split= --report_to none --logging_steps 1 --save_strategy no --use_cpu --dropout 0 "
    "--mask_time_prob 0 --mask_feature_prob 0 --seed 0 --num_random_subnets 2"
).split()


def repeated_corpus(folder: Path) -> Path:
    source = bundled_data_path("fsdd")
    first = json.loads((source / "train.jsonl").read_text().splitlines()[0])
    shutil.copy(source / first["file"], folder / Path(first["file"]).name)
    rows = [{**first, "id": f"{first['id']}_{i}", "file": Path(first["file"]).name} for i in range(16)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def run(command, output_dir: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return [entry for entry in history if "loss_largest" in entry]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    corpus = repeated_corpus(tmp_path)
    one = run([sys.executable, "scripts/train.py", "--dataset", str(corpus), *ARGS, "--output_dir", str(tmp_path / "one"), "--per_device_train_batch_size", "8"], tmp_path / "one")
    accelerate = str(Path(sys.executable).parent / "accelerate")
    two = run(
        [accelerate, "launch", "--config_file", "scripts/accelerate_configs/cpu_ddp_2proc.yaml", "scripts/train.py", "--dataset", str(corpus), *ARGS,
         "--output_dir", str(tmp_path / "two"), "--per_device_train_batch_size", "4"],
        tmp_path / "two",
    )
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        for key in ("loss_largest", "loss_smallest", "loss_random", "loss_distill"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), key
    assert one[-1]["loss_largest"] != one[0]["loss_largest"]  # it trained
