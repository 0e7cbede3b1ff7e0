"""Train once vs train each: one supernet's 4 subnets against the same 4 architectures trained separately (issue 6).

`SupernetTrainer` runs of a 4x144 layer_width supernet (the quickstart's recipe: sandwich rule with largest +
smallest + 2 random subnets per step, in-place KL distillation, SpecAugment, character tokenizer), one per batch
split compared (default: TODM's "quarter", where the largest sees the whole batch and every other subnet a quarter,
and Omni-sparsity's "split", one equal part per subnet), against 4 dense models trained from scratch one after the
other with `transformers.Trainer`: the largest, the smallest and two intermediate subnets (4 layers x FFN 288,
3 layers x FFN 144), each initialised with the fresh supernet's weights sliced to its shape (`extract_subnet` before
training), so every run starts from the same weights. Same data, tokenizer, steps, batch size, optimiser (AdamW),
schedule (linear, warm-up), SpecAugment and data order (seed) everywhere; the separate models get no distillation
(they have no teacher). Every model is then scored on the test split (greedy CTC, WER/CER).

CPU seconds are the process's user+system time (`resource.getrusage`) around each `trainer.train()`, so they
count the work done whatever else runs on the machine (wall seconds are reported too). Run with one torch thread
(the default) on a shared machine: idle OpenMP threads spin and would be counted as work.

Goals (issue 6): supernet CPU seconds <= 0.35x the sum of the 4 separate runs; each subnet's WER <= 1.03x its
separately trained twin's.

    nice python scripts/bench_supernet_vs_individual.py                   # FSDD from ../shared/data/fsdd
    python scripts/bench_supernet_vs_individual.py --batch_splits quarter --dataset mini_librispeech --max_steps 500
    python scripts/bench_supernet_vs_individual.py --supernet_only --batch_splits split --num_random_subnets 1
    python scripts/bench_supernet_vs_individual.py --smoke --results_dir outputs/smoke   # seconds: toy model, bundled data

Writes <results_dir>/supernet_vs_individual.json and .md (default benchmarks/results/); `--supernet_only` trains
and scores only the supernets and appends them to <results_dir>/supernet_vs_individual_trials.jsonl.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import platform
import tempfile
import time
from datetime import datetime, timezone

import torch
import transformers
from transformers import Trainer, set_seed

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet.atomic import append_json_line, read_json_lines
from hf_supernet.latency import cpu_seconds
from hf_supernet import SupernetConformerConfig, SupernetConformerForCTC
from hf_supernet.data import (
    DataCollatorCTCWithPadding,
    SpecAugmentCallback,
    build_processor,
    filter_ctc_feasible,
    load_speech_dataset,
    prepare_dataset,
    train_tokenizer,
)
from hf_supernet.masks.layer_width import LayerWidthSpec
from hf_supernet.search import collate_batches, evaluate_subnet
from hf_supernet.training import SupernetTrainer, SupernetTrainingArguments
from hf_supernet.training.recipes import digits_training_arguments, small_conformer_config

SPLIT_WORDS = {
    "full": "every subnet on the whole batch",
    "quarter": "TODM quarter batch split (largest on the whole batch, the others on a quarter each)",
    "split": "batch split evenly among the subnets (Omni-sparsity)",
}
COST_GOAL = 0.35
WER_GOAL = 1.03
RESULTS = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results")
NAME = "supernet_vs_individual"
# The staged corpora sit beside the repository (../shared/data), wherever it is cloned.
SHARED_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")

logger = logging.getLogger("bench_supernet_vs_individual")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=os.path.join(SHARED_DATA, "fsdd"), help="Manifest folder or bundled name.")
    parser.add_argument("--max_steps", type=int, default=1300, help="Optimizer steps of every training run.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=2e-3)
    parser.add_argument("--warmup_steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
    parser.add_argument("--max_train", type=int, default=None, help="Use only the first N training utterances.")
    parser.add_argument("--max_test", type=int, default=None, help="Score only the first N test utterances.")
    parser.add_argument("--batch_splits", default="quarter,split",
                        help="Comma-separated sandwich_batch_split values: one supernet run each (full, quarter, split).")
    parser.add_argument("--num_random_subnets", type=int, default=2)
    parser.add_argument("--distillation", default="kl", choices=["none", "kl", "alpha"])
    parser.add_argument("--ctc_head_per_depth", action="store_true",
                        help="Supernets with a CTC head per depth (the separate models have one head each anyway).")
    parser.add_argument("--smallest_loss_weight", type=float, default=1.0, help="Weight of the smallest subnet's CTC loss.")
    parser.add_argument("--supernet_only", action="store_true",
                        help="Train and score only the supernet (to try supernet settings; no ratios are computed).")
    parser.add_argument("--render_only", action="store_true",
                        help="Rewrite the markdown from <results_dir>/supernet_vs_individual.json (and the trials file).")
    parser.add_argument("--results_dir", default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="Toy model, bundled FSDD, 3 steps: checks the script.")
    args = parser.parse_args(argv)
    args.batch_splits = [split.strip() for split in args.batch_splits.split(",") if split.strip()]
    unknown = sorted(set(args.batch_splits) - set(SPLIT_WORDS))
    if unknown or not args.batch_splits:
        parser.error(f"--batch_splits takes a comma-separated list of {sorted(SPLIT_WORDS)}, got {unknown or 'none'}.")
    if args.smoke:
        args.dataset, args.max_steps, args.warmup_steps, args.batch_size = "fsdd", 3, 0, 8
        args.max_train, args.max_test = args.max_train or 48, args.max_test or 16
    return args


def model_config(tokenizer, smoke: bool, ctc_head_per_depth: bool = False) -> SupernetConformerConfig:
    """The quickstart's 4 x 144 supernet (FFN widths 72-576, depths 2-4), or a 4-layer toy for --smoke."""
    return small_conformer_config(tokenizer, smoke=smoke, num_hidden_layers=4, ctc_head_per_depth=ctc_head_per_depth)


