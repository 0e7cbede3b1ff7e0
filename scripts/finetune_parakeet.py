"""Fine-tune a Parakeet as a supernet, then search, extract and save stock ParakeetForCTC subnets.

1. the ParakeetForCTC to start from: ``--parakeet PATH`` (a folder or Hub id holding the model and its processor,
   e.g. nvidia/parakeet-ctc-0.6b on a GPU machine), or, by default here (no pretrained weights can be downloaded on
   these machines), a small ParakeetForCTC trained from scratch on the bundled spoken digits with a character
   Parakeet processor, saved to ``<output_dir>/parakeet/``;
2. make it elastic (``SupernetConformerForCTC.from_parakeet``: layer_width, TODM's layer drops and widths, one width
   per subnet so that every subnet is a stock ParakeetForCTC) and fine-tune it with the ``todm`` preset (sandwich,
   quarter batch split, AlphaNet distillation on the top 10 classes, adaptive dropout, the switch to ScaledAdam);
3. search the best subnet per budget on the dev split (each candidate with its own BatchNorm statistics);
4. score the largest, smallest and selected subnets on the test split with their BatchNorm statistics re-estimated on
   dev audio and with the supernet's shared ones, extract each as a stock ParakeetForCTC (re-estimated statistics)
   into ``<output_dir>/subnets/<name>/`` with the processor, save the supernet to ``<output_dir>/supernet/`` and the
   table to ``<output_dir>/results.json``.

    python scripts/finetune_parakeet.py                                  # tiny Parakeet trained here, then elastic
    python scripts/finetune_parakeet.py --parakeet nvidia/parakeet-ctc-0.6b --output_dir out   # a real checkpoint
    python scripts/finetune_parakeet.py --smoke                          # seconds: checks the pipeline
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser, ParakeetForCTC, Trainer, set_seed

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet import SubnetSpec, SupernetConformerForCTC, batch_norm_recalibrated
from hf_supernet.atomic import atomic_directory, atomic_file
from hf_supernet.data import SpecAugmentCallback, build_parakeet_processor, filter_ctc_feasible
from hf_supernet.models.supernet_conformer.parakeet import load_parakeet_processor
from hf_supernet.paper_recipes import recipe_config_fields
from hf_supernet.search import collate_batches, evaluate_subnet, plot_pareto, search_subnets
from hf_supernet.training import SupernetTrainer, SupernetTrainingArguments
from hf_supernet.training.recipes import digits_training_arguments, load_digits, small_parakeet_config

logger = logging.getLogger("finetune_parakeet")


@dataclass
class Arguments:
    parakeet: str | None = field(
        default=None, metadata={"help": "ParakeetForCTC folder or Hub id with its processor (default: train one here)."}
    )
    output_dir: str = field(default="outputs/finetune_parakeet", metadata={"help": "Where everything is written."})
    pretrain_steps: int = field(default=600, metadata={"help": "Steps of the Parakeet trained from scratch."})
    max_steps: int = field(default=600, metadata={"help": "Supernet fine-tuning steps (todm preset)."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak learning rate of the fine-tuning."})
    batch_size: int = field(default=32, metadata={"help": "Utterances per batch."})
    budgets: str = field(default="0.5,0.75", metadata={"help": "Parameter fractions to search subnets for."})
    proxy_examples: int = field(default=128, metadata={"help": "Dev utterances of the search proxy and of BatchNorm "
                                                               "recalibration."})
    seed: int = field(default=0, metadata={"help": "Seed of everything."})
    smoke: bool = field(default=False, metadata={"help": "Tiny model, data and step count: checks the pipeline."})


def starting_parakeet(args: Arguments):
    """The ParakeetForCTC to make elastic (a path, or a model trained here) and the data made by its processor."""
    if args.parakeet:
        processor = load_parakeet_processor(args.parakeet)
        if processor is None:
            raise ValueError(f"--parakeet {args.parakeet} holds no processor; save it there with the model.")
        return args.parakeet, load_digits("fsdd", args.seed, args.smoke, make_processor=lambda _texts: processor)
    data = load_digits("fsdd", args.seed, args.smoke, make_processor=build_parakeet_processor)
    model = ParakeetForCTC(small_parakeet_config(data.tokenizer, smoke=args.smoke))
    output_lengths = lambda frames: int(model._get_subsampling_output_length(torch.tensor(frames)))  # noqa: E731
    training_args = digits_training_arguments(
        os.path.join(args.output_dir, "parakeet_trainer"), args.pretrain_steps, args.seed, args.smoke,
        per_device_train_batch_size=args.batch_size,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=filter_ctc_feasible(data.train, output_lengths),
                      data_collator=data.collator, callbacks=[SpecAugmentCallback(data.collator)])
    trainer.train()
    with atomic_directory(os.path.join(args.output_dir, "parakeet"), carry_over=True) as folder:
        model.save_pretrained(folder)
        data.processor.save_pretrained(folder)
    logger.info("trained a %.2f M-parameter ParakeetForCTC from scratch (%d steps)", model.num_parameters() / 1e6,
                trainer.state.global_step)
    return model.eval(), data


def main(argv=None) -> list[dict]:
    (args,) = HfArgumentParser(Arguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    set_seed(args.seed)

    # 1-2. the Parakeet, made elastic; fine-tuned with the todm preset.
    parakeet, data = starting_parakeet(args)
    supernet = SupernetConformerForCTC.from_parakeet(parakeet, **recipe_config_fields("todm"))
    training_args = SupernetTrainingArguments.from_recipe(
        "todm", output_dir=os.path.join(args.output_dir, "trainer"), max_steps=3 if args.smoke else args.max_steps,
        learning_rate=args.learning_rate, per_device_train_batch_size=args.batch_size, warmup_steps=0 if args.smoke else 50,
        train_sampling_strategy="group_by_length", length_column_name="length", remove_unused_columns=False,
        save_strategy="no", report_to=[], seed=args.seed, dataloader_num_workers=0, logging_steps=50,
        use_cpu=not torch.cuda.is_available(),
    )
    train = filter_ctc_feasible(data.train, supernet._get_feat_extract_output_lengths)
    trainer = SupernetTrainer(model=supernet, args=training_args, train_dataset=train, data_collator=data.collator,
                              callbacks=[SpecAugmentCallback(data.collator)])
    trainer.train()
    supernet.eval()

    # 3. search on dev, each candidate with its own BatchNorm statistics (re-estimated on the proxy's dev audio).
    collator, tokenizer = data.collator.eval(), data.tokenizer
    budgets = [float(b) for b in args.budgets.split(",")]
    selected, scored = search_subnets(
        supernet, data.dev, data_collator=collator, tokenizer=tokenizer, budgets=budgets,
        population=4 if args.smoke else 10, generations=1 if args.smoke else 3, proxy_examples=args.proxy_examples,
        seed=args.seed, eval_name="fsdd-dev", eval_split="dev", measure_latency=False,
    )
    calibration = collate_batches(data.dev, collator, 32, args.proxy_examples)  # what the search calibrated on

    # 4. test scores (BatchNorm re-estimated or shared), stock subnets, supernet.
    space = supernet.subnet_space
    subnets = {"largest": space.largest(), "smallest": space.smallest()}
    subnets.update({entry["name"]: SubnetSpec.from_dict(entry["spec"]) for entry in selected})
    test = collate_batches(data.test, collator)
    rows = []
    for name, spec in subnets.items():
        shared = evaluate_subnet(supernet, spec, test, tokenizer)
        with batch_norm_recalibrated(supernet, calibration, subnet=spec):
            recalibrated = evaluate_subnet(supernet, spec, test, tokenizer)
        stock = supernet.extract_subnet(spec, calibration_data=calibration)
        with atomic_directory(os.path.join(args.output_dir, "subnets", name), carry_over=True) as folder:
            stock.save_pretrained(folder)
            data.processor.save_pretrained(folder)
        rows.append({
            "name": name, "class": type(stock).__name__, "params": stock.num_parameters(),
            "flops": supernet.subnet_costs(spec).flops, "wer": recalibrated["wer"], "cer": recalibrated["cer"],
            "wer_shared_batch_norm": shared["wer"], "cer_shared_batch_norm": shared["cer"], "spec": spec.to_dict(),
        })
    with atomic_directory(os.path.join(args.output_dir, "supernet"), carry_over=True) as folder:
        supernet.save_pretrained(folder)
        data.processor.save_pretrained(folder)
        plot_pareto(scored, selected, folder / "pareto.png", title="Parakeet supernet search (dev loss)")
    with atomic_file(os.path.join(args.output_dir, "results.json")) as tmp:
        tmp.write_text(json.dumps(rows, indent=2))

    print(f"\nStock ParakeetForCTC subnets, {len(data.test)} test utterances (WER/CER with BatchNorm re-estimated per "
          "subnet on dev audio | with the supernet's shared statistics):\n")
    rates = ("wer", "cer", "wer_shared_batch_norm", "cer_shared_batch_norm")
    print("| subnet | params | GFLOPs / s audio | WER | CER | WER shared BN | CER shared BN |")
    print("|---|" + "---:|" * (2 + len(rates)))
    for r in rows:
        cells = [r["name"], f"{r['params'] / 1e6:.2f} M", f"{r['flops'] / 1e9:.3f}"]
        print("| " + " | ".join(cells + [f"{100 * r[k]:.1f}%" for k in rates]) + " |")
    print(f"\nWrote {args.output_dir}/results.json, subnets/<name>/ (stock ParakeetForCTC + processor) and supernet/.")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
