"""Distillation math: divergences, TODM's top-k + rest bins and the CTC loss."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_supernet.training.distillation import (
    adaptive_alpha_divergence,
    alpha_divergence,
    ctc_distillation_loss,
    kl_divergence,
    topk_rest_distributions,
)

FAST = settings(max_examples=25, deadline=None)


def log_probs(*shape, scale=1.0, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return F.log_softmax(torch.randn(*shape, generator=gen, dtype=dtype) * scale, dim=-1)


def reference_alpha_divergence(p_logp, q_logp, alpha):
    """The textbook formula in float64, valid away from alpha in {0, 1}."""
    p, q = p_logp.double().exp(), q_logp.double().exp()
    p, q = p / p.sum(-1, keepdim=True), q / q.sum(-1, keepdim=True)
    return (q * ((p / q) ** alpha - 1)).sum(-1) / (alpha * (alpha - 1))


logit_rows = st.integers(min_value=0, max_value=2**31 - 1).map(
    lambda seed: torch.randn(3, 9, generator=torch.Generator().manual_seed(seed)) * 3
)


# ------------------------------------------------------------------------------------------- alpha divergence
@pytest.mark.parametrize("alpha", [1.0, 1.0 + 1e-4, 1.0 - 1e-4])
def test_alpha_divergence_tends_to_forward_kl_at_alpha_one(alpha):
    p, q = log_probs(6, 11, seed=1), log_probs(6, 11, seed=2)
    torch.testing.assert_close(alpha_divergence(p, q, alpha, clip=None), kl_divergence(p, q), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 1e-4, -1e-4])
def test_alpha_divergence_tends_to_reverse_kl_at_alpha_zero(alpha):
    p, q = log_probs(6, 11, seed=1), log_probs(6, 11, seed=2)
    torch.testing.assert_close(alpha_divergence(p, q, alpha, clip=None), kl_divergence(q, p), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("alpha", [-2.0, -1.0, 0.3, 0.7, 2.0])
def test_alpha_divergence_matches_the_formula(alpha):
    p, q = log_probs(6, 11, seed=3), log_probs(6, 11, seed=4)
    expected = reference_alpha_divergence(p, q, alpha).float()
    torch.testing.assert_close(alpha_divergence(p, q, alpha, clip=None), expected, rtol=1e-4, atol=1e-5)


def test_clip_changes_nothing_while_importance_weights_stay_below_it():
    p, q = log_probs(6, 11, scale=0.2, seed=5), log_probs(6, 11, scale=0.2, seed=6)
    assert ((p - q).abs().max() < math.log(5.0)).item()  # every (p/q)^±1 < 5
    for alpha in (-1.0, 1.0):
        torch.testing.assert_close(alpha_divergence(p, q, alpha, clip=5.0), alpha_divergence(p, q, alpha, clip=None))


@pytest.mark.parametrize("alpha", [-1.0, 0.0, 0.5, 1.0, 1.5])
@pytest.mark.parametrize("clip", [None, 5.0])
def test_alpha_divergence_is_zero_iff_equal(alpha, clip):
    p, q = log_probs(4, 9, seed=7), log_probs(4, 9, seed=8)
    assert torch.allclose(alpha_divergence(p, p, alpha, clip), torch.zeros(4), atol=1e-6)
    assert (alpha_divergence(p, q, alpha, clip) > 1e-3).all()


@pytest.mark.parametrize("alpha", [-1.0, 0.0, 0.3, 1.0, 1.5])
@pytest.mark.parametrize("clip", [None, 5.0, 1.5])
def test_value_and_clipped_surrogate_gradient_agree(alpha, clip):
    """The returned value's numerical derivative is the AlphaNet surrogate gradient (also off the simplex)."""
    gen = torch.Generator().manual_seed(9)
    teacher = torch.randn(3, 6, generator=gen, dtype=torch.float64) * 2
    student = (torch.randn(3, 6, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda s: alpha_divergence(teacher, s, alpha, clip), (student,))


def test_surrogate_matches_alphanet_form():
    """Gradient w.r.t. student logits = -Σ_i q_i ρ_i ∇log q_i with ρ built from min((p/q)^α, β)."""
    alpha, clip = -1.0, 5.0
    p = log_probs(5, 8, scale=3, seed=10)
    logits = (torch.randn(5, 8, generator=torch.Generator().manual_seed(11)) * 3).requires_grad_()
    (grad,) = torch.autograd.grad(alpha_divergence(p, F.log_softmax(logits, -1), alpha, clip).sum(), logits)

    q_logp = F.log_softmax(logits, -1)
    weight = ((p - q_logp) * alpha).exp().clamp(max=clip).detach()
    rho = weight / alpha + 1 / (alpha * (alpha - 1))  # AlphaNet's ρ, constant included
    expected = torch.autograd.grad(-(q_logp.exp().detach() * rho * q_logp).sum(), logits)[0]
    torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
    assert (weight == clip).any()  # the clip was exercised


def test_teacher_gets_no_gradient_from_alpha_divergence():
    p = log_probs(3, 5, seed=12).requires_grad_()
    q = log_probs(3, 5, seed=13).requires_grad_()
    alpha_divergence(p, q, -1.0).sum().backward()
    assert p.grad is None and q.grad is not None


def test_adaptive_alpha_divergence_is_the_per_sample_max():
    # Row 0: the student misses teacher mass (KL side larger); row 1: the student spreads mass the teacher lacks.
    p = torch.tensor([[0.5, 0.5], [0.99, 0.01]]).log()
    q = torch.tensor([[0.99, 0.01], [0.5, 0.5]]).log()
    low, high = alpha_divergence(p, q, -1.0), alpha_divergence(p, q, 1.0)
    assert high[0] > low[0] and low[1] > high[1]
    torch.testing.assert_close(adaptive_alpha_divergence(p, q), torch.stack([high[0], low[1]]))


@FAST
@given(teacher=logit_rows, student=logit_rows, alpha=st.floats(-2.0, 2.0))
def test_alpha_divergence_properties(teacher, student, alpha):
    p, q = F.log_softmax(teacher, -1), F.log_softmax(student, -1)
    exact = alpha_divergence(p, q, alpha, clip=None)
    clipped = alpha_divergence(p, q, alpha, clip=5.0)
    assert torch.isfinite(clipped).all()
    assert (clipped >= -1e-5).all()
    assert (clipped <= exact * (1 + 1e-4) + 1e-5).all()  # the tangent tail lies below the convex generator
    assert torch.allclose(alpha_divergence(p, p, alpha), torch.zeros(3), atol=1e-5)


# ------------------------------------------------------------------------------------------- KL
@FAST
@given(teacher=logit_rows, student=logit_rows)
def test_kl_properties(teacher, student):
    p, q = F.log_softmax(teacher, -1), F.log_softmax(student, -1)
    expected = F.kl_div(q, p, log_target=True, reduction="none").sum(-1)
    torch.testing.assert_close(kl_divergence(p, q), expected, rtol=1e-4, atol=1e-5)
    assert (kl_divergence(p, q) >= -1e-6).all()
    assert torch.allclose(kl_divergence(p, p), torch.zeros(3), atol=1e-6)


def test_kl_upcasts_half_precision():
    p, q = log_probs(2, 5, seed=16), log_probs(2, 5, seed=17)
    out = kl_divergence(p.bfloat16(), q.bfloat16())
    assert out.dtype == torch.float32


# ------------------------------------------------------------------------------------------- top-k + rest
@FAST
@given(teacher=logit_rows, student=logit_rows, k=st.integers(1, 12))
def test_topk_rest_bins_are_distributions(teacher, student, k):
    t_logp, s_logp = topk_rest_distributions(teacher, student, k)
    bins = k + 1 if k < 9 else 9
    assert t_logp.shape == s_logp.shape == (3, bins)
    torch.testing.assert_close(t_logp.exp().sum(-1), torch.ones(3))
    torch.testing.assert_close(s_logp.exp().sum(-1), torch.ones(3))
    assert torch.isfinite(t_logp).all() and torch.isfinite(s_logp).all()


def test_topk_bins_are_the_teachers_top_classes_then_the_rest():
    teacher = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]])
    student = torch.tensor([[1.0, 0.0, 2.0, 0.5, 0.0]])
    t_logp, s_logp = topk_rest_distributions(teacher, student, k=2)
    full_t, full_s = F.log_softmax(teacher, -1), F.log_softmax(student, -1)
    torch.testing.assert_close(t_logp[0, :2], full_t[0, [1, 3]])
    torch.testing.assert_close(s_logp[0, :2], full_s[0, [1, 3]])
    torch.testing.assert_close(s_logp[0, 2].exp(), full_s[0, [0, 2, 4]].exp().sum())


