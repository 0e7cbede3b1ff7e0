"""Publish the selected subnets of a searched supernet: one self-contained Hub model repo per subnet.

    python scripts/publish.py outputs/quickstart/supernet me/fsdd-conformer --no_push --local_dir published
    python scripts/publish.py outputs/quickstart/supernet me/fsdd-conformer --language en --license cc-by-sa-4.0 \\
        --datasets fsdd --eval_dataset fsdd --eval_split dev --pareto_plot outputs/quickstart/pareto.png --private
    python scripts/publish.py SUPERNET me/fsdd-conformer --subnets params_50pct 0.75 --push_supernet

Each subnet goes to `<repo_prefix>-<name>` (e.g. me/fsdd-conformer-params_50pct) with its weights (safetensors),
config, processor, model card and the Pareto plot. The token is huggingface_hub's (`hf auth login` or HF_TOKEN).
Re-running is safe: repos are created only if missing and unchanged files are not re-uploaded; after a partial
failure, run the same command again.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import hf_supernet  # noqa: F401  (registers the Auto classes)
from hf_supernet.publishing import HubAccessError, PublishError, publish_subnets, push_supernet

logger = logging.getLogger("publish")


def parse_subnet(text: str):
    """A subnet name (``params_50pct``), a parameter fraction (``0.5``) or a JSON budget (``{"flops": 1e8}``)."""
    if text.startswith("{"):
        return json.loads(text)
    try:
        return float(text)
    except ValueError:
        return text


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("supernet", help="Folder (or Hub repo id) of a searched supernet with its processor.")
    parser.add_argument("repo_prefix", help="'user/name' or 'name'; each subnet goes to '<repo_prefix>-<subnet name>'.")
    parser.add_argument(
        "--subnets", nargs="+", type=parse_subnet, default=None, help="Names or budgets (default: all selected)."
    )
    parser.add_argument(
        "--local_dir", default=None, help="Where the folders are written (default with --no_push: 'published')."
    )
    parser.add_argument("--no_push", action="store_true", help="Only write the local folders.")
    parser.add_argument("--private", action="store_true", help="Create new repos private.")
    parser.add_argument("--language", nargs="+", default=None, help="Language code(s) of the speech, e.g. en.")
    parser.add_argument("--license", default=None, help="Hub license id of the weights, e.g. apache-2.0.")
    parser.add_argument("--datasets", nargs="+", default=None, help="Training data (Hub ids or names).")
    parser.add_argument(
        "--eval_dataset", default=None, help="Data the search measured the metrics on (default: what search recorded)."
    )
    parser.add_argument("--eval_split", default=None, help="Its split, e.g. dev; must agree with what search recorded.")
    parser.add_argument(
        "--overwrite_local_dir", action="store_true", help="Delete files in the subnet folders that publishing did not write."
    )
    parser.add_argument(
        "--pareto_plot", default=None, help="Search plot to include (default: SUPERNET/pareto.png if any)."
    )
    parser.add_argument("--template", default=None, help="A Jinja model card template replacing the default one.")
    parser.add_argument("--supernet_repo_id", default=None, help="Hub repo of the supernet, if already published.")
    parser.add_argument(
        "--push_supernet",
        nargs="?",
        const="",
        default=None,
        metavar="REPO_ID",
        help="Also push the supernet (push_to_hub) to REPO_ID (default: '<repo_prefix>-supernet'); cards link to it.",
    )
    args = parser.parse_args(argv)
    if args.no_push and args.push_supernet is not None:
        parser.error("--push_supernet pushes to the Hub; it cannot be combined with --no_push.")
    if args.no_push and args.local_dir is None:
        args.local_dir = "published"
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", level=logging.INFO)
    if args.license is None:
        logger.warning("No --license given: the cards will carry none. Set the license your training data allows.")
    language = args.language[0] if args.language and len(args.language) == 1 else args.language
    supernet_repo_id = args.supernet_repo_id
    try:
        if args.push_supernet is not None:
            supernet_repo_id = push_supernet(
                args.supernet,
                args.push_supernet or f"{args.repo_prefix}-supernet",
                private=args.private,
                pareto_plot=args.pareto_plot,
            )
            print(f"supernet -> {supernet_repo_id}")
        published = publish_subnets(
            args.supernet,
            args.repo_prefix,
            args.subnets,
            push=not args.no_push,
            local_dir=args.local_dir,
            private=args.private,
            language=language,
            license=args.license,
            datasets=args.datasets,
            eval_dataset=args.eval_dataset,
            eval_split=args.eval_split,
            supernet_repo_id=supernet_repo_id,
            pareto_plot=args.pareto_plot,
            template_path=args.template,
            overwrite_local_dir=args.overwrite_local_dir,
        )
    except (ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except HubAccessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except PublishError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print("| subnet | repo | folder | loads with | metrics measured on |\n|---|---|---|---|---|")
    for p in published:
        loads = (
            f"transformers.{p.model_class}"
            if p.loads_with_stock_transformers
            else f"{p.model_class} (import hf_supernet)"
        )
        print(f"| {p.name} | {p.repo_id} | {p.folder or '(uploaded from a temporary folder)'} | {loads} | {p.measured_on} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
