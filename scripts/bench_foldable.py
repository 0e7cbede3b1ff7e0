"""Unfolding benchmark: a foldable model (N_p stored blocks unfolded to depth N_f) vs plain models, same steps.

On the spoken digits (the staged FSDD when present: all 2700 training recordings, scored on the 300 test ones), trains

* **plain-N_f** — an ordinary model of depth N_f (stock ``Trainer``, one architecture);
* **foldable** — N_p stored blocks, trained with ``SupernetTrainer`` on the Unfolding recipe: task loss of the
  deepest path + ``smallest_loss_weight`` x task loss of the seed (N_p layers) + ``random_loss_weight`` x task loss of
  sampled intermediate paths + KL(deepest ‖ seed) on the full distribution, teacher detached (no KL into the
  sampled paths: ``random_distill_weight=0``);
* **plain-N_p** (unless ``--no_compact``) — an ordinary model of depth N_p: the same storage as the foldable one,
  so it shows what unfolding adds over simply training a smaller model;

with the same data order, batch size, optimizer, schedule, SpecAugment and number of optimizer steps, then reports
stored parameters, test WER/CER of the foldable model's deepest path (and of every other path) against plain-N_f.
Goal (issue 8): >= 30 % fewer stored parameters at WER <= 1.02x plain-N_f.

Families: ``conformer`` (log-mel features, ``SupernetConformerForCTC`` with ``mask_type="folding"``) or
``wav2vec2`` (raw 16 kHz audio, ``FoldableWav2Vec2ForCTC``; the plain models are foldable configs storing every
layer, i.e. exactly ``transformers.Wav2Vec2ForCTC``; trained from scratch: no pretrained checkpoint is available
offline, so this is not the paper's fine-tuning setting).

    nice python scripts/bench_foldable.py                       # the committed run (Conformer, 6 -> 4 blocks)
    python scripts/bench_foldable.py --smoke                    # a minute: tiny models, a few steps

Writes ``benchmarks/results/foldable.json`` and ``.md`` (``--output`` changes the stem).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import torch
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed

from hf_supernet import (
    FoldableWav2Vec2Config,
    FoldableWav2Vec2ForCTC,
    SupernetConformerConfig,
    SupernetConformerForCTC,
    stored_params,
)
from hf_supernet.data import (
    DataCollatorCTCWithPadding,
    SpecAugmentCallback,
    WaveformCollator,
    build_processor,
    filter_ctc_feasible,
    load_speech_dataset,
    prepare_dataset,
    prepare_waveforms,
    train_tokenizer,
)
from hf_supernet.search import collate_batches, evaluate_subnet
from hf_supernet.training import SupernetTrainer, SupernetTrainingArguments
from hf_supernet.training.recipes import staged_or_bundled_fsdd

logger = logging.getLogger("bench_foldable")
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RESULTS = os.path.join(REPO, "benchmarks", "results")
GOAL_PARAMS_REDUCTION = 0.30
GOAL_WER_RATIO = 1.02


@dataclass
class BenchArguments:
    data: str = field(
        default=staged_or_bundled_fsdd(REPO), metadata={"help": "FSDD manifest folder (default: the staged one)."}
    )
    family: str = field(default="conformer", metadata={"help": "'conformer' or 'wav2vec2'."})
    num_physical_layers: int = field(default=4, metadata={"help": "N_p: blocks the foldable model stores."})
    num_hidden_layers: int = field(default=6, metadata={"help": "N_f: depth of the deepest path / plain model."})
    max_steps: int = field(default=700, metadata={"help": "Optimizer steps of every model."})
    batch_size: int = field(default=32, metadata={"help": "Utterances per optimizer step."})
    learning_rate: float = field(default=2e-3, metadata={"help": "Peak learning rate (linear warmup and decay)."})
    num_random_subnets: int = field(default=1, metadata={"help": "Sampled intermediate paths per step."})
    smallest_loss_weight: float = field(default=0.5, metadata={"help": "Weight of the seed's task loss (α_p)."})
    random_loss_weight: float = field(default=0.5, metadata={"help": "Weight of a sampled path's task loss."})
    distill_weight: float = field(default=1.0, metadata={"help": "Weight of KL(deepest ‖ seed)."})
    sandwich_batch_split: str = field(default="quarter", metadata={"help": "How the paths of a step share a batch."})
    compact: bool = field(default=True, metadata={"help": "Also train a plain model of depth N_p."})
    seed: int = field(default=0, metadata={"help": "Seed of init, data order and path sampling."})
    # One thread: on a CPU shared with other jobs, two threads spin-wait on each other and cost 5-30x the CPU time
    # per step of one (measured on this 2-core machine) for these small matmuls.
    threads: int = field(default=1, metadata={"help": "torch intra-op threads."})
    output: str = field(default=os.path.join(RESULTS, "foldable"), metadata={"help": "Results path stem."})
    smoke: bool = field(default=False, metadata={"help": "Tiny models, data and step count."})
    render_only: bool = field(default=False, metadata={"help": "Rewrite the markdown from the existing JSON."})


# ---------------------------------------------------------------------------------------------- models
def conformer_config(tokenizer, depth: int, smoke: bool, **folding) -> SupernetConformerConfig:
    """The quickstart's 144-wide Conformer (it learns the digits in minutes on CPU), ``depth`` blocks deep."""
    size = (
        dict(hidden_size=32, intermediate_size=64, subsampling_conv_channels=16)
        if smoke
        else dict(hidden_size=144, intermediate_size=576, subsampling_conv_channels=96)
    )
    plain_space = {} if folding else dict(layer_drop_choices=[0], ffn_width_choices=[1.0])
    return SupernetConformerConfig(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_attention_heads=4, conv_kernel_size=15,
        num_hidden_layers=depth, **size, **plain_space, **folding,
    )