def test_rest_bin_stays_positive_when_top_k_holds_almost_everything():
    teacher = torch.tensor([[80.0, 79.0, -80.0, -80.0]])
    t_logp, _ = topk_rest_distributions(teacher, teacher.clone(), k=2)
    assert torch.isfinite(t_logp).all() and t_logp[0, 2] < -150  # 1 - sum would be exactly 0 here


# ------------------------------------------------------------------------------------------- CTC loss
def ctc_logits(batch=3, frames=7, vocab=12, seed=0, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, vocab, generator=gen) * scale


@pytest.mark.parametrize("method", ["kl", "alpha"])
@pytest.mark.parametrize("top_k", [None, 3])
def test_padded_frames_do_not_change_the_loss_or_gradient(method, top_k):
    teacher, student = ctc_logits(seed=1), ctc_logits(seed=2).requires_grad_()
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    loss = ctc_distillation_loss(teacher, student, mask, method=method, top_k=top_k)
    (grad,) = torch.autograd.grad(loss, student)

    # Garbage in the padded frames, and 5 extra padded frames of garbage.
    garbage_t = torch.full((3, 12, 12), float("nan"))
    garbage_s = torch.full((3, 12, 12), 1e30)
    garbage_t[:, :7] = torch.where(mask[..., None].bool(), teacher, garbage_t[:, :7])
    garbage_s[:, :7] = torch.where(mask[..., None].bool(), student.detach(), garbage_s[:, :7])
    padded_student = garbage_s.requires_grad_()
    padded_mask = torch.cat([mask, torch.zeros(3, 5, dtype=mask.dtype)], dim=1)
    padded_loss = ctc_distillation_loss(garbage_t, padded_student, padded_mask, method=method, top_k=top_k)
    (padded_grad,) = torch.autograd.grad(padded_loss, padded_student)

    torch.testing.assert_close(padded_loss, loss)
    torch.testing.assert_close(padded_grad[:, :7], grad * mask[..., None])
    assert (padded_grad[:, 7:] == 0).all()


