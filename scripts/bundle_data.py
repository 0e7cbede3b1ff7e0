#!/usr/bin/env python
"""Build ``hf_supernet/resources/data/``, the real-speech subset shipped inside the package, from the shared corpora.

    python scripts/bundle_data.py --source ../shared/data

- **fsdd**: the whole test split (recording index 0–4, 300 files) and as many train "rounds" as fit the size budget,
  a round being one recording index (5, 6, ...) for every speaker and digit, so train stays balanced. WAV is
  re-encoded losslessly as FLAC (same 8 kHz 16-bit samples; `load_speech_dataset` resamples).
- **mini_librispeech**: the shortest utterances of each split, FLAC bytes copied as is.

The budget counts disk usage as ``du`` does (each file rounded up to whole 4 KiB blocks) so ``du -s`` of the output
stays within ``--max-mb``. The output is deterministic for the same inputs and libFLAC version.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import shutil
from pathlib import Path

import soundfile

BLOCK = 4096
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "hf_supernet" / "resources" / "data"
FSDD_TEST_INDICES = range(0, 5)
FSDD_FIRST_TRAIN_INDEX = 5
FSDD_LAST_INDEX = 49
LIBRISPEECH_PER_SPLIT = {"train": 14, "dev": 8, "test": 8}
# Room kept for README, manifests and directory entries.
METADATA_ALLOWANCE = 400_000

README = """\
# Speech data bundled with hf_supernet

Small subsets of two public corpora of real human speech, shipped so that tests, the quickstart and examples run
offline. Built by `scripts/bundle_data.py` from the copies described in the project's shared data README; rerun it to
rebuild this folder. Load with `hf_supernet.data.load_speech_dataset("fsdd")` / `("mini_librispeech")`; the
folders are `hf_supernet.data.bundled_data_path(...)`.

