"""ScaledAdam and the Eden learning-rate schedule (Zipformer; Yao et al., 2023, "Zipformer: A faster and better
encoder for automatic speech recognition"), written from the paper and icefall's description of them.

TODM fine-tunes its supernet with ScaledAdam: every subnet of a sandwich step sends gradients of very different
norms into the shared weights, and an update sized by each tensor's own scale is steadier than Adam's.

ScaledAdam, per parameter tensor θ (more than one element), on each step t with gradient g:

* **Scale-invariant direction.** Adam moments ``m ← β1 m + (1−β1) g``, ``v ← β2 v + (1−β2) g²`` with both bias
  corrections; the step is ``−lr · rms(θ) · m̂ / (√v̂ + ε)``, with ``rms(θ)`` clamped below at ``param_min_rms``.
  Scaling θ by c scales its update by c, so every tensor moves by the same *relative* amount whatever its size.
* **Learned scale.** Writing θ = θ₀·e^s, the gradient with respect to s is ``h = Σ g ⊙ θ``. Every
  ``size_update_period`` steps, s takes an Adam step (learning rate ``lr · scalar_lr_scale``, one step standing
  for the period's ``P`` steps) on the period's mean h, and θ is multiplied by ``1 + Δs``. The step is
  clamped so that rms(θ) never exceeds ``param_max_rms``, and it never shrinks a θ already below
  ``param_min_rms``. ``rms(θ)`` itself is refreshed at the same period.
* **Scalars** (``numel() == 1``, icefall's rule) have no meaningful rms: plain Adam at ``lr · scalar_lr_scale``,
  the value clamped to ``[−scalar_max, scalar_max]``.
* **Clipping** (``clipping_scale`` not None): the whole model's gradient norm, measured as the updates see it
  (``g · rms(θ)`` for tensors, ``g · scalar_lr_scale`` for scalars), is clipped to ``clipping_scale`` × the median
  of the last ``clipping_update_period`` norms. The threshold is re-estimated every ``clipping_update_period``
  steps, and early on after 10, 20 and 40 steps with a doubled threshold (the norm changes fast then); there
  is no clipping before step 10. A step whose norm is not finite is skipped (its gradient replaced by zeros).

What is kept from icefall and what is not:

* Kept: the update rule and defaults above, clipping by the median of recent norms with the early estimates,
  the per-period size update with β^P-corrected moments, named parameters for logging.
* Simplified: icefall stacks same-shape tensors to update them in one batched kernel; that is only a speed
  optimisation and is left out (parameters are updated one by one). icefall folds the scale update and the
  direction into one momentum buffer ("delta") and skips the first-moment bias correction; here the two
  updates keep their own moments, both bias-corrected, as in the paper's algorithm. That changes the first
  few steps (full-size instead of (1−β1)-size) and the smoothing of the scale step, not the method. When a
  tensor is below ``param_min_rms``, icefall freezes its scale; here it may still grow. Clipping is global
  over all parameter groups (icefall clips per group, but its recipes use a single group; HF Trainer splits
  weight-decay groups, which should not change the clipping); its settings come from the first group.
  No "dominant parameter" diagnostics; the threshold estimates are logged at INFO level.
* Added: decoupled weight decay (``weight_decay``, per group, default 0 = icefall's behaviour), because
  HF Trainer passes a ``weight_decay`` per group; ScaledAdam's ``param_max_rms`` usually makes it unnecessary.

Optimizer state lives in the state of its parameter, so ``state_dict``/``load_state_dict`` resume exactly.

Eden (icefall): ``lr = base_lr · ((b² + B²)/B²)^−¼ · ((e² + E²)/E²)^−¼ · warmup(b)``, b = batch (optimizer step),
e = epoch, ``B = lr_batches``, ``E = lr_epochs``; warmup goes linearly from 0.5 to 1 over ``warmup_batches``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

logger = logging.getLogger(__name__)

__all__ = ["ScaledAdam", "create_scaled_adam", "eden_lr_factor", "get_eden_schedule"]

# Early re-estimates of the clipping threshold (counted in recorded steps), each with a doubled threshold.
_EARLY_CLIPPING_ESTIMATES = (10, 20, 40)


class ScaledAdam(torch.optim.Optimizer):
    """ScaledAdam (Zipformer): Adam whose updates are scaled by each tensor's RMS, plus a learned tensor scale.

    Args:
        params: parameters, ``(name, parameter)`` pairs (e.g. ``model.named_parameters()``), or parameter groups
            (dicts with ``"params"``, whose items may also be named pairs, or icefall's ``"named_params"``).
        lr: learning rate. It is a *relative* step size (0.02–0.05 is typical), much higher than Adam's.
        clipping_scale: clip the model's gradient norm at this multiple of the recent median (icefall's recipes
            use 2.0); None = no clipping (icefall's default). Turn off the Trainer's own ``max_grad_norm`` if on.
        betas: (β1, β2), the moment decays.
        scalar_lr_scale: learning-rate factor of scalar parameters and of each tensor's learned scale.
        eps: added to the root of the second moment.
        param_min_rms: floor of the rms used to size a tensor's update (so zero-initialised tensors still move,
            slowly); the learned scale does not shrink a tensor below it.
        param_max_rms: the learned scale never grows a tensor's rms beyond this.
        scalar_max: scalar parameters are clamped to ``[−scalar_max, scalar_max]``.
        size_update_period: steps between learned-scale updates (and refreshes of the cached rms).
        clipping_update_period: number of recent gradient norms whose median sets the clipping threshold, and
            steps between re-estimates.
        weight_decay: decoupled weight decay, ``θ ← θ − lr·weight_decay·θ`` (scalars: ``lr·scalar_lr_scale``).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 3e-2,
        *,
        clipping_scale: float | None = None,
        betas: tuple[float, float] = (0.9, 0.98),
        scalar_lr_scale: float = 0.1,
        eps: float = 1e-8,
        param_min_rms: float = 1e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        size_update_period: int = 4,
        clipping_update_period: int = 100,
        weight_decay: float = 0.0,
    ):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}.")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"betas must be in [0, 1), got {betas}.")
        if clipping_scale is not None and clipping_scale <= 0:
            raise ValueError(f"clipping_scale must be > 0 or None, got {clipping_scale}.")
        if not 0 < param_min_rms < param_max_rms:
            raise ValueError(f"need 0 < param_min_rms < param_max_rms, got {param_min_rms}, {param_max_rms}.")
        if size_update_period < 1 or clipping_update_period < 1:
            raise ValueError("size_update_period and clipping_update_period must be >= 1.")
        defaults = dict(
            lr=lr,
            clipping_scale=clipping_scale,
            betas=tuple(betas),
            scalar_lr_scale=scalar_lr_scale,
            eps=eps,
            param_min_rms=param_min_rms,
            param_max_rms=param_max_rms,
            scalar_max=scalar_max,
            size_update_period=size_update_period,
            clipping_update_period=clipping_update_period,
            weight_decay=weight_decay,
        )
        super().__init__(_with_icefall_named_params(params), defaults)

    # ------------------------------------------------------------------------------------------------ step
    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient (parameters without one are left untouched)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        to_update = [(group, p) for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not to_update:
            return loss
        for group, p in to_update:
            if p.grad.is_sparse:
                raise RuntimeError("ScaledAdam does not support sparse gradients.")
            if "step" not in self.state[p]:  # not `if not state`: it may already hold the clipping statistics
                self._init_state(group, p, self.state[p])

        clip_factor = self._clipping_factor(to_update)
        for group, p in to_update:
            grad = p.grad if clip_factor is None else _clipped(p.grad, clip_factor)
            if p.numel() == 1:
                self._scalar_step(group, p, grad, self.state[p])
            else:
                self._tensor_step(group, p, grad, self.state[p])
        return loss

    def _init_state(self, group: dict, p: torch.Tensor, state: dict) -> None:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if p.numel() > 1:
            state["param_rms"] = _rms(p)
            state["scale_grads"] = p.new_zeros(group["size_update_period"])
            state["scale_exp_avg"] = p.new_zeros(())
            state["scale_exp_avg_sq"] = p.new_zeros(())

    def _tensor_step(self, group: dict, p: torch.Tensor, grad: torch.Tensor, state: dict) -> None:
        """Scale-invariant Adam step of a tensor, plus its learned-scale step at the end of each period."""
        lr, eps = group["lr"], group["eps"]
        beta1, beta2 = group["betas"]
        period = group["size_update_period"]
        step = state["step"]  # steps already taken

        # Gradient w.r.t. the log-scale s of θ = θ₀·e^s, collected over the period.
        state["scale_grads"][step % period] = (grad * p).sum()
        end_of_period = (step + 1) % period == 0
        if end_of_period:
            state["param_rms"].copy_(_rms(p))

        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq / (1 - beta2 ** (step + 1))).sqrt_().add_(eps)
        step_size = state["param_rms"].clamp(min=group["param_min_rms"]) * (-lr / (1 - beta1 ** (step + 1)))
        update = exp_avg / denom * step_size

        if end_of_period:
            update.add_(p * self._scale_step(group, state, num_scale_steps=(step + 1) // period))
        if group["weight_decay"]:
            update.add_(p, alpha=-lr * group["weight_decay"])
        p.add_(update)
        state["step"] = step + 1

    def _scale_step(self, group: dict, state: dict, num_scale_steps: int) -> torch.Tensor:
        """Relative change Δs of the tensor's scale for this period (θ ← θ·(1 + Δs)), a 0-dim tensor."""
        period = group["size_update_period"]
        beta1, beta2 = (beta**period for beta in group["betas"])  # one scale step stands for `period` steps
        scale_grads = state["scale_grads"]
        state["scale_exp_avg"].mul_(beta1).add_(scale_grads.mean(), alpha=1 - beta1)
        state["scale_exp_avg_sq"].mul_(beta2).add_((scale_grads**2).mean(), alpha=1 - beta2)
        mean = state["scale_exp_avg"] / (1 - beta1**num_scale_steps)
        root_mean_square = (state["scale_exp_avg_sq"] / (1 - beta2**num_scale_steps)).sqrt()
        scale_step = mean / (root_mean_square + group["eps"]) * (-group["lr"] * group["scalar_lr_scale"] * period)

        rms = state["param_rms"]
        # Too small already: may grow, not shrink. Never beyond param_max_rms (rms·(1 + Δs) <= max).
        scale_step = torch.where(rms < group["param_min_rms"], scale_step.clamp(min=0.0), scale_step)
        return torch.minimum(scale_step, (group["param_max_rms"] - rms) / rms)

    def _scalar_step(self, group: dict, p: torch.Tensor, grad: torch.Tensor, state: dict) -> None:
        """Plain bias-corrected Adam at ``lr · scalar_lr_scale``, clamped to ±scalar_max."""
        lr = group["lr"] * group["scalar_lr_scale"]
        beta1, beta2 = group["betas"]
        step = state["step"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq / (1 - beta2 ** (step + 1))).sqrt_().add_(group["eps"])
        update = exp_avg / denom * (-lr / (1 - beta1 ** (step + 1)))
        if group["weight_decay"]:
            update.add_(p, alpha=-lr * group["weight_decay"])
        p.add_(update).clamp_(-group["scalar_max"], group["scalar_max"])
        state["step"] = step + 1

    # ------------------------------------------------------------------------------------------------ clipping
    def _clipping_factor(self, to_update: list[tuple[dict, torch.Tensor]]) -> torch.Tensor | None:
        """0-dim factor in [0, 1] for every gradient of this step (0 = skip a non-finite step), or None if off.

        Stays on the device: no host synchronisation except when the threshold is re-estimated.
        """
        first_group = self.param_groups[0]
        clipping_scale = first_group["clipping_scale"]
        if clipping_scale is None:
            return None
        norm = self._model_gradient_norm(to_update)
        clip_state = self._clipping_state(norm.device)
        period = first_group["clipping_update_period"]
        # A NaN would make the median NaN; count it as an infinitely large norm instead.
        clip_state["clip_norms"][clip_state["clip_count"] % period] = torch.nan_to_num(norm, nan=math.inf)
        clip_state["clip_count"] += 1
        count = clip_state["clip_count"]
        if count % period == 0 or (count in _EARLY_CLIPPING_ESTIMATES and count < period):
            self._estimate_clipping_threshold(clip_state, clipping_scale, period)

        threshold = clip_state["clip_threshold"]
        factor = torch.where(threshold > 0, (threshold / (norm + 1e-20)).clamp(max=1.0), torch.ones_like(norm))
        factor = torch.where(torch.isfinite(norm), factor, torch.zeros_like(norm))
        clip_state["clip_num_clipped"] += factor < 1
        return factor

    def _model_gradient_norm(self, to_update: list[tuple[dict, torch.Tensor]]) -> torch.Tensor:
        """Norm of the gradient as the updates see it: g·rms(θ) for tensors, g·scalar_lr_scale for scalars."""
        sum_sq = torch.zeros((), dtype=torch.float32, device=to_update[0][1].device)
        for group, p in to_update:
            weight = group["scalar_lr_scale"] if p.numel() == 1 else self.state[p]["param_rms"]
            sum_sq += ((p.grad.float() * weight) ** 2).sum().to(sum_sq.device)
        return sum_sq.sqrt()

    def _clipping_state(self, device: torch.device) -> dict:
        """The clipping statistics, kept in the state of the first parameter so that state_dict carries them."""
        first_param = next(p for group in self.param_groups for p in group["params"])
        state = self.state[first_param]
        if "clip_norms" not in state:
            period = self.param_groups[0]["clipping_update_period"]
            state["clip_norms"] = torch.zeros(period, dtype=torch.float32, device=device)
            state["clip_count"] = 0  # norms recorded so far
            state["clip_last_estimate"] = 0  # clip_count at the last threshold estimate
            state["clip_threshold"] = torch.zeros((), dtype=torch.float32, device=device)  # 0 = not set yet
            state["clip_num_clipped"] = torch.zeros((), dtype=torch.float32, device=device)
        return state

    def _estimate_clipping_threshold(self, clip_state: dict, clipping_scale: float, period: int) -> None:
        count = clip_state["clip_count"]
        recent = clip_state["clip_norms"][: min(count, period)]
        median = recent.median()
        looser = 2.0 if count < period else 1.0
        clip_state["clip_threshold"].copy_(clipping_scale * looser * median)
        if logger.isEnabledFor(logging.INFO):  # .item() synchronises with the device: only when logged
            quartiles = torch.quantile(recent, torch.linspace(0, 1, 5, device=recent.device)).tolist()
            since = count - clip_state["clip_last_estimate"]
            logger.info(
                "ScaledAdam clipping: grad-norm quartiles %s, threshold %.3e, clipped %.1f%% of the last %d steps",
                " ".join(f"{q:.3e}" for q in quartiles),
                clip_state["clip_threshold"].item(),
                100.0 * clip_state["clip_num_clipped"].item() / since,
                since,
            )
        clip_state["clip_last_estimate"] = count
        clip_state["clip_num_clipped"].zero_()


def _clipped(grad: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``grad · factor``, or zeros when the factor is 0 (a non-finite step: inf·0 would be NaN)."""
    factor = factor.to(device=grad.device, dtype=grad.dtype)
    return torch.where(factor > 0, grad * factor, torch.zeros_like(grad))


def _rms(p: torch.Tensor) -> torch.Tensor:
    """Root mean square of all elements, a 0-dim tensor."""
    return p.detach().pow(2).mean().sqrt()


def _with_icefall_named_params(params: Iterable[Any]) -> list[Any]:
    """Accepts icefall's ``{"named_params": ...}`` groups by turning them into ``{"params": [(name, p), ...]}``,
    which torch's Optimizer understands (it records the names in ``group["param_names"]``)."""
    params = list(params)
    converted = []
    for item in params:
        if isinstance(item, dict) and "named_params" in item:
            item = dict(item)
            item["params"] = list(item.pop("named_params"))
        converted.append(item)
    return converted


# ---------------------------------------------------------------------------------------------------- helpers
# Mirrors `transformers.Trainer.get_decay_parameter_names` (5.x): no decay for biases and normalisation layers.
_NO_DECAY_NAME_PATTERNS = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]


def create_scaled_adam(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    clipping_scale: float | None = 2.0,
    **kwargs: Any,
) -> ScaledAdam:
    """ScaledAdam over a model's trainable parameters, grouped the way HF Trainer groups them.

    Two groups, as ``Trainer.create_optimizer`` builds them: parameters that get ``weight_decay`` (not biases,
    not LayerNorm/RMSNorm-like), then the rest with 0; empty groups are dropped. Parameters are passed with
    their names (``group["param_names"]``). Pass the result to ``Trainer(optimizers=(optimizer, scheduler))``,
    and set ``max_grad_norm=0`` there when ``clipping_scale`` is on so gradients are not clipped twice.

    Args:
        model: the model to optimise.
        lr: base learning rate (ScaledAdam's are relative step sizes: ~0.045 in Zipformer recipes).
        weight_decay: decoupled weight decay of the decay group (0 = icefall's ScaledAdam).
        clipping_scale: see :class:`ScaledAdam`; 2.0 as in icefall's training recipes.
        **kwargs: any other :class:`ScaledAdam` argument.
    """
    from transformers.trainer_pt_utils import get_parameter_names

    decay_names = set(get_parameter_names(model, [nn.LayerNorm], _NO_DECAY_NAME_PATTERNS))
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [(n, p) for n, p in named if n in decay_names], "weight_decay": weight_decay},
        {"params": [(n, p) for n, p in named if n not in decay_names], "weight_decay": 0.0},
    ]
    groups = [group for group in groups if group["params"]]
    if not groups:
        raise ValueError("The model has no trainable parameters.")
    return ScaledAdam(groups, lr=lr, clipping_scale=clipping_scale, **kwargs)


