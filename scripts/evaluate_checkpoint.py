"""Evaluate a checkpoint on a speech split: one row per subnet with params, FLOPs, WER, CER and real-time factor.

(Not named `evaluate.py`: a script of that name shadows the `evaluate` library for everything it imports.)

    python scripts/evaluate_checkpoint.py outputs/quickstart/supernet --dataset fsdd --split test
    python scripts/evaluate_checkpoint.py outputs/quickstart/subnets/params_50pct --dataset fsdd --split test
    python scripts/evaluate_checkpoint.py CHECKPOINT --subnets largest,smallest --output_json table.json

A supernet checkpoint is evaluated as its largest and smallest subnets and every entry of
`config.selected_subnets` (or the names given with --subnets); an extracted subnet is evaluated as itself. The
processor is loaded from the checkpoint folder. Real-time factor = CPU seconds spent in the model's forward passes /
seconds of audio (lower is faster; < 1 is faster than real time).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from transformers import AutoModelForCTC, AutoProcessor

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet import SubnetSpec, load_speech_dataset
from hf_supernet.data import DataCollatorCTCWithPadding, prepare_dataset
from hf_supernet.search import collate_batches, evaluate_subnet


def subnets_of(model, names: list[str] | None) -> dict[str, SubnetSpec]:
    space = model.subnet_space
    available = {"largest": space.largest(), "smallest": space.smallest()}
    for entry in model.config.selected_subnets or []:
        available[entry["name"]] = SubnetSpec.from_dict(entry["spec"])
    if names is None:
        return available if len(set(available.values())) > 1 else {"model": space.largest()}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"Unknown subnets {unknown}; this checkpoint has {sorted(available)}.")
    return {n: available[n] for n in names}


@torch.no_grad()
def real_time_factor(model, spec, batches, audio_seconds: float) -> float:
    model.eval()
    start = time.process_time()
    with model.use_subnet(spec):
        for batch in batches:
            model(input_features=batch["input_features"], attention_mask=batch["attention_mask"])
    return (time.process_time() - start) / audio_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="Folder with config.json, model.safetensors and the processor.")
    parser.add_argument("--dataset", default="fsdd", help="'fsdd', 'mini_librispeech', a manifest folder or a datasets name.")
    parser.add_argument("--split", default="test")
    parser.add_argument("--subnets", default=None, help="Comma-separated subnet names (default: all).")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args()

    model = AutoModelForCTC.from_pretrained(args.checkpoint).eval()
    processor = AutoProcessor.from_pretrained(args.checkpoint)
    data = prepare_dataset(load_speech_dataset(args.dataset, args.split), processor)
    audio_seconds = float(sum(data["duration"]))
    batches = collate_batches(data, DataCollatorCTCWithPadding(processor), args.batch_size)

    rows = []
    for name, spec in subnets_of(model, args.subnets.split(",") if args.subnets else None).items():
        costs = model.subnet_costs(spec)
        metrics = evaluate_subnet(model, spec, batches, processor.tokenizer)
        rtf = real_time_factor(model, spec, batches, audio_seconds)
        rows.append({"name": name, "params": costs.params, "flops": costs.flops, "wer": metrics["wer"], "cer": metrics["cer"], "rtf": rtf})

    print(f"{args.checkpoint} on {args.dataset}/{args.split} ({len(data)} utterances, {audio_seconds / 60:.1f} min of audio):\n")
    print("| subnet | params | GFLOPs / s audio | WER | CER | RTF |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['params'] / 1e6:.2f} M | {r['flops'] / 1e9:.3f} | {100 * r['wer']:.1f}% | {100 * r['cer']:.1f}% | {r['rtf']:.4f} |")
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
