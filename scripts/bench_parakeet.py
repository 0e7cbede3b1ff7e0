"""Parakeet made elastic (issue 18): is each stock ParakeetForCTC subnet of a fine-tuned Parakeet supernet as good as
the same architecture fine-tuned alone, and what does re-estimating BatchNorm per subnet change?

Per seed:
1. `scripts/finetune_parakeet.py` as a user runs it (a subprocess): a small ParakeetForCTC trained from scratch on the
   bundled spoken digits (no pretrained weights can be downloaded here), made elastic and fine-tuned as a supernet
   with the `todm` preset for `--max_steps`, searched, and its largest, smallest and searched subnets extracted as
   stock ParakeetForCTC (BatchNorm re-estimated on dev audio);
2. twins: each of those architectures cut from the *same starting Parakeet* (same initial weights) and fine-tuned
   alone for the same steps with the same optimizer, rate, schedule and switch to ScaledAdam (transformers'
   Trainer: no sandwich, no distillation, no adaptive dropout);
3. scored on the isolated test clips per utterance: each subnet's WER/CER over its twin's, and the subnet with the
   supernet's shared BatchNorm statistics over the same subnet re-estimated, as paired bootstrap ratios (95%) over
   utterances and seeds.

Each finished seed appends one JSON line to `parakeet_runs.jsonl` (a rerun skips it); `--render_only` rewrites
`parakeet.{json,md}` from the lines.

    python scripts/bench_parakeet.py --seeds 0,1,2 --threads 2
    python scripts/bench_parakeet.py --render_only
    python scripts/bench_parakeet.py --smoke --results_dir outputs/parakeet_smoke      # seconds: checks the script
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch
import transformers
from transformers import ParakeetForCTC, Trainer, set_seed

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet import SubnetSpec, SupernetConformerForCTC
from hf_supernet.atomic import append_json_line, atomic_file, read_json_lines
from hf_supernet.data import filter_ctc_feasible
from hf_supernet.metrics.bootstrap import goal_verdict, paired_bootstrap_ratio
from hf_supernet.models.supernet_conformer.parakeet import load_parakeet_processor
from hf_supernet.paper_recipes import recipe_config_fields
from hf_supernet.search import collate_batches, score_utterances
from hf_supernet.training import OptimizerSwitchMixin, SupernetTrainingArguments
from hf_supernet.training.recipes import load_digits

ROOT = Path(__file__).resolve().parent.parent
RUNS_FILE = "parakeet_runs.jsonl"
GOAL = 1.05  # the claims benchmark's bar: a subnet's WER/CER <= 1.05x its twin's

logger = logging.getLogger("bench_parakeet")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (also of the subprocess).")
    parser.add_argument("--pretrain_steps", type=int, default=600, help="Steps of the Parakeet trained from scratch.")
    parser.add_argument("--max_steps", type=int, default=600, help="Fine-tuning steps of the supernet and each twin.")
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--results_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--work_dir", default=None, help="Models of each seed (default: <results_dir>/../parakeet_work).")
    parser.add_argument("--render_only", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="finetune_parakeet's --smoke, 2-step twins.")
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.work_dir is None:
        args.work_dir = os.path.join(args.results_dir, "..", "parakeet_work")
    return args


def finetune_arguments(args, seed: int, relative: bool = False) -> list[str]:
    """The command line of step 1 (finetune_parakeet.py's own arguments; ``relative``: the output folder relative to
    the repository, as the results record it)."""
    work = os.path.join(args.work_dir, f"seed{seed}")
    argv = ["--output_dir", os.path.relpath(work, ROOT) if relative else work, "--seed", str(seed),
            "--pretrain_steps", str(args.pretrain_steps), "--max_steps", str(args.max_steps),
            "--learning_rate", str(args.learning_rate), "--batch_size", str(args.batch_size)]
    return argv + (["--smoke"] if args.smoke else [])


class TwinTrainer(OptimizerSwitchMixin, Trainer):
    """A subnet's architecture fine-tuned alone, with the supernet's optimizer switch."""


def train_twin(args, source: ParakeetForCTC, spec: SubnetSpec, data, seed: int, output_dir: str) -> ParakeetForCTC:
    """``spec`` cut from the starting Parakeet (its weights; a stock ParakeetForCTC) and fine-tuned alone with the
    arguments finetune_parakeet.py gives the supernet, less what only a supernet has."""
    set_seed(seed)
    twin = SupernetConformerForCTC.from_parakeet(source, **recipe_config_fields("todm")).extract_subnet(spec)
    training_args = SupernetTrainingArguments.from_recipe(
        "todm", output_dir=output_dir, max_steps=2 if args.smoke else args.max_steps, learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size, warmup_steps=0 if args.smoke else 50,
        train_sampling_strategy="group_by_length", length_column_name="length", remove_unused_columns=False,
        save_strategy="no", report_to=[], seed=seed, dataloader_num_workers=0, logging_steps=50, use_cpu=True,
        distillation="none", adaptive_dropout=False, disable_tqdm=True,
    )
    output_lengths = lambda frames: int(twin._get_subsampling_output_length(torch.tensor(frames)))  # noqa: E731
    data.collator.train()  # SpecAugment on for training (finetune_parakeet's callback does the same)
    trainer = TwinTrainer(model=twin, args=training_args, data_collator=data.collator,
                          train_dataset=filter_ctc_feasible(data.train, output_lengths))
    trainer.train()
    data.collator.eval()
    return twin.eval()


def errors_of(model, spec, batches, tokenizer) -> dict:
    scores = score_utterances(model, spec, batches, tokenizer)
    return {key: scores[key] for key in ("wer", "cer", "word_errors", "char_errors")}


def run_seed(args, seed: int) -> dict:
    work = os.path.join(args.work_dir, f"seed{seed}")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    subprocess.run([sys.executable, str(ROOT / "scripts" / "finetune_parakeet.py"), *finetune_arguments(args, seed)],
                   check=True, env=env, cwd=ROOT)
    rows = json.loads(Path(work, "results.json").read_text())
    processor = load_parakeet_processor(os.path.join(work, "parakeet"))
    data = load_digits("fsdd", seed, args.smoke, make_processor=lambda _texts: processor)
    test = collate_batches(data.test, data.collator.eval())
    tokenizer = data.tokenizer
    source = ParakeetForCTC.from_pretrained(os.path.join(work, "parakeet"))
    supernet = SupernetConformerForCTC.from_pretrained(os.path.join(work, "supernet")).eval()
    subnets, twins = {}, {}
    for row in rows:
        spec = SubnetSpec.from_dict(row["spec"])
        stock = ParakeetForCTC.from_pretrained(os.path.join(work, "subnets", row["name"])).eval()
        key = json.dumps(row["spec"], sort_keys=True)  # two budgets may select one architecture: one twin for both
        if key not in twins:
            twin = train_twin(args, source, spec, data, seed, os.path.join(work, "twins", row["name"]))
            twins[key] = errors_of(twin, None, test, tokenizer)
        subnets[row["name"]] = {
            "params": row["params"], "spec": row["spec"],
            "subnet": errors_of(stock, None, test, tokenizer),  # BatchNorm re-estimated on dev audio
            "shared_batch_norm": errors_of(supernet, spec, test, tokenizer),
            "twin": twins[key],
        }
    return {"seed": seed, "subnets": subnets}


def finished_runs(results_dir: str) -> list[dict]:
    return read_json_lines(os.path.join(results_dir, RUNS_FILE))


def append_run(results_dir: str, run: dict) -> None:
    """One JSON line per finished run, appended whole (one write call, synced)."""
    append_json_line(os.path.join(results_dir, RUNS_FILE), run)


def ratio(runs: list[dict], name: str, a: str, b: str, key: str) -> dict:
    """Paired bootstrap ratio of ``a``'s errors over ``b``'s for subnet ``name``, over utterances and seeds. Both
    come from the same run, so from the same seed's starting Parakeet: the seeds are drawn jointly."""
    errors_a = [run["subnets"][name][a][key] for run in runs]
    errors_b = [run["subnets"][name][b][key] for run in runs]
    return paired_bootstrap_ratio(errors_a, errors_b, same_seeds=True)


