#!/usr/bin/env python
"""How long ``import hf_supernet`` takes, next to what it cannot avoid: torch, and transformers' model base class.

    python scripts/bench_import.py [--repeats 9]

Each statement runs in a fresh Python (``python -c``) so nothing is cached in the process; the statements take turns
for ``--repeats`` rounds (the order rotating each round) and each is reported as the median wall seconds and the
median over rounds of its time / the time of ``from transformers import PreTrainedModel`` in the same round (the
floor of any package that registers transformers models at import: the Auto classes need the classes). Also records
which heavy packages ``import hf_supernet`` loads (peft, the Trainer, datasets, evaluate must not be among them).
Writes ``import_time.{json,md}`` to ``--results_dir`` (default ``benchmarks/results``). Goal (issue 16): under 1.5 s.
Run it on a quiet machine: the file says what else ran.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from hf_supernet.atomic import write_texts

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 1.5
FLOOR = "from transformers import PreTrainedModel"
STATEMENTS = {
    "torch": "import torch",
    "transformers PreTrainedModel": FLOOR,
    "hf_supernet": "import hf_supernet",
}
# Modules `import hf_supernet` must leave unloaded (they load on first use of the names that need them).
MUST_NOT_LOAD = ("peft", "transformers.trainer", "datasets", "evaluate", "hf_supernet.training")


def time_statement(statement: str) -> float:
    """Wall seconds of a fresh ``python -c statement``, interpreter start included (what a user waits)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
    return time.perf_counter() - start


def loaded_by_import() -> dict[str, bool]:
    code = (
        "import sys, json, hf_supernet; "
        f"print(json.dumps({{name: name in sys.modules for name in {list(MUST_NOT_LOAD)!r}}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def interleaved(repeats: int) -> dict[str, dict[str, float]]:
    names = list(STATEMENTS)
    seconds = {name: [] for name in names}
    ratios = {name: [] for name in names}
    for name in names:  # warm the file cache once
        time_statement(STATEMENTS[name])
    for round_ in range(repeats):
        order = names[round_ % len(names):] + names[: round_ % len(names)]
        this_round = {name: time_statement(STATEMENTS[name]) for name in order}
        for name in names:
            seconds[name].append(this_round[name])
            ratios[name].append(this_round[name] / this_round["transformers PreTrainedModel"])
    return {
        name: {"median_s": statistics.median(seconds[name]), "median_ratio_to_floor": statistics.median(ratios[name]),
               "min_s": min(seconds[name]), "max_s": max(seconds[name])}
        for name in names
    }


def markdown(result: dict) -> str:
    hf = result["timings"]["hf_supernet"]
    lines = [
        "# Import time",
        "",
        f"`python scripts/bench_import.py --repeats {result['repeats']}` on {result['date']} ({result['machine']}); "
        f"each statement in a fresh `python -c`, interpreter start included, {result['repeats']} interleaved rounds. "
        f"{result['note']}",
        "",
        "| statement | median s | min–max s | median ratio to `" + FLOOR + "` |",
        "|---|---:|---:|---:|",
    ]
    for name, row in result["timings"].items():
        lines.append(f"| `{STATEMENTS[name]}` | {row['median_s']:.2f} | {row['min_s']:.2f}–{row['max_s']:.2f} | "
                     f"{row['median_ratio_to_floor']:.2f}x |")
    loaded = [name for name, was in result["loaded_by_import_hf_supernet"].items() if was]
    lines += [
        "",
        f"`import hf_supernet` loads {', '.join(loaded) if loaded else 'none'} of "
        f"{', '.join(MUST_NOT_LOAD)}.",
        "",
        f"Goal: under {GOAL_SECONDS} s — {'met' if hf['median_s'] < GOAL_SECONDS else 'not met'} "
        f"({hf['median_s']:.2f} s, {hf['median_ratio_to_floor']:.2f}x the time of `{FLOOR}`, which any package that "
        "registers transformers Auto classes at import must pay).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--results_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--note", default="Nothing else ran on the machine.",
                        help="what else ran on the machine, for the results file")
    args = parser.parse_args(argv)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, Python {platform.python_version()}, torch {importlib.metadata.version('torch')}, "
                   f"transformers {importlib.metadata.version('transformers')}",
        "repeats": args.repeats,
        "note": args.note,
        "goal_seconds": GOAL_SECONDS,
        "timings": interleaved(args.repeats),
        "loaded_by_import_hf_supernet": loaded_by_import(),
    }
    print(json.dumps(result, indent=2))
    write_texts(args.results_dir, {"import_time.json": json.dumps(result, indent=2) + "\n",
                                   "import_time.md": markdown(result)})
    return result


if __name__ == "__main__":
    main()
