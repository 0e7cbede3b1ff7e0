"""Measured CPU latency of subnets, as a real-time factor, cached per machine.

FLOPs do not predict CPU latency well for narrow subnets (norms, activations, depthwise convs and per-op overhead do
not shrink with width: see ``benchmarks/results/model.md``), so budgets may name ``"latency"``: the real-time factor
(compute seconds per second of audio, batch of one, ``REFERENCE_SECONDS`` of audio) of the *extracted* dense subnet
on this machine.

Measuring every candidate of a search end to end would take seconds each, so a model family may split a subnet into
*parts* whose latencies add up (the Conformer: front end + head, and one part per block, keyed by the block's shape:
widths, heads, conv, frames). Each distinct part is timed once per machine (a few milliseconds) and kept in a table
on disk (the lookup-table predictor of Once-for-All); a subnet's latency is the sum of its parts. Families without
parts are timed end to end, keyed by the extracted architecture. Either way a search, a later
``from_pretrained(..., subnet_budget={"latency": ...})`` or another supernet with the same shapes never measures
again. ``measure_rtf`` times a whole model end to end (what ``scripts/bench_search_scoring.py`` compares the sum
with).

The table lives in ``$HF_SUPERNET_CACHE`` (default ``~/.cache/hf_supernet``), one JSON file per machine fingerprint
(CPU model, core count, torch version and intra-op threads): a latency measured elsewhere is never reused here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import torch

from .atomic import atomic_file
from .units import FEATURE_FRAMES_PER_SECOND, REFERENCE_SECONDS

# Config fields that do not change what a forward pass computes.
_NOT_ARCHITECTURE = {
    "subnet_spec", "sparsity_block_shape", "selected_subnets", "transformers_version", "architectures", "_name_or_path",
    "adaptive_dropout", "layer_drop_choices", "ffn_width_choices", "ffn_width_per_layer", "id2label", "label2id",
    "dtype", "torch_dtype",
}


def default_cache_dir() -> Path:
    return Path(os.environ.get("HF_SUPERNET_CACHE", Path.home() / ".cache" / "hf_supernet"))


def machine_fingerprint() -> dict[str, object]:
    """What makes a latency measured here valid only here."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.machine(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def architecture_key(config) -> str:
    """A stable hash of everything in ``config`` that shapes the computation."""
    values = {k: v for k, v in config.to_dict().items() if k not in _NOT_ARCHITECTURE and "dropout" not in k}
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dummy_inputs(model, seconds: float) -> dict[str, torch.Tensor]:
    """Inputs for ``seconds`` of audio in the form ``model`` takes: log-mel frames or raw samples."""
    gen = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    if model.main_input_name == "input_features":
        frames = int(seconds * FEATURE_FRAMES_PER_SECOND)
        return {"input_features": torch.randn(1, frames, model.config.num_mel_bins, generator=gen).to(device)}
    if model.main_input_name == "input_values":
        rate = getattr(model.config, "sampling_rate", 16000)
        return {"input_values": torch.randn(1, int(seconds * rate), generator=gen).to(device)}
    raise TypeError(f"Cannot build latency inputs for a model whose main input is {model.main_input_name!r}.")


@torch.no_grad()
def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far: the work a training run did, which wall
    time on a shared machine does not tell."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_rtf(model, seconds: float | None = None, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of one eval forward pass over ``seconds`` of audio, divided by ``seconds``."""
    seconds = REFERENCE_SECONDS if seconds is None else seconds
    was_training = model.training
    model.eval()
    inputs = dummy_inputs(model, seconds)
    try:
        return time_runner(lambda: model(**inputs), repeats, warmup) / seconds
    finally:
        model.train(was_training)


def default_table_path(fingerprint: dict[str, object]) -> Path:
    digest = hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:12]
    return default_cache_dir() / "latency" / f"{digest}.json"


def wall_seconds(run) -> float:
    """Wall-clock seconds of one call of ``run()``."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@torch.no_grad()
def time_runner(run, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``run()``."""
    for _ in range(warmup):
        run()
    return statistics.median(wall_seconds(run) for _ in range(repeats))


class LatencyTable:
    """Real-time factors of extracted subnet architectures on this machine, measured once and kept on disk.

    Args:
        path: the JSON file (default: one per machine fingerprint under :func:`default_cache_dir`).
        repeats: timed forward passes per measurement (the median is kept).
    """

    def __init__(self, path: str | os.PathLike | None = None, repeats: int = 5):
        self.fingerprint = machine_fingerprint()
        self.path = Path(path) if path is not None else default_table_path(self.fingerprint)
        self.repeats = repeats
        self.entries: dict[str, float] = self._load()

    def _load(self) -> dict[str, float]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            # A damaged cache only costs re-measuring; never fail a search over it.
            return {}
        if not isinstance(data, dict) or data.get("machine") != self.fingerprint:
            return {}
        rtf = data.get("rtf")
        entries = rtf if isinstance(rtf, dict) else {}
        # Only positive finite numbers are latencies; anything else (a damaged or hand-edited entry) is re-measured.
        return {
            k: float(v)
            for k, v in entries.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        }

    def save(self) -> None:
        """Write the table atomically (a crash mid-write leaves the previous table intact)."""
        payload = json.dumps({"machine": self.fingerprint, "rtf": self.entries}, indent=1, sort_keys=True)
        with atomic_file(self.path) as tmp:
            tmp.write_text(payload)

    def rtf(self, model, spec=None) -> float:
        """Real-time factor of ``spec`` extracted from ``model`` (``None``: the whole model): the sum of its parts'
        latencies when the family splits subnets into parts, else the whole subnet's; measured on a miss."""
        config = model.config if spec is None else model.subnet_config(spec)
        parts = getattr(model, "latency_parts", None)
        if parts is None:
            key = "model:" + architecture_key(config)
            if key not in self.entries:
                self._store(key, self.measure_model(model if spec is None else model.extract_subnet(spec)))
            return self.entries[key]
        total = 0.0
        for key, make_runner in parts(config, REFERENCE_SECONDS):
            if key not in self.entries:
                self._store(key, self.measure_part(key, make_runner) / REFERENCE_SECONDS)
            total += self.entries[key]
        return total

    def measure_model(self, dense) -> float:
        """Real-time factor of a whole dense model, timed end to end."""
        return measure_rtf(dense, repeats=self.repeats)

    def measure_part(self, key: str, make_runner) -> float:
        """Seconds one run of a part takes (``key`` names it; the stopwatch does not need it)."""
        return time_runner(make_runner(), self.repeats)

    def _store(self, key: str, value: float) -> None:
        self.entries[key] = value
        self.save()

    def __len__(self) -> int:
        return len(self.entries)


_DEFAULT_TABLE: LatencyTable | None = None


def default_latency_table() -> LatencyTable:
    """The process-wide table for this machine (re-read when the fingerprint, e.g. the thread count, or the cache
    directory changes)."""
    global _DEFAULT_TABLE
    fingerprint = machine_fingerprint()
    if _DEFAULT_TABLE is None or _DEFAULT_TABLE.path != default_table_path(fingerprint):
        _DEFAULT_TABLE = LatencyTable()
    return _DEFAULT_TABLE
