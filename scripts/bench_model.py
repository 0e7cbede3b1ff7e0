#!/usr/bin/env python
"""CPU throughput of the supernet Conformer vs transformers' ``ParakeetEncoder``, and subnet latency vs FLOPs.

Two measurements, written to ``benchmarks/results/model.json`` and ``benchmarks/results/model.md``:

1. **Encoder vs Parakeet at equal dims.** For each ``LAYERSxHIDDEN`` case (default ``12x256`` and ``16x144``) build
   our ``SupernetConformerModel`` and a ``ParakeetEncoder`` with the same hidden size, depth, heads, FFN width,
   depthwise-conv kernel, subsampling factor (4), subsampling conv channels and mel bins, both randomly
   initialised. Time, interleaved (the two models alternate every repetition, the order flipping each time):

   * ``fwd``: eval mode under ``torch.inference_mode()``;
   * ``fwd+bwd``: train mode with every dropout at its configured rate (0.1 on both models), a scalar loss on
     the last hidden state, ``backward()``; Parakeet's LayerDrop is set to 0 (otherwise it would skip a random
     10% of the layers and do less work) and its positional dropout stays 0 (the default).

   on an unpadded batch (``--batch`` utterances of ``--seconds`` each) and on a padded batch whose lengths are
   spread evenly between 50% and 100% of the longest. Throughput = seconds of (real, unpadded) audio in the batch
   divided by wall seconds; the speed-up is the median over repetitions of Parakeet's time / ours.

2. **Subnet latency vs FLOPs share.** For a default supernet (16x144, layer_width mask) extract the dense subnets
   for every layer-drop choice x every uniform FFN-width choice (largest and smallest included), time each
   one's forward on the same unpadded batch right next to the largest one (order flipping), and compare the
   latency share = median over pairs of ``latency / latency(largest)`` with ``FLOPs / FLOPs(largest)`` (analytic
   FLOPs from ``hf_supernet.models.supernet_conformer.costs.conformer_flops`` for the batch's utterance length). Pairing matters on a shared
   machine: load that comes and goes hits both members of a pair alike.

Goals (from the issue): fwd and fwd+bwd throughput >= 1.0x Parakeet; every subnet's latency share <= 1.1x its
FLOPs share. Every number written is measured by this run.

Usage::

    python scripts/bench_model.py            # full run (about 4 minutes on 2 idle cores, longer when shared)
    python scripts/bench_model.py --quick    # smoke run (< 1 minute)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode
from transformers import ParakeetEncoder, ParakeetEncoderConfig
import transformers

from hf_supernet import SupernetConformerConfig, SupernetConformerForCTC, SupernetConformerModel
from hf_supernet.latency import wall_seconds
from hf_supernet.models.supernet_conformer.costs import conformer_flops
from hf_supernet.units import FEATURE_FRAMES_PER_SECOND

RESULTS_DIR = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
GOAL_SPEEDUP_VS_PARAKEET = 1.0
GOAL_LATENCY_OVER_FLOPS_SHARE = 1.1
NUM_MEL_BINS = 80
SUBSAMPLING_FACTOR = 4
HEADS = 4
FFN_MULTIPLIER = 4
CONV_KERNEL = 31
DROPOUT = 0.1


# ----------------------------------------------------------------------------------------------------------------
# Environment and inputs
# ----------------------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "load_average_1_5_15min": list(os.getloadavg()),
    }


def make_batch(batch: int, frames: int, padded: bool, seed: int = 0) -> dict:
    """Random log-mel features (batch, frames, 80); ``padded``: lengths spread over [frames/2, frames]."""
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, frames, NUM_MEL_BINS, generator=gen)
    if padded and batch > 1:
        lengths = torch.linspace(frames // 2, frames, batch).round().long()
    else:
        lengths = torch.full((batch,), frames, dtype=torch.long)
    mask = (torch.arange(frames)[None, :] < lengths[:, None]).long()
    features = features * mask[..., None]
    return {
        "input_features": features,
        "attention_mask": mask if padded else None,
        "audio_seconds": float(lengths.sum()) / FEATURE_FRAMES_PER_SECOND,
    }


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------


def parse_case(text: str) -> tuple[int, int]:
    layers, hidden = text.lower().split("x")
    return int(layers), int(hidden)


def equal_dims(layers: int, hidden: int) -> dict:
    """The config fields both encoders name alike, so the two are built at the same size."""
    return dict(
        num_mel_bins=NUM_MEL_BINS,
        subsampling_factor=SUBSAMPLING_FACTOR,
        subsampling_conv_channels=hidden,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=HEADS,
        intermediate_size=FFN_MULTIPLIER * hidden,
        conv_kernel_size=CONV_KERNEL,
        activation_dropout=DROPOUT,
        attention_dropout=DROPOUT,
    )


def build_ours(layers: int, hidden: int) -> SupernetConformerModel:
    return SupernetConformerModel(SupernetConformerConfig(**equal_dims(layers, hidden), hidden_dropout=DROPOUT))


def build_parakeet(layers: int, hidden: int) -> ParakeetEncoder:
    config = ParakeetEncoderConfig(
        **equal_dims(layers, hidden),
        dropout=DROPOUT,
        dropout_positions=0.0,
        layerdrop=0.0,  # LayerDrop would skip layers at random in training: unequal work
    )
    return ParakeetEncoder(config)


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_inputs(batch: dict) -> dict:
    inputs = {"input_features": batch["input_features"]}
    if batch["attention_mask"] is not None:
        inputs["attention_mask"] = batch["attention_mask"]
    return inputs


def counted_flops(model: torch.nn.Module, frames: int) -> int:
    """FLOPs of one eval forward over one utterance of ``frames`` frames, counted by ``torch.utils.flop_counter``
    (attention via the math SDPA backend so its matmuls are counted)."""
    model.eval()
    features = torch.randn(1, frames, NUM_MEL_BINS)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(input_features=features)
    return counter.get_total_flops()


# ----------------------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------------------


def forward_step(model: torch.nn.Module, inputs: dict):
    """One eval forward pass (the caller sets eval mode and inference_mode)."""
    return model(**inputs).last_hidden_state


def train_step(model: torch.nn.Module, inputs: dict) -> None:
    """One train-mode forward + backward of a scalar loss on the last hidden state."""
    out = model(**inputs).last_hidden_state
    out.float().pow(2).mean().backward()
    model.zero_grad(set_to_none=True)


def interleaved_times(fns: dict, reps: int, warmup: int) -> dict[str, list[float]]:
    """Run every callable of ``fns`` once per repetition, rotating the order each time; return the wall times."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(wall_seconds(fns[name]))
    return times


