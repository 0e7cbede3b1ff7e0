"""What verifying the weights' SHA-256 adds to loading a checkpoint (hf_supernet.integrity).

    python scripts/bench_checksum.py [--repeats 7]

For a quickstart-size supernet (4 x 144) and the default config (16 x 144), and for a much wider one (16 x 512),
prints the median `from_pretrained` time with the checksum file present (verified) and removed (unverified), the
time of the check alone, and `load_sparse` with the time of its check (a digest of the tensors) alone.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

from hf_supernet import SupernetConformerConfig, SupernetConformerForCTC, load_sparse, save_sparse
from hf_supernet.integrity import CHECKSUM_FILE, tensors_sha256, verify_checksums
from hf_supernet.latency import time_runner
from hf_supernet.sparse_storage import SPARSE_WEIGHTS_NAME

SIZES = {
    "quickstart 4x144": dict(num_hidden_layers=4, hidden_size=144, intermediate_size=576),
    "default 16x144": dict(num_hidden_layers=16, hidden_size=144, intermediate_size=576),
    "wide 16x512": dict(num_hidden_layers=16, hidden_size=512, intermediate_size=2048, num_attention_heads=8),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("| model | weights MB | from_pretrained verified | unverified | check alone | load_sparse verified | its check alone |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, sizes in SIZES.items():
        torch.manual_seed(0)
        model = SupernetConformerForCTC(SupernetConformerConfig(vocab_size=32, **sizes)).eval()
        with tempfile.TemporaryDirectory() as tmp:
            dense, sparse = Path(tmp) / "dense", Path(tmp) / "sparse"
            model.save_pretrained(dense)
            save_sparse(model, sparse)
            megabytes = (dense / "model.safetensors").stat().st_size / 1e6
            verified = time_runner(lambda: SupernetConformerForCTC.from_pretrained(dense), args.repeats, warmup=1)
            check = time_runner(lambda: verify_checksums(dense), args.repeats, warmup=1)
            sparse_verified = time_runner(lambda: load_sparse(sparse), args.repeats, warmup=1)
            tensors = load_file(sparse / SPARSE_WEIGHTS_NAME)
            sparse_check = time_runner(lambda: tensors_sha256(tensors), args.repeats, warmup=1)
            (dense / CHECKSUM_FILE).unlink()
            unverified = time_runner(lambda: SupernetConformerForCTC.from_pretrained(dense), args.repeats, warmup=1)
        print(
            f"| {name} | {megabytes:.1f} | {1e3 * verified:.1f} ms | {1e3 * unverified:.1f} ms | {1e3 * check:.1f} ms "
            f"| {1e3 * sparse_verified:.1f} ms | {1e3 * sparse_check:.1f} ms |"
        )


if __name__ == "__main__":
    main()
