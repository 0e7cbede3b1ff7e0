#!/usr/bin/env python
"""Deploying subnets: eager PyTorch vs torch.export vs ONNX Runtime fp32 vs int8 (ONNX Runtime and torchao).

For each subnet folder (default: the quickstart's ``outputs/quickstart/subnets/*``), converted to the plain dense
``ConformerForCTC``:

* **size on disk**: safetensors, ``.pt2`` (torch.export), ONNX fp32 and ONNX int8 files, the ONNX int8 file next to
  the cost model's ``int8_mb`` (linear weights in one byte plus per-channel scale and zero point, the rest fp32:
  :class:`hf_supernet.costs.ParamCounts`) and their ratio;
* **latency**: batch of one, ``--seconds`` of real speech (bundled test clips concatenated), every runtime timed in
  turn for ``--repeats`` rounds (the order rotating each round); reported as the median wall seconds and the
  median over rounds of each runtime's time / eager's time (ratios are what a shared machine measures best);
* **WER / CER** of greedy CTC transcripts of each runtime on the split.

Writes ``deploy.json`` and ``deploy.md`` to ``--results_dir`` (default ``benchmarks/results``). Goals (issue 17):
int8 size <= 0.3x fp32; int8 WER <= fp32 + 0.5 points; ONNX Runtime fp32 latency <= 1.0x eager.

    python scripts/bench_deploy.py --threads 1
    python scripts/bench_deploy.py outputs/quickstart/subnets/params_50pct --threads 1 --repeats 20
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoProcessor

from hf_supernet import load_speech_dataset
from hf_supernet.atomic import write_texts
from hf_supernet.data import DataCollatorCTCWithPadding, prepare_dataset
from hf_supernet.metrics.ctc import ctc_greedy_decode
from hf_supernet.models.supernet_conformer.costs import dense_conformer_costs
from hf_supernet.publishing.export import export_model, load_deployable, quantize_int8, quantize_onnx
from hf_supernet.search.evaluation import collate_batches, error_rates

ROOT = Path(__file__).resolve().parent.parent
GOAL_INT8_SIZE = 0.3
GOAL_INT8_WER_POINTS = 0.5
GOAL_ORT_LATENCY = 1.0


def runtimes(dense, folder: Path, threads: int) -> tuple[dict, dict]:
    """name -> (features, mask) -> logits, and the files each deployable form takes on disk (MB)."""
    import onnxruntime

    dense.save_pretrained(folder / "model")
    sizes = {"safetensors_mb": (folder / "model" / "model.safetensors").stat().st_size / 1e6}
    pt2 = export_model(dense, folder / "model.pt2", "pt2")
    onnx_fp32 = export_model(dense, folder / "model.onnx", "onnx")
    onnx_int8 = folder / "model-int8.onnx"
    quantize_onnx(onnx_fp32, onnx_int8)
    sizes.update(pt2_mb=pt2.stat().st_size / 1e6, onnx_mb=onnx_fp32.stat().st_size / 1e6,
                 onnx_int8_mb=onnx_int8.stat().st_size / 1e6)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads

    def ort(path):
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda f, m: torch.from_numpy(session.run(None, {"input_features": f.numpy(), "attention_mask": m.numpy()})[0])

    program = torch.export.load(pt2).module()
    quantized = quantize_int8(dense)
    return {
        "eager": lambda f, m: dense(f, attention_mask=m).logits,
        "torch_export": program,
        "ort_fp32": ort(onnx_fp32),
        "ort_int8": ort(onnx_int8),
        "torchao_int8": lambda f, m: quantized(f, attention_mask=m).logits,
    }, sizes


@torch.inference_mode()
def error_rates_of(run, dense, batches, tokenizer) -> dict:
    hypotheses, references = [], []
    for batch in batches:
        logits = run(batch["input_features"], batch["attention_mask"])
        lengths = dense._get_feat_extract_output_lengths(batch["attention_mask"].sum(-1))
        valid = torch.arange(logits.shape[1])[None, :] < lengths[:, None]
        ids = ctc_greedy_decode(logits, attention_mask=valid, blank_id=tokenizer.pad_token_id)
        hypotheses += tokenizer.batch_decode(ids, group_tokens=False)
        labels = batch["labels"].masked_fill(batch["labels"] < 0, tokenizer.pad_token_id)
        references += tokenizer.batch_decode(labels.tolist(), group_tokens=False)
    return error_rates(hypotheses, references)


@torch.inference_mode()
def interleaved_latency(runs: dict, features, mask, repeats: int) -> dict:
    names = list(runs)
    for run in runs.values():  # warm-up (ORT and exported graphs plan on their first call)
        run(features, mask)
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            runs[name](features, mask)
            times[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(t), "ratio_vs_eager": statistics.median(a / b for a, b in zip(t, times["eager"]))}
        for name, t in times.items()
    }


def bench_subnet(folder: Path, speech, batches, args) -> dict:
    dense = load_deployable(folder)  # a ConformerForCTC folder, or an older SupernetConformerForCTC subnet converted
    processor = AutoProcessor.from_pretrained(folder)
    costs = dense_conformer_costs(dense.config)
    with tempfile.TemporaryDirectory() as tmp:
        runs, sizes = runtimes(dense, Path(tmp), args.threads)
        inputs = processor(audio=speech, sampling_rate=16000)
        latency = interleaved_latency(runs, inputs["input_features"], inputs["attention_mask"], args.repeats)
        scores = {name: error_rates_of(run, dense, batches, processor.tokenizer) for name, run in runs.items()}
    return {
        "name": folder.name,
        "params": costs.params,
        "int8_mb_cost_model": costs.int8_mb,
        "sizes": sizes,
        "onnx_int8_over_cost_model": sizes["onnx_int8_mb"] / costs.int8_mb,
        "int8_size_ratio": sizes["onnx_int8_mb"] / sizes["onnx_mb"],
        "latency": latency,
        "scores": scores,
    }


def markdown(result: dict) -> str:
    lines = [
        "# Deploying subnets: eager vs torch.export vs ONNX Runtime vs int8",
        "",
        f"`python scripts/bench_deploy.py --threads {result['threads']}` on {result['date']} ({result['machine']}); "
        f"latency: batch of one, {result['seconds']} s of speech, {result['repeats']} interleaved rounds; WER/CER on "
        f"{result['dataset']}/{result['split']} ({result['utterances']} utterances). {result['note']}",
        "",
        "## Size on disk (MB)",
        "",
        "| subnet | params | safetensors | .pt2 | ONNX fp32 | ONNX int8 | cost model int8_mb | ONNX int8 / cost model | "
        "int8 / fp32 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["subnets"]:
        s = row["sizes"]
        lines.append(
            f"| {row['name']} | {row['params'] / 1e6:.2f} M | {s['safetensors_mb']:.2f} | {s['pt2_mb']:.2f} | "
            f"{s['onnx_mb']:.2f} | {s['onnx_int8_mb']:.3f} | {row['int8_mb_cost_model']:.3f} | "
            f"{row['onnx_int8_over_cost_model']:.3f}x | {row['int8_size_ratio']:.2f}x |"
        )
    names = list(result["subnets"][0]["latency"]) if result["subnets"] else []
    lines += ["", "## Latency (median s, and median ratio to eager) and WER / CER (%)", "",
              "| subnet | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for row in result["subnets"]:
        cells = [f"{row['latency'][n]['median_s'] * 1000:.1f} ms ({row['latency'][n]['ratio_vs_eager']:.2f}x), "
                 f"{100 * row['scores'][n]['wer']:.1f} / {100 * row['scores'][n]['cer']:.1f}" for n in names]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    lines += ["", "## Goals", ""]
    for row in result["subnets"]:
        g = row["goals"]
        lines.append(f"- {row['name']}: int8 size {row['int8_size_ratio']:.2f}x fp32 (goal <= {GOAL_INT8_SIZE}: "
                     f"{'met' if g['int8_size'] else 'not met'}); int8 WER {g['int8_wer_points']:+.1f} points (goal <= "
                     f"+{GOAL_INT8_WER_POINTS}: {'met' if g['int8_wer'] else 'not met'}); ORT fp32 latency "
                     f"{row['latency']['ort_fp32']['ratio_vs_eager']:.2f}x eager (goal <= {GOAL_ORT_LATENCY}: "
                     f"{'met' if g['ort_latency'] else 'not met'})")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("subnets", nargs="*", help="subnet folders (default: outputs/quickstart/subnets/*)")
    parser.add_argument("--dataset", default="fsdd")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max_examples", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--results_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--note", default="The machine (2 cores) was shared with other jobs: read the ratios.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    folders = [Path(p) for p in args.subnets] or sorted((ROOT / "outputs" / "quickstart" / "subnets").iterdir())
    if not folders:
        parser.error("no subnet folders given and outputs/quickstart/subnets/ is empty: run scripts/quickstart.py")
    processor = AutoProcessor.from_pretrained(folders[0])
    data = prepare_dataset(load_speech_dataset(args.dataset, args.split), processor)
    batches = collate_batches(data, DataCollatorCTCWithPadding(processor), 32, args.max_examples)
    speech, total = [], 0
    for row in load_speech_dataset(args.dataset, args.split):
        speech.append(np.asarray(row["audio"]["array"], dtype=np.float32))
        total += len(speech[-1])
        if total >= args.seconds * 16000:
            break
    speech = np.concatenate(speech)[: int(args.seconds * 16000)]

    rows = []
    for folder in folders:
        row = bench_subnet(folder, speech, batches, args)
        wer_points = 100 * (row["scores"]["ort_int8"]["wer"] - row["scores"]["ort_fp32"]["wer"])
        row["goals"] = {
            "int8_size": row["int8_size_ratio"] <= GOAL_INT8_SIZE,
            "int8_wer_points": wer_points,
            "int8_wer": wer_points <= GOAL_INT8_WER_POINTS,
            "ort_latency": row["latency"]["ort_fp32"]["ratio_vs_eager"] <= GOAL_ORT_LATENCY,
        }
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}",
        "threads": args.threads, "seconds": args.seconds, "repeats": args.repeats, "dataset": args.dataset,
        "split": args.split, "utterances": sum(len(b["labels"]) for b in batches), "note": args.note, "subnets": rows,
    }
    write_texts(args.results_dir, {"deploy.json": json.dumps(result, indent=2) + "\n", "deploy.md": markdown(result)})
    return result


if __name__ == "__main__":
    main()