Each corpus folder holds `{{split}}.jsonl` manifests, one JSON object a line: `id`, `speaker`, `file` (relative to
the folder), `text` (the corpus's own transcript; `load_speech_dataset` normalises it to lower case).

These files keep their own licences, which differ from the Apache-2.0 licence of the hf_supernet code.

## fsdd/ — Free Spoken Digit Dataset, CC BY-SA 4.0

- Source: Free Spoken Digit Dataset (FSDD), Z. Jackson et al., https://github.com/Jakobovski/free-spoken-digit-dataset
  (commit 26eb9aaf76e81b692f806f9140c2d2777410d7a1, `recordings/`).
- Licence: Creative Commons Attribution-ShareAlike 4.0 International,
  https://creativecommons.org/licenses/by-sa/4.0/ . This subset is a derivative and is distributed under the same
  licence.
- Changes: a subset of the recordings ({fsdd_test} test + {fsdd_train} train of 3000), re-encoded losslessly
  from WAV to FLAC (same 8 kHz, 16-bit samples); manifests added.
- Content: spoken digits "zero" … "nine" by 6 speakers, `{{digit}}_{{speaker}}_{{index}}.flac`. Split is the
  dataset's own: index 0–4 → `test.jsonl` ({fsdd_test}), indices {fsdd_train_indices} → `train.jsonl`
  ({fsdd_train}; the full dataset's train split has indices 5–49).

## mini_librispeech/ — Mini LibriSpeech, CC BY 4.0

- Source: Mini LibriSpeech `train-clean-5`, a subset of LibriSpeech (V. Panayotov, G. Chen, D. Povey,
  S. Khudanpur, "LibriSpeech: an ASR corpus based on public domain audio books", ICASSP 2015; audio from LibriVox),
  via github zhangrui0712/Voice-Age, commit c13f844098b754edb9c60b8deb1aa586bc461d8a, `LibriSpeech/train-clean-5`.
- Licence: Creative Commons Attribution 4.0 International, https://creativecommons.org/licenses/by/4.0/
  (LibriSpeech (c) 2014 by Vassil Panayotov; see `mini_librispeech/LICENSE.TXT`).
- Changes: only the shortest utterances of the speaker-disjoint train/dev/test split are kept
  ({libri_counts}); the FLAC files are unchanged. Transcripts are LibriSpeech's (upper case, A–Z, apostrophe, space).

## Size

{total_files} files: {apparent_mb:.2f} MB of audio and manifests, {disk_mb:.2f} MB on disk in 4 KiB blocks (as
`du -s` counts files).
"""


def disk_bytes(size: int) -> int:
    return math.ceil(size / BLOCK) * BLOCK


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_manifest(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def fsdd_index(row: dict) -> int:
    return int(re.fullmatch(r"\d_[a-z]+_(\d+)", row["id"]).group(1))


def encode_flac(path: Path) -> bytes:
    samples, rate = soundfile.read(path, dtype="int16")
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="FLAC", subtype="PCM_16", compression_level=1.0)
    return buffer.getvalue()


def shortest_librispeech(source: Path) -> dict[str, list[dict]]:
    chosen = {}
    for split, count in LIBRISPEECH_PER_SPLIT.items():
        rows = read_manifest(source / f"{split}.jsonl")
        frames = {row["id"]: soundfile.info(source / row["file"]).frames for row in rows}
        chosen[split] = sorted(rows, key=lambda row: (frames[row["id"]], row["id"]))[:count]
    return chosen


def choose_fsdd_train(train_rows: list[dict], flac: dict[str, bytes], budget: int) -> list[dict]:
    """Largest balanced train subset (recording indices 5..k for every speaker and digit) within `budget` bytes."""
    chosen, used = [], 0
    for index in range(FSDD_FIRST_TRAIN_INDEX, FSDD_LAST_INDEX + 1):
        round_rows = [row for row in train_rows if fsdd_index(row) == index]
        cost = sum(disk_bytes(len(flac[row["id"]])) for row in round_rows)
        if used + cost > budget:
            break
        chosen += round_rows
        used += cost
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--source", type=Path, default=REPO.parent / "shared" / "data",
        help="shared data folder (default: ../shared/data beside the repository)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="folder to (re)build")
    parser.add_argument("--max-mb", type=float, default=15.0, help="disk budget in MB (10**6 bytes)")
    args = parser.parse_args()

    libri_source, fsdd_source = args.source / "mini_librispeech", args.source / "fsdd"
    libri = shortest_librispeech(libri_source)
    libri_files = [libri_source / row["file"] for rows in libri.values() for row in rows]
    libri_bytes = sum(disk_bytes(path.stat().st_size) for path in libri_files)

    fsdd = {split: read_manifest(fsdd_source / f"{split}.jsonl") for split in ("train", "test")}
    test_rows = [row for row in fsdd["test"] if fsdd_index(row) in FSDD_TEST_INDICES]
    flac = {row["id"]: encode_flac(fsdd_source / row["file"]) for rows in fsdd.values() for row in rows}
    test_bytes = sum(disk_bytes(len(flac[row["id"]])) for row in test_rows)
    budget = int(args.max_mb * 1e6) - METADATA_ALLOWANCE - libri_bytes - test_bytes
    train_rows = choose_fsdd_train(fsdd["train"], flac, budget)

    for corpus in ("fsdd", "mini_librispeech"):
        shutil.rmtree(args.output / corpus, ignore_errors=True)
    for split, rows in (("train", train_rows), ("test", test_rows)):
        bundled = []
        for row in rows:
            file = f"recordings/{row['id']}.flac"
            target = args.output / "fsdd" / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(flac[row["id"]])
            bundled.append({**row, "file": file})
        write_manifest(args.output / "fsdd" / f"{split}.jsonl", bundled)
    for split, rows in libri.items():
        for row in rows:
            target = args.output / "mini_librispeech" / row["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(libri_source / row["file"], target)
        write_manifest(args.output / "mini_librispeech" / f"{split}.jsonl", rows)
    shutil.copyfile(libri_source / "LICENSE.TXT", args.output / "mini_librispeech" / "LICENSE.TXT")

    train_indices = sorted({fsdd_index(row) for row in train_rows})
    files = [path for path in args.output.rglob("*") if path.is_file() and path.name != "README.md"]
    readme = README.format(
        fsdd_test=len(test_rows),
        fsdd_train=len(train_rows),
        fsdd_train_indices=f"{train_indices[0]}–{train_indices[-1]}",
        libri_counts=", ".join(f"{len(rows)} {split}" for split, rows in libri.items()),
        total_files=len(files) + 1,
        apparent_mb=sum(path.stat().st_size for path in files) / 1e6,
        disk_mb=sum(disk_bytes(path.stat().st_size) for path in files) / 1e6,
    )
    (args.output / "README.md").write_text(readme)
    print(f"fsdd: {len(train_rows)} train, {len(test_rows)} test; mini_librispeech: "
          + ", ".join(f"{len(rows)} {split}" for split, rows in libri.items()))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