def benchmark_subnets(space) -> dict[str, LayerWidthSpec]:
    """largest, two intermediates (one narrower, one shallower and narrower) and smallest."""
    widths = space.width_choices[0]  # e.g. [72, 144, 288, 576]
    return {
        "largest": space.largest(),
        f"L4-ffn{widths[2]}": LayerWidthSpec((widths[2],) * 4),
        f"L3-ffn{widths[1]}": LayerWidthSpec((widths[1],) * 3),
        "smallest": space.smallest(),
    }


def training_arguments(args, output_dir: str, batch_split: str = "quarter") -> SupernetTrainingArguments:
    """The quickstart's training arguments (the recipe's, at this run's steps, batch and learning rate); the sandwich
    fields only matter to SupernetTrainer."""
    return digits_training_arguments(
        output_dir, args.max_steps, args.seed, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_steps=args.warmup_steps, disable_tqdm=True, use_cpu=True,
        sandwich_batch_split=batch_split, **sandwich_settings(args),
    )


def timed_train(trainer) -> dict:
    """Runs ``trainer.train()``; CPU and wall seconds, steps done, mean and last logged training loss (the supernet's
    loss sums the 4 subnets' CTC losses and the distillation terms, so compare it only with itself)."""
    cpu, wall = cpu_seconds(), time.monotonic()
    output = trainer.train()
    cpu, wall = cpu_seconds() - cpu, time.monotonic() - wall
    losses = [float(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    return {
        "cpu_s": cpu, "wall_s": wall, "steps": trainer.state.global_step,
        "mean_train_loss": float(output.training_loss), "last_logged_train_loss": losses[-1] if losses else None,
    }


def load_data(args):
    """Train and test splits, char tokenizer, processor and features (the quickstart's preparation before it moved
    to word pieces)."""
    train = load_speech_dataset(args.dataset, "train")
    test = load_speech_dataset(args.dataset, "test")
    if args.max_train:
        train = train.select(range(min(args.max_train, len(train))))
    if args.max_test:
        test = test.select(range(min(args.max_test, len(test))))
    tokenizer = train_tokenizer(train["text"], model_type="char")
    processor = build_processor(tokenizer)
    return prepare_dataset(train, processor), prepare_dataset(test, processor), tokenizer, processor


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.render_only:
        with open(os.path.join(args.results_dir, f"{NAME}.json")) as f:
            result = json.load(f)
        write_results(result, args.results_dir)
        return result
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    train, test, tokenizer, processor = load_data(args)

    set_seed(args.seed)
    initial = SupernetConformerForCTC(model_config(tokenizer, args.smoke, args.ctc_head_per_depth))
    specs = benchmark_subnets(initial.subnet_space)
    # Every run starts from the very same weights: each supernet a copy, each separate model a slice of them.
    supernets = {split: copy.deepcopy(initial) for split in args.batch_splits}
    dense = {} if args.supernet_only else {name: initial.extract_subnet(spec) for name, spec in specs.items()}
    train = filter_ctc_feasible(train, initial._get_feat_extract_output_lengths)
    spec_augment = None if args.smoke else {"mask_time_prob": 0.05, "mask_feature_prob": 0.05}
    workdir = os.path.join(tempfile.gettempdir(), f"{NAME}_{os.getpid()}")
    logger.info("train/test: %d/%d utterances; supernet %.2f M parameters; %d steps per run",
                len(train), len(test), initial.num_parameters() / 1e6, args.max_steps)

    def train_one(name, model, training_args, trainer_class):
        set_seed(args.seed)  # same data order and SpecAugment draws as far as the models allow
        collator = DataCollatorCTCWithPadding(processor, spec_augment=spec_augment)
        trainer = trainer_class(model=model, args=training_args, train_dataset=train, data_collator=collator,
                                callbacks=[SpecAugmentCallback(collator)])
        run = timed_train(trainer)
        logger.info("%s: %s", name, run)
        return run

    supernet_runs = {
        split: train_one(f"supernet ({split})", model,
                         training_arguments(args, os.path.join(workdir, f"supernet-{split}"), split), SupernetTrainer)
        for split, model in supernets.items()
    }
    separate_runs = {
        name: train_one(f"separate {name}", model, training_arguments(args, os.path.join(workdir, name)), Trainer)
        for name, model in dense.items()
    }

    batches = collate_batches(test, DataCollatorCTCWithPadding(processor))
    rows = []
    for name, spec in specs.items():
        row = {"name": name, "spec": spec.to_dict(), "params": initial.subnet_costs(spec).params,
               "supernets": {split: evaluate_subnet(model, spec, batches, tokenizer) for split, model in supernets.items()}}
        if dense:
            row["separate"] = evaluate_subnet(dense[name], None, batches, tokenizer)
            row["separate_train"] = separate_runs[name]
            for scores in row["supernets"].values():
                scores["wer_ratio"] = ratio(scores["wer"], row["separate"]["wer"])
        rows.append(row)
    if args.supernet_only:
        return write_trial(args, supernet_runs, rows)
    result = summarise(args, supernet_runs, rows, len(train), len(test))
    write_results(result, args.results_dir)
    return result


def ratio(value: float, reference: float) -> float:
    """value / reference, where 0 / 0 counts as equal."""
    if reference > 0:
        return value / reference
    return 1.0 if value == 0 else float("inf")


def sandwich_settings(args) -> dict:
    return {"num_random_subnets": args.num_random_subnets, "distillation": args.distillation,
            "smallest_loss_weight": args.smallest_loss_weight}


def model_settings(args) -> dict:
    return {"ctc_head_per_depth": args.ctc_head_per_depth}


def write_trial(args, runs: dict, rows: list[dict]) -> dict:
    """--supernet_only: each supernet's cost and per-subnet WER/CER, appended to <results_dir>/<NAME>_trials.jsonl."""
    os.makedirs(args.results_dir, exist_ok=True)
    trials = []
    for split, run in runs.items():
        trials.append({
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dataset": args.dataset,
            "max_steps": args.max_steps, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
            "load_average_end": os.getloadavg(), "sandwich_batch_split": split, **sandwich_settings(args),
            **model_settings(args),
            "supernet_train": run,
            "subnets": [{"name": r["name"], "params": r["params"], **r["supernets"][split]} for r in rows],
        })
    for trial in trials:
        append_json_line(os.path.join(args.results_dir, f"{NAME}_trials.jsonl"), trial)
    print(json.dumps(trials, indent=2))
    return {"trials": trials}


def summarise(args, supernet_runs: dict, rows: list[dict], n_train: int, n_test: int) -> dict:
    separate_cpu = sum(row["separate_train"]["cpu_s"] for row in rows)
    separate_wall = sum(row["separate_train"]["wall_s"] for row in rows)
    supernets = {}
    for split, run in supernet_runs.items():
        cost_ratio = run["cpu_s"] / separate_cpu
        worst = max(row["supernets"][split]["wer_ratio"] for row in rows)
        supernets[split] = {
            "train": run, "cost_ratio": cost_ratio, "cost_met": cost_ratio <= COST_GOAL,
            "worst_wer_ratio": worst, "wer_met": worst <= WER_GOAL,
            "cpu_vs_separate_largest": run["cpu_s"] / rows[0]["separate_train"]["cpu_s"],
        }
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "load_average_end": os.getloadavg(),
        "dataset": args.dataset,
        "train_utterances": n_train,
        "test_utterances": n_test,
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "warmup_steps": args.warmup_steps,
        "seed": args.seed,
        "smoke": args.smoke,
        **sandwich_settings(args),
        **model_settings(args),
        "batch_splits": list(supernet_runs),
        "supernets": supernets,
        "separate_train_cpu_s": separate_cpu,
        "separate_train_wall_s": separate_wall,
        "cost_goal": COST_GOAL,
        "wer_goal": WER_GOAL,
        "subnets": rows,
    }


def write_results(result: dict, results_dir: str) -> None:
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, f"{NAME}.json"), "w") as f:
        json.dump(result, f, indent=2)
    markdown = render_markdown(result) + render_trials(result, read_trials(results_dir))
    with open(os.path.join(results_dir, f"{NAME}.md"), "w") as f:
        f.write(markdown)
    print(markdown)


