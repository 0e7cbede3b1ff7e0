"""Search the best subnet of a saved supernet for each budget, and write them into its config.

    python scripts/search.py outputs/quickstart/supernet --dataset fsdd --split train --budgets 0.3,0.5,0.75
    python scripts/search.py SUPERNET --budgets '[{"flops": 1e8}, {"latency": 0.005}]' --metric wer --output_dir searched/

Budgets are fractions of the parameters or dicts of limits on params, flops (per second of audio), int8_mb or latency
(real-time factor measured on this machine, cached per machine).

The fitness is the dev-set CTC loss (or WER) on the first `--proxy_examples` utterances; each budget's winner is
then scored on the whole split. The supernet (with `selected_subnets`) and its processor are saved to
`--output_dir` (default: in place), with `pareto.png` (every scored subnet, the selected ones starred), as one atomic
write that keeps the folder's other files. New entries replace those of the same name in `selected_subnets`; the
others (and the previous entry of a budget nothing fits) are kept. When no budget can be served nothing is written
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from transformers import AutoModelForCTC, AutoProcessor

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet import load_speech_dataset
from hf_supernet.atomic import atomic_directory
from hf_supernet.data import DataCollatorCTCWithPadding, prepare_dataset
from hf_supernet.search import budget_name, plot_pareto, search_subnets


def parse_budgets(text: str) -> list:
    """``0.3,0.5`` (fractions of the parameters) or a JSON list/dict of absolute limits."""
    text = text.strip()
    if text.startswith(("{", "[")):
        value = json.loads(text)
        return value if isinstance(value, list) else [value]
    return [float(b) for b in text.split(",")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet", help="Folder of a saved supernet and its processor.")
    parser.add_argument("--dataset", default="fsdd")
    parser.add_argument("--split", default="test", help="Split scored by the search (use a dev split).")
    parser.add_argument("--budgets", default="0.25,0.5,0.75", type=parse_budgets)
    parser.add_argument("--metric", default="loss", choices=["loss", "wer"])
    parser.add_argument("--population", type=int, default=12)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--proxy_examples", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output_dir", default=None, help="Where to save the supernet (default: in place).")
    parser.add_argument(
        "--no_batch_norm_calibration", action="store_true",
        help="Score subnets of a supernet with BatchNorm (Parakeet) with the supernet's shared statistics instead of "
        "re-estimating them per subnet on the first --proxy_examples utterances (the default).",
    )
    args = parser.parse_args(argv)

    model = AutoModelForCTC.from_pretrained(args.supernet).eval()
    processor = AutoProcessor.from_pretrained(args.supernet)
    data = prepare_dataset(load_speech_dataset(args.dataset, args.split), processor)
    selected, scored = search_subnets(
        model, data, data_collator=DataCollatorCTCWithPadding(processor), tokenizer=processor.tokenizer,
        budgets=args.budgets, metric=args.metric, population=args.population, generations=args.generations,
        proxy_examples=args.proxy_examples, seed=args.seed, eval_name=args.dataset, eval_split=args.split,
        calibrate_batch_norm=False if args.no_batch_norm_calibration else None,
    )
    missing = [budget_name(b) for b in args.budgets if budget_name(b) not in {e["name"] for e in selected}]
    if missing:
        smallest = model.subnet_costs(model.subnet_space.smallest())
        kept = {e["name"] for e in model.config.selected_subnets} & set(missing)
        print(
            f"No subnet fits {', '.join(missing)}: the smallest subnet has {smallest.params / 1e6:.2f} M params and "
            f"{smallest.flops / 1e9:.3f} GFLOPs / s audio."
            + (f" The earlier entries {sorted(kept)} are kept unchanged." if kept else ""),
            file=sys.stderr,
        )
    if not selected:
        print(f"No budget could be served; nothing was written to {args.output_dir or args.supernet}.", file=sys.stderr)
        return 1
    output_dir = args.output_dir or args.supernet
    # One atomic write (weights, config, processor, plot together); the folder's other files are kept.
    with atomic_directory(output_dir, carry_over=True) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        plot_pareto(scored, selected, tmp / "pareto.png", title=f"subnet search ({args.metric})")
    print(f"{len(scored)} subnets scored; selected (metrics on all of {args.dataset}/{args.split}):\n")
    print("| name | params | GFLOPs / s audio | RTF here | loss | WER | CER |\n|---|---:|---:|---:|---:|---:|---:|")
    for e in selected:
        m, c = e["metrics"], e["costs"]
        print(
            f"| {e['name']} | {c['params'] / 1e6:.2f} M | {c['flops'] / 1e9:.3f} | {c['latency']:.4f} | {m['loss']:.3f} "
            f"| {100 * m['wer']:.1f}% | {100 * m['cer']:.1f}% |"
        )
    print(f"\nSaved to {output_dir} (config.selected_subnets, pareto.png).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
