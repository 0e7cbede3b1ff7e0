"""Adapt a trained supernet to a shifted domain with ONE LoRA adapter trained with sandwich sampling, and compare it
with a LoRA adapter trained on the largest subnet only.

The shifted domain is noisy copies of the bundled spoken digits: white noise at a fixed SNR, drawn with a fixed seed
per utterance (other seeds for train and test). Three versions of the supernet are scored on the noisy test split
(and on the clean one, to see what adaptation costs there) for the largest, the smallest and the searched
intermediate subnets (``config.selected_subnets``):

1. before adaptation;
2. one LoRA adapter trained with sandwich sampling (``SupernetTrainer``: largest + smallest + 2 random subnets per
   step, in-place distillation from the largest);
3. one LoRA adapter trained on the largest subnet only (plain ``Trainer`` on the whole model), same steps.

Every adapted subnet is also extracted with its sliced adapter (``peft_model.extract_subnet(spec)``) and its
logits checked against the adapted supernet's. Writes ``benchmarks/results/finetune_lora.{json,md}``.

    python scripts/quickstart.py                  # once: trains outputs/quickstart/supernet
    python scripts/finetune_lora.py               # ~10 CPU-minutes
    python scripts/finetune_lora.py --smoke       # seconds: a few steps on a few utterances
"""

from __future__ import annotations

import copy
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from peft import get_peft_model
from transformers import HfArgumentParser, Trainer, set_seed

import hf_supernet
from hf_supernet import SubnetSpec, SupernetConformerForCTC
from hf_supernet.adapters import supernet_lora_config
from hf_supernet.data import DataCollatorCTCWithPadding, SupernetSpeechProcessor, load_speech_dataset, prepare_dataset
from hf_supernet.search import collate_batches, evaluate_subnet
from hf_supernet.training import SupernetTrainer
from hf_supernet.training.recipes import digits_training_arguments

logger = logging.getLogger("finetune_lora")

METHODS = ("before", "lora_largest_only", "lora_sandwich")


@dataclass
class FinetuneArguments:
    supernet_dir: str = field(default="outputs/quickstart/supernet", metadata={"help": "Trained supernet + processor."})
    output_dir: str = field(default="outputs/finetune_lora", metadata={"help": "Adapters and trainer state."})
    results_dir: str = field(default="benchmarks/results", metadata={"help": "Where finetune_lora.{json,md} go."})
    snr_db: float = field(default=5.0, metadata={"help": "Signal-to-noise ratio of the noisy copies, in dB."})
    noise_seed: int = field(default=0, metadata={"help": "Seed of the noise (train uses it, test seed + 1)."})
    train_examples: int | None = field(default=None, metadata={"help": "Noisy training utterances (default: all)."})
    max_steps: int = field(default=400, metadata={"help": "Optimizer steps of each adapter."})
    batch_size: int = field(default=16, metadata={"help": "Utterances per step."})
    learning_rate: float = field(default=3e-3, metadata={"help": "Peak learning rate (linear decay)."})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    seed: int = field(default=0, metadata={"help": "Seed of adapter init, data order and subnet sampling."})
    num_threads: int = field(default=1, metadata={"help": "torch intra-op threads (small batches: 1 is fastest)."})
    probe_snrs: str = field(default="", metadata={"help": "Only report the unadapted largest subnet's noisy WER at these SNRs."})
    smoke: bool = field(default=False, metadata={"help": "A few steps on a few utterances: checks the pipeline."})


def add_noise(dataset, snr_db: float, seed: int):
    """Copies of ``dataset``'s audio with white noise at ``snr_db`` (relative to each utterance's mean power),
    utterance ``i`` drawing its noise from ``seed * 1_000_003 + i`` — the same noisy corpus on every run."""

    def noisy(example, index):
        audio = np.asarray(example["audio"]["array"], dtype=np.float32)
        rng = np.random.default_rng(seed * 1_000_003 + index)
        power = float(np.mean(audio**2)) + 1e-12
        noise = rng.standard_normal(audio.shape).astype(np.float32) * np.sqrt(power / 10 ** (snr_db / 10))
        return {"audio": {"array": audio + noise, "sampling_rate": example["audio"]["sampling_rate"]}}

    return dataset.map(noisy, with_indices=True, desc=f"adding noise at {snr_db:g} dB SNR")


