"""What a subnet costs: parameters, FLOPs, int8 size — analytic functions of a ``SubnetSpec``, counted by the model
family — and, on request, its measured CPU latency (real-time factor, from the per-machine table in
:mod:`hf_supernet.latency`).

Counting convention (the one ``torch.utils.flop_counter`` uses, checked by a test): a multiply-accumulate is 2
FLOPs; matrix multiplications, attention score/value products and convolutions are counted; element-wise work
(activations, norms, softmax, rotary embedding, residual adds) is not. FLOPs are for a batch of one utterance.

The int8 size is that of the usual CPU deployment, dynamic int8 with per-output-channel weight quantization (ONNX
Runtime's ``quantize_dynamic(per_channel=True)`` on MatMul/Gemm, what
:func:`hf_supernet.publishing.export.export_model` ``(..., int8=True)`` writes): each weight of a linear layer in one
byte, plus a 4-byte scale and a 1-byte zero point per output channel; every other parameter (biases, norms,
convolutions) stays fp32, 4 bytes; and the graph itself, about 2.35 kB per quantized linear layer (its quantize,
integer matmul and rescale nodes and their names) plus 5.6 kB (:class:`ParamCounts`).
``scripts/bench_int8_size.py`` compares the estimate with the files (``benchmarks/results/int8_size.md``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .latency import LatencyTable, default_latency_table

# The costs every budget may name, and their units.
COST_NAMES = {
    "params": "parameters",
    "flops": "FLOPs per second of audio",
    "int8_mb": "MB of the dynamic int8 model file (linear weights in one byte, other parameters in fp32)",
    "latency": "real-time factor on this CPU (compute seconds per second of audio, batch of one)",
}


@dataclasses.dataclass(frozen=True)
class SubnetCosts:
    """Costs of one subnet. ``flops`` is FLOPs per second of audio for a ``REFERENCE_SECONDS`` utterance;
    ``int8_mb`` is the size of its dynamic int8 model (see :class:`ParamCounts`; 1 MB = 10^6 bytes); ``latency`` is
    the measured real-time factor of the extracted subnet on this machine, or ``None`` when it was not asked for."""

    params: int
    flops: float
    int8_mb: float
    latency: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Bytes of an int8 ONNX graph besides its tensors (node and tensor names, attributes): per quantized linear layer,
# and for the rest of the graph. Measured on the files torch 2.13's ONNX exporter and onnxruntime's quantize_dynamic
# write for Conformers of 2 to 13 blocks (scripts/bench_int8_size.py checks the whole estimate against them).
INT8_GRAPH_BYTES_PER_LINEAR = 2_350
INT8_GRAPH_BYTES = 5_600


@dataclasses.dataclass(frozen=True)
class ParamCounts:
    """Parameters split the way a dynamic int8 model stores them: the (nonzero) weights of linear layers, one byte
    each; the output channels of those layers, each with a 4-byte scale and a 1-byte zero point; every other
    parameter (biases, norms, convolutions, embeddings: nonzero entries of tensors of 2 or more dimensions, all of
    vectors), fp32; and the number of linear layers, each with its nodes in the graph. Families count them
    analytically; :meth:`of_module` counts a built model, which tests compare."""

    linear_weights: int = 0
    linear_outputs: int = 0
    other: int = 0
    linear_layers: int = 0

    def __add__(self, other: ParamCounts) -> ParamCounts:
        return ParamCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def __sub__(self, other: ParamCounts) -> ParamCounts:
        return ParamCounts(*(a - b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    @property
    def params(self) -> int:
        return self.linear_weights + self.other

    @property
    def int8_mb(self) -> float:
        """Size of the dynamic int8 model file of a whole model of these counts, in MB (10^6 bytes)."""
        tensors = self.linear_weights + 5 * self.linear_outputs + 4 * self.other
        graph = INT8_GRAPH_BYTES_PER_LINEAR * self.linear_layers + INT8_GRAPH_BYTES
        return (tensors + graph) / 1e6

    @classmethod
    def of_module(cls, module, nonzero: bool = True) -> ParamCounts:
        """The counts of a built ``torch.nn.Module`` (every ``nn.Linear`` is a linear layer); ``nonzero=False``
        counts every entry (cheaper: it reads no weights)."""

        def size(p: torch.Tensor) -> int:
            return int(p.count_nonzero()) if nonzero and p.dim() > 1 else p.numel()

        counts, linear_weights = cls(), set()
        for sub in module.modules():
            if isinstance(sub, torch.nn.Linear):
                linear_weights.add(id(sub.weight))
                counts += cls(linear_weights=size(sub.weight), linear_outputs=sub.out_features, linear_layers=1)
        for p in module.parameters():
            if id(p) not in linear_weights:
                counts += cls(other=size(p))
        return counts


def costs_of(model, spec, latency=False) -> SubnetCosts:
    """Costs of ``spec`` as a subnet of ``model`` (``spec=None``: the whole model).

    Analytic params/FLOPs/int8 MB always; with ``latency=True`` (or a :class:`~hf_supernet.latency.LatencyTable`)
    also the measured real-time factor, looked up in (or measured into) the per-machine table. Each model family
    counts its own analytic costs (``model.costs_of_plans(plans) -> SubnetCosts``, e.g.
    :mod:`hf_supernet.models.supernet_conformer.costs`); everything else (budgets, search, cards) only calls this.
    """
    plans = model.mask.full_plans() if spec is None else model.mask.block_plans(spec)
    costs = model.costs_of_plans(plans)
    if latency is False or latency is None:
        return costs
    table = latency if isinstance(latency, LatencyTable) else default_latency_table()
    return dataclasses.replace(costs, latency=table.rtf(model, spec))


def stored_params(model, spec=None) -> int:
    """Parameters ``spec`` keeps in memory inside the supernet: every stored block it runs, once.

    ``costs_of(...).params`` counts the extracted dense model, where a block that a path runs several times
    (``mask_type="folding"``) is stored once per run; this counts it once. For mask types that never repeat a
    block the two are equal.
    """
    plans = model.mask.full_plans() if spec is None else model.mask.block_plans(spec)
    first_run = {}
    for plan in plans:
        first_run.setdefault(plan.layer_index, plan)
    return model.costs_of_plans(list(first_run.values())).params
