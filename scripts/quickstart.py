"""Quickstart: train once, deploy many — on the spoken digits bundled with hf_supernet, on CPU, in ~10 minutes.

1. load the bundled Free Spoken Digit Dataset (real recordings, 8 kHz resampled to 16 kHz): train on one to three
   of its clips joined by pauses, half as recorded and half with silence around them, noise, gain and speed
   perturbation, made on the fly (default; ``--train_data isolated_augmented``: single clips so;
   ``--train_data isolated``: the trimmed clips only), or with ``--train_data connected`` on connected-digit strings
   built from them on the fly (1-5 digits with pauses, silence, noise, gain and speed: what a person's own recording
   of a PIN sounds like), or with ``--train_data isolated_then_connected`` on clean clips first and connected strings
   after; a tenth of the train recordings make the dev set (items drawn as the training items for short_strings and
   isolated_augmented, connected strings otherwise);
2. train a tokenizer with one piece per digit word and a small supernet Conformer-CTC (8x subsampling) with
   sandwich sampling (the largest, the smallest and one random subnet a step) + in-place distillation;
3. search the best subnet for 50% and 75% of the parameters on the dev set;
4. evaluate the largest, the smallest and the selected subnets (params, FLOPs) on the isolated clean test clips
   (WER, CER) and on fixed connected-digit test strings made from the test recordings only (connected WER, CER);
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

from transformers import HfArgumentParser, set_seed

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet import SupernetConformerForCTC
from hf_supernet.atomic import atomic_directory, atomic_file
from hf_supernet.data import LengthGroupedStream, SpecAugmentCallback, filter_ctc_feasible
from hf_supernet.publishing.export import write_deployable
from hf_supernet.search import collate_batches, evaluate_subnet, plot_pareto, search_subnets
from hf_supernet.training import SupernetTrainer, WallClockLimitCallback
from hf_supernet.training.recipes import digits_training_arguments, load_connected_digits, small_conformer_config

logger = logging.getLogger("quickstart")


# What the dev split the search scores on holds (load_connected_digits), as the search records it.
DEV_NAMES = {"isolated_augmented": "fsdd-augmented-clips", "short_strings": "fsdd-short-digit-strings"}


@dataclass
class QuickstartArguments:
    output_dir: str = field(default="outputs/quickstart", metadata={"help": "Where everything is written."})
    train_data: str = field(default="short_strings", metadata={
        "help": "short_strings (default): one to three clips joined by pauses, half as recorded and half with silence "
                "around them, noise, gain and speed, made on the fly (robust to a person's silence and noise floor; "
                "the strings teach several words); isolated_augmented: single clips so; isolated: "
                "FSDD's trimmed single clips only; connected: strings of 1-5 digits with pauses, silence and noise "
                "built on the fly (what a person records; in a 7.5-minute budget on 2 cores it did not leave the CTC "
                "blank plateau: give it --time_budget_minutes 30 or more); isolated_then_connected: --isolated_steps "
                "steps of clean clips, then connected strings."})
    # Defaults per train_data: what 2 CPU cores fit in the training budget, so that the learning rate has decayed
    # when the budget ends (isolated clips: ~0.4 s a step of 32; connected strings: ~1.2 s a step of 16, measured
    # before on-the-fly data was grouped by length). Short strings, grouped by length: ~0.7 s a step of 32 at 4x
    # subsampling; at 8x (the default) ~0.54 s with two random subnets a step and 0.47-0.52 s with one (the default
    # --num_random_subnets; README's two runs), so ~1050 steps fill the 8.5-minute budget; batches of 16 did worse in
    # a single-seed pilot (outside the repository).
    max_steps: int | None = field(default=None, metadata={"help": "Optimizer steps (sets the learning-rate schedule); default 1100 isolated, 400 connected, 950 isolated_then_connected, 850 isolated_augmented, 1050 short_strings."})
    batch_size: int | None = field(default=None, metadata={"help": "Utterances per batch; default 32 for single clips and short strings (isolated, isolated_augmented, short_strings), 16 otherwise."})
    learning_rate: float | None = field(default=None, metadata={
        "help": "Peak learning rate (AdamW, 100 warm-up steps, linear decay); default 1e-3 for short_strings, the "
                "recipe's 2e-3 otherwise. The word-piece model first sits on the CTC blank plateau; in single-seed "
                "pilots it left it later at 2e-3 and 3e-3, and learned slower after it at 5e-4."})
    isolated_steps: int = field(default=650, metadata={"help": "isolated_then_connected: steps on clean clips first."})
    tokenizer_model_type: str = field(default="word", metadata={
        "help": "word (default): one SentencePiece piece per digit word, so a digit is one CTC label; char: the "
                "letters and the space (five labels for 'seven')."})
    subsampling_factor: int = field(default=8, metadata={
        "help": "8 (default): 80 ms output frames, enough for one label per digit word and half the frames of 4 "
                "(faster steps: more of them in the budget); use 4 with --tokenizer_model_type char, whose letters "
                "need the 40 ms frames."})
    num_random_subnets: int = field(default=1, metadata={
        "help": "Random subnets a sandwich step trains besides the largest and the smallest: 1 (default) made a "
                "step 3-12% cheaper than the recipe's 2 in README's runs (the model is still learning when the budget "
                "ends, so steps count); 0 trains only the two ends, so the middle sizes the search picks are never trained."})
    time_budget_minutes: float = field(default=8.5, metadata={
        "help": "Training stops early after this long (8.5: the whole main job, data to published folders, then "
                "takes ~9.2 minutes on 2 cores)."})
    seed: int = field(default=0, metadata={"help": "Seed of everything (data split, init, subnet sampling)."})
    budgets: str = field(default="0.5,0.75", metadata={"help": "Parameter fractions to search subnets for."})
    smoke: bool = field(default=False, metadata={"help": "Tiny model, data and step count: checks the pipeline."})


def main(argv=None) -> list[dict]:
    (args,) = HfArgumentParser(QuickstartArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(args.seed)
    start = time.monotonic()

    # 1-2. data (the bundled spoken digits: isolated clips or connected strings made on the fly; dev strings from
    # held-out recordings for the search), tokenizer, processor; the recipe's 4 x 144 supernet.
    isolated = args.train_data == "isolated"
    batch_size = args.batch_size or (32 if args.train_data in ("isolated", "isolated_augmented", "short_strings") else 16)
    max_steps = args.max_steps or {"isolated": 1100, "connected": 400, "isolated_augmented": 850,
                                   "short_strings": 1050}.get(args.train_data, 950)
    isolated_steps = 2 if args.smoke else args.isolated_steps
    data = load_connected_digits("fsdd", seed=args.seed, smoke=args.smoke, train_on=args.train_data,
                                 isolated_items=isolated_steps * batch_size,
                                 tokenizer_model_type=args.tokenizer_model_type)
    processor, tokenizer, collator = data.processor, data.tokenizer, data.collator
    dev, test, test_connected = data.dev, data.test, data.test_connected
    model = SupernetConformerForCTC(small_conformer_config(tokenizer, smoke=args.smoke,
                                                           subsampling_factor=args.subsampling_factor))
    train = filter_ctc_feasible(data.train, model._get_feat_extract_output_lengths) if isolated else data.train
    logger.info("train on %s; dev/test/connected test: %d/%d/%d utterances; supernet: %.2f M parameters", args.train_data, len(dev), len(test), len(test_connected), model.num_parameters() / 1e6)

    if not isolated:
        # Items drawn on the fly have no length to group batches by before they are drawn: the stream draws 16
        # batches' worth in index order (a curriculum's stages follow the index; each item is a fresh random draw
        # either way), sorts them by length and yields them as batches of neighbours, so less of a step is padding.
        train = LengthGroupedStream(train, batch_size, seed=args.seed)
    # Unless set (or short_strings' 1e-3), the recipe's own learning rate.
    learning_rate = args.learning_rate or (1e-3 if args.train_data == "short_strings" else None)
    training_args = digits_training_arguments(os.path.join(args.output_dir, "trainer"), max_steps, args.seed, args.smoke,
                                              per_device_train_batch_size=batch_size,
                                              num_random_subnets=args.num_random_subnets,
                                              **({"learning_rate": learning_rate} if learning_rate else {}))
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
        population=4 if args.smoke else 10, generations=1 if args.smoke else 3, proxy_examples=64, seed=args.seed,
        eval_name=DEV_NAMES.get(args.train_data, "fsdd-connected-digits"), eval_split="dev",
    )

    # 4. evaluate on test.
    space = model.subnet_space
    subnets = {"largest": space.largest(), "smallest": space.smallest()}
    subnets.update({entry["name"]: hf_supernet.SubnetSpec.from_dict(entry["spec"]) for entry in selected})
    test_batches, connected_batches = collate_batches(test, collator), collate_batches(test_connected, collator)
    rows = []
    for name, spec in subnets.items():
        costs = model.subnet_costs(spec)
        isolated = evaluate_subnet(model, spec, test_batches, tokenizer)
        connected = evaluate_subnet(model, spec, connected_batches, tokenizer)
        rows.append({
            "name": name, "params": costs.params, "flops": costs.flops, "wer": isolated["wer"], "cer": isolated["cer"],
            "connected_wer": connected["wer"], "connected_cer": connected["cer"], "spec": spec.to_dict(),
        })

    # 5. extract, save, report.
    # Each folder is written whole or not at all (files others put there are kept). A subnet is the plain dense
    # ConformerForCTC, saved with its code and the processor's: it loads with trust_remote_code=True anywhere.
    os.makedirs(args.output_dir, exist_ok=True)
    for row in rows:
        with atomic_directory(os.path.join(args.output_dir, "subnets", row["name"]), carry_over=True) as folder:
            write_deployable(model.extract_subnet(hf_supernet.SubnetSpec.from_dict(row["spec"])), folder, processor)
    with atomic_directory(os.path.join(args.output_dir, "supernet"), carry_over=True) as supernet_dir:
        model.save_pretrained(supernet_dir)
        processor.save_pretrained(supernet_dir)
        # Inside the supernet folder, where publishing (scripts/publish.py) finds it for the model cards.
        plot_pareto(scored, selected, supernet_dir / "pareto.png", title="quickstart subnet search (dev loss)")
    results = [{k: v for k, v in row.items() if k != "spec"} for row in rows]
    with atomic_file(os.path.join(args.output_dir, "results.json")) as tmp:  # a stopped run leaves the old table
        tmp.write_text(json.dumps(results, indent=2))

    print(f"\nTrained {trainer.state.global_step} steps in {train_minutes:.1f} min; total {(time.monotonic() - start) / 60:.1f} min.")
    print(f"Bundled spoken digits: {len(test)} isolated test clips; {len(test_connected)} connected test strings "
          "(2-7 digits, silence, noise; test recordings only):\n")
    print("| subnet | params | GFLOPs / s audio | isolated WER | isolated CER | connected WER | connected CER |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in results:
        print(f"| {row['name']} | {row['params'] / 1e6:.2f} M | {row['flops'] / 1e9:.3f} | {100 * row['wer']:.1f}% | "
              f"{100 * row['cer']:.1f}% | {100 * row['connected_wer']:.1f}% | {100 * row['connected_cer']:.1f}% |")
    print(f"\nWrote {args.output_dir}/results.json, subnets/<name>/ and supernet/.")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