def read_trials(results_dir: str) -> list[dict]:
    return read_json_lines(os.path.join(results_dir, f"{NAME}_trials.jsonl"))


def render_trials(result: dict, trials: list[dict]) -> str:
    """Supernet settings tried with --supernet_only on the same data, steps and seed, each subnet's WER set against
    the separately trained models of this run (their training does not depend on the supernet's settings)."""
    trials = [t for t in trials if (t["dataset"], t["max_steps"], t["batch_size"]) ==
              (result["dataset"], result["max_steps"], result["batch_size"])]
    if not trials:
        return ""
    separate = {row["name"]: row["separate"]["wer"] for row in result["subnets"]}
    names = [row["name"] for row in result["subnets"]]
    lines = [
        "\n## Other supernet settings tried\n",
        f"`--supernet_only` runs (same data, steps, batch and seed; listed in `{NAME}_trials.jsonl`), each subnet's "
        "test WER with its ratio to the separately trained twin above. Their CPU seconds were taken while other jobs "
        "ran (load average at the end given), so compare them with each other only roughly.\n",
        "| batch split | random subnets | distillation | smallest loss weight | CTC head per depth | CPU s | load | "
        + " | ".join(f"WER {name}" for name in names) + " |",
        "|---|---:|---|---:|---|---:|---:|" + "---:|" * len(names),
    ]
    for trial in trials:
        wers = {row["name"]: row["wer"] for row in trial["subnets"]}
        cells = " | ".join(f"{100 * wers[n]:.1f}% ({ratio(wers[n], separate[n]):.2f})" for n in names)
        lines.append(
            f"| `{trial['sandwich_batch_split']}` | {trial['num_random_subnets']} | {trial['distillation']} | "
            f"{trial.get('smallest_loss_weight', 1.0):g} | {'yes' if trial.get('ctc_head_per_depth') else 'no'} | "
            f"{trial['supernet_train']['cpu_s']:.0f} | "
            f"{trial['load_average_end'][0]:.1f} | {cells} |"
        )
    return "\n".join(lines) + "\n"