def render(results_dir: str) -> dict:
    runs = [run for run in finished_runs(results_dir) if run["subnets"]]
    names = list(runs[0]["subnets"]) if runs else []
    # Subnets every seed has (the searched budgets may pick other names' architectures, but the names are fixed).
    names = [name for name in names if all(name in run["subnets"] for run in runs)]
    rows = []
    for name in names:
        mean = lambda part, metric: sum(run["subnets"][name][part][metric] for run in runs) / len(runs)  # noqa: E731
        row = {"name": name, "seeds": len(runs),
               "params": [run["subnets"][name]["params"] for run in runs],
               **{f"{part}_{metric}": mean(part, metric) for part in ("subnet", "twin", "shared_batch_norm")
                  for metric in ("wer", "cer")},
               "wer_over_twin": ratio(runs, name, "subnet", "twin", "word_errors"),
               "cer_over_twin": ratio(runs, name, "subnet", "twin", "char_errors"),
               "shared_over_recalibrated_wer": ratio(runs, name, "shared_batch_norm", "subnet", "word_errors")}
        row["verdict"] = goal_verdict(GOAL, row["wer_over_twin"], row["cer_over_twin"])
        rows.append(row)
    result = {"seeds": [run["seed"] for run in runs], "goal": GOAL, "rows": rows,
              "runs": [{k: v for k, v in run.items() if k != "subnets"} for run in runs]}
    with atomic_file(os.path.join(results_dir, "parakeet.json")) as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    with atomic_file(os.path.join(results_dir, "parakeet.md")) as tmp:
        tmp.write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    def ci(r):
        return f"{r['ratio']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"

    runs = result["runs"]
    lines = ["# Parakeet made elastic: stock ParakeetForCTC subnets vs the same architecture fine-tuned alone "
             "(`scripts/bench_parakeet.py`)", ""]
    if not runs:
        return "\n".join(lines + ["No finished seed yet.", ""])
    first = runs[0]
    commands = "; ".join(f"`{run['command']}` (commit {run.get('commit')})" for run in runs)
    lines += [f"Commands: {commands}; seeds {result['seeds']}; {first['machine']}, torch threads: {first['threads']}"
              f"{' (smoke)' if first['smoke'] else ''}; isolated FSDD test clips (paired bootstrap over utterances and "
              "seeds, 95%, the seeds drawn together for a subnet and its twin, which start from the same seed's "
              "Parakeet; a searched budget's row pools the architecture each seed's search picked).", "",
              "| subnet | params | WER | twin WER | WER / twin | CER / twin | shared BN WER | shared / re-estimated BN WER |"
              f" WER and CER ≤ {GOAL} x twin |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for row in result["rows"]:
        low, high = min(row["params"]) / 1e6, max(row["params"]) / 1e6
        params = f"{low:.2f} M" if low == high else f"{low:.2f}-{high:.2f} M"
        lines.append(f"| {row['name']} | {params} | {100 * row['subnet_wer']:.1f}% | "
                     f"{100 * row['twin_wer']:.1f}% | {ci(row['wer_over_twin'])} | {ci(row['cer_over_twin'])} | "
                     f"{100 * row['shared_batch_norm_wer']:.1f}% | {ci(row['shared_over_recalibrated_wer'])} | "
                     f"{row['verdict']} |")
    lines += ["", "Subnets: stock ParakeetForCTC extracted with BatchNorm statistics re-estimated on dev audio; twins: "
              "the same architecture cut from the same starting Parakeet and fine-tuned alone for as many steps with "
              "the same optimizer schedule; shared BN: the subnet inside the supernet with the running statistics "
              "all subnets shared in training. Verdicts (the claims benchmark's bar, 1.05): met when both intervals lie "
              "at or below it, missed when one lies above it, undecided otherwise.", ""]
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.render_only:
        return render(args.results_dir)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    torch.set_num_threads(args.threads)
    done = {run["seed"] for run in finished_runs(args.results_dir)}
    for seed in (s for s in args.seeds if s not in done):
        run = run_seed(args, seed)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip() or None
        run.update({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit,
                    "command": "python scripts/bench_parakeet.py " + " ".join(a for a in (argv or sys.argv[1:])),
                    "finetune_command": "python scripts/finetune_parakeet.py " + " ".join(finetune_arguments(args, seed, relative=True)),
                    "torch": torch.__version__, "transformers": transformers.__version__, "threads": args.threads,
                    "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "smoke": args.smoke,
                    "pretrain_steps": args.pretrain_steps, "max_steps": args.max_steps,
                    "learning_rate": args.learning_rate, "batch_size": args.batch_size})
        append_run(args.results_dir, run)
    return render(args.results_dir)


if __name__ == "__main__":
    main(sys.argv[1:])