def test_mask_none_means_all_frames():
    teacher, student = ctc_logits(seed=3), ctc_logits(seed=4)
    ones = torch.ones(3, 7, dtype=torch.long)
    for method in ("kl", "alpha"):
        torch.testing.assert_close(
            ctc_distillation_loss(teacher, student, None, method=method),
            ctc_distillation_loss(teacher, student, ones, method=method),
        )


def test_kl_loss_is_the_mean_over_valid_frames():
    teacher, student = ctc_logits(seed=5), ctc_logits(seed=6)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [0] * 7])
    per_frame = kl_divergence(F.log_softmax(teacher, -1), F.log_softmax(student, -1))
    expected = per_frame[mask.bool()].mean()
    torch.testing.assert_close(ctc_distillation_loss(teacher, student, mask, method="kl", top_k=None), expected)


def test_alpha_loss_takes_the_max_per_utterance_then_the_mean():
    gen = torch.Generator().manual_seed(7)
    teacher, student = torch.randn(3, 7, 5, generator=gen), torch.randn(3, 7, 5, generator=gen)
    # Utterance 0: the student bets everything on the teacher's favourite class, missing the rest of the
    # teacher's mass (KL wins); utterance 1: the teacher is sure, the student is flat (D_-1 wins).
    student[0] = teacher[0] + 8.0 * F.one_hot(teacher[0].argmax(-1), 5)
    teacher[1] *= 6
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] * 5 + [0] * 2])
    p, q = topk_rest_distributions(teacher, student, 3)
    low, high = [], []
    for b, length in enumerate(mask.sum(1).tolist()):
        low.append(alpha_divergence(p[b, :length], q[b, :length], -1.0).mean())
        high.append(alpha_divergence(p[b, :length], q[b, :length], 1.0).mean())
    low, high = torch.stack(low), torch.stack(high)
    assert high[0] > low[0] and low[1] > high[1]  # the winner differs between utterances
    expected = torch.maximum(low, high).mean()
    torch.testing.assert_close(ctc_distillation_loss(teacher, student, mask, method="alpha", top_k=3), expected)


