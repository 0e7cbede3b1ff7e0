"""Mini LibriSpeech from scratch on CPU: a recipe that leaves the CTC blank plateau, measured in CPU seconds.

Trains a Conformer-CTC (our layer_width supernet model; `--supernet` trains it with the sandwich rule, otherwise
only the full model trains, as a dense model) on `../shared/data/mini_librispeech` (493 utterances, 89 min) until
a budget of *training* CPU seconds is spent, and scores the full model on the test split (50 utterances, greedy
CTC: loss, WER, CER) every `--eval_every_cpu_minutes` of training. CPU seconds are the process's user + system
time (`resource.getrusage`), so other jobs on the machine do not change them; evaluation time is not counted
against the training budget. The knobs the recipe turns (see `--help`): ScaledAdam or AdamW, Eden / linear /
constant schedule and warm-up, subsampling factor, batch size, char or sentencepiece tokenizer, SortaGrad (the
first epoch in order of increasing length), SpecAugment, model size.

    nice python scripts/recipe_mini_librispeech.py --run_name scaled_adam_eden --optim scaled_adam --lr 0.045 \
        --schedule eden --sortagrad --cpu_budget_minutes 15
    python scripts/recipe_mini_librispeech.py --smoke --output_dir outputs/recipe_smoke   # seconds: toy model

Writes `<output_dir>/<run_name>.jsonl` (one line per evaluation, then a summary line with every setting).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile

import torch
from transformers import Trainer, set_seed

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
from hf_supernet.search import collate_batches
from hf_supernet.training import SupernetTrainer, SupernetTrainingArguments
from hf_supernet.training.callbacks import CpuBudgetCallback
from hf_supernet.training.optim import ScaledAdam
from hf_supernet.training.recipes import digits_training_arguments, recipe_trainer_class

OUTPUT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results", "mini_librispeech_recipe")
# The staged corpora sit beside the repository (../shared/data), wherever it is cloned.
SHARED_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")

logger = logging.getLogger("recipe_mini_librispeech")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run_name", default="run")
    p.add_argument("--output_dir", default=OUTPUT)
    p.add_argument("--dataset", default=os.path.join(SHARED_DATA, "mini_librispeech"))
    p.add_argument("--cpu_budget_minutes", type=float, default=15.0, help="Training CPU minutes (evaluation excluded).")
    p.add_argument("--eval_every_cpu_minutes", type=float, default=2.5)
    p.add_argument("--max_steps", type=int, default=3000, help="Step bound; sets linear schedules' length.")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--optim", default="scaled_adam", choices=["scaled_adam", "adamw"])
    p.add_argument("--lr", type=float, default=0.045)
    p.add_argument("--schedule", default="eden", choices=["eden", "linear", "constant"])
    p.add_argument("--warmup_steps", type=int, default=100)
    p.add_argument("--eden_lr_batches", type=float, default=1000.0)
    p.add_argument("--eden_lr_epochs", type=float, default=10.0)
    p.add_argument("--weight_decay", type=float, default=0.0)
    p.add_argument("--subsampling_factor", type=int, default=4)
    p.add_argument("--hidden_size", type=int, default=144)
    p.add_argument("--num_hidden_layers", type=int, default=4)
    p.add_argument("--intermediate_size", type=int, default=576)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe", "unigram"])
    p.add_argument("--vocab_size", type=int, default=128, help="sentencepiece vocabulary (bpe/unigram).")
    p.add_argument("--sortagrad", action="store_true", help="First epoch shortest-first, then length-grouped shuffles.")
    p.add_argument("--mask_time_prob", type=float, default=0.05)
    p.add_argument("--mask_feature_prob", type=float, default=0.05)
    p.add_argument("--supernet", action="store_true", help="Sandwich training (quarter split, KL distillation).")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="Toy model, 16 utterances, a few steps.")
    args = p.parse_args(argv)
    if args.smoke:
        args.hidden_size, args.num_hidden_layers, args.intermediate_size = 32, 2, 64
        args.cpu_budget_minutes, args.eval_every_cpu_minutes, args.max_steps = 0.1, 0.05, 4
    return args


def training_arguments(args) -> SupernetTrainingArguments:
    """The FSDD recipe's arguments (sandwich with quarter split, KL distillation, length-grouped batches) with this
    run's optimizer, schedule and sizes."""
    return digits_training_arguments(
        os.path.join(tempfile.gettempdir(), f"recipe_{args.run_name}_{os.getpid()}"), args.max_steps, args.seed,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        optim="scaled_adam" if args.optim == "scaled_adam" else "adamw_torch",
        lr_scheduler_type="constant_with_warmup" if args.schedule == "constant" else "linear",
        warmup_steps=args.warmup_steps,
        weight_decay=args.weight_decay,
        logging_steps=10,
        disable_tqdm=True,
        use_cpu=True,
    )


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    torch.set_num_threads(args.threads)
    set_seed(args.seed)
    dataset = "mini_librispeech" if args.smoke else args.dataset
    train, test = load_speech_dataset(dataset, "train"), load_speech_dataset(dataset, "test")
    if args.smoke:
        train, test = train.select(range(min(16, len(train)))), test.select(range(min(4, len(test))))
    tokenizer = train_tokenizer(train["text"], vocab_size=args.vocab_size, model_type=args.tokenizer)
    processor = build_processor(tokenizer)
    train, test = prepare_dataset(train, processor), prepare_dataset(test, processor)

    set_seed(args.seed)
    config = SupernetConformerConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_attention_heads=4, conv_kernel_size=15,
        hidden_size=args.hidden_size, num_hidden_layers=args.num_hidden_layers, intermediate_size=args.intermediate_size,
        subsampling_conv_channels=96 if not args.smoke else 16, subsampling_factor=args.subsampling_factor,
        hidden_dropout=args.dropout, activation_dropout=args.dropout, attention_dropout=args.dropout,
        final_dropout=args.dropout,
    )
    model = SupernetConformerForCTC(config)
    n_before = len(train)
    train = filter_ctc_feasible(train, model._get_feat_extract_output_lengths)
    logger.info("train %d of %d utterances CTC-feasible; test %d; vocab %d; %.2f M parameters",
                len(train), n_before, len(test), len(tokenizer), model.num_parameters() / 1e6)

    os.makedirs(args.output_dir, exist_ok=True)
    log_path = os.path.join(args.output_dir, f"{args.run_name}.jsonl")
    open(log_path, "w").close()
    masking = args.mask_time_prob > 0 or args.mask_feature_prob > 0
    spec_augment = {"mask_time_prob": args.mask_time_prob, "mask_feature_prob": args.mask_feature_prob}
    collator = DataCollatorCTCWithPadding(processor, spec_augment=spec_augment if masking else None)
    budget = CpuBudgetCallback(
        model, collate_batches(test, DataCollatorCTCWithPadding(processor), batch_size=8), tokenizer,
        args.cpu_budget_minutes * 60, args.eval_every_cpu_minutes * 60, log_path,
    )
    training_args = training_arguments(args)
    extra = {}
    if args.optim == "scaled_adam" and not args.supernet:  # SupernetTrainer builds ScaledAdam itself
        extra["optimizer_cls_and_kwargs"] = (ScaledAdam, {"lr": args.lr, "clipping_scale": 2.0})
    trainer_class = recipe_trainer_class(SupernetTrainer if args.supernet else Trainer, args)
    trainer = trainer_class(
        model=model, args=training_args, train_dataset=train, data_collator=collator,
        callbacks=[SpecAugmentCallback(collator), budget], **extra,
    )
    trainer.train()

    summary = {
        "summary": True, "run_name": args.run_name, "settings": vars(args), "train_utterances": len(train),
        "vocab": len(tokenizer), "params": model.num_parameters(), "steps": trainer.state.global_step,
        "final": budget.records[-1], "best_test_cer": min(r["test_cer"] for r in budget.records),
    }
    with open(log_path, "a") as f:
        f.write(json.dumps(summary) + "\n")
    print(json.dumps(summary["final"]))
    return budget.records


if __name__ == "__main__":
    main()
