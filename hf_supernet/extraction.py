"""Supernet -> dense subnet, for every model family, adapted by peft or not.

Each family cuts its own weights (``model.extract_dense_subnet(spec)``) into a plain model that has no subnet
machinery left: a Conformer supernet into the dense :class:`~hf_supernet.models.conformer.ConformerForCTC`
(:mod:`hf_supernet.models.supernet_conformer.extraction`) — or, for a Parakeet-architecture supernet, a stock
transformers ``ParakeetForCTC`` (:mod:`hf_supernet.models.supernet_conformer.parakeet`) — and a foldable model into a
stock transformers ``Wav2Vec2ForCTC`` / ``HubertForCTC``. A peft-adapted supernet extracts to a ``PeftModel``
around that dense subnet, carrying the adapters cut like the weights
(:func:`hf_supernet.adapters.lora.extract_lora_subnet`). A subnet with BatchNorm layers gets its own statistics when
calibration data is given (:mod:`hf_supernet.batch_norm`).
"""

from __future__ import annotations

from collections.abc import Iterable

from transformers.utils import logging

from .adapters.lora import extract_lora_subnet, has_peft_layers, unwrap_peft
from .batch_norm import has_batch_norm, recalibrate_batch_norm
from .subnets import SubnetSpec

logger = logging.get_logger(__name__)


def extract_subnet(model, spec: SubnetSpec, *, calibration_data: Iterable | None = None,
                   calibration_batches: int | None = None):
    """A physically smaller dense model whose outputs equal ``model``'s run as ``spec``: the family's plain model
    (``ConformerForCTC`` for a Conformer supernet, ``ConformerModel`` for its bare encoder, a stock
    ``ParakeetForCTC`` for a Parakeet-architecture one; a stock transformers class for the foldable models), which
    has no ``subnet_space``, ``use_subnet`` or ``subnet_costs`` (its config records ``subnet_spec``); a ``PeftModel``
    around it when ``model`` carries peft adapters.

    A subnet with BatchNorm layers (a Parakeet-architecture supernet's) starts with the supernet's running
    statistics, which sandwich training shared among all subnets; with ``calibration_data`` (batches of model inputs,
    e.g. a ``DataLoader`` over training audio) they are re-estimated for the subnet on its first
    ``calibration_batches`` batches (all when ``None``; see :func:`~hf_supernet.recalibrate_batch_norm`). Its
    outputs are then those of the supernet run as ``spec`` after the same recalibration."""
    dense = extract_lora_subnet(model, spec) if has_peft_layers(model) else unwrap_peft(model).extract_dense_subnet(spec)
    if calibration_data is not None:
        recalibrate_batch_norm(dense, calibration_data, calibration_batches)
    elif has_batch_norm(dense):
        logger.warning_once(
            "This subnet has BatchNorm layers, which hold the supernet's running statistics (shared by every subnet "
            "in training). Pass calibration_data= to extract_subnet (or call hf_supernet.recalibrate_batch_norm) to "
            "re-estimate them for this subnet."
        )
    return dense