def render_markdown(result: dict) -> str:
    splits, supernets, rows = result["batch_splits"], result["supernets"], result["subnets"]
    yes = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    fmt = lambda loss: "-" if loss is None else f"{loss:.3f}"  # noqa: E731
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    lines = [
        "# One supernet vs 4 separately trained models (issue 6)\n",
        f"Generated by `scripts/bench_supernet_vs_individual.py --dataset {result['dataset']} --max_steps "
        f"{result['max_steps']} --batch_splits {','.join(splits)}` on {result['date']} (torch {result['torch']}, "
        f"transformers {result['transformers']}, {result['threads']} torch thread(s), CPU `{result['machine']}`, 1-min "
        f"load average at the end {result['load_average_end'][0]:.1f}). {result['train_utterances']} training / "
        f"{result['test_utterances']} test utterances; every run: {result['max_steps']} steps of batch "
        f"{result['batch_size']}, AdamW lr {result['learning_rate']}, linear schedule with {result['warmup_steps']} "
        "warm-up steps, SpecAugment, char tokenizer, same initial weights. Supernets: largest + smallest + "
        f"{result['num_random_subnets']} random subnets per step, distillation {result['distillation']}, smallest "
        f"subnet's CTC loss weighted {result['smallest_loss_weight']:g}, "
        f"{'a CTC head per depth' if result.get('ctc_head_per_depth') else 'one CTC head shared by every depth'}; "
        "batch splits: "
        + "; ".join(f"`{split}` = {SPLIT_WORDS[split]}" for split in splits)
        + ". Separate: each architecture as a dense model, no distillation (no teacher).\n",
        "## Training cost (CPU seconds = user + system time of the process)\n",
        "| run | steps | CPU s | wall s | last logged train loss |",
        "|---|---:|---:|---:|---:|",
    ]
    for split in splits:
        run = supernets[split]["train"]
        lines.append(f"| supernet, `{split}` (4 subnets at once) | {run['steps']} | {run['cpu_s']:.0f} | "
                     f"{run['wall_s']:.0f} | {fmt(run['last_logged_train_loss'])} |")
    for row in rows:
        run = row["separate_train"]
        lines.append(f"| separate {row['name']} | {run['steps']} | {run['cpu_s']:.0f} | {run['wall_s']:.0f} | "
                     f"{fmt(run['last_logged_train_loss'])} |")
    lines += [f"| **separate total** | | **{result['separate_train_cpu_s']:.0f}** | "
              f"{result['separate_train_wall_s']:.0f} | |", ""]
    for split in splits:
        lines.append(f"Supernet `{split}` / separate total: **{supernets[split]['cost_ratio']:.2f}x** CPU seconds "
                     f"(goal <= {result['cost_goal']}x: {yes(supernets[split]['cost_met'])}); "
                     f"{supernets[split]['cpu_vs_separate_largest']:.2f}x the separate largest model alone.")
    header = "| subnet | params | WER separate | " + " | ".join(
        f"WER `{s}` (ratio)" for s in splits) + " | CER separate | " + " | ".join(f"CER `{s}`" for s in splits) + " |"
    lines += ["", "## Test WER / CER per subnet\n", header, "|---|---:|" + "---:|" * (2 + 2 * len(splits))]
    for row in rows:
        joint = row["supernets"]
        wers = " | ".join(
            f"{pct(joint[s]['wer'])} ({joint[s]['wer_ratio']:.2f}{'' if joint[s]['wer_ratio'] <= result['wer_goal'] else ' ✗'})"
            for s in splits)
        cers = " | ".join(pct(joint[s]["cer"]) for s in splits)
        lines.append(f"| {row['name']} | {row['params'] / 1e6:.2f} M | {pct(row['separate']['wer'])} | {wers} | "
                     f"{pct(row['separate']['cer'])} | {cers} |")
    lines += ["", f"✗: WER ratio above the goal of {result['wer_goal']}x.", "", "## Goals\n"]
    for split in splits:
        sup = supernets[split]
        lines.append(f"- `{split}`: CPU seconds <= {result['cost_goal']}x the separate total: {yes(sup['cost_met'])} "
                     f"({sup['cost_ratio']:.2f}x); every subnet's WER <= {result['wer_goal']}x its separately trained "
                     f"twin's: {yes(sup['wer_met'])} (worst {sup['worst_wer_ratio']:.2f}x).")
    mean_wer = sum(row["separate"]["wer"] for row in rows) / len(rows)
    std_error = math.sqrt(mean_wer * (1 - mean_wer) / result["test_utterances"])
    lines += [
        "",
        "## Reading the numbers\n",
        "- Cost: the separate smaller models cost less than the largest but not in proportion to their parameters "
        "(per-step work that does not shrink with the FFN width or depth — the convolutional front end, collation, "
        "the optimizer over the shared parts, CTC — is a large share at this size), so 0.35x of the four separate runs "
        f"is about {result['cost_goal'] * result['separate_train_cpu_s'] / rows[0]['separate_train']['cpu_s']:.2f}x "
        "the largest model's run alone. A `quarter` step is the largest on the whole batch plus three subnets on a "
        "quarter each, more than one largest-model step; a `split` step is four subnets on a quarter each plus the "
        "teacher's no-grad forward on the other three quarters (the ratios to the largest model's run are above).",
        "- WER: each subnet's share of the batch is what the cost buys. Under `split` every subnet, the largest "
        "included, trains on a quarter of each batch, its separately trained twin on all of it; under `quarter` the "
        "largest sees every row. The smallest (2 of the 4 layers) shares its layers and CTC head with the deeper "
        "subnets, which pull them towards features that suit deeper models (a likely reason it lags most).",
        f"- Noise: one test utterance is {100 / result['test_utterances']:.2f} WER points (one word each); at the "
        f"separate models' mean WER of {pct(mean_wer)} the binomial standard error of one WER is {100 * std_error:.1f} "
        "points. Training is deterministic for a seed on this CPU (rerunning gives the same WERs), so the spread to "
        "expect is from seed to seed, and this is one seed: ratios between close WERs are within that noise, gaps of "
        "several standard errors are not.",
        "- CPU seconds are not immune to other jobs: two processes on this 2-core machine inflate each other's CPU "
        "time (shared caches and memory bandwidth), so compare runs made under the same load: this run's (the load "
        "average at the end is given above), not the trials' below.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
