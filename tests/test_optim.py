"""ScaledAdam and Eden: convergence, scale invariance, exact resume, scalars, clipping, zero gradients."""

import copy
import logging
import math

import pytest
import torch
from torch import nn

from hf_supernet.training.optim import ScaledAdam, create_scaled_adam, eden_lr_factor, get_eden_schedule


def regression_problem(seed=0, n=256, d_in=8, d_out=3):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=gen)
    true_w = torch.randn(d_in, d_out, generator=gen) * 0.5
    return x, x @ true_w + 0.3


class TinyNet(nn.Module):
    """A matrix, a vector and a scalar: the three kinds of parameter ScaledAdam treats differently."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.linear = nn.Linear(8, 3)  # a matrix and a vector
        self.gain = nn.Parameter(torch.tensor(1.0))  # a scalar

    def forward(self, x):
        return self.gain * self.linear(x)


def train(model, optimizer, x, y, steps, scheduler=None):
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
    return losses


# ------------------------------------------------------------------------------------------- behaviour
def test_reduces_loss_on_a_tiny_regression():
    x, y = regression_problem()
    model = TinyNet()
    losses = train(model, ScaledAdam(model.parameters(), lr=0.03), x, y, steps=150)
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])


def test_first_update_has_rms_lr_times_param_rms():
    gen = torch.Generator().manual_seed(1)
    weight = nn.Parameter(torch.randn(16, 32, generator=gen) * 0.2)
    before = weight.detach().clone()
    optimizer = ScaledAdam([weight], lr=0.03)
    weight.grad = torch.randn(16, 32, generator=gen)
    optimizer.step()
    update_rms = (weight.detach() - before).pow(2).mean().sqrt()
    param_rms = before.pow(2).mean().sqrt()
    assert update_rms.item() == pytest.approx(0.03 * param_rms.item(), rel=1e-4)


def test_update_is_scale_invariant():
    """Same gradients, parameter 10x larger -> update 10x larger, over steps that include scale updates."""
    gen = torch.Generator().manual_seed(2)
    small = nn.Parameter(torch.randn(6, 5, generator=gen) * 0.1)
    large = nn.Parameter(small.detach() * 10)
    opt_small, opt_large = ScaledAdam([small], lr=0.05), ScaledAdam([large], lr=0.05)
    start_small, start_large = small.detach().clone(), large.detach().clone()
    for _ in range(13):  # crosses three size-update periods of 4
        grad = torch.randn(6, 5, generator=gen)
        small.grad, large.grad = grad.clone(), grad.clone()
        opt_small.step()
        opt_large.step()
    torch.testing.assert_close(large.detach() - start_large, 10 * (small.detach() - start_small), rtol=1e-4, atol=1e-6)
    assert not torch.allclose(small.detach(), start_small)


def radial_run(steps, **settings):
    """A loss that only wants the (positive) tensor bigger: gradient −1 everywhere. Returns the rms history."""
    weight = nn.Parameter(torch.full((4, 4), 0.5))
    optimizer = ScaledAdam([weight], **settings)
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        (-weight.sum()).backward()
        optimizer.step()
        history.append(weight.detach().pow(2).mean().sqrt().item())
    return history


def test_learned_scale_grows_a_tensor_that_should_grow():
    # At the end of a size-update period, θ grows by Δs ≈ lr·scalar_lr_scale·period = 2% of itself (as it was
    # before that step) on top of the direction steps (Δs is an Adam step: its size, not the gradient's).
    with_scale = radial_run(4, lr=0.05, scalar_lr_scale=0.1)
    without_scale = radial_run(4, lr=0.05, scalar_lr_scale=0.0)
    assert with_scale[:3] == without_scale[:3]  # nothing before the period ends
    assert with_scale[3] - without_scale[3] == pytest.approx(0.02 * with_scale[2], rel=0.01)


def test_learned_scale_caps_the_rms_at_param_max_rms():
    # The direction steps alone grow the rms by lr·(cached rms) a step, e^20 over 400 steps. At each period's end
    # the scale step pulls it back to param_max_rms, and the period's direction steps add at most
    # period·lr·(peak), so the peak is max/(1 − period·lr) = 1.25 here.
    history = radial_run(400, lr=0.05, param_max_rms=1.0)
    assert max(history) <= 1.0 / (1 - 4 * 0.05) + 1e-4
    assert min(history[-8:]) > 1.0


def test_scalar_parameters_get_finite_bounded_adam_updates():
    gain = nn.Parameter(torch.tensor(9.9))
    optimizer = ScaledAdam([gain], lr=0.03, scalar_lr_scale=0.1, scalar_max=10.0)
    gain.grad = torch.tensor(-3.0)
    optimizer.step()
    # Bias-corrected Adam: the first step is lr·scalar_lr_scale in size, whatever the gradient's size.
    assert gain.item() == pytest.approx(9.9 + 0.003, abs=1e-6)
    for _ in range(100):
        gain.grad = torch.tensor(-1e6)
        optimizer.step()
        assert math.isfinite(gain.item()) and gain.item() <= 10.0


@pytest.mark.parametrize("clipping_scale", [None, 2.0])
def test_zero_gradients_give_no_nan(clipping_scale):
    model = TinyNet()
    nn.init.zeros_(model.linear.bias)
    optimizer = ScaledAdam(model.parameters(), lr=0.03, clipping_scale=clipping_scale, clipping_update_period=8)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(20):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.isfinite(p).all()
        torch.testing.assert_close(p.detach(), b)


def test_parameters_without_gradient_are_untouched():
    a, b = nn.Parameter(torch.randn(3, 3)), nn.Parameter(torch.randn(3, 3))
    b_before = b.detach().clone()
    optimizer = ScaledAdam([a, b], lr=0.03, clipping_scale=2.0)
    a.grad = torch.randn(3, 3)
    optimizer.step()
    assert torch.equal(b.detach(), b_before) and "step" not in optimizer.state[b]


def update_rms_after_a_spike(clipping_scale, steps_after=30):
    """20 unit-scale gradients, one 1e6 times larger, ``steps_after`` normal ones: the last update's rms."""
    gen = torch.Generator().manual_seed(3)
    weight = nn.Parameter(torch.randn(8, 8, generator=gen))
    optimizer = ScaledAdam([weight], lr=0.03, clipping_scale=clipping_scale)
    grads = [torch.randn(8, 8, generator=gen) for _ in range(21 + steps_after)]
    grads[20] = grads[20] * 1e6
    for grad in grads[:-1]:
        weight.grad = grad
        optimizer.step()
    before = weight.detach().clone()
    weight.grad = grads[-1]
    optimizer.step()
    return (weight.detach() - before).pow(2).mean().sqrt().item()