def wav2vec2_values(tokenizer, smoke: bool) -> dict:
    """A small wav2vec2 (post-LN blocks as wav2vec2-base, per-frame LayerNorm in the feature encoder so padding
    does not change outputs) trained from scratch; SpecAugment is the model's own (mask_time_prob)."""
    width = dict(hidden_size=32, intermediate_size=64, conv_dim=(16,) * 5) if smoke else dict(
        hidden_size=144, intermediate_size=576, conv_dim=(128,) * 5
    )
    return dict(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_attention_heads=4,
        conv_kernel=(10, 3, 3, 3, 2), conv_stride=(5, 2, 2, 2, 2), feat_extract_norm="layer",
        do_stable_layer_norm=True, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4,
        layerdrop=0.0, mask_time_prob=0.05, mask_time_length=4, ctc_loss_reduction="mean", ctc_zero_infinity=True,
        **width,
    )


def build_models(args: BenchArguments, tokenizer) -> dict[str, torch.nn.Module]:
    n_p, n_f = args.num_physical_layers, args.num_hidden_layers
    models = {}
    for name, depth in (("plain_nf", n_f), ("foldable", n_f), ("plain_np", n_p)):
        if name == "plain_np" and not args.compact:
            continue
        set_seed(args.seed)  # every model starts from the same RNG state
        if args.family == "conformer":
            folding = dict(mask_type="folding", num_physical_layers=n_p) if name == "foldable" else {}
            models[name] = SupernetConformerForCTC(conformer_config(tokenizer, depth, args.smoke, **folding))
        else:
            # A plain model is a foldable config storing every layer: its one path runs each block once, which is
            # transformers' Wav2Vec2ForCTC exactly (and scores through the same subnet API).
            stored = n_p if name == "foldable" else depth
            config = FoldableWav2Vec2Config(
                num_physical_layers=stored, num_hidden_layers=depth, **wav2vec2_values(tokenizer, args.smoke)
            )
            models[name] = FoldableWav2Vec2ForCTC(config)
    return models


# ---------------------------------------------------------------------------------------------- training
def training_values(args: BenchArguments, output_dir: str) -> dict:
    return dict(
        output_dir=output_dir, per_device_train_batch_size=args.batch_size, max_steps=3 if args.smoke else args.max_steps,
        learning_rate=args.learning_rate, warmup_steps=0 if args.smoke else 60, lr_scheduler_type="linear",
        weight_decay=0.01, logging_steps=50, train_sampling_strategy="group_by_length", length_column_name="length",
        remove_unused_columns=False, save_strategy="no", report_to=[], seed=args.seed, dataloader_num_workers=0,
        use_cpu=True,
    )