def paired_with_reference(reference, fns: dict, reps: int, warmup: int):
    """Time each callable of ``fns`` right next to ``reference`` (order flipping each time), ``reps`` times.

    Returns (times, reference_times, ratios) keyed by name, where ``ratios[name][i]`` is time / adjacent reference
    time: a share that other work on the machine disturbs far less than separately measured medians.
    """
    names = list(fns)
    for _ in range(warmup):
        reference()
        for name in names:
            fns[name]()
    times, ref_times, ratios = ({name: [] for name in names} for _ in range(3))
    for rep in range(reps):
        shift = rep % len(names) if names else 0
        for i, name in enumerate(names[shift:] + names[:shift]):
            if (rep + i) % 2:
                t_ref, t = wall_seconds(reference), wall_seconds(fns[name])
            else:
                t, t_ref = wall_seconds(fns[name]), wall_seconds(reference)
            times[name].append(t)
            ref_times[name].append(t_ref)
            ratios[name].append(t / t_ref)
    return times, ref_times, ratios


def timed_pair(ours, parakeet, inputs: dict, mode: str, reps: int, warmup: int) -> dict[str, list[float]]:
    """Interleaved wall times of ``ours`` and ``parakeet`` in ``mode`` (``"fwd"`` or ``"fwd+bwd"``)."""
    if mode == "fwd":
        for m in (ours, parakeet):
            m.eval()

        def run(m):
            def step():
                with torch.inference_mode():
                    forward_step(m, inputs)

            return step
    else:
        for m in (ours, parakeet):
            m.train()

        def run(m):
            return lambda: train_step(m, inputs)

    return interleaved_times({"ours": run(ours), "parakeet": run(parakeet)}, reps, warmup)


def summarize(times: list[float], audio_seconds: float) -> dict:
    median = statistics.median(times)
    return {
        "median_s": median,
        "min_s": min(times),
        "max_s": max(times),
        "times_s": times,
        "audio_s_per_s": audio_seconds / median,
    }


# ----------------------------------------------------------------------------------------------------------------
# Part 1: encoder vs Parakeet
# ----------------------------------------------------------------------------------------------------------------


