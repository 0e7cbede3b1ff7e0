"""Quickstart: train once, deploy many — on the spoken digits bundled with hf_supernet, on CPU, in ~10 minutes.

1. load the bundled Free Spoken Digit Dataset (real recordings, 8 kHz resampled to 16 kHz), hold out a dev split;
2. train a character tokenizer and a small supernet Conformer-CTC with sandwich sampling + in-place distillation;
3. search the best subnet for 50% and 75% of the parameters on the dev split;
4. evaluate the largest, the smallest and the selected subnets on the test split (params, FLOPs, WER, CER);
5. extract every one into ``<output_dir>/subnets/<name>/`` (weights + config + processor), save the supernet with
   its ``selected_subnets`` to ``<output_dir>/supernet/`` and the table to ``<output_dir>/results.json``.

    python scripts/quickstart.py                       # the README's main job
    python scripts/quickstart.py --smoke               # seconds: a tiny model and a few steps (used by the tests)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser, set_seed

import hf_supernet  # noqa: F401  (registers the Auto classes)
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
from hf_supernet.search import collate_batches, evaluate_subnet, plot_pareto, search_subnets
from hf_supernet.training import SupernetTrainer, SupernetTrainingArguments, WallClockLimitCallback

logger = logging.getLogger("quickstart")


@dataclass
class QuickstartArguments:
    output_dir: str = field(default="outputs/quickstart", metadata={"help": "Where everything is written."})
    max_steps: int = field(default=1300, metadata={"help": "Optimizer steps (sets the learning-rate schedule)."})
    time_budget_minutes: float = field(default=8.5, metadata={"help": "Training stops early after this long."})
    seed: int = field(default=0, metadata={"help": "Seed of everything (data split, init, subnet sampling)."})
    budgets: str = field(default="0.5,0.75", metadata={"help": "Parameter fractions to search subnets for."})
    smoke: bool = field(default=False, metadata={"help": "Tiny model, data and step count: checks the pipeline."})


def model_config(tokenizer, smoke: bool) -> SupernetConformerConfig:
    """4 x 144 Conformer (about the size of the 2.5 M-parameter baseline in the README), or a toy for --smoke."""
    size = (
        dict(hidden_size=32, num_hidden_layers=2, intermediate_size=64, subsampling_conv_channels=16)
        if smoke
        else dict(hidden_size=144, num_hidden_layers=4, intermediate_size=576, subsampling_conv_channels=96)
    )
    return SupernetConformerConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        num_attention_heads=4,
        conv_kernel_size=15,
        **size,
    )


def training_arguments(args: QuickstartArguments) -> SupernetTrainingArguments:
    return SupernetTrainingArguments(
        output_dir=os.path.join(args.output_dir, "trainer"),
        per_device_train_batch_size=32,
        max_steps=3 if args.smoke else args.max_steps,
        learning_rate=2e-3,
        warmup_steps=0 if args.smoke else 100,
        lr_scheduler_type="linear",
        weight_decay=0.01,
        num_random_subnets=2,
        sandwich_batch_split="quarter",
        distillation="kl",
        logging_steps=50,
        # Batches of similar lengths: less padding, so more audio per second of CPU.
        train_sampling_strategy="group_by_length",
        length_column_name="length",
        remove_unused_columns=False,
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
    )


def main(argv=None) -> list[dict]:
    (args,) = HfArgumentParser(QuickstartArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(args.seed)
    start = time.monotonic()

    # 1. data: bundled spoken digits; the train split's last 10% becomes the dev split the search scores on.
    splits = load_speech_dataset("fsdd")
    train, test = splits["train"], splits["test"]
    if args.smoke:
        train, test = train.select(range(0, len(train), 20)), test.select(range(0, len(test), 10))
    held_out = train.train_test_split(test_size=0.1, seed=args.seed)
    train, dev = held_out["train"], held_out["test"]

    # 2. tokenizer, processor, features.
    tokenizer = train_tokenizer(train["text"], model_type="char")
    processor = build_processor(tokenizer)
    train, dev, test = (prepare_dataset(d, processor) for d in (train, dev, test))
    config = model_config(tokenizer, args.smoke)
    model = SupernetConformerForCTC(config)
    train = filter_ctc_feasible(train, model._get_feat_extract_output_lengths)
    logger.info("train/dev/test: %d/%d/%d utterances; supernet: %.2f M parameters", len(train), len(dev), len(test), model.num_parameters() / 1e6)

    collator = DataCollatorCTCWithPadding(processor, spec_augment=None if args.smoke else {"mask_time_prob": 0.05, "mask_feature_prob": 0.05})
    training_args = training_arguments(args)
    clock = WallClockLimitCallback(args.time_budget_minutes * 60)
    trainer = SupernetTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        data_collator=collator,
        callbacks=[SpecAugmentCallback(collator), clock],
    )
    train_start = time.monotonic()
    trainer.train()
    if clock.stopped_early:
        logger.warning("training stopped by the %.1f-minute budget at step %d", args.time_budget_minutes, trainer.state.global_step)
    train_minutes = (time.monotonic() - train_start) / 60

    # 3. search the best subnet per budget on the dev split (proxy: CTC loss).
    budgets = [float(b) for b in args.budgets.split(",")]
    selected, scored = search_subnets(
        model, dev, data_collator=collator, tokenizer=tokenizer, budgets=budgets,
        population=4 if args.smoke else 10, generations=1 if args.smoke else 3, proxy_examples=128, seed=args.seed,
    )

    # 4. evaluate on test.
    space = model.subnet_space
    subnets = {"largest": space.largest(), "smallest": space.smallest()}
    subnets.update({entry["name"]: hf_supernet.SubnetSpec.from_dict(entry["spec"]) for entry in selected})
    test_batches = collate_batches(test, collator)
    rows = []
    for name, spec in subnets.items():
        costs = model.subnet_costs(spec)
        metrics = evaluate_subnet(model, spec, test_batches, tokenizer)
        rows.append({"name": name, "params": costs.params, "flops": costs.flops, "wer": metrics["wer"], "cer": metrics["cer"], "spec": spec.to_dict()})

    # 5. extract, save, report.
    os.makedirs(args.output_dir, exist_ok=True)
    for row in rows:
        folder = os.path.join(args.output_dir, "subnets", row["name"])
        model.extract_subnet(hf_supernet.SubnetSpec.from_dict(row["spec"])).save_pretrained(folder)
        processor.save_pretrained(folder)
    supernet_dir = os.path.join(args.output_dir, "supernet")
    model.save_pretrained(supernet_dir)
    processor.save_pretrained(supernet_dir)
    # Inside the supernet folder, where publishing (scripts/publish.py) finds it for the model cards.
    plot_pareto(scored, selected, os.path.join(supernet_dir, "pareto.png"), title="quickstart subnet search (dev loss)")
    results = [{k: row[k] for k in ("name", "params", "flops", "wer", "cer")} for row in rows]
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)

    print(f"\nTrained {trainer.state.global_step} steps in {train_minutes:.1f} min; total {(time.monotonic() - start) / 60:.1f} min.")
    print(f"Test split of the bundled spoken digits ({len(test)} utterances):\n")
    print("| subnet | params | GFLOPs / s audio | WER | CER |")
    print("|---|---:|---:|---:|---:|")
    for row in results:
        print(f"| {row['name']} | {row['params'] / 1e6:.2f} M | {row['flops'] / 1e9:.3f} | {100 * row['wer']:.1f}% | {100 * row['cer']:.1f}% |")
    print(f"\nWrote {args.output_dir}/results.json, subnets/<name>/ and supernet/.")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
