"""Export a subnet checkpoint for deployment: a ``torch.export`` program (.pt2) or an ONNX graph, optionally int8.

    python scripts/export.py outputs/quickstart/subnets/params_50pct --format onnx --output subnet.onnx
    python scripts/export.py outputs/quickstart/subnets/params_50pct --format onnx --int8 --output subnet-int8.onnx
    python scripts/export.py outputs/quickstart/subnets/params_50pct --format pt2 --output subnet.pt2

SUBNET_DIR is a dense ``ConformerForCTC`` folder (what ``extract_subnet`` gives), a subnet folder saved as a
``SupernetConformerForCTC`` by earlier versions (converted to the dense model first) or a stock transformers CTC model (e.g. a foldable path's ``Wav2Vec2ForCTC``). The graph
takes (features or waveform, attention_mask) with dynamic batch and time and returns logits. The output is written
atomically and an existing one is kept unless --overwrite. Needs the ``[export]`` extra.
"""

from __future__ import annotations

import argparse
import os

from hf_supernet.publishing.export import FORMATS, export_model, load_deployable


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("subnet_dir", help="folder of a saved subnet (config + safetensors)")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--int8", action="store_true", help="dynamic int8 linear layers (torchao / onnxruntime)")
    parser.add_argument("--output", required=True, help="file to write (.pt2 or .onnx)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    if os.path.exists(args.output) and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it.")
    path = export_model(load_deployable(args.subnet_dir), args.output, args.format, int8=args.int8, overwrite=args.overwrite)
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
