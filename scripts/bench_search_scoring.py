"""How fast the cost model scores subnet candidates, and what a measured latency costs.

Scores `--candidates` random subnets (default 20 000) of a TODM-sized layer_width supernet (16 x 144 blocks, FFN 576;
space of ~4.3e9 subnets) with the analytic cost model (params, FLOPs per second of audio, int8 MB), then finds the
largest subnet under three budgets the way `from_pretrained(...,
subnet_budget=...)` does. Times are CPU seconds of this process (`time.process_time`, robust to other load).
Goal (issue 9): >= 1e4 candidates scored in <= 60 s CPU.

Measured latency is slower by nature: the script also times filling a fresh latency table for `--latency_subnets`
subnets (each distinct part timed once), then the same lookups from the table, and compares the table's sums with
the extracted subnets timed end to end. Run it on an otherwise idle machine: latencies are wall-clock.

    python scripts/bench_search_scoring.py [--candidates 20000] [--latency_subnets 6]

Writes benchmarks/results/search_scoring.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone

import torch

from hf_supernet import LatencyTable, SupernetConformerConfig, SupernetConformerForCTC
from hf_supernet.latency import measure_rtf
from hf_supernet.budgets import largest_fitting, normalize_budget

GOAL_CANDIDATES, GOAL_SECONDS = 10_000, 60.0
RESULTS = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results")


def cpu_timed(fn):
    start = time.process_time()
    value = fn()
    return value, time.process_time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=20_000)
    parser.add_argument("--latency_subnets", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    config = SupernetConformerConfig(num_hidden_layers=16, hidden_size=144, intermediate_size=576, vocab_size=32)
    model = SupernetConformerForCTC(config).eval()
    space = model.subnet_space
    generator = torch.Generator().manual_seed(0)
    specs = [space.sample(generator) for _ in range(args.candidates)]

    costs, scoring_s = cpu_timed(lambda: [model.subnet_costs(s) for s in specs])
    full = model.subnet_costs()
    budgets = {}
    for fraction in (0.3, 0.5, 0.75):
        limits = normalize_budget(fraction, full)
        spec, seconds = cpu_timed(lambda limits=limits: largest_fitting(space, model.subnet_costs, limits))
        budgets[f"params_{round(fraction * 100)}pct"] = {"cpu_seconds": seconds, "params": model.subnet_costs(spec).params}

    with tempfile.TemporaryDirectory() as tmp:
        table = LatencyTable(os.path.join(tmp, "latency.json"))
        latency_specs = specs[: args.latency_subnets]
        _, measure_s = cpu_timed(lambda: [table.rtf(model, s) for s in latency_specs])
        rtfs, lookup_s = cpu_timed(lambda: [table.rtf(model, s) for s in latency_specs])
    # The table's sum of parts against the whole extracted subnet timed end to end.
    end_to_end = [measure_rtf(model.extract_subnet(s)) for s in latency_specs]
    ratios = [p / m for p, m in zip(rtfs, end_to_end)]

    per_second = args.candidates / scoring_s
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": args.threads},
        "supernet": {"layers": 16, "hidden": 144, "ffn": 576, "params": full.params, "space_size": len(space)},
        "candidates": args.candidates,
        "scoring_cpu_seconds": scoring_s,
        "candidates_per_cpu_second": per_second,
        "seconds_for_goal_candidates": GOAL_CANDIDATES / per_second,
        "largest_fitting": budgets,
        "latency": {
            "subnets": args.latency_subnets,
            "measure_cpu_seconds_per_subnet": measure_s / args.latency_subnets,
            "lookup_cpu_seconds_per_subnet": lookup_s / args.latency_subnets,
            "table_rtf": rtfs,
            "end_to_end_rtf": end_to_end,
            "table_over_end_to_end": ratios,
        },
        "goal": f">= {GOAL_CANDIDATES} candidates in <= {GOAL_SECONDS} s CPU",
        "goal_met": GOAL_CANDIDATES / per_second <= GOAL_SECONDS,
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "search_scoring.json"), "w") as f:
        json.dump(result, f, indent=2)
    lines = [
        "# Scoring subnet candidates with the cost model",
        "",
        f"`python scripts/bench_search_scoring.py --candidates {args.candidates}` on {result['machine']['platform']}, "
        f"{args.threads} torch threads, {result['date']}. CPU seconds of the process.",
        "",
        f"Supernet 16 x 144 (FFN 576), {full.params / 1e6:.2f} M params, layer_width space of {len(space):.3g} subnets.",
        "",
        "| what | CPU seconds | per candidate |",
        "|---|---:|---:|",
        f"| analytic costs of {args.candidates} random subnets | {scoring_s:.2f} | {1e6 * scoring_s / args.candidates:.0f} µs |",
    ]
    for name, b in budgets.items():
        lines.append(f"| largest subnet under {name} (greedy) | {b['cpu_seconds']:.3f} | |")
    lat = result["latency"]
    lines += [
        f"| latency of a subnet whose parts are new (time each part, 6 runs) | | {lat['measure_cpu_seconds_per_subnet']:.2f} s |",
        f"| latency of a subnet from the table (parts already timed) | | {1e3 * lat['lookup_cpu_seconds_per_subnet']:.1f} ms |",
        "",
        "Latency table (sum of timed parts) vs the extracted subnet timed end to end, real-time factor:",
        "",
        "| subnet | table | end to end | ratio |",
        "|---|---:|---:|---:|",
        *[f"| {i} | {p:.4f} | {m:.4f} | {r:.2f} |" for i, (p, m, r) in enumerate(zip(rtfs, end_to_end, ratios))],
        "",
        f"{GOAL_CANDIDATES} candidates take {result['seconds_for_goal_candidates']:.1f} s CPU "
        f"(goal <= {GOAL_SECONDS:.0f} s): **{'met' if result['goal_met'] else 'not met'}**.",
    ]
    with open(os.path.join(RESULTS, "search_scoring.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