@pytest.mark.parametrize("method", ["kl", "alpha"])
def test_teacher_gets_no_gradient(method):
    teacher, student = ctc_logits(seed=9).requires_grad_(), ctc_logits(seed=10).requires_grad_()
    ctc_distillation_loss(teacher, student, method=method).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


@pytest.mark.parametrize("method", ["kl", "alpha"])
def test_top_k_equal_to_vocab_is_the_full_distribution(method):
    teacher, student = ctc_logits(seed=11), ctc_logits(seed=12)
    full = ctc_distillation_loss(teacher, student, method=method, top_k=None)
    torch.testing.assert_close(ctc_distillation_loss(teacher, student, method=method, top_k=12), full)
    torch.testing.assert_close(ctc_distillation_loss(teacher, student, method=method, top_k=0), full)
    assert not torch.allclose(ctc_distillation_loss(teacher, student, method=method, top_k=3), full)


@pytest.mark.parametrize("method", ["kl", "alpha"])
@pytest.mark.parametrize("top_k", [None, 2, 10])
def test_gradients_are_finite_for_saturated_logits(method, top_k):
    gen = torch.Generator().manual_seed(13)
    teacher = (torch.randint(0, 2, (2, 6, 12), generator=gen) * 160 - 80).float()
    student = (torch.randint(0, 2, (2, 6, 12), generator=gen) * 160 - 80).float().requires_grad_()
    loss = ctc_distillation_loss(teacher, student, method=method, top_k=top_k)
    (grad,) = torch.autograd.grad(loss, student)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_bf16_logits_are_computed_in_fp32():
    teacher, student = ctc_logits(seed=14), ctc_logits(seed=15)
    loss = ctc_distillation_loss(teacher.bfloat16(), student.bfloat16(), method="alpha")
    assert loss.dtype == torch.float32
    torch.testing.assert_close(
        loss, ctc_distillation_loss(teacher.bfloat16().float(), student.bfloat16().float(), method="alpha")
    )


def test_no_valid_frame_gives_zero_attached_to_the_student():
    teacher, student = ctc_logits(seed=16), ctc_logits(seed=17).requires_grad_()
    loss = ctc_distillation_loss(teacher, student, torch.zeros(3, 7), method="alpha")
    loss.backward()
    assert loss.item() == 0.0 and (student.grad == 0).all()


@FAST
@given(seed=st.integers(0, 2**31 - 1), method=st.sampled_from(["kl", "alpha"]), top_k=st.sampled_from([None, 1, 4]))
def test_ctc_loss_properties(seed, method, top_k):
    teacher, student = ctc_logits(seed=seed, scale=4.0), ctc_logits(seed=seed + 1, scale=4.0).requires_grad_()
    loss = ctc_distillation_loss(teacher, student, method=method, top_k=top_k)
    (grad,) = torch.autograd.grad(loss, student)
    assert torch.isfinite(loss) and loss >= -1e-5 and torch.isfinite(grad).all()
    same = ctc_distillation_loss(teacher, teacher.clone(), method=method, top_k=top_k)
    assert abs(same.item()) < 1e-5


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="method"):
        ctc_distillation_loss(ctc_logits(), ctc_logits(), method="js")
