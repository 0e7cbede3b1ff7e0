"""BatchNorm statistics per subnet (Once-for-All's re-estimation).

A supernet whose blocks use BatchNorm (``architecture="parakeet"``: Parakeet's convolution module) keeps one set of
running statistics, accumulated while sandwich training ran many subnets through it; they fit no subnet in
particular. Once-for-All (Cai et al., 2020, section 3.3) re-estimates them for a subnet before scoring or deploying
it: forward a few batches with the BatchNorm layers in training mode and cumulative averaging (``momentum=None``),
without gradients, every other module in eval mode (no dropout).

- :func:`recalibrate_batch_norm` does it, on an extracted subnet or on a supernet run as a subnet;
- :func:`batch_norm_recalibrated` does it for the span of a ``with`` block and then puts the supernet's own
  statistics back (search scores each candidate so);
- ``extract_subnet(spec, calibration_data=...)`` recalibrates the extracted subnet; ``search_subnets`` recalibrates
  every candidate when the model has BatchNorm (on by default; ``calibrate_batch_norm=False`` turns it off).

Statistics are computed from the audio alone (no labels), padding frames included, as Parakeet's BatchNorm sees
them in training.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["batch_norm_layers", "batch_norm_recalibrated", "has_batch_norm", "recalibrate_batch_norm"]

_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def batch_norm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def has_batch_norm(model: nn.Module) -> bool:
    return bool(batch_norm_layers(model))


def _statistics(layers: list[_BatchNorm]) -> list[dict[str, torch.Tensor]]:
    return [{name: getattr(m, name).detach().clone() for name in _STATISTICS} for m in layers]


def _restore(layers: list[_BatchNorm], saved: list[dict[str, torch.Tensor]]) -> None:
    with torch.no_grad():
        for layer, state in zip(layers, saved):
            for name, value in state.items():
                getattr(layer, name).copy_(value)


def _model_inputs(batch, model: nn.Module, device) -> dict:
    """A collated batch as the model's keyword arguments: labels are left out (no loss is needed)."""
    if isinstance(batch, torch.Tensor):
        return {getattr(model, "main_input_name", "input_features"): batch.to(device)}
    if not isinstance(batch, Mapping):
        raise TypeError(
            f"recalibrate_batch_norm reads batches as the model's keyword arguments (a dict such as "
            f"DataCollatorCTCWithPadding returns, or a tensor of input features); got a {type(batch).__name__}."
        )
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items() if k != "labels"}


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, dataloader: Iterable, num_batches: int | None = None, *, subnet=None):
    """Re-estimate the running statistics of ``model``'s BatchNorm layers on ``dataloader`` (Once-for-All).

    Each BatchNorm layer's statistics are reset and then become the cumulative average (``momentum=None``) of the
    batch statistics of the first ``num_batches`` batches (all of them when ``None``): the mean of the batch means
    and of the (unbiased) batch variances of its inputs. The forward passes run without gradients, with the
    BatchNorm layers in training mode and every other module in eval mode (no dropout); afterwards every module's
    mode and every BatchNorm's momentum are as before.

    Args:
        model: an extracted subnet (e.g. a stock ``ParakeetForCTC``) or a supernet, run as ``subnet`` if given.
            A BatchNorm layer the forward passes never reach (a block the subnet drops) keeps its statistics.
        dataloader: batches as the model's keyword arguments (a ``DataLoader`` over a
            ``DataCollatorCTCWithPadding``, or a list of collated batches; ``labels`` are ignored), or tensors of
            input features.
        num_batches: how many batches to use (``None``: all).
        subnet: with a supernet, the subnet to recalibrate for (run through ``model.use_subnet``).

    Returns:
        ``model``. A model without BatchNorm is returned unchanged.
    """
    if num_batches is not None and (not isinstance(num_batches, int) or num_batches < 1):
        raise ValueError(f"num_batches must be a positive int (or None for every batch), got {num_batches!r}.")
    layers = batch_norm_layers(model)
    if not layers:
        return model
    modes = {module: module.training for module in model.modules()}
    momenta = [layer.momentum for layer in layers]
    saved = _statistics(layers)
    reached = set()
    hooks = [layer.register_forward_pre_hook(lambda m, _args: reached.add(m)) for layer in layers]
    device = next(model.parameters()).device
    used = 0
    try:
        model.eval()
        for layer in layers:
            layer.reset_running_stats()
            layer.momentum = None  # cumulative moving average: every batch weighs the same
            layer.train()
        context = model.use_subnet(subnet) if subnet is not None else contextlib.nullcontext()
        with context:
            for batch in itertools.islice(dataloader, num_batches):
                model(**_model_inputs(batch, model, device))
                used += 1
    finally:
        for hook in hooks:
            hook.remove()
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for module, training in modes.items():
            module.train(training)
        if used == 0:
            _restore(layers, saved)
        else:
            untouched = [(layer, state) for layer, state in zip(layers, saved) if layer not in reached]
            _restore([layer for layer, _ in untouched], [state for _, state in untouched])
    if used == 0:
        raise ValueError("recalibrate_batch_norm got no batches; pass a dataloader with at least one batch.")
    return model


@contextlib.contextmanager
def batch_norm_recalibrated(model: nn.Module, batches: Iterable, num_batches: int | None = None, *,
                            subnet=None) -> Iterator[nn.Module]:
    """Inside the ``with`` block, ``model``'s BatchNorm statistics are re-estimated on ``batches`` (for ``subnet``
    of a supernet, see :func:`recalibrate_batch_norm`); afterwards the previous statistics are back, even when the
    block raises. A model without BatchNorm is left alone. ``batches`` is read once per use: pass a list (or a
    ``DataLoader``) to reuse it."""
    layers = batch_norm_layers(model)
    if not layers:
        yield model
        return
    saved = _statistics(layers)
    try:
        recalibrate_batch_norm(model, batches, num_batches, subnet=subnet)
        yield model
    finally:
        _restore(layers, saved)
