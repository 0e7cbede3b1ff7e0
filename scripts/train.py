"""Train a supernet Conformer-CTC with ``SupernetTrainer`` — the same script under ``python`` and ``accelerate launch``.

    python scripts/train.py --dataset fsdd --output_dir out --max_steps 1000
    python scripts/train.py config.json                    # or config.yaml: every argument below as a key
    python scripts/train.py --init_from_parakeet PARAKEET_DIR --dataset fsdd --output_dir out   # fine-tune a Parakeet
    accelerate launch --config_file scripts/accelerate_configs/cpu_ddp_2proc.yaml scripts/train.py --dataset fsdd ...

Arguments: the model fields of `SupernetConformerConfig` that size the network (`ModelArguments`; any other config
field through `--config_overrides '{"mask_type": "orthosoftmax", "orthosoftmax_stage1_steps": 500}'`), the data
(`DataArguments`) and every `SupernetTrainingArguments` / `TrainingArguments` field. The trained supernet and its
processor are saved to `output_dir`; `--resume_from_checkpoint CHECKPOINT_DIR` (or `last`: the newest complete
checkpoint of `output_dir`) continues an interrupted run exactly. An
`output_dir` that already holds a trained model or checkpoints is refused unless `--overwrite_output_dir` is given.

`--init_from_parakeet PATH` (a `ParakeetForCTC` folder or Hub id with its processor) makes that checkpoint elastic
(`SupernetConformerForCTC.from_parakeet`): the architecture and weights are the checkpoint's (the sizing flags are not
used; `--mask_type`, `--dropout` and `--config_overrides` set the subnet space and training fields), and its
processor (Parakeet's feature extractor and tokenizer) makes the features and labels and is saved with the model (no
tokenizer is trained). Its subnets extract to stock `ParakeetForCTC`s.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser, set_seed

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet import SupernetConformerConfig, SupernetConformerForCTC
from hf_supernet.atomic import atomic_directory
from hf_supernet.data import (
    DataCollatorCTCWithPadding,
    build_processor,
    filter_ctc_feasible,
    load_speech_dataset,
    prepare_dataset,
    train_tokenizer,
)
from hf_supernet.metrics import make_compute_metrics, preprocess_logits_for_metrics
from hf_supernet.models.supernet_conformer.parakeet import load_parakeet_processor
from hf_supernet.training import SupernetTrainer, SupernetTrainingArguments

logger = logging.getLogger("train")


@dataclass
class ModelArguments:
    hidden_size: int = field(default=144, metadata={"help": "Model dimension."})
    num_hidden_layers: int = field(default=4, metadata={"help": "Conformer blocks of the largest subnet."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads."})
    intermediate_size: int = field(default=576, metadata={"help": "Feed-forward width."})
    conv_kernel_size: int = field(default=15, metadata={"help": "Depthwise conv kernel."})
    subsampling_conv_channels: int = field(default=96, metadata={"help": "Front-end conv channels."})
    subsampling_factor: int = field(default=4, metadata={"help": "4 or 8."})
    mask_type: str = field(default="layer_width", metadata={"help": "How subnets are carved."})
    omni_sparsity_prune_interval: int = field(default=256, metadata={"help": "omni_sparsity: steps between pruning steps."})
    omni_sparsity_schedule_steps: int = field(
        default=2560, metadata={"help": "omni_sparsity: length of the cubic ramp of the largest trainable sparsity."}
    )
    dropout: float = field(default=0.1, metadata={"help": "All dropout rates."})
    # SpecAugment is a model setting, as in transformers' wav2vec2 CTC example: masks drawn in training only, one set
    # per batch for every subnet of the sandwich (mask lengths and minimum counts: --config_overrides).
    mask_time_prob: float = field(default=0.05, metadata={"help": "SpecAugment: fraction of frames masked in time."})
    mask_feature_prob: float = field(default=0.05, metadata={"help": "SpecAugment: fraction of mel bins masked."})
    init_from_parakeet: str | None = field(
        default=None,
        metadata={
            "help": "A ParakeetForCTC folder or Hub id (with its processor) to start from: the supernet is that model "
            "made elastic (its architecture; the sizing flags are not used), trained on its processor's features."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Any other SupernetConformerConfig fields as a JSON object, e.g. "
            """'{"orthosoftmax_stage1_steps": 500, "num_physical_layers": 2}' (a mapping in a JSON/YAML config file)."""
        },
    )


def config_overrides(model_args: ModelArguments) -> dict:
    """``--config_overrides`` as a dict, checked against the config's fields (so a typo fails here instead of being
    stored as an unused attribute)."""
    overrides = model_args.config_overrides or {}
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except json.JSONDecodeError as error:
            raise ValueError(f"--config_overrides must be a JSON object, got {overrides!r} ({error}).") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"--config_overrides must be a JSON object of config fields, got {overrides!r}.")
    known = {f.name for f in dataclasses.fields(SupernetConformerConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"--config_overrides: {unknown} are not SupernetConformerConfig fields; valid: {sorted(known)}.")
    return overrides


def _dropout_fields(dropout: float) -> dict:
    return dict(hidden_dropout=dropout, activation_dropout=dropout, attention_dropout=dropout, final_dropout=dropout)


# ModelArguments that size a network from scratch (a Parakeet checkpoint has its own sizes).
_SIZING = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "conv_kernel_size",
           "subsampling_conv_channels", "subsampling_factor")


def config_from_arguments(model_args: ModelArguments, tokenizer) -> SupernetConformerConfig:
    """The supernet config: the sizing fields, one dropout rate for all, then ``config_overrides``."""
    values = {k: v for k, v in vars(model_args).items() if k not in ("dropout", "config_overrides", "init_from_parakeet")}
    values.update(_dropout_fields(model_args.dropout))
    values.update(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    values.update(config_overrides(model_args))
    return SupernetConformerConfig(**values)


def supernet_from_parakeet(model_args: ModelArguments) -> SupernetConformerForCTC:
    """``--init_from_parakeet``: that ParakeetForCTC made elastic, with the mask type, one dropout rate for all, the
    mask types' flags and ``config_overrides`` (the sizing flags are the checkpoint's)."""
    skipped = (*_SIZING, "dropout", "config_overrides", "init_from_parakeet", "mask_type")
    fields = {k: v for k, v in vars(model_args).items() if k not in skipped}
    fields.update(_dropout_fields(model_args.dropout))
    fields.update(config_overrides(model_args))
    return SupernetConformerForCTC.from_parakeet(model_args.init_from_parakeet, model_args.mask_type, **fields)


def parakeet_processor(path: str):
    """The processor saved with the Parakeet checkpoint at ``path`` (a clear error if there is none)."""
    processor = load_parakeet_processor(path)
    if processor is None:
        raise ValueError(
            f"--init_from_parakeet {path} holds no processor (Parakeet's feature extractor and tokenizer), which makes "
            "the features and labels the checkpoint was trained on. Save it there: processor.save_pretrained(PATH)."
        )
    return processor


def save_final_model(trainer) -> None:
    """The trained model and processor (safetensors) replace ``output_dir``'s as one folder write, keeping the
    checkpoints and every other file there: a run killed while saving leaves the previous state. FSDP and DeepSpeed
    gather the weights on every process inside ``save_model``, so there transformers' own in-place save is kept."""
    if trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled:
        trainer.save_model()
    elif trainer.args.should_save:
        with atomic_directory(trainer.args.output_dir, carry_over=True) as folder:
            trainer.save_model(str(folder))