def compare_with_parakeet(layers: int, hidden: int, batches: dict, args) -> dict:
    torch.manual_seed(0)
    ours, parakeet = build_ours(layers, hidden), build_parakeet(layers, hidden)
    frames = batches["unpadded"]["input_features"].shape[1]
    case = {
        "case": f"{layers}x{hidden}",
        "dims": {
            "num_hidden_layers": layers,
            "hidden_size": hidden,
            "num_attention_heads": HEADS,
            "intermediate_size": FFN_MULTIPLIER * hidden,
            "conv_kernel_size": CONV_KERNEL,
            "subsampling_factor": SUBSAMPLING_FACTOR,
            "subsampling_conv_channels": hidden,
            "num_mel_bins": NUM_MEL_BINS,
            "dropout": DROPOUT,
        },
        "params": {"ours": num_params(ours), "parakeet": num_params(parakeet)},
        "flops_per_utterance": {"ours": counted_flops(ours, frames), "parakeet": counted_flops(parakeet, frames)},
        "parakeet_attn_implementation": parakeet.config._attn_implementation,
        "runs": [],
    }
    for batch_name, batch in batches.items():
        inputs = model_inputs(batch)
        for mode in args.modes:
            times = timed_pair(ours, parakeet, inputs, mode, args.reps, args.warmup)
            ratios = [p / o for o, p in zip(times["ours"], times["parakeet"])]
            speedup = statistics.median(ratios)
            # Other work on the machine only ever adds time, so the ratio of best times is a cross-check.
            speedup_best = min(times["parakeet"]) / min(times["ours"])
            run = {
                "batch": batch_name,
                "mode": mode,
                "batch_size": batch["input_features"].shape[0],
                "frames": frames,
                "audio_seconds": batch["audio_seconds"],
                "ours": summarize(times["ours"], batch["audio_seconds"]),
                "parakeet": summarize(times["parakeet"], batch["audio_seconds"]),
                "speedup_vs_parakeet": speedup,
                "speedup_per_rep": ratios,
                "speedup_of_best_times": speedup_best,
                "goal_met": speedup >= GOAL_SPEEDUP_VS_PARAKEET,
            }
            case["runs"].append(run)
            print(
                f"  {case['case']:>7} {batch_name:>8} {mode:>7}: ours {run['ours']['audio_s_per_s']:7.1f} "
                f"audio s/s, parakeet {run['parakeet']['audio_s_per_s']:7.1f} -> {speedup:.2f}x "
                f"(best times: {speedup_best:.2f}x)",
                flush=True,
            )
    return case


# ----------------------------------------------------------------------------------------------------------------
# Part 2: subnet latency vs FLOPs share
# ----------------------------------------------------------------------------------------------------------------


def uniform_subnet_specs(supernet: SupernetConformerForCTC) -> list:
    """Every depth choice x every uniform FFN-width choice, as ``LayerWidthSpec``s (largest and smallest included)."""
    space = supernet.subnet_space
    spec_class = type(space.largest())
    specs = []
    for depth in space.depths:
        for choice in range(len(space.width_choices[0])):
            specs.append(spec_class(tuple(space.width_choices[i][choice] for i in range(depth))))
    return specs


def subnet_study(batch: dict, args) -> dict:
    torch.manual_seed(0)
    supernet = SupernetConformerForCTC(SupernetConformerConfig()).eval()  # library defaults: 16x144
    frames = batch["input_features"].shape[1]
    inputs = model_inputs(batch)
    specs = uniform_subnet_specs(supernet)
    if args.quick:
        specs = [specs[0], specs[-1]]
    largest = supernet.subnet_space.largest()
    if largest not in specs:
        specs.append(largest)
    models, rows = {}, {}
    for spec in specs:
        name = f"L{spec.num_layers}-ffn{spec.ffn_dims[0]}"
        dense = supernet.extract_subnet(spec).eval()
        models[name] = dense
        rows[name] = {
            "name": name,
            "num_layers": spec.num_layers,
            "ffn_dim": spec.ffn_dims[0],
            "spec": spec.to_dict(),
            "params": num_params(dense),
            "flops_per_utterance": conformer_flops(supernet.config, supernet.mask.block_plans(spec), frames),
        }

    def run(m):
        def step():
            with torch.inference_mode():
                m(**inputs)

        return step

    largest_name = next(n for n, r in rows.items() if tuple(r["spec"]["ffn_dims"]) == largest.ffn_dims)
    others = {name: run(m) for name, m in models.items() if name != largest_name}
    times, ref_times, ratios = paired_with_reference(run(models[largest_name]), others, args.subnet_reps, args.warmup)
    all_ref = [t for ts in ref_times.values() for t in ts]
    times[largest_name], ratios[largest_name] = all_ref, [1.0]
    base_best = min(all_ref)
    base_flops = rows[largest_name]["flops_per_utterance"]
    for name, row in rows.items():
        row.update(summarize(times[name], batch["audio_seconds"]))
        row["latency_share"] = statistics.median(ratios[name])
        row["latency_share_per_pair"] = ratios[name]
        row["latency_share_of_best_times"] = row["min_s"] / base_best
        row["flops_share"] = row["flops_per_utterance"] / base_flops
        row["latency_over_flops_share"] = row["latency_share"] / row["flops_share"]
        row["best_latency_over_flops_share"] = row["latency_share_of_best_times"] / row["flops_share"]
        row["goal_met"] = row["latency_over_flops_share"] <= GOAL_LATENCY_OVER_FLOPS_SHARE
        print(
            f"  {name:>14}: {row['median_s'] * 1e3:8.1f} ms  latency share {row['latency_share']:.3f}  "
            f"FLOPs share {row['flops_share']:.3f}  ratio {row['latency_over_flops_share']:.2f} "
            f"(best times: {row['best_latency_over_flops_share']:.2f})",
            flush=True,
        )
    ordered = sorted(rows.values(), key=lambda r: -r["flops_per_utterance"])
    return {
        "supernet": {
            "num_hidden_layers": supernet.config.num_hidden_layers,
            "hidden_size": supernet.config.hidden_size,
            "intermediate_size": supernet.config.intermediate_size,
            "layer_drop_choices": supernet.config.layer_drop_choices,
            "ffn_width_choices": supernet.config.ffn_width_choices,
            "params": num_params(supernet),
        },
        "batch_size": batch["input_features"].shape[0],
        "frames": frames,
        "subnets": ordered,
    }