def subnets_of(model) -> dict[str, SubnetSpec]:
    """Largest, the searched intermediates (largest first) and smallest."""
    space = model.subnet_space
    selected = sorted(model.config.selected_subnets or [], key=lambda e: -e["costs"]["params"])
    return {
        "largest": space.largest(),
        **{entry["name"]: SubnetSpec.from_dict(entry["spec"]) for entry in selected},
        "smallest": space.smallest(),
    }


def score(model, subnets, test_sets, tokenizer) -> dict[str, dict[str, float]]:
    return {
        name: {f"{split}_wer": evaluate_subnet(model, spec, batches, tokenizer)["wer"] for split, batches in test_sets.items()}
        for name, spec in subnets.items()
    }


def train_adapter(supernet, method: str, train, collator, args: FinetuneArguments):
    """A LoRA adapter on a copy of ``supernet`` trained by ``method``; returns the peft model and minutes spent."""
    set_seed(args.seed)
    config = supernet_lora_config(supernet, r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.05)
    model = get_peft_model(copy.deepcopy(supernet), config)
    # The quickstart recipe's arguments (its sandwich settings for the sandwich adapter) at this run's sizes.
    training_args = digits_training_arguments(
        os.path.join(args.output_dir, method, "trainer"), args.max_steps, args.seed,
        per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
        warmup_steps=min(10, args.max_steps // 10), weight_decay=0.0, logging_steps=25,
    )
    if method == "lora_sandwich":
        trainer = SupernetTrainer(model=model, args=training_args, train_dataset=train, data_collator=collator)
    else:  # the whole model is the largest subnet: a plain Trainer adapts it alone (the sandwich fields go unused)
        trainer = Trainer(model=model, args=training_args, train_dataset=train, data_collator=collator)
    start = time.monotonic()
    trainer.train()
    model.eval()
    return model, (time.monotonic() - start) / 60


def sliced_adapter_error(model, subnets, batch, save_dir: str) -> float:
    """Largest |logit difference| between the adapted supernet and each extracted subnet carrying its sliced
    adapter (saved under ``save_dir/<name>``, the deployable artefact)."""
    worst = 0.0
    for name, spec in subnets.items():
        with torch.no_grad(), model.use_subnet(spec):
            expected = model(**batch).logits
        sub = model.extract_subnet(spec)
        with torch.no_grad():
            worst = max(worst, float((sub(**batch).logits - expected).abs().max()))
        sub.save_pretrained(os.path.join(save_dir, name))
    return worst


def write_results(results: dict, path: str) -> None:
    with open(path + ".json", "w") as f:
        json.dump(results, f, indent=2)
    setup = results["setup"]
    lines = [
        "# One LoRA adapter for every subnet: sandwich-trained vs largest-only",
        "",
        f"Supernet from `scripts/quickstart.py` (bundled spoken digits), adapted to noisy copies (white noise, "
        f"{setup['snr_db']:g} dB SNR, fixed seeds) of {setup['train_examples']} training utterances; scored on the "
        f"{setup['test_examples']} test utterances, noisy and clean. LoRA r={setup['lora_r']}, alpha="
        f"{setup['lora_alpha']} on {', '.join(setup['target_modules'])} ({setup['trainable_params']:,} trainable "
        f"parameters, {100 * setup['trainable_params'] / setup['supernet_params']:.1f}% of the supernet); "
        f"{setup['max_steps']} steps of {setup['batch_size']} utterances each, lr {setup['learning_rate']:g}.",
        "",
        "WER % on the noisy test split (clean test split in brackets: what adapting to noise alone costs on clean "
        "speech):",
        "",
        "| subnet | params | before | LoRA, largest only | LoRA, sandwich |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in results["subnets"].items():
        cells = [f"{100 * row[m]['noisy_wer']:.1f} ({100 * row[m]['clean_wer']:.1f})" for m in METHODS]
        lines.append(f"| {name} | {row['params'] / 1e6:.2f} M | " + " | ".join(cells) + " |")
    minutes = results["train_minutes"]
    lines += [
        "",
        f"Training wall time: largest-only {minutes['lora_largest_only']:.1f} min, sandwich "
        f"{minutes['lora_sandwich']:.1f} min (4 subnet forwards per step: the largest on the whole batch, the others on a quarter each); whole run "
        f"{results['total_cpu_minutes']:.1f} CPU-minutes. Every subnet extracted with its sliced adapter "
        f"(`peft_model.extract_subnet(spec)`) reproduces the adapted supernet's logits (max abs difference "
        f"{max(results['sliced_adapter_max_abs_error'].values()):.1e}). One seed, {setup['test_examples']} test "
        "utterances: differences of a point or two are noise.",
        "",
        f"{setup['device']}; torch {setup['torch']}, peft {setup['peft']}, hf_supernet {setup['hf_supernet']}. "
        "Regenerate: `python scripts/finetune_lora.py`.",
    ]
    with open(path + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None) -> dict:
    (args,) = HfArgumentParser(FinetuneArguments).parse_args_into_dataclasses(args=argv)
    cpu_start = time.process_time()
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    if not os.path.isfile(os.path.join(args.supernet_dir, "config.json")):
        raise FileNotFoundError(
            f"No trained supernet in {args.supernet_dir}; run `python scripts/quickstart.py` first (or pass "
            "--supernet_dir to a folder holding a supernet saved with its processor)."
        )
    torch.set_num_threads(args.num_threads)
    set_seed(args.seed)
    supernet = SupernetConformerForCTC.from_pretrained(args.supernet_dir).eval()
    processor = SupernetSpeechProcessor.from_pretrained(args.supernet_dir)
    tokenizer = processor.tokenizer
    collator = DataCollatorCTCWithPadding(processor)

    splits = load_speech_dataset("fsdd")
    train = splits["train"]
    if args.train_examples is not None:
        train = train.shuffle(seed=args.seed).select(range(min(args.train_examples, len(train))))
    test = splits["test"]
    if args.smoke:
        train, test = train.select(range(32)), test.select(range(0, len(test), 15))
        args.max_steps, args.batch_size = 2, 8

    if args.probe_snrs:
        batches = collate_batches(prepare_dataset(test, processor), collator)
        print(f"| SNR dB | largest WER % |\n|---|---:|\n| clean | {100 * evaluate_subnet(supernet, None, batches, tokenizer)['wer']:.1f} |")
        for snr in (float(s) for s in args.probe_snrs.split(",")):
            noisy = collate_batches(prepare_dataset(add_noise(test, snr, args.noise_seed + 1), processor), collator)
            print(f"| {snr:g} | {100 * evaluate_subnet(supernet, None, noisy, tokenizer)['wer']:.1f} |")
        return {}

    noisy_train = prepare_dataset(add_noise(train, args.snr_db, args.noise_seed), processor)
    test_sets = {
        "noisy": collate_batches(prepare_dataset(add_noise(test, args.snr_db, args.noise_seed + 1), processor), collator),
        "clean": collate_batches(prepare_dataset(test, processor), collator),
    }
    subnets = subnets_of(supernet)
    scores = {"before": score(supernet, subnets, test_sets, tokenizer)}
    logger.info("before adaptation: %s", scores["before"])

    minutes, errors, trainable = {}, {}, 0
    for method in ("lora_largest_only", "lora_sandwich"):
        model, minutes[method] = train_adapter(supernet, method, noisy_train, collator, args)
        scores[method] = score(model, subnets, test_sets, tokenizer)
        logger.info("%s (%.1f min): %s", method, minutes[method], scores[method])
        errors[method] = sliced_adapter_error(model, subnets, test_sets["noisy"][0], os.path.join(args.output_dir, method, "adapters"))
        trainable = model.get_nb_trainable_parameters()[0]
        target_modules = sorted(model.peft_config["default"].target_modules)

    results = {
        "setup": {
            **{k: v for k, v in asdict(args).items() if k not in ("probe_snrs", "output_dir", "results_dir")},
            "test_examples": len(test),
            "train_examples": len(train),
            "supernet_params": supernet.num_parameters(),
            "trainable_params": trainable,
            "target_modules": target_modules,
            "device": f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s), shared machine",
            "torch": torch.__version__,
            "peft": __import__("peft").__version__,
            "hf_supernet": hf_supernet.__version__,
        },
        "subnets": {
            name: {"params": supernet.subnet_costs(spec).params, "spec": spec.to_dict(), **{m: scores[m][name] for m in METHODS}}
            for name, spec in subnets.items()
        },
        "train_minutes": minutes,
        "total_cpu_minutes": (time.process_time() - cpu_start) / 60,
        "sliced_adapter_max_abs_error": errors,
    }
    os.makedirs(args.results_dir, exist_ok=True)
    path = os.path.join(args.results_dir, "finetune_lora" + ("_smoke" if args.smoke else ""))
    write_results(results, path)
    print(open(path + ".md").read())
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