def eden_lr_factor(
    step: int,
    *,
    lr_batches: float = 5000.0,
    lr_epochs: float = 6.0,
    warmup_batches: float = 500.0,
    steps_per_epoch: int | None = None,
    warmup_start: float = 0.5,
) -> float:
    """Eden's multiplier of the base learning rate after ``step`` optimizer steps.

    ``((b² + B²)/B²)^−¼ · ((e² + E²)/E²)^−¼ · warmup``, with b = step, e = ``step // steps_per_epoch`` (the number
    of completed epochs, constant within an epoch, like icefall's ``scheduler.step_epoch(epoch − 1)`` at the
    start of each 1-based epoch; e = 0 when ``steps_per_epoch`` is None, leaving a batch-only schedule), and
    warmup rising linearly from ``warmup_start`` at step 0 to 1 at ``warmup_batches``.
    """
    batch_factor = ((step**2 + lr_batches**2) / lr_batches**2) ** -0.25
    epoch = step // steps_per_epoch if steps_per_epoch else 0
    epoch_factor = ((epoch**2 + lr_epochs**2) / lr_epochs**2) ** -0.25
    if step >= warmup_batches:
        warmup = 1.0
    else:
        warmup = warmup_start + (1.0 - warmup_start) * step / warmup_batches
    return batch_factor * epoch_factor * warmup


