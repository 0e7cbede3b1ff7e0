"""Per-utterance error counts and paired bootstrap confidence intervals for comparing two recognizers.

A WER ratio between two models scored on the same few hundred utterances moves with which utterances happen to be
in the test set and with the training seed. :func:`paired_bootstrap_ratio` resamples both: each replicate draws
test utterances with replacement (the same draw for both systems: *paired*, so utterances that are hard for both
do not widen the interval) and, where several training seeds were run, seeds with replacement for each system.
The ratio of a replicate is ``mean over drawn seeds of A's errors / the same for B`` on the drawn utterances.
"""

from __future__ import annotations

from collections.abc import Sequence

import jiwer
import numpy as np

__all__ = ["bootstrap_error_rate", "goal_verdict", "paired_bootstrap_ratio", "utterance_errors"]


def utterance_errors(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, list[int]]:
    """Word and character edit counts per utterance: ``word_errors``, ``words``, ``char_errors``, ``chars``
    (substitutions + deletions + insertions against the reference's length; spaces count as characters, as in
    hf_supernet's CER)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references.")
    out = {"word_errors": [], "words": [], "char_errors": [], "chars": []}
    for hypothesis, reference in zip(hypotheses, references):
        words = jiwer.process_words(reference or " ", hypothesis or " ") if reference.strip() else None
        chars = jiwer.process_characters(reference, hypothesis) if reference else None
        ref_words = len(reference.split())
        out["words"].append(ref_words)
        out["word_errors"].append(
            (words.substitutions + words.deletions + words.insertions) if words else len(hypothesis.split())
        )
        out["chars"].append(len(reference))
        out["char_errors"].append(
            (chars.substitutions + chars.deletions + chars.insertions) if chars else len(hypothesis)
        )
    return out


def paired_bootstrap_ratio(
    errors_a,
    errors_b,
    *,
    num_samples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    same_seeds: bool = False,
) -> dict[str, float]:
    """Ratio of A's total errors to B's on the same utterances, with a percentile bootstrap interval.

    Args:
        errors_a, errors_b: error counts per utterance, shape ``(utterances,)`` or ``(seeds, utterances)`` (one row
            per training seed; the two systems may have different numbers of seeds). Column ``j`` of both is the same
            utterance. Since the references are shared, the ratio of error counts is the ratio of error rates.
        same_seeds: row ``i`` of both comes from the same training seed (the same initial weights and data draws),
            so a replicate draws the same seeds for both and what a seed does to both cancels in the ratio, as the
            same utterances' difficulty does; needs as many rows on both sides. Otherwise each side's seeds are
            drawn on their own.
        num_samples: bootstrap replicates.
        confidence: coverage of the interval (0.95: the 2.5th and 97.5th percentiles).
        seed: seed of the resampling.

    Returns:
        ``{"ratio", "low", "high"}``: the ratio on all the data (seeds averaged) and the interval's ends. A replicate
        where B has no errors counts as ``inf`` (or 1 if A has none either).
    """
    a, b = np.atleast_2d(np.asarray(errors_a, dtype=np.float64)), np.atleast_2d(np.asarray(errors_b, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"The systems were scored on different utterance counts: {a.shape[1]} vs {b.shape[1]}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    utterances = rng.integers(0, n, size=(num_samples, n))
    if same_seeds and a.shape[0] != b.shape[0]:
        raise ValueError(f"same_seeds=True needs one row per seed on both sides; got {a.shape[0]} and {b.shape[0]} rows.")
    seeds_a = rng.integers(0, a.shape[0], size=(num_samples, a.shape[0]))
    seeds_b = seeds_a if same_seeds else rng.integers(0, b.shape[0], size=(num_samples, b.shape[0]))
    # Per replicate: the drawn seeds' mean error count per utterance, summed over the drawn utterances.
    total_a = np.stack([a[seeds_a[r]].mean(0)[utterances[r]].sum() for r in range(num_samples)])
    total_b = np.stack([b[seeds_b[r]].mean(0)[utterances[r]].sum() for r in range(num_samples)])
    ratios = np.where(total_b > 0, total_a / np.where(total_b > 0, total_b, 1), np.where(total_a > 0, np.inf, 1.0))
    tail = (1 - confidence) / 2
    point_b = b.mean(0).sum()
    point = a.mean(0).sum() / point_b if point_b > 0 else (np.inf if a.sum() > 0 else 1.0)
    return {
        "ratio": float(point),
        "low": float(np.quantile(ratios, tail, method="inverted_cdf")),
        "high": float(np.quantile(ratios, 1 - tail, method="inverted_cdf")),
    }


def bootstrap_error_rate(
    errors, totals, *, num_samples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """An error rate (``sum(errors) / sum(totals)``, e.g. WER from :func:`utterance_errors`' ``word_errors`` and
    ``words``) with a percentile bootstrap interval over utterances: ``{"rate", "low", "high"}``."""
    errors, totals = np.asarray(errors, dtype=np.float64), np.asarray(totals, dtype=np.float64)
    if errors.shape != totals.shape or errors.ndim != 1 or errors.size == 0:
        raise ValueError(f"errors and totals must be equal-length, non-empty 1-D sequences; got shapes {errors.shape}, {totals.shape}.")
    if totals.sum() <= 0:
        raise ValueError("The references hold no words or characters (totals sum to 0): there is no rate to estimate.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    draws = np.random.default_rng(seed).integers(0, errors.size, size=(num_samples, errors.size))
    drawn_totals = totals[draws].sum(1)
    rates = errors[draws].sum(1) / np.where(drawn_totals > 0, drawn_totals, 1)
    tail = (1 - confidence) / 2
    return {
        "rate": float(errors.sum() / totals.sum()),
        "low": float(np.quantile(rates, tail, method="inverted_cdf")),
        "high": float(np.quantile(rates, 1 - tail, method="inverted_cdf")),
    }


def goal_verdict(goal: float, *intervals: dict) -> str:
    """Whether intervals (``{"low", "high"}``, e.g. from :func:`paired_bootstrap_ratio`) meet an upper bound
    ``goal``: "met" when every interval lies at or below it, "missed" when one lies wholly above it, "undecided"
    otherwise (a claim is met only when its interval says so)."""
    if all(interval["high"] <= goal for interval in intervals):
        return "met"
    return "missed" if any(interval["low"] > goal for interval in intervals) else "undecided"
