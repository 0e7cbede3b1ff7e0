#!/usr/bin/env python
"""Train a SentencePiece CTC tokenizer on a dataset's transcripts and save it (with a feature extractor) as a processor.

    python scripts/train_tokenizer.py --dataset fsdd --output_dir outputs/fsdd-processor --model_type char
    python scripts/train_tokenizer.py --dataset mini_librispeech --vocab_size 256 --output_dir outputs/libri-processor

`--dataset` is a bundled corpus (`fsdd`, `mini_librispeech`), a folder of `{split}.jsonl` manifests, or anything
`datasets.load_dataset` accepts. Only the transcripts are read (no audio is decoded); they are normalised with
`hf_supernet.data.normalize_text`. The output folder loads with `AutoProcessor.from_pretrained` (or
`AutoTokenizer.from_pretrained` with `--tokenizer_only`) after `import hf_supernet.data`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser


@dataclass
class TokenizerTrainingArguments:
    output_dir: str = field(metadata={"help": "Folder to save the processor (or tokenizer) in."})
    dataset: str = field(
        default="fsdd", metadata={"help": "Bundled corpus name, manifest folder, or datasets name/path."}
    )
    split: str = field(default="train", metadata={"help": "Split whose transcripts train the tokenizer."})
    text_column: str = field(default="text", metadata={"help": "Transcript column (datasets sources)."})
    vocab_size: int = field(
        default=128, metadata={"help": "Upper bound on the vocabulary size (<pad>, <unk> included)."}
    )
    model_type: str = field(
        default="unigram", metadata={"help": "SentencePiece model type.", "choices": ["unigram", "bpe", "char"]}
    )
    feature_size: int = field(default=80, metadata={"help": "Mel bins of the saved feature extractor."})
    tokenizer_only: bool = field(default=False, metadata={"help": "Save only the tokenizer, not a processor."})


def read_transcripts(dataset: str, split: str, text_column: str) -> list[str]:
    """Transcripts of one split, without decoding any audio."""
    from hf_supernet.data import BUNDLED_CORPORA, bundled_data_path

    folder = bundled_data_path(dataset) if dataset in BUNDLED_CORPORA and not Path(dataset).exists() else Path(dataset)
    manifest = folder / f"{split}.jsonl"
    if manifest.is_file():
        return [json.loads(line)["text"] for line in manifest.read_text().splitlines() if line.strip()]
    import datasets

    return datasets.load_dataset(dataset, split=split).select_columns([text_column])[text_column]


def main(argv: list[str] | None = None) -> None:
    (args,) = HfArgumentParser(TokenizerTrainingArguments).parse_args_into_dataclasses(args=argv)
    from hf_supernet.data import build_processor, train_tokenizer

    texts = read_transcripts(args.dataset, args.split, args.text_column)
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab_size, model_type=args.model_type)
    saved = tokenizer if args.tokenizer_only else build_processor(tokenizer, feature_size=args.feature_size)
    saved.save_pretrained(args.output_dir)
    print(f"Trained a {args.model_type} tokenizer of {len(tokenizer)} pieces on {len(texts)} transcripts; saved "
          f"{type(saved).__name__} to {args.output_dir}.")


if __name__ == "__main__":
    main()
