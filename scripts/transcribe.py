"""Transcribe recordings with a saved subnet, or a supernet folder at a budget.

    python scripts/transcribe.py my_pin.wav phone.flac --model outputs/quickstart/subnets/largest
    python scripts/transcribe.py memo.ogg --model outputs/quickstart/supernet --subnet_budget 0.5
    python scripts/transcribe.py memo.ogg --model outputs/quickstart/supernet --subnet_budget '{"params": 1e6}'

Prints ``<file>\\t<transcript>`` per file. Any file soundfile reads (WAV, FLAC, OGG/Opus, MP3), any sampling rate,
mono or stereo; files longer than --chunk_length_s are transcribed in chunks. A file that cannot be read is reported
on stderr (the others are still transcribed) and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import sys

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet.transcription import load_recognizer, transcribe_files


def budget(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"--subnet_budget takes a fraction (0.5) or JSON limits, got {value!r}.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="+", help="Audio files.")
    parser.add_argument("--model", required=True, help="A subnet or supernet folder (save_pretrained + processor).")
    parser.add_argument("--subnet_budget", type=budget, default=None,
                        help="With a supernet folder: a fraction of the parameters or JSON limits, e.g. '{\"flops\": 2e8}'.")
    parser.add_argument("--chunk_length_s", type=float, default=20.0, help="Chunk length for long files (0: never).")
    args = parser.parse_args(argv)
    try:
        recognizer = load_recognizer(args.model, args.subnet_budget)
    except (FileNotFoundError, ValueError) as error:
        parser.error(str(error))
    failed = 0
    for path, text, error in transcribe_files(recognizer, args.audio, args.chunk_length_s or None):
        if error is not None:
            failed += 1
            print(f"error: {error}", file=sys.stderr)
        else:
            print(f"{path}\t{text}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
