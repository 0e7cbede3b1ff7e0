"""Which units each OrthoSoftmax budget keeps, per layer: a table on stdout and a heat map PNG.

    python scripts/report_orthosoftmax.py SUPERNET_DIR                    # table + SUPERNET_DIR/orthosoftmax_masks.png
    python scripts/report_orthosoftmax.py SUPERNET_DIR --png masks.png --json masks.json

SUPERNET_DIR is a supernet saved with ``save_pretrained`` (``mask_type="orthosoftmax"``). The paper's findings to
compare with: conv modules are kept most, the upper layers' attention heads are pruned most.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet import SupernetConformerForCTC
from hf_supernet.masks.orthosoftmax import format_kept_units, kept_units_report, plot_kept_units


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("supernet_dir", help="a supernet saved with save_pretrained (mask_type='orthosoftmax')")
    parser.add_argument("--png", help="where to write the heat map (default: SUPERNET_DIR/orthosoftmax_masks.png)")
    parser.add_argument("--json", help="also write the report as JSON here")
    args = parser.parse_args(argv)

    model = SupernetConformerForCTC.from_pretrained(args.supernet_dir)
    if model.config.mask_type != "orthosoftmax":
        parser.error(f"{args.supernet_dir} holds a mask_type={model.config.mask_type!r} supernet, not 'orthosoftmax'.")
    report = kept_units_report(model)
    print(format_kept_units(report))
    png = args.png or os.path.join(args.supernet_dir, "orthosoftmax_masks.png")
    plot_kept_units(model, png)
    print(f"\nWrote {png}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"Wrote {args.json}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
