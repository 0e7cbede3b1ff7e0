"""Loading the WER/CER `evaluate` scripts shipped inside the package (never from the Hub)."""

from __future__ import annotations

from pathlib import Path

METRICS = ("wer", "cer")
_SCRIPTS = Path(__file__).resolve().parent


def metric_script_path(name: str) -> Path:
    """Path of the `evaluate` script of metric `name` inside the package."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; hf_supernet ships {METRICS}.")
    return _SCRIPTS / name / f"{name}.py"


def load_metric(name: str, **kwargs):
    """Load ``"wer"`` or ``"cer"`` as an `evaluate.EvaluationModule` from the script shipped in hf_supernet.

    The script is read from the installed package (``evaluate.load(<path to script>)``), never from the Hub, so it
    works with ``HF_HUB_OFFLINE=1`` and without network. Both are computed with jiwer and return a float.

    Args:
        name (`str`): ``"wer"`` or ``"cer"``.
        kwargs: passed to `evaluate.load` (e.g. `experiment_id`, `cache_dir`).
    """
    import evaluate  # imported here: it is slow to import and only metric users need it

    return evaluate.load(str(metric_script_path(name)), **kwargs)