def test_clipping_protects_the_moments_from_a_gradient_spike():
    # Unclipped, the spike inflates the second moment and updates stay tiny long after it (here 6x smaller).
    assert update_rms_after_a_spike(2.0) > 3 * update_rms_after_a_spike(None)


def test_non_finite_gradient_step_is_skipped_when_clipping():
    weight = nn.Parameter(torch.randn(4, 4))
    optimizer = ScaledAdam([weight], lr=0.03, clipping_scale=2.0)
    weight.grad = torch.full((4, 4), float("inf"))
    optimizer.step()
    assert torch.isfinite(weight).all()


def test_clipping_threshold_is_logged(caplog):
    weight = nn.Parameter(torch.randn(4, 4))
    optimizer = ScaledAdam([weight], lr=0.03, clipping_scale=2.0, clipping_update_period=5)
    with caplog.at_level(logging.INFO, logger="hf_supernet.training.optim"):
        for _ in range(5):
            weight.grad = torch.randn(4, 4)
            optimizer.step()
    assert "threshold" in caplog.text


# ------------------------------------------------------------------------------------------- resume
def test_state_dict_round_trip_resumes_exactly():
    x, y = regression_problem(seed=4)
    settings = dict(lr=0.03, clipping_scale=2.0, clipping_update_period=6, size_update_period=3)

    model = TinyNet(seed=5)
    optimizer = ScaledAdam(model.named_parameters(), **settings)
    scheduler = get_eden_schedule(optimizer, lr_batches=10, lr_epochs=2, warmup_batches=5, steps_per_epoch=4)
    train(model, optimizer, x, y, steps=11, scheduler=scheduler)  # mid-period for both periods
    checkpoint = copy.deepcopy(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
    )
    expected = train(model, optimizer, x, y, steps=10, scheduler=scheduler)

    # As HF Trainer does: build optimizer and scheduler, then load both.
    resumed = TinyNet(seed=6)
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = ScaledAdam(resumed.named_parameters(), **settings)
    resumed_scheduler = get_eden_schedule(
        resumed_optimizer, lr_batches=10, lr_epochs=2, warmup_batches=5, steps_per_epoch=4
    )
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    resumed_scheduler.load_state_dict(checkpoint["scheduler"])
    got = train(resumed, resumed_optimizer, x, y, steps=10, scheduler=resumed_scheduler)

    assert got == expected
    for p, q in zip(model.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert optimizer.state_dict()["param_groups"][0]["param_names"] == [n for n, _ in model.named_parameters()]


# ------------------------------------------------------------------------------------------- helpers
def test_create_scaled_adam_groups_like_hf_trainer():
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    model[2].weight.requires_grad_(False)
    optimizer = create_scaled_adam(model, lr=0.04, weight_decay=0.01)
    decay, no_decay = optimizer.param_groups
    assert decay["param_names"] == ["0.weight"] and decay["weight_decay"] == 0.01
    assert no_decay["param_names"] == ["0.bias", "1.weight", "1.bias", "2.bias"] and no_decay["weight_decay"] == 0
    assert decay["clipping_scale"] == 2.0 and decay["lr"] == 0.04


def test_icefall_named_params_groups_are_accepted():
    model = nn.Linear(3, 2)
    optimizer = ScaledAdam([{"named_params": list(model.named_parameters()), "lr": 0.01}])
    assert optimizer.param_groups[0]["param_names"] == ["weight", "bias"]


def test_weight_decay_shrinks_only_its_group():
    decayed, kept = nn.Parameter(torch.ones(3, 3)), nn.Parameter(torch.ones(3, 3))
    optimizer = ScaledAdam([{"params": [decayed], "weight_decay": 0.5}, {"params": [kept]}], lr=0.1)
    decayed.grad, kept.grad = torch.zeros(3, 3), torch.zeros(3, 3)
    optimizer.step()
    torch.testing.assert_close(decayed.detach(), torch.full((3, 3), 1 - 0.1 * 0.5))
    torch.testing.assert_close(kept.detach(), torch.ones(3, 3))


def test_eden_factor_matches_the_formula():
    def formula(step, epoch):
        warmup = 0.5 + 0.5 * step / 500 if step < 500 else 1.0
        return ((step**2 + 5000**2) / 5000**2) ** -0.25 * ((epoch**2 + 6**2) / 6**2) ** -0.25 * warmup

    for step in (0, 250, 499, 500, 5000, 20000, 123457):
        got = eden_lr_factor(step, lr_batches=5000, lr_epochs=6, warmup_batches=500, steps_per_epoch=1000)
        assert got == pytest.approx(formula(step, step // 1000))
    assert eden_lr_factor(0) == 0.5


def test_eden_schedule_drives_the_optimizer_lr():
    weight = nn.Parameter(torch.randn(2, 2))
    optimizer = ScaledAdam([weight], lr=0.04)
    scheduler = get_eden_schedule(optimizer, lr_batches=100, lr_epochs=2, warmup_batches=10, steps_per_epoch=50)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    lrs = []
    for _ in range(200):
        lrs.append(optimizer.param_groups[0]["lr"])
        weight.grad = torch.randn(2, 2)
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.02)
    assert max(lrs) == pytest.approx(lrs[10]) and lrs[10] == pytest.approx(0.04 * (1.01**-0.25))
    assert all(a >= b for a, b in zip(lrs[10:-1], lrs[11:], strict=True))  # decays after warmup
    assert lrs[51] / lrs[49] < ((51**2 + 1e4) / (49**2 + 1e4)) ** -0.25  # the epoch term kicks in at step 50
