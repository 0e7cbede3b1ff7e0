#!/usr/bin/env python
"""The cost model's ``int8_mb`` against the int8 ONNX files it estimates, for Conformer subnets of several sizes.

    python scripts/bench_int8_size.py

For each subnet (the quickstart's 4 x 144 supernet: smallest, a mixed-width and the largest subnet; a 3-layer model
with per-layer heads and convolution modules; the default 16 x 144 supernet: its smallest subnet and a 13-layer one;
a toy 4 x 32 model), extracts the dense model, moves every weight slightly off its initial value (as training does: an
exporter stores equal constants, such as fresh LayerNorm weights, once), exports it as int8 ONNX
(``export_model(..., "onnx", int8=True)``: onnxruntime's per-channel dynamic int8) and writes the file size next to
the cost model's ``subnet_costs(spec).int8_mb`` and the one-byte-per-parameter estimate the cost model used before,
to ``int8_size.{json,md}`` in ``--results_dir`` (default ``benchmarks/results``). Goal (issue 17): within 10%.
Nothing here is trained or timed; the sizes do not depend on the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import onnxruntime
import torch

from hf_supernet import LayerWidthSpec, SupernetConformerConfig, SupernetConformerForCTC
from hf_supernet.atomic import write_texts
from hf_supernet.publishing.export import export_model

ROOT = Path(__file__).resolve().parent.parent
GOAL = 0.10
QUICKSTART = dict(vocab_size=30, hidden_size=144, num_hidden_layers=4, intermediate_size=576,
                  subsampling_conv_channels=96, conv_kernel_size=15)


def cases():
    """(name, supernet config, spec or a space method name) of every subnet measured."""
    return [
        ("quickstart smallest", QUICKSTART, "smallest"),
        ("quickstart 3 layers, FFN 288/144/72", QUICKSTART, LayerWidthSpec((288, 144, 72))),
        ("quickstart largest", QUICKSTART, "largest"),
        ("3 layers, heads 0/2/4, conv on/off/on", dict(QUICKSTART, num_hidden_layers=3, layer_attention_heads=[0, 2, 4],
                                                       layer_conv_modules=[True, False, True]), "largest"),
        ("16x144 smallest (9 layers, FFN 72)", dict(vocab_size=32), "smallest"),
        ("16x144 13 layers, FFN 288", dict(vocab_size=32), LayerWidthSpec((288,) * 13)),
        ("toy 4x32", dict(num_mel_bins=16, subsampling_conv_channels=8, hidden_size=32, num_hidden_layers=4,
                          intermediate_size=64, conv_kernel_size=5, vocab_size=12), "largest"),
    ]


@torch.no_grad()
def measure(name: str, values: dict, spec) -> dict:
    torch.manual_seed(0)
    supernet = SupernetConformerForCTC(SupernetConformerConfig(**values)).eval()
    spec = getattr(supernet.subnet_space, spec)() if isinstance(spec, str) else spec
    costs = supernet.subnet_costs(spec)
    dense = supernet.extract_subnet(spec)
    for p in dense.parameters():
        p.add_(0.01 * torch.randn_like(p))
    with tempfile.TemporaryDirectory() as folder:
        size = export_model(dense, Path(folder) / "int8.onnx", "onnx", int8=True).stat().st_size / 1e6
    return {
        "name": name,
        "spec": spec.to_dict(),
        "params": costs.params,
        "onnx_int8_mb": size,
        "int8_mb_cost_model": costs.int8_mb,
        "cost_model_over_file": costs.int8_mb / size,
        "one_byte_per_param_over_file": costs.params / 1e6 / size,
        "within_goal": abs(costs.int8_mb / size - 1) <= GOAL,
    }


def markdown(result: dict) -> str:
    lines = [
        "# The cost model's int8_mb vs int8 ONNX files",
        "",
        f"`python scripts/bench_int8_size.py` on {result['date']} (torch {result['torch']}, onnxruntime "
        f"{result['onnxruntime']}). Weights moved off their initial values as by training; the file is "
        "`export_model(..., \"onnx\", int8=True)` (onnxruntime's per-channel dynamic int8). Cost model: linear weights "
        "in one byte + a scale and a zero point per output channel + every other parameter in fp32 (exact counts of "
        "the tensors) + the graph (2.35 kB per linear layer + 5.6 kB: constants fitted to files like these, so the "
        f"graph term is a fit, not a prediction). Goal: within {GOAL:.0%} of the file.",
        "",
        "| subnet | params | ONNX int8 MB | cost model int8_mb | cost model / file | one byte per param / file |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["subnets"]:
        lines.append(
            f"| {row['name']} | {row['params'] / 1e6:.3f} M | {row['onnx_int8_mb']:.3f} | "
            f"{row['int8_mb_cost_model']:.3f} | {row['cost_model_over_file']:.3f} | "
            f"{row['one_byte_per_param_over_file']:.3f} |"
        )
    ratios = [row["cost_model_over_file"] for row in result["subnets"]]
    lines += ["", f"Cost model / file: {min(ratios):.3f}–{max(ratios):.3f}; goal met for "
              f"{sum(row['within_goal'] for row in result['subnets'])} of {len(ratios)} subnets."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--quick", action="store_true", help="only the toy model (a smoke test)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    selected = [case for case in cases() if not args.quick or case[0].startswith("toy")]
    rows = []
    for case in selected:
        rows.append(measure(*case))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "goal": GOAL,
        "subnets": rows,
    }
    write_texts(
        args.results_dir, {"int8_size.json": json.dumps(result, indent=2) + "\n", "int8_size.md": markdown(result)}
    )
    return result


if __name__ == "__main__":
    main()