def train(name: str, model, args: BenchArguments, train_set, collator) -> float:
    output_dir = os.path.join("outputs", "bench_foldable", name)
    callbacks = [SpecAugmentCallback(collator)] if isinstance(collator, DataCollatorCTCWithPadding) else []
    if name == "foldable":
        training_args = SupernetTrainingArguments(
            **training_values(args, output_dir), num_random_subnets=args.num_random_subnets,
            sandwich_batch_split=args.sandwich_batch_split, distillation="kl", distill_top_k=0,
            distill_weight=args.distill_weight, smallest_loss_weight=args.smallest_loss_weight,
            random_loss_weight=args.random_loss_weight, random_distill_weight=0.0,
        )
        trainer = SupernetTrainer(model=model, args=training_args, train_dataset=train_set, data_collator=collator, callbacks=callbacks)
    else:
        training_args = TrainingArguments(**training_values(args, output_dir))
        trainer = Trainer(model=model, args=training_args, train_dataset=train_set, data_collator=collator, callbacks=callbacks)
    start = time.monotonic()
    trainer.train()
    minutes = (time.monotonic() - start) / 60
    logger.info("%s: %d steps in %.1f min", name, trainer.state.global_step, minutes)
    return minutes


# ---------------------------------------------------------------------------------------------- report
def write_markdown(path: str, result: dict) -> None:
    s, rows = result["setup"], result["rows"]
    lines = [
        "# Unfolding: foldable vs plain models, same steps",
        "",
        (
            f"Generated by `scripts/bench_foldable.py` on {result['date']} (torch {result['torch']}, {s['threads']} threads,"
            f" load average {result['load_average']:.1f}). Family `{s['family']}`; FSDD ({s['train_utterances']} training /"
            f" {s['test_utterances']} test utterances); {s['max_steps']} optimizer steps of {s['batch_size']} utterances"
            f" for every model. Foldable recipe: deepest path + {s['smallest_loss_weight']} x seed + {s['random_loss_weight']}"
            f" x {s['num_random_subnets']} sampled path(s) + {s['distill_weight']} x KL(deepest ‖ seed), batch split"
            f" `{s['sandwich_batch_split']}`."
        ),
        "",
        "| model | depth | path | stored params | deployed params | WER (errors) | CER | train min |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        blocks = "" if row["path"] is None else " ".join(map(str, row["path"]))
        minutes = f"{row['train_minutes']:.1f}" if "train_minutes" in row else ""
        lines.append(
            f"| {row['model']} | {row['depth']} | {blocks} | {row['stored_params'] / 1e6:.3f} M | {row['params'] / 1e6:.3f} M |"
            f" {100 * row['wer']:.2f}% ({row['word_errors']}) | {100 * row['cer']:.2f}% | {minutes} |"
        )
    g = result["goal"]
    plain_wer = next(r["wer"] for r in rows if r["model"] == "plain-N_f")
    # Binomial standard error of one WER estimate, and of the ratio of two independent ones near ratio 1.
    noise = (plain_wer * (1 - plain_wer) / s["test_words"]) ** 0.5
    ratio_noise = 2**0.5 * noise / plain_wer if plain_wer > 0 else float("nan")
    lines += [
        "",
        "| stored params vs plain-N_f | WER ratio (deepest path / plain-N_f) | goal | met |",
        "|---:|---:|---|---|",
        (
            f"| -{100 * g['stored_params_reduction']:.1f}% | {g['wer_ratio']:.3f}x | >= {100 * GOAL_PARAMS_REDUCTION:.0f}%"
            f" fewer at WER <= {GOAL_WER_RATIO}x | {'yes' if g['met'] else 'no'} |"
        ),
        "",
        (
            "Stored params: what the model keeps in memory / on disk (each foldable block once). Deployed params: the"
            " extracted dense model of that path (a repeated block is copied per logical layer). Train minutes are wall"
            " time on a CPU shared with other jobs (a foldable step trains several paths). One seed: the binomial standard"
            f" error of plain-N_f's WER on {s['test_words']} test words is {100 * noise:.1f} points, that of the WER ratio"
            f" about ±{ratio_noise:.2f}."
        ),
        "",
    ]
    compact = next((r for r in rows if r["model"] == "plain-N_p"), None)
    if compact is not None and compact["wer"] < plain_wer:
        lines += [
            (
                f"Caveat, from these figures: plain-N_p ({compact['depth']} layers) beats plain-N_f ({rows[0]['depth']}"
                " layers), so at this step count the deeper models are still far from converged and depth does not"
                " pay off yet. The WER ratio then mostly measures how fast each model learns, not the paper's claim"
                " (no WER loss at convergence); plain-N_p, which stores as much as the foldable model, is the one"
                " to beat here."
            ),
            "",
        ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main(argv=None) -> dict:
    (args,) = HfArgumentParser(BenchArguments).parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    if args.render_only:
        with open(args.output + ".json") as f:
            result = json.load(f)
        write_markdown(args.output + ".md", result)
        return result
    if args.family not in ("conformer", "wav2vec2"):
        raise ValueError(f"--family must be 'conformer' or 'wav2vec2', got {args.family!r}.")
    torch.set_num_threads(args.threads)
    set_seed(args.seed)

    splits = load_speech_dataset(args.data)
    train_set, test_set = splits["train"], splits["test"]
    if args.smoke:
        train_set, test_set = train_set.select(range(0, len(train_set), 40)), test_set.select(range(0, len(test_set), 20))
    tokenizer = train_tokenizer(train_set["text"], model_type="char")
    test_words = sum(len(text.split()) for text in test_set["text"])
    if args.family == "conformer":
        processor = build_processor(tokenizer)
        train_set, test_set = prepare_dataset(train_set, processor), prepare_dataset(test_set, processor)
        collator = DataCollatorCTCWithPadding(
            processor, spec_augment=None if args.smoke else {"mask_time_prob": 0.05, "mask_feature_prob": 0.05}
        )
    else:
        train_set, test_set = prepare_waveforms(train_set, tokenizer), prepare_waveforms(test_set, tokenizer)
        collator = WaveformCollator()

    models = build_models(args, tokenizer)
    train_set = filter_ctc_feasible(train_set, models["foldable"]._get_feat_extract_output_lengths)
    test_batches = collate_batches(test_set, collator)

    rows, minutes = [], {}
    for name, model in models.items():
        minutes[name] = train(name, model, args, train_set, collator)
        model.eval()
        if name == "foldable":
            space = model.subnet_space
            for spec in sorted(space, key=lambda s: (s.num_layers, s.path)):
                metrics = evaluate_subnet(model, spec, test_batches, tokenizer)
                role = {space.largest(): "deepest", space.smallest(): "seed"}.get(spec, "")
                rows.append(
                    dict(
                        model=f"foldable {role}".strip(), depth=spec.num_layers, path=list(spec.path),
                        stored_params=stored_params(model, spec), params=model.subnet_costs(spec).params,
                        **metrics, **({"train_minutes": minutes[name]} if role == "deepest" else {}),
                    )
                )
        else:
            metrics = evaluate_subnet(model, None, test_batches, tokenizer)
            depth = model.config.num_hidden_layers
            rows.append(
                dict(
                    model=f"plain-N_{'f' if name == 'plain_nf' else 'p'}", depth=depth, path=None,
                    stored_params=model.num_parameters(), params=model.num_parameters(), **metrics,
                    train_minutes=minutes[name],
                )
            )
    order = {"plain-N_f": 0, "foldable deepest": 1}
    rows.sort(key=lambda r: (order.get(r["model"], 2), -r["depth"]))
    for row in rows:
        row["word_errors"] = round(row["wer"] * test_words)

    plain = next(r for r in rows if r["model"] == "plain-N_f")
    deepest = next(r for r in rows if r["model"] == "foldable deepest")
    reduction = 1 - deepest["stored_params"] / plain["stored_params"]
    wer_ratio = deepest["wer"] / plain["wer"] if plain["wer"] > 0 else (1.0 if deepest["wer"] == 0 else float("inf"))
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "load_average": os.getloadavg()[0],
        "setup": {
            **asdict(args),
            "max_steps": training_values(args, "")["max_steps"],
            "train_utterances": len(train_set),
            "test_utterances": len(test_set),
            "test_words": test_words,
        },
        "rows": rows,
        "goal": {
            "stored_params_reduction": reduction,
            "wer_ratio": wer_ratio,
            "met": bool(reduction >= GOAL_PARAMS_REDUCTION and wer_ratio <= GOAL_WER_RATIO),
        },
    }
    result["setup"].pop("output")
    result["setup"].pop("render_only")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output + ".json", "w") as f:
        json.dump(result, f, indent=2)
    write_markdown(args.output + ".md", result)
    with open(args.output + ".md") as f:
        print(f.read())
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
