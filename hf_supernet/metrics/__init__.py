"""Speech recognition metrics that work offline: WER/CER `evaluate` scripts shipped in the package, greedy CTC
decoding and a `compute_metrics` for `Trainer`."""

from .ctc import ctc_greedy_decode, make_compute_metrics, preprocess_logits_for_metrics
from .loading import METRICS, load_metric, metric_script_path

__all__ = ["METRICS", "ctc_greedy_decode", "load_metric", "make_compute_metrics", "preprocess_logits_for_metrics"]