@dataclass
class DataArguments:
    dataset: str = field(default="fsdd", metadata={"help": "'fsdd', 'mini_librispeech', a manifest folder or a datasets name."})
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    eval_split: str | None = field(default="test", metadata={"help": "Split to evaluate on (empty: no evaluation)."})
    tokenizer_type: str = field(default="char", metadata={"help": "char, unigram or bpe."})
    vocab_size: int = field(default=128, metadata={"help": "Tokenizer vocabulary bound (unigram/bpe)."})
    max_duration: float | None = field(default=None, metadata={"help": "Drop longer utterances (seconds)."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "num_proc of datasets.map."})


@dataclass
class OutputArguments:
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Train into an output_dir that already holds a trained model or checkpoints."}
    )


# What a finished or interrupted run leaves in output_dir: training there again would replace it.
TRAINED_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "trainer_state.json", "training_args.bin")


def check_output_dir(output_dir: str, overwrite: bool, resume_from_checkpoint) -> None:
    """Refuse to train over a trained model or checkpoints (transformers 5 dropped this check) unless told to."""
    if overwrite or resume_from_checkpoint or not os.path.isdir(output_dir):
        return
    found = sorted(n for n in os.listdir(output_dir) if n in TRAINED_FILES or n.startswith("checkpoint-"))
    if found:
        raise ValueError(
            f"--output_dir {output_dir} already holds a trained model or checkpoints ({', '.join(found)}); training "
            "would replace them. Choose another --output_dir, continue that run with --resume_from_checkpoint, or "
            "pass --overwrite_output_dir to replace it."
        )


def parse_args(argv):
    parser = HfArgumentParser((ModelArguments, DataArguments, SupernetTrainingArguments, OutputArguments))
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(os.path.abspath(argv[0]))
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv=None):
    model_args, data_args, training_args, output_args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    check_output_dir(training_args.output_dir, output_args.overwrite_output_dir, training_args.resume_from_checkpoint)

    splits = [data_args.train_split] + ([data_args.eval_split] if data_args.eval_split else [])
    # The main process decodes first; the others then read datasets' cache instead of decoding again.
    with training_args.main_process_first(desc="load and prepare data"):
        raw = {s: load_speech_dataset(data_args.dataset, s, max_duration=data_args.max_duration, num_proc=data_args.preprocessing_num_workers) for s in splits}
        if model_args.init_from_parakeet:
            processor = parakeet_processor(model_args.init_from_parakeet)
        else:
            tokenizer = train_tokenizer(raw[data_args.train_split]["text"], vocab_size=data_args.vocab_size, model_type=data_args.tokenizer_type)
            processor = build_processor(tokenizer)
        prepared = {s: prepare_dataset(d, processor, num_proc=data_args.preprocessing_num_workers) for s, d in raw.items()}

    # Seeded right before the weights are drawn: data preparation may consume random numbers on some processes only.
    set_seed(training_args.seed)
    if model_args.init_from_parakeet:
        model = supernet_from_parakeet(model_args)
    else:
        model = SupernetConformerForCTC(config_from_arguments(model_args, processor.tokenizer))
    train = filter_ctc_feasible(prepared[data_args.train_split], model._get_feat_extract_output_lengths)
    collator = DataCollatorCTCWithPadding(processor)
    trainer = SupernetTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=prepared.get(data_args.eval_split),
        data_collator=collator,
        processing_class=processor,
        compute_metrics=make_compute_metrics(processor),
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    save_final_model(trainer)
    trainer.save_state()  # trainer_state.json with the per-step log history
    if data_args.eval_split:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return trainer


if __name__ == "__main__":
    main()
