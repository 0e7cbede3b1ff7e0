"""The three ways to carve subnets, side by side: layer_width (TODM), orthosoftmax and omni_sparsity supernets trained
with the same recipe, data and number of steps, then each searched at ~25/50/75/100% of its parameters and of its
FLOPs and scored on the test split.

    python scripts/compare_methods.py                               # staged FSDD if ../shared/data is there
    python scripts/compare_methods.py --max_steps 600 --methods layer_width,omni_sparsity
    python scripts/compare_methods.py --smoke                       # seconds, a pipeline check

Every method uses the recipe of :mod:`hf_supernet.training.recipes` (4 x 144 Conformer, AdamW 2e-3, batches of 32,
sandwich with KL distillation) plus the settings its paper uses (listed in ``METHOD_SETTINGS``). Per budget, the
subnet is found by the same evolutionary search on the dev split (CTC loss) and scored on test. Writes
``benchmarks/results/compare_methods.{json,md,png}``. CPU seconds of each training run are reported; train on an
otherwise idle machine if you compare them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from datetime import datetime, timezone

import torch
from transformers import set_seed

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet.latency import cpu_seconds
from hf_supernet import SubnetSpec, SupernetConformerForCTC
from hf_supernet.data import SpecAugmentCallback
from hf_supernet.search import collate_batches, evaluate_subnet, search_subnets
from hf_supernet.training import SupernetTrainer
from hf_supernet.training.recipes import (
    digits_training_arguments,
    feasible_train_split,
    load_digits,
    small_conformer_config,
    staged_or_bundled_fsdd,
)

logger = logging.getLogger("compare_methods")
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RESULTS = os.path.join(REPO, "benchmarks", "results")
FRACTIONS = (0.25, 0.5, 0.75, 1.0)

# Per method: (config overrides, training-argument overrides), on top of the shared recipe. Schedules are scaled
# to the step budget in `method_settings`.
METHOD_SETTINGS = {
    # TODM: drop top layers, prefix-trim FFN widths; the largest subnet sees the whole batch, the others a quarter.
    "layer_width": ({}, {"sandwich_batch_split": "quarter"}),
    # Omni-sparsity: 4 equal batch parts, adaptive dropout 0.1 (1 - s); cubic schedule over the first ~60% of steps.
    "omni_sparsity": ({"mask_type": "omni_sparsity"}, {"sandwich_batch_split": "split", "adaptive_dropout": True}),
    # OrthoSoftmax: FLOPs-aware nested masks; soft stage over the first 60% of steps, then hard-mask sandwich. Every
    # subnet sees the whole batch, one random subnet per step: on 900-step FSDD runs this gave 9.7% largest-subnet
    # WER against 17.0% with the quarter split (the soft stage trains the mask scores on every row).
    "orthosoftmax": ({"mask_type": "orthosoftmax"}, {"sandwich_batch_split": "full", "num_random_subnets": 1}),
}


def method_settings(method: str, max_steps: int) -> tuple[dict, dict]:
    config, training = (dict(d) for d in METHOD_SETTINGS[method])
    if method == "omni_sparsity":
        config.update(
            omni_sparsity_prune_interval=max(1, max_steps // 20),
            omni_sparsity_schedule_steps=max(1, (3 * max_steps) // 5),
        )
    if method == "orthosoftmax":
        config.update(orthosoftmax_stage1_steps=max(1, (3 * max_steps) // 5))
    return config, training


def train_method(method: str, data, args) -> tuple[SupernetConformerForCTC, dict]:
    set_seed(args.seed)
    config_overrides, training_overrides = method_settings(method, args.max_steps)
    model = SupernetConformerForCTC(small_conformer_config(data.tokenizer, smoke=args.smoke, **config_overrides))
    training_args = digits_training_arguments(
        os.path.join(args.work_dir, method), args.max_steps, args.seed, args.smoke, **training_overrides
    )
    trainer = SupernetTrainer(
        model=model, args=training_args, train_dataset=feasible_train_split(data, model),
        data_collator=data.collator, callbacks=[SpecAugmentCallback(data.collator)],
    )
    cpu, wall = cpu_seconds(), time.monotonic()
    trainer.train()
    return model.eval(), {
        "steps": trainer.state.global_step,
        "cpu_seconds": cpu_seconds() - cpu,
        "wall_seconds": time.monotonic() - wall,
        "supernet_params": model.num_parameters(),
    }


def score_budgets(model, data, args) -> list[dict]:
    """Search each params/FLOPs fraction on dev, score the winners on test."""
    full = model.subnet_costs(model.subnet_space.largest())
    budgets = [f for f in FRACTIONS] + [{"flops": f * full.flops} for f in FRACTIONS]
    selected, _ = search_subnets(
        model, data.dev, data_collator=data.collator, budgets=budgets, population=4 if args.smoke else 8,
        generations=1 if args.smoke else 2, proxy_examples=128, seed=args.seed, write_config=False,
        measure_latency=False, progress=False,
    )
    test = collate_batches(data.test, data.collator)
    rows = []
    for budget, entry in zip(budgets, selected_by_budget(budgets, selected)):
        kind, fraction = ("flops", budget["flops"] / full.flops) if isinstance(budget, dict) else ("params", budget)
        row = {"budget": kind, "fraction": round(fraction, 2)}
        if entry is None:
            row.update(fits=False)
        else:
            spec = SubnetSpec.from_dict(entry["spec"])
            costs = model.subnet_costs(spec)
            metrics = evaluate_subnet(model, spec, test, data.tokenizer)
            row.update(
                fits=True, params=costs.params, flops=costs.flops, params_share=costs.params / full.params,
                flops_share=costs.flops / full.flops, wer=metrics["wer"], cer=metrics["cer"], spec=entry["spec"],
            )
        rows.append(row)
    return rows


def selected_by_budget(budgets, selected):
    by_budget = {json.dumps(e["budget"], sort_keys=True): e for e in selected}
    return [by_budget.get(json.dumps(b, sort_keys=True)) for b in budgets]


def write_results(result: dict, results_dir: str) -> None:
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, "compare_methods.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [
        "# Three ways to carve subnets, one recipe",
        "",
        f"`python scripts/compare_methods.py --max_steps {result['max_steps']}` on {result['data']} "
        f"({result['train_utterances']} train / {result['test_utterances']} test utterances), {result['date']}, "
        f"{result['machine']}. WER / CER on test (%), subnet chosen per budget by search on dev loss.",
        "",
        "| method | budget | target | params (share) | FLOPs share | WER | CER |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for method, run in result["methods"].items():
        for row in run["budgets"]:
            if not row["fits"]:
                lines.append(f"| {method} | {row['budget']} | {row['fraction']:.2f} | nothing fits | | | |")
                continue
            lines.append(
                f"| {method} | {row['budget']} | {row['fraction']:.2f} | {row['params'] / 1e6:.2f} M "
                f"({row['params_share']:.2f}) | {row['flops_share']:.2f} | {100 * row['wer']:.1f} | {100 * row['cer']:.1f} |"
            )
    lines += ["", "| method | steps | training CPU s | wall s |", "|---|---:|---:|---:|"]
    for method, run in result["methods"].items():
        t = run["training"]
        lines.append(f"| {method} | {t['steps']} | {t['cpu_seconds']:.0f} | {t['wall_seconds']:.0f} |")
    lines += ["", "Pareto plot: `compare_methods.png` (test WER vs params and vs FLOPs share)."]
    with open(os.path.join(results_dir, "compare_methods.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(result, os.path.join(results_dir, "compare_methods.png"))
    print("\n".join(lines))


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind, key in ((axes[0], "params", "params_share"), (axes[1], "flops", "flops_share")):
        for method, run in result["methods"].items():
            rows = sorted((r for r in run["budgets"] if r["fits"] and r["budget"] == kind), key=lambda r: r[key])
            ax.plot([r[key] for r in rows], [100 * r["wer"] for r in rows], "o-", label=method)
        ax.set_xlabel(f"{kind} share of the largest subnet")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test WER (%)")
    axes[0].legend()
    fig.suptitle("Subnets of three supernets trained the same way")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="layer_width,orthosoftmax,omni_sparsity")
    parser.add_argument("--data", default=None, help="FSDD source (default: staged ../shared/data/fsdd, else bundled).")
    parser.add_argument("--max_steps", type=int, default=1300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work_dir", default="outputs/compare_methods")
    parser.add_argument("--results_dir", default=RESULTS)
    parser.add_argument("--smoke", action="store_true", help="Toy model, few utterances and steps.")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    torch.set_num_threads(args.threads)

    source = args.data or staged_or_bundled_fsdd(REPO)
    data = load_digits(source, seed=args.seed, smoke=args.smoke)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads",
        "data": source if not args.smoke else f"{source} (smoke subset)",
        "train_utterances": len(data.train),
        "test_utterances": len(data.test),
        "max_steps": args.max_steps,
        "methods": {},
    }
    for method in args.methods.split(","):
        logger.info("training the %s supernet", method)
        model, training = train_method(method, data, args)
        result["methods"][method] = {"training": training, "budgets": score_budgets(model, data, args)}
    write_results(result, args.results_dir)
    return result


if __name__ == "__main__":
    main()
