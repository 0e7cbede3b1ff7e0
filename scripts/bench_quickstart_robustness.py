#!/usr/bin/env python
"""Do the main job's models work on a person's own recording? The quickstart's subnets, through the ASR pipeline.

Runs ``scripts/quickstart.py`` (timed, unless ``--skip_training``), then feeds each of its saved subnet folders
(``<output_dir>/subnets/*``) to ``transformers.pipeline("automatic-speech-recognition")`` — the path a user takes —
on three test sets built from the FSDD *test* recordings only:

* ``isolated``: the clean, tightly trimmed test clips;
* ``isolated_silence_noise``: the same clips with ``--silence`` seconds of silence before and after and white noise
  at ``--snr_db`` over the whole clip (the issue's 0.5 s and 20 dB);
* ``connected``: the quickstart's fixed connected-digit test strings (2-7 digits, pauses, 0-1 s of silence, noise
  at 5-30 dB).

Each WER/CER comes with a 95% bootstrap interval over utterances; the two ratios with a paired one (same clips /
same strings). The connected WER is also given per noise band of the strings (the SNR each was drawn with, in 5 dB
steps, and those without noise), from the same scores (``--render_only`` adds it to older results). A goal is "met"
only when the whole interval is within it, "missed" when the whole interval is outside, "undecided" otherwise. Writes
``quickstart_robustness.json`` and ``.md`` to ``--results_dir``.

Goals (issue 19): largest subnet connected WER <= 5%, isolated WER <= 8.7% (the Parakeet reference), silence+noise
WER <= 1.2x clean; smallest subnet connected WER <= 2x the largest's; the whole main job within 10 minutes on 2
cores.

    python scripts/bench_quickstart_robustness.py --threads 2          # on a quiet machine: also times the main job
    python scripts/bench_quickstart_robustness.py --threads 2 --quickstart_args '--train_data connected' 
    python scripts/bench_quickstart_robustness.py --skip_training --output_dir outputs/quickstart --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib.util
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from transformers import HfArgumentParser

from hf_supernet import load_speech_dataset
from hf_supernet.atomic import atomic_file
from hf_supernet.data import ConnectedDigits, ConnectedDigitsConfig
from hf_supernet.metrics.bootstrap import bootstrap_error_rate, goal_verdict, paired_bootstrap_ratio, utterance_errors
from hf_supernet.training.recipes import CONNECTED_TEST, CONNECTED_TEST_SEED
from hf_supernet.transcription import load_recognizer

ROOT = Path(__file__).resolve().parent.parent
CHANCE_WER = 0.9
# Width of the noise bands the connected WER is broken down by (the strings' SNR is drawn from 5-30 dB).
SNR_BAND_DB = 5
# Ratio goals and the test set of their reference (the denominator).
RATIO_GOALS = {"largest_silence_noise_over_clean": "isolated", "smallest_over_largest_connected": "connected"}
GOALS = {
    "largest_connected_wer": 0.05,
    "largest_isolated_wer": 0.087,
    "largest_silence_noise_over_clean": 1.2,
    "smallest_over_largest_connected": 2.0,
    "main_job_minutes": 10.0,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/quickstart", help="The quickstart's output folder.")
    parser.add_argument("--skip_training", action="store_true", help="Score the subnets already in --output_dir.")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the main job's goal: 2).")
    parser.add_argument("--silence", type=float, default=0.5, help="Seconds of silence before and after each clip.")
    parser.add_argument("--snr_db", type=float, default=20.0, help="Noise floor of the silence+noise clips.")
    parser.add_argument("--results_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--smoke", action="store_true", help="The quickstart's --smoke and a few test clips.")
    parser.add_argument("--render_only", action="store_true",
                        help="Rewrite the goals and the markdown from the JSON in --results_dir (no training, no scoring).")
    parser.add_argument("--quickstart_args", default="",
                        help="Further arguments of scripts/quickstart.py, e.g. '--train_data connected'.")
    return parser.parse_args(argv)


@functools.cache
def load_quickstart():
    """The main job's script as a module (loaded once: the seed and the run both read it)."""
    spec = importlib.util.spec_from_file_location("quickstart", ROOT / "scripts" / "quickstart.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def quickstart_seed(quickstart_args: str) -> int:
    """The seed the main job ran with: its ``--seed`` in ``quickstart_args``, else the script's default."""
    module = load_quickstart()
    (args,) = HfArgumentParser(module.QuickstartArguments).parse_args_into_dataclasses(args=shlex.split(quickstart_args))
    return args.seed


def run_quickstart(output_dir: str, smoke: bool, extra: list[str]) -> float:
    """Minutes of wall time the README's main job takes (all of it: data, training, search, evaluation, saving)."""
    module = load_quickstart()
    start = time.monotonic()
    module.main(["--output_dir", output_dir, *extra] + (["--smoke"] if smoke else []))
    return (time.monotonic() - start) / 60


def test_recordings(smoke: bool):
    """The FSDD test recordings (every 30th with ``smoke``)."""
    recordings = load_speech_dataset("fsdd", "test")
    return recordings.select(range(0, len(recordings), 30)) if smoke else recordings


def test_sets(
    silence: float, snr_db: float, smoke: bool, strings: list[dict]
) -> dict[str, list[tuple[np.ndarray, str]]]:
    """``(audio at 16 kHz, transcript)`` lists of the three test sets, from the FSDD test recordings only
    (``strings``: :func:`connected_strings`)."""
    recordings = test_recordings(smoke)
    padded = ConnectedDigitsConfig(
        min_digits=1, max_digits=1, edge_silence_seconds=(silence, silence), snr_db=(snr_db, snr_db),
        noise_probability=1.0, noise_colors=("white",), gain_db=(0.0, 0.0), speed=(1.0, 1.0),
    )
    clips = ConnectedDigits(recordings, 1, padded)  # holds the clips resampled to 16 kHz, in order
    isolated = list(zip(clips.arrays, clips.words))
    # White noise (the flat floor of a cheap microphone); the same draw for every subnet.
    noisy = [(clips.compose([array], np.random.default_rng([7, i])), word) for i, (array, word) in enumerate(isolated)]
    return {
        "isolated": isolated,
        "isolated_silence_noise": noisy,
        "connected": [(item["audio"]["array"], item["text"]) for item in strings],
    }


def connected_strings(smoke: bool) -> list[dict]:
    """The quickstart's fixed connected test strings (items of :class:`ConnectedDigits`, with their ``conditions``)."""
    connected = ConnectedDigits(test_recordings(smoke), 10 if smoke else 200, CONNECTED_TEST, seed=CONNECTED_TEST_SEED)
    return [connected[i] for i in range(len(connected))]


def noise_band(conditions: dict) -> int | None:
    """The noise band of a connected test string: the lower end of its SNR's 5 dB step, or ``None`` without noise."""
    snr = conditions["snr_db"]
    return None if snr is None else SNR_BAND_DB * int(snr // SNR_BAND_DB)


def connected_by_noise(subnets: dict, strings: list[dict]) -> dict[str, list[dict]]:
    """Per subnet, its connected WER in each noise band of the strings (from the word errors it was scored with)."""
    bands = [noise_band(item["conditions"]) for item in strings]
    words = [len(item["text"].split()) for item in strings]
    order = sorted(set(bands), key=lambda low: (low is None, low or 0))  # loudest noise first, no noise last
    labels = {low: "no noise" if low is None else f"{low}-{low + SNR_BAND_DB} dB" for low in order}
    table = {}
    for name, subnet in subnets.items():
        errors = subnet["scores"]["connected"]["word_errors"]
        if len(errors) != len(strings):
            raise ValueError(f"{name}: {len(errors)} connected scores for {len(strings)} test strings; the test set "
                             "changed since it was scored: score the folders again (--skip_training).")
        table[name] = []
        for band in order:
            picked = [i for i, b in enumerate(bands) if b == band]
            table[name].append({"band": labels[band], "strings": len(picked), "words": sum(words[i] for i in picked),
                                "wer": bootstrap_error_rate([errors[i] for i in picked], [words[i] for i in picked])})
    return table


def score_folder(folder: Path, sets: dict) -> dict:
    recognizer = load_recognizer(folder)
    scores = {}
    for name, items in sets.items():
        hypotheses = [recognizer(audio.copy())["text"].strip() for audio, _ in items]
        references = [text for _, text in items]
        errors = utterance_errors(hypotheses, references)
        scores[name] = {
            "wer": bootstrap_error_rate(errors["word_errors"], errors["words"]),
            "cer": bootstrap_error_rate(errors["char_errors"], errors["chars"]),
            "word_errors": errors["word_errors"],
            "examples": [[r, h] for r, h in zip(references[:3], hypotheses[:3])],
        }
    return scores


def goal_rows(subnets: dict, minutes: float | None) -> list[dict]:
    largest, smallest = subnets["largest"]["scores"], subnets["smallest"]["scores"]
    rows = []
    for key, set_name in (("largest_connected_wer", "connected"), ("largest_isolated_wer", "isolated")):
        wer = largest[set_name]["wer"]
        rows.append({"goal": key, "target": GOALS[key], "value": wer["rate"], "low": wer["low"], "high": wer["high"]})
    pairs = (
        ("largest_silence_noise_over_clean", largest["isolated_silence_noise"], largest["isolated"]),
        ("smallest_over_largest_connected", smallest["connected"], largest["connected"]),
    )
    for key, a, b in pairs:
        ratio = paired_bootstrap_ratio(a["word_errors"], b["word_errors"])
        rows.append({"goal": key, "target": GOALS[key], "value": ratio["ratio"], "low": ratio["low"], "high": ratio["high"]})
    # A ratio against a recognizer that gets (almost) every word wrong says nothing about robustness or size: FSDD's
    # chance level is 90% WER (one of ten words). Each ratio's reference is the largest subnet on one test set.
    for row in rows:
        row["verdict"] = goal_verdict(row["target"], row)
        reference_set = RATIO_GOALS.get(row["goal"])
        if reference_set is not None and largest[reference_set]["wer"]["rate"] >= CHANCE_WER:
            row["verdict"] = f"not meaningful (the largest subnet is at chance on the {reference_set} set)"
    if minutes is not None:
        row = {"goal": "main_job_minutes", "target": GOALS["main_job_minutes"], "value": minutes, "low": minutes,
               "high": minutes}
        rows.append({**row, "verdict": goal_verdict(row["target"], row)})
    return rows


def markdown(result: dict) -> str:
    def pct(rate: dict) -> str:
        return f"{100 * rate['rate']:.1f}% [{100 * rate['low']:.1f}, {100 * rate['high']:.1f}]"

    lines = [
        "# The quickstart's subnets on recordings like a person's own (`scripts/bench_quickstart_robustness.py`)",
        "",
        f"Command: `{result['command']}`; torch threads: {result['threads']}; seed {result['quickstart_seed']} (the "
        "quickstart's `--seed`); "
        f"{result['date'][:10]}, {result['machine']}. Main job: "
        f"`{' '.join(['python scripts/quickstart.py', *result['quickstart_args'].split()])}`; its wall time: "
        + (f"{result['main_job_minutes']:.1f} min." if result["main_job_minutes"] is not None else "not timed (--skip_training)."),
        "",
        "Transcripts from `transformers.pipeline(\"automatic-speech-recognition\", model=<subnet folder>)`. Test sets "
        f"from the FSDD test recordings only: {result['sizes']['isolated']} isolated clean clips; the same clips with "
        f"{result['silence']} s of silence before and after and white noise at {result['snr_db']:g} dB SNR; "
        f"{result['sizes']['connected']} fixed connected strings (2-7 digits, pauses, 0-1 s silence, noise at 5-30 dB). "
        "Brackets: 95% bootstrap intervals over utterances.",
        "",
        "| subnet | params | isolated WER | silence+noise WER | connected WER | connected CER |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, subnet in result["subnets"].items():
        s = subnet["scores"]
        lines.append(f"| {name} | {subnet['params'] / 1e6:.2f} M | {pct(s['isolated']['wer'])} | "
                     f"{pct(s['isolated_silence_noise']['wer'])} | {pct(s['connected']['wer'])} | {pct(s['connected']['cer'])} |")
    lines += ["", "| goal | target | measured [95% CI] | verdict |", "|---|---:|---:|---|"]
    for row in result["goals"]:
        lines.append(f"| {row['goal']} | {row['target']:g} | {row['value']:.3f} [{row['low']:.3f}, {row['high']:.3f}] | {row['verdict']} |")
    by_noise = result.get("connected_by_noise")
    if by_noise:
        names = list(by_noise)
        lines += ["", "Connected WER by the strings' noise level (SNR drawn per string; bootstrap intervals over the "
                  "strings of each band):", "",
                  "| noise | strings | words | " + " | ".join(names) + " |", "|---|---:|---:|" + "---:|" * len(names)]
        for i, band in enumerate(by_noise[names[0]]):
            cells = [pct(by_noise[name][i]["wer"]) for name in names]
            lines.append(f"| {band['band']} | {band['strings']} | {band['words']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def displayed_args(argv) -> list[str]:
    """The command-line arguments with absolute paths made relative to the repository (``../elsewhere`` for paths
    outside it): results carry no machine's absolute paths."""
    shown = []
    for arg in argv if argv is not None else sys.argv[1:]:
        if Path(arg).is_absolute():
            arg = os.path.relpath(Path(arg).resolve(), ROOT)
        shown.append(arg)
    return shown


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results_dir = Path(args.results_dir)
    if args.render_only:
        result = json.loads((results_dir / "quickstart_robustness.json").read_text())
        result["goals"] = goal_rows(result["subnets"], result["main_job_minutes"])
        result["connected_by_noise"] = connected_by_noise(result["subnets"], connected_strings(result["smoke"]))
        result.setdefault("quickstart_seed", quickstart_seed(result["quickstart_args"]))
        write_results(results_dir, result)
        return result
    minutes = None if args.skip_training else run_quickstart(args.output_dir, args.smoke, shlex.split(args.quickstart_args))
    folders = sorted(p for p in (Path(args.output_dir) / "subnets").iterdir() if p.is_dir()) if (Path(args.output_dir) / "subnets").is_dir() else []
    names = {p.name for p in folders}
    if not {"largest", "smallest"} <= names:
        raise FileNotFoundError(
            f"{args.output_dir}/subnets/ lacks the largest and smallest subnet folders (found {sorted(names)}): run "
            "scripts/quickstart.py first, or drop --skip_training."
        )
    strings = connected_strings(args.smoke)
    sets = test_sets(args.silence, args.snr_db, args.smoke, strings)
    results = json.loads((Path(args.output_dir) / "results.json").read_text())
    params = {row["name"]: row["params"] for row in results}
    # largest and smallest first, then the selected subnets in the quickstart's order.
    order = [r["name"] for r in results if r["name"] in names]
    subnets = {name: {"params": params[name], "scores": score_folder(Path(args.output_dir) / "subnets" / name, sets)} for name in order}
    result = {
        "command": " ".join(["python", "scripts/bench_quickstart_robustness.py", *map(shlex.quote, displayed_args(argv))]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "threads": args.threads,
        "silence": args.silence,
        "snr_db": args.snr_db,
        "smoke": args.smoke,
        "quickstart_args": args.quickstart_args,
        "quickstart_seed": quickstart_seed(args.quickstart_args),
        "main_job_minutes": minutes,
        "sizes": {name: len(items) for name, items in sets.items()},
        "subnets": subnets,
        "goals": goal_rows(subnets, minutes),
        "connected_by_noise": connected_by_noise(subnets, strings),
    }
    write_results(results_dir, result)
    return result


def write_results(results_dir: Path, result: dict) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(results_dir / "quickstart_robustness.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    with atomic_file(results_dir / "quickstart_robustness.md") as tmp:
        tmp.write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
