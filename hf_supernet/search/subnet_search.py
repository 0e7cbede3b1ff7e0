"""``search_subnets``: budgets in, the best measured subnet per budget out (and into ``config.selected_subnets``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from transformers.utils import logging

from ..batch_norm import batch_norm_recalibrated, has_batch_norm
from ..budgets import normalize_budget
from ..latency import measure_rtf
from ..subnets import SubnetSpec
from .evaluation import collate_batches, evaluate_subnet
from .evolution import Candidate, evolutionary_search

logger = logging.get_logger(__name__)


def budget_name(budget: float | dict[str, float]) -> str:
    """A readable, filesystem-safe name for a budget: ``0.5`` -> ``params_50pct``, ``{"flops": 2e9}`` ->
    ``flops_2e+09``."""
    if isinstance(budget, dict):
        return "_".join(f"{k}_{v:.3g}" for k, v in sorted(budget.items()))
    return f"params_{round(budget * 100)}pct"


def search_subnets(
    model,
    eval_dataset,
    *,
    data_collator,
    tokenizer=None,
    budgets: Sequence[float | dict[str, float]] = (0.25, 0.5, 0.75, 1.0),
    metric: str = "loss",
    population: int = 12,
    generations: int = 4,
    proxy_examples: int = 64,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    write_config: bool = True,
    measure_latency: bool = True,
    eval_name: str | None = None,
    eval_split: str | None = None,
    calibrate_batch_norm: bool | None = None,
    calibration_dataset=None,
    calibration_examples: int | None = None,
) -> tuple[list[dict], list[Candidate]]:
    """Evolutionary search for the best subnet under each budget.

    Fitness is the cheap proxy ``metric`` (``"loss"``: CTC loss, or ``"wer"``: word error rate) on the first
    ``proxy_examples`` utterances of ``eval_dataset``; the winner of each budget is then scored on all of
    ``eval_dataset`` (loss, and WER/CER when ``tokenizer`` is given). Deterministic for a ``seed``.

    Returns the selected entries ``{"name", "budget", "spec", "costs", "metrics", "measured_on"}`` (one per budget
    that something fits; budgets nothing fits are skipped with their name in no entry) and every candidate scored
    (for a Pareto plot). ``measured_on`` records where the metrics were measured: ``{"dataset": eval_name, "split":
    eval_split (default: the dataset's own split name), "num_utterances": len(eval_dataset)}``; publishing labels
    the model cards with it. A budget may limit ``"latency"`` (real-time factor on this machine: candidates are then
    measured, through the per-machine table); with ``measure_latency`` every selected entry's costs carry its
    measured latency too. With ``write_config`` the entries are merged into ``model.config.selected_subnets`` (see
    :func:`merge_selected`: an entry replaces the previous one of its name, every other previous entry is kept) so
    that ``from_pretrained(..., subnet_budget=...)`` returns them after ``save_pretrained``.

    BatchNorm (``calibrate_batch_norm``, default: on when the model has BatchNorm layers, e.g. a Parakeet-architecture
    supernet): every subnet is scored with its BatchNorm statistics re-estimated for it (Once-for-All; see
    :mod:`hf_supernet.batch_norm`) on the first ``calibration_examples`` (default: ``proxy_examples``) utterances of
    ``calibration_dataset`` (default: ``eval_dataset``; the statistics use the audio, not the labels); the supernet's
    own statistics are back afterwards. Each selected entry then records them as ``"batch_norm_calibration"``
    (``dataset``, ``split``, ``num_utterances``, ``batch_size``): the subnet reproduces its metrics only when extracted
    with the same calibration batches (``extract_subnet(spec, calibration_data=...)``;
    :func:`calibration_batches_from_record` rebuilds them from a dataset name, as publishing does).
    """
    if metric not in ("loss", "wer"):
        raise ValueError(f"metric must be 'loss' or 'wer', got {metric!r}.")
    if metric == "wer" and tokenizer is None:
        raise ValueError("metric='wer' needs the tokenizer to decode transcripts; pass tokenizer=processor.tokenizer.")
    full_costs = model.subnet_costs()
    limits = [normalize_budget(b, full_costs) for b in budgets]
    proxy = collate_batches(eval_dataset, data_collator, batch_size, proxy_examples)
    calibrate = has_batch_norm(model) if calibrate_batch_norm is None else calibrate_batch_norm
    calibration_source = eval_dataset if calibration_dataset is None else calibration_dataset
    calibration_count = proxy_examples if calibration_examples is None else calibration_examples
    calibration = (
        collate_batches(calibration_source, data_collator, batch_size, calibration_count) if calibrate else None
    )

    def as_subnet(spec: SubnetSpec):
        """The supernet with ``spec``'s own BatchNorm statistics while scoring it (when calibrating)."""
        if calibration is None:
            return contextlib.nullcontext()
        return batch_norm_recalibrated(model, calibration, subnet=spec)

    def score(spec: SubnetSpec) -> float:
        with as_subnet(spec):
            return evaluate_subnet(model, spec, proxy, tokenizer if metric == "wer" else None)[metric]

    needs_latency = any("latency" in limit for limit in limits)

    def cost_fn(spec: SubnetSpec):
        return model.subnet_costs(spec, latency=needs_latency)

    best, scored = evolutionary_search(
        model.mask.search_space(), cost_fn, score, limits, population, generations, seed=seed, progress=progress
    )
    full = collate_batches(eval_dataset, data_collator, batch_size)
    split = eval_split if eval_split is not None else getattr(eval_dataset, "split", None)
    measured_on = {
        "dataset": eval_name,
        "split": None if split is None else str(split),
        "num_utterances": len(eval_dataset),
    }
    calibrated_on = None
    if calibration is not None:  # where the statistics came from, as measured_on says where the metrics did
        if calibration_dataset is None:
            calibrated_on = {"dataset": eval_name, "split": measured_on["split"]}
        else:
            split = getattr(calibration_dataset, "split", None)
            calibrated_on = {"dataset": None, "split": None if split is None else str(split)}
        calibrated_on["num_utterances"] = sum(len(batch[model.main_input_name]) for batch in calibration)
        calibrated_on["batch_size"] = batch_size  # the statistics average per-batch ones: the batching matters
    selected = []
    for budget, candidate in zip(budgets, best):
        if candidate is None:
            continue
        with as_subnet(candidate.spec):
            metrics = evaluate_subnet(model, candidate.spec, full, tokenizer)
        selected.append(
            {
                "name": budget_name(budget),
                "budget": budget,
                "spec": candidate.spec.to_dict(),
                "costs": model.subnet_costs(candidate.spec, latency=measure_latency).to_dict(),
                "metrics": metrics,
                "measured_on": dict(measured_on),
            }
        )
        if calibrated_on is not None:
            selected[-1]["batch_norm_calibration"] = dict(calibrated_on)
        if measure_latency:
            selected[-1]["metrics"]["rtf"] = measure_rtf(
                model.extract_subnet(candidate.spec, calibration_data=calibration)
            )
    if write_config:
        unserved = [budget_name(b) for b, candidate in zip(budgets, best) if candidate is None]
        model.config.selected_subnets = merge_selected(model.config.selected_subnets, selected, unserved)
    return selected, scored


def merge_selected(previous: Sequence[dict] | None, new: Sequence[dict], unserved: Sequence[str] = ()) -> list[dict]:
    """``config.selected_subnets`` after a search: the previous entries, each replaced by the new entry of the same
    name (in place), then the new names. A budget nothing fits (``unserved``) keeps its previous entry, with a
    warning that says so — a search never throws away what an earlier one selected."""
    new_by_name = {entry["name"]: entry for entry in new}
    merged = [new_by_name.pop(entry["name"], entry) for entry in previous or []]
    merged.extend(new_by_name.values())
    kept = {entry["name"] for entry in previous or []}
    for name in unserved:
        if name in kept:
            logger.warning(f"No subnet fits budget {name}; the entry {name!r} of an earlier search is kept unchanged.")
        else:
            logger.warning(f"No subnet fits budget {name}; no entry {name!r} is selected.")
    return merged


def plot_pareto(scored: Sequence[Candidate], selected: Sequence[dict], path, cost: str = "params", title: str = ""):
    """Scatter of every scored subnet (cost vs proxy score), the Pareto front, and the selected subnets marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evolution import pareto_front

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([getattr(c.costs, cost) for c in scored], [c.score for c in scored], s=12, alpha=0.5, label="scored")
    front = pareto_front(scored, cost)
    ax.plot([getattr(c.costs, cost) for c in front], [c.score for c in front], "k--", lw=1, label="Pareto front")
    by_spec = {c.spec.to_json(): c for c in scored}
    for entry in selected:
        cand = by_spec.get(SubnetSpec.from_dict(entry["spec"]).to_json())
        if cand is not None:
            ax.scatter(getattr(cand.costs, cost), cand.score, s=80, marker="*", color="red")
            ax.annotate(entry["name"], (getattr(cand.costs, cost), cand.score), fontsize=7)
    ax.set_xlabel(cost)
    ax.set_ylabel("proxy score (lower is better)")
    ax.set_title(title or "subnet search")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def calibration_batches_from_record(record: dict, processor, data_collator=None) -> list[dict]:
    """The batches a search re-estimated BatchNorm statistics on, rebuilt from an entry's ``batch_norm_calibration``
    record: the first ``num_utterances`` utterances of ``load_speech_dataset(dataset, split)`` prepared with
    ``processor``, collated ``batch_size`` at a time (by ``DataCollatorCTCWithPadding(processor)`` unless
    ``data_collator`` is given: it must be the search's)."""
    from ..data import DataCollatorCTCWithPadding, load_speech_dataset, prepare_dataset

    if not record.get("dataset") or not record.get("split"):
        raise ValueError(
            f"The BatchNorm calibration record {record} names no dataset and split to load (the search was given a "
            "calibration_dataset object); pass the same batches as calibration_data= yourself."
        )
    data = prepare_dataset(load_speech_dataset(record["dataset"], record["split"]), processor)
    collator = data_collator if data_collator is not None else DataCollatorCTCWithPadding(processor)
    return collate_batches(data, collator, record["batch_size"], record["num_utterances"])