class _EdenLambda:
    """Picklable multiplier for LambdaLR, whose state_dict saves a callable object's ``__dict__``."""

    def __init__(self, **schedule: Any):
        self.schedule = schedule

    def __call__(self, step: int) -> float:
        return eden_lr_factor(step, **self.schedule)


def get_eden_schedule(
    optimizer: torch.optim.Optimizer,
    lr_batches: float = 5000.0,
    lr_epochs: float = 6.0,
    warmup_batches: float = 500.0,
    *,
    steps_per_epoch: int | None,
    warmup_start: float = 0.5,
    last_epoch: int = -1,
) -> LambdaLR:
    """icefall's Eden schedule as a ``LambdaLR`` stepped once per optimizer step (what HF Trainer does).

    Epoch approximation: icefall's Eden is told the epoch by the training loop; a LambdaLR only sees the step
    count, so the epoch is taken as ``step // steps_per_epoch`` (completed epochs). With HF Trainer use
    optimizer steps per epoch, ``ceil(len(train_dataloader) / gradient_accumulation_steps)``. With
    ``steps_per_epoch=None`` the epoch term is dropped (batch-only decay). See :func:`eden_lr_factor`.

    Args:
        optimizer: its groups' ``lr`` is the base learning rate (``initial_lr`` once scheduled).
        lr_batches: B, steps after which the rate decays markedly (icefall: 5000; 7500 in recent recipes).
        lr_epochs: E, epochs after which it decays markedly (icefall: 6 for 20–40 epochs of training).
        warmup_batches: warmup length in steps.
        steps_per_epoch: optimizer steps per epoch, or None.
        warmup_start: multiplier at step 0.
        last_epoch: LambdaLR's resume index (−1 = start).
    """
    if steps_per_epoch is not None and steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1 or None, got {steps_per_epoch}.")
    if not 0.0 <= warmup_start <= 1.0:
        raise ValueError(f"warmup_start must be in [0, 1], got {warmup_start}.")
    multiplier = _EdenLambda(
        lr_batches=lr_batches,
        lr_epochs=lr_epochs,
        warmup_batches=warmup_batches,
        steps_per_epoch=steps_per_epoch,
        warmup_start=warmup_start,
    )
    return LambdaLR(optimizer, multiplier, last_epoch=last_epoch)