# ----------------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------------


def goals(parakeet_cases: list[dict], subnets: dict) -> dict:
    runs = [r for c in parakeet_cases for r in c["runs"]]
    return {
        "speedup_vs_parakeet": {
            "goal": f">= {GOAL_SPEEDUP_VS_PARAKEET}",
            "met": all(r["goal_met"] for r in runs),
            "worst": min((r["speedup_vs_parakeet"] for r in runs), default=None),
        },
        "subnet_latency_over_flops_share": {
            "goal": f"<= {GOAL_LATENCY_OVER_FLOPS_SHARE}",
            "met": all(r["goal_met"] for r in subnets["subnets"]),
            "worst": max((r["latency_over_flops_share"] for r in subnets["subnets"]), default=None),
        },
    }


def yes_no(flag: bool) -> str:
    return "yes" if flag else "**no**"


def render_markdown(result: dict) -> str:
    info, cfg = result["machine"], result["settings"]
    lines = [
        "# Model benchmark: supernet Conformer vs Parakeet encoder, subnet latency vs FLOPs",
        "",
        f"Generated by `scripts/bench_model.py{' --quick' if cfg['quick'] else ''}` on {info['date']}: "
        f"torch {info['torch']}, transformers {info['transformers']}, {info['threads']} threads, "
        f"CPU `{info['cpu_model']}` ({info['cpu_count']} cores visible; 1-min load average "
        f"{info['load_average_at_start'][0]:.1f} at start, {info['load_average_at_end'][0]:.1f} at end). Random init; {cfg['batch']} utterances "
        f"x {cfg['seconds']} s ({cfg['frames']} frames, 80 mel); medians of {cfg['reps']} interleaved repetitions (subnets: {cfg['subnet_reps']} pairs with the largest) "
        f"after {cfg['warmup']} warm-up. fwd: eval + `inference_mode`; fwd+bwd: train mode, all dropouts "
        f"{DROPOUT} on both models (Parakeet LayerDrop 0). Padded batch: lengths spread over 50-100% of the longest, "
        "throughput counts real audio only.",
        "",
        "## Throughput vs `ParakeetEncoder` at equal dims (audio seconds per second)",
        "",
        "| case | params ours / Parakeet | GFLOPs/utt ours / Parakeet | batch | mode | ours | Parakeet | speed-up "
        f"(goal >= {GOAL_SPEEDUP_VS_PARAKEET}x) | met | speed-up of best times |",
        "|---|---|---|---|---|---:|---:|---:|---|---:|",
    ]
    for case in result["parakeet_comparison"]:
        p, f = case["params"], case["flops_per_utterance"]
        for run in case["runs"]:
            lines.append(
                f"| {case['case']} | {p['ours'] / 1e6:.2f}M / {p['parakeet'] / 1e6:.2f}M | "
                f"{f['ours'] / 1e9:.2f} / {f['parakeet'] / 1e9:.2f} | {run['batch']} | {run['mode']} | "
                f"{run['ours']['audio_s_per_s']:.1f} | {run['parakeet']['audio_s_per_s']:.1f} | "
                f"{run['speedup_vs_parakeet']:.2f}x | {yes_no(run['goal_met'])} | {run['speedup_of_best_times']:.2f}x |"
            )
    sub = result["subnets"]
    lines += [
        "",
        f"GFLOPs/utt: one {cfg['seconds']} s utterance, counted by `torch.utils.flop_counter` (math SDPA backend).",
        "",
        f"## Extracted subnets of the default {sub['supernet']['num_hidden_layers']}x{sub['supernet']['hidden_size']} "
        f"supernet: fwd latency share vs FLOPs share (batch {sub['batch_size']} x {sub['frames']} frames)",
        "",
        "| subnet | layers | FFN | params | GFLOPs/utt | latency (ms) | latency share | FLOPs share | "
        f"ratio (goal <= {GOAL_LATENCY_OVER_FLOPS_SHARE}) | met | ratio of best times |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in sub["subnets"]:
        lines.append(
            f"| {row['name']} | {row['num_layers']} | {row['ffn_dim']} | {row['params'] / 1e6:.2f}M | "
            f"{row['flops_per_utterance'] / 1e9:.2f} | {row['median_s'] * 1e3:.0f} | {row['latency_share']:.3f} | "
            f"{row['flops_share']:.3f} | {row['latency_over_flops_share']:.2f} | {yes_no(row['goal_met'])} | "
            f"{row['best_latency_over_flops_share']:.2f} |"
        )
    g = result["goals"]
    lines += [
        "",
        "## Goals",
        "",
        f"- Throughput >= {GOAL_SPEEDUP_VS_PARAKEET}x Parakeet in every case: {yes_no(g['speedup_vs_parakeet']['met'])} "
        f"(worst {g['speedup_vs_parakeet']['worst']:.2f}x).",
        f"- Subnet latency share <= {GOAL_LATENCY_OVER_FLOPS_SHARE}x FLOPs share for every subnet: "
        f"{yes_no(g['subnet_latency_over_flops_share']['met'])} "
        f"(worst {g['subnet_latency_over_flops_share']['worst']:.2f}).",
        "",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and repetitions (smoke run, < 1 min)")
    parser.add_argument("--cases", default="12x256,16x144", help="LAYERSxHIDDEN cases to compare with Parakeet")
    parser.add_argument("--batch", type=int, default=4, help="utterances per batch")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each (longest) utterance")
    parser.add_argument("--reps", type=int, default=7, help="timed repetitions per model (encoder vs Parakeet)")
    parser.add_argument("--subnet-reps", type=int, default=8, help="timed (subnet, largest) pairs per subnet")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up repetitions per model")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--no-padded", action="store_true", help="skip the padded (uneven lengths) batch")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.batch, args.seconds, args.reps, args.subnet_reps, args.warmup = "2x256,2x144", 2, 2.0, 2, 2, 1
    args.modes = ["fwd", "fwd+bwd"]
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    frames = int(round(args.seconds * FEATURE_FRAMES_PER_SECOND))
    batches = {"unpadded": make_batch(args.batch, frames, padded=False)}
    if not args.no_padded:
        batches["padded"] = make_batch(args.batch, frames, padded=True)
    started = time.perf_counter()
    load_before = list(os.getloadavg())

    print("Encoder vs ParakeetEncoder:", flush=True)
    cases = [compare_with_parakeet(*parse_case(c), batches, args) for c in args.cases.split(",")]
    print(f"Extracted subnets (fwd), {time.perf_counter() - started:.0f} s elapsed:", flush=True)
    subnets = subnet_study(batches["unpadded"], args)

    machine = machine_info()
    machine["load_average_at_start"] = load_before  # 1/5/15 min; > threads means other work shared the cores
    machine["load_average_at_end"] = machine.pop("load_average_1_5_15min")
    result = {
        "machine": machine,
        "settings": {
            "quick": args.quick,
            "batch": args.batch,
            "seconds": args.seconds,
            "frames": frames,
            "reps": args.reps,
            "subnet_reps": args.subnet_reps,
            "warmup": args.warmup,
            "modes": args.modes,
            "dropout": DROPOUT,
            "parakeet_layerdrop": 0.0,
        },
        "parakeet_comparison": cases,
        "subnets": subnets,
        "goals": goals(cases, subnets),
    }
    result["wall_seconds"] = time.perf_counter() - started
    markdown = render_markdown(result)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "model.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "model.md").write_text(markdown)
    print()
    print(markdown)
    return result


if __name__ == "__main__":
    main()
