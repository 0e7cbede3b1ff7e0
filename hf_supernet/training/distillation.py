"""In-place distillation math for CTC supernets, as pure functions.

The largest subnet's per-frame output distribution (the teacher, detached) teaches every smaller subnet (the
students) on the same step. Two divergences are provided:

* KL(p‖q), the usual distillation loss;
* the adaptive alpha-divergence of AlphaNet (Wang et al., 2021), the per-sample maximum of ``D_{α-}(p‖q)`` and
  ``D_{α+}(p‖q)`` (α- = -1, α+ = +1), trained with AlphaNet's clipped-importance-weight gradient.

Both can be computed on TODM's reduced distributions: per frame, the teacher's top-k classes (over vocabulary +
CTC blank) plus one "rest" bin holding the remaining mass, the student being evaluated on the same k + 1 bins.

Conventions: ``p`` is the teacher, ``q`` the student; every function works on the last dimension and takes
*log*-probabilities (or logits) so that near-zero probabilities stay representable; half-precision inputs are
upcast to float32 (float64 stays float64) because these sums lose too much in bf16/fp16.

(Adaptive dropout is each mask type's ``BlockPlan.dropout_scale``, applied by the model's blocks.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "adaptive_alpha_divergence",
    "alpha_divergence",
    "ctc_distillation_loss",
    "kl_divergence",
    "topk_rest_distributions",
]

DISTILLATION_METHODS = ("kl", "alpha")


# --------------------------------------------------------------------------------------------- distributions
def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 unless it is already float32/float64 (sums of tiny probabilities need the mantissa)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def topk_rest_distributions(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, k: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """TODM's reduced distributions: the teacher's top-``k`` classes plus one "rest" bin, for both models.

    Per frame (every index of the leading dimensions), the bins are the ``k`` classes the teacher finds most
    likely, in decreasing teacher probability, followed by a rest bin holding everything else. The rest bin's
    log-probability is the log-sum-exp of the other classes' log-probabilities, which is exact and never
    negative or zero the way ``1 - sum(top-k)`` can be in floating point.

    If ``k >= V`` there is nothing left for a rest bin, and none is added: the result is the full distribution
    (reordered by the teacher), of size ``V``. So ``k >= V`` gives exactly the full-distribution divergence.

    Args:
        teacher_logits: ``(..., V)`` unnormalised scores (vocabulary including the CTC blank). Gradients are kept;
            detach it yourself if the teacher must not learn (``ctc_distillation_loss`` does).
        student_logits: ``(..., V)``, same shape.
        k: number of teacher classes kept, ``>= 1``.

    Returns:
        ``(teacher_logp, student_logp)``, each ``(..., k + 1)`` (or ``(..., V)`` when ``k >= V``), float32 or
        float64, each row summing to 1 in probability.
    """
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher {tuple(teacher_logits.shape)} and student {tuple(student_logits.shape)} differ.")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    teacher_logp = F.log_softmax(_at_least_fp32(teacher_logits), dim=-1)
    student_logp = F.log_softmax(_at_least_fp32(student_logits), dim=-1)
    vocab = teacher_logp.shape[-1]
    # Indices carry no gradient, so the choice of bins is the teacher's alone, as it should be.
    top = teacher_logp.topk(min(k, vocab), dim=-1).indices
    if k >= vocab:
        return teacher_logp.gather(-1, top), student_logp.gather(-1, top)
    in_top = torch.zeros_like(teacher_logp, dtype=torch.bool).scatter_(-1, top, True)
    return _with_rest_bin(teacher_logp, top, in_top), _with_rest_bin(student_logp, top, in_top)


def _with_rest_bin(logp: torch.Tensor, top: torch.Tensor, in_top: torch.Tensor) -> torch.Tensor:
    """``(..., V)`` log-probs -> ``(..., k + 1)``: the ``top`` classes, then log of the mass outside them."""
    rest = logp.masked_fill(in_top, float("-inf")).logsumexp(dim=-1, keepdim=True)
    return torch.cat([logp.gather(-1, top), rest], dim=-1)


# --------------------------------------------------------------------------------------------- divergences
def kl_divergence(teacher_logp: torch.Tensor, student_logp: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) = Σ_i p_i (log p_i − log q_i) over the last dimension.

    Args:
        teacher_logp: ``(..., C)`` log-probabilities of p (finite). Gradients flow into both arguments; detach
            the teacher if it must not learn.
        student_logp: ``(..., C)`` log-probabilities of q.

    Returns:
        ``(...)`` divergences, float32 or float64.
    """
    teacher_logp, student_logp = _at_least_fp32(teacher_logp), _at_least_fp32(student_logp)
    return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(dim=-1)


def alpha_divergence(
    teacher_logp: torch.Tensor, student_logp: torch.Tensor, alpha: float, clip: float | None = 5.0
) -> torch.Tensor:
    """AlphaNet's alpha-divergence ``D_α(p‖q) = 1/(α(α−1)) Σ_i q_i [(p_i/q_i)^α − 1]``, clipped-gradient version.

    Limits: α → 1 gives KL(p‖q) and α → 0 gives KL(q‖p); both are reached continuously (no special cases
    beyond α exactly 0 or 1), so e.g. α = 1 ± 1e-4 is as accurate as α = 1.

    Gradient (AlphaNet). The gradient of ``Σ_i q_i f(p_i/q_i)`` with respect to the student is
    ``−Σ_i q_i ρ_i ∇log q_i`` with ``ρ_i = ((p_i/q_i)^α − 1)/α``: a score-function form whose per-class weight
    is the importance weight ``w_i = (p_i/q_i)^α``. That weight explodes where one model puts almost no mass
    where the other puts a lot (``q/p`` for α = −1), so AlphaNet clips it: ``w_i ← min(w_i, clip)`` (β = 5),
    and trains with ``−Σ_i stopgrad(q_i ρ_i) log q_i``. We do the same, for every α (AlphaNet's own code leaves
    α ≈ 1 unclipped, which makes the loss jump between α = 1 and α = 1.001; clipping everywhere is continuous).

    Value. The clipped gradient is exactly the gradient of another f-divergence: the one whose generator f
    continues as its tangent line beyond the clip point ``t* = clip^(1/α)`` (a Huber-like linear tail). That is
    the value returned, so forward and backward agree (``torch.autograd.gradcheck`` passes) and the value is
    always finite. It equals ``D_α`` whenever no importance weight exceeds ``clip``, is never larger than
    ``D_α``, and is 0 iff p == q. With ``clip=None`` both value and gradient are the exact ``D_α`` (which, for
    α < 0 and a student confident where the teacher is not, can overflow to inf in float32).

    Args:
        teacher_logp: ``(..., C)`` log-probabilities of p. Treated as a constant: the teacher gets no gradient.
        student_logp: ``(..., C)`` log-probabilities of q (the surrogate assumes nothing about normalisation,
            the value and gradient are those of ``Σ_i q_i f(p_i/q_i)`` for any positive vectors).
        alpha: α, any real.
        clip: β, the largest importance weight ``(p/q)^α`` used (> 1), or None for no clipping.

    Returns:
        ``(...)`` divergences (float32 or float64); their gradient is AlphaNet's clipped surrogate.
    """
    if clip is not None and clip <= 1.0:
        raise ValueError(f"clip must be > 1 (it bounds (p/q)^alpha, which is 1 where p == q), got {clip}.")
    alpha = _snap_alpha(alpha)
    teacher_logp = _at_least_fp32(teacher_logp).detach()
    student_logp = _at_least_fp32(student_logp)
    with torch.no_grad():
        value = _clipped_alpha_divergence_value(teacher_logp, student_logp.detach(), alpha, clip)
        score_weights = student_logp.detach().exp() * _importance_rho(teacher_logp - student_logp.detach(), alpha, clip)
    surrogate = -(score_weights * student_logp).sum(dim=-1)
    # Value of the divergence, gradient of the surrogate.
    return value + (surrogate - surrogate.detach())


def adaptive_alpha_divergence(
    teacher_logp: torch.Tensor,
    student_logp: torch.Tensor,
    alpha_min: float = -1.0,
    alpha_max: float = 1.0,
    clip: float | None = 5.0,
) -> torch.Tensor:
    """AlphaNet's adaptive loss: per sample, ``max(D_{alpha_min}(p‖q), D_{alpha_max}(p‖q))``.

    A sample is one distribution here (one index of the leading dimensions); for a per-utterance maximum over
    CTC frames, see ``ctc_distillation_loss``. The gradient is that of the larger term (ties go to
    ``alpha_max``), each with :func:`alpha_divergence`'s clipped surrogate.

    Args:
        teacher_logp, student_logp: ``(..., C)`` log-probabilities; the teacher gets no gradient.
        alpha_min, alpha_max: the two α (AlphaNet: −1 and +1).
        clip: importance-weight clip β, see :func:`alpha_divergence`.

    Returns:
        ``(...)`` divergences.
    """
    low = alpha_divergence(teacher_logp, student_logp, alpha_min, clip)
    high = alpha_divergence(teacher_logp, student_logp, alpha_max, clip)
    return torch.where(low > high, low, high)


def _snap_alpha(alpha: float) -> float:
    """α within 1e-20 of 0 or 1 becomes exactly 0 or 1: the divergence moves by O(1e-20) (nothing in float32),
    while dividing by such an α would, once α is cast to float32 (it underflows below 1e-38), give 0/0."""
    alpha = float(alpha)
    for limit in (0.0, 1.0):
        if abs(alpha - limit) < 1e-20:
            return limit
    return alpha


def _weighted_expm1_ratio(log_weight: torch.Tensor, x: torch.Tensor, scale: float) -> torch.Tensor:
    """``w·expm1(scale·x)/scale`` with ``w = exp(log_weight)``, without overflow where w is tiny and the
    exponent huge (there ``exp(log_w + scale·x) − w`` is used; cancellation is harmless once scale·x > 1)."""
    weight = log_weight.exp()
    if scale == 0.0:
        return weight * x
    exponent = scale * x
    small = weight * torch.expm1(exponent)
    large = torch.exp(log_weight + exponent) - weight
    return torch.where(exponent > 1.0, large, small) / scale


def _weighted_expm1(log_weight: torch.Tensor, exponent: float) -> torch.Tensor:
    """``w·expm1(exponent)`` with ``w = exp(log_weight)``, representable whenever the product is."""
    if exponent > 1.0:
        return torch.exp(log_weight + exponent) - log_weight.exp()
    return log_weight.exp() * math.expm1(exponent)


def _alpha_terms(teacher_logp: torch.Tensor, student_logp: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-class ``q f_α(p/q)`` with the normalised generator ``f_α(t) = (t^α − 1 − α(t − 1))/(α(α − 1))``.

    The linear term sums to 0 over normalised distributions (so the total is D_α) but makes each term finite at
    α → 0, 1: written around whichever of α, α − 1 is small, the ratio (t^α − 1)/α comes from expm1, exact
    for tiny α. With r = log(p/q):
        α ≥ 1/2:  [p·expm1((α−1) r)/(α−1) − p + q] / α      (→ p r − p + q = KL(p‖q) terms at α = 1)
        α < 1/2:  [q·expm1(α r)/α − p + q] / (α − 1)          (→ −q r + p − q = KL(q‖p) terms at α = 0)
    """
    p, q = teacher_logp.exp(), student_logp.exp()
    log_ratio = teacher_logp - student_logp
    if alpha >= 0.5:
        return (_weighted_expm1_ratio(teacher_logp, log_ratio, alpha - 1.0) - p + q) / alpha
    return (_weighted_expm1_ratio(student_logp, log_ratio, alpha) - p + q) / (alpha - 1.0)


def _clipped_alpha_divergence_value(
    teacher_logp: torch.Tensor, student_logp: torch.Tensor, alpha: float, clip: float | None
) -> torch.Tensor:
    """Σ over the last dim of ``q f(p/q)``, f being f_α with a tangent-line tail where ``(p/q)^α > clip``."""
    exact = _alpha_terms(teacher_logp, student_logp, alpha)
    if clip is None or alpha == 0.0:  # at α = 0 the importance weight (p/q)^0 = 1 never exceeds the clip
        return exact.sum(dim=-1)
    log_ratio = teacher_logp - student_logp
    clipped = alpha * log_ratio > math.log(clip)
    # Tangent at t* = clip^(1/α): q f(t*) + f'(t*) (p − q t*), with f'(t) = (t^(α−1) − 1)/(α − 1).
    log_ratio_star = math.log(clip) / alpha
    # Where clipped, log p* = log q + log t* < log p <= 0 for α > 0 (and <= log q <= 0 for α < 0): no overflow.
    teacher_logp_star = student_logp + log_ratio_star
    if alpha == 1.0:
        tail = log_ratio_star * (teacher_logp.exp() - teacher_logp_star.exp())
    else:
        # f'(t*) (p − p*) with t*^(α−1) folded into the exponentials: for small negative α, t*^(α−1) alone
        # overflows, but its products with p and p* (p* t*^(α−1) = q·clip) do not.
        exponent = (alpha - 1.0) * log_ratio_star
        tail = (_weighted_expm1(teacher_logp, exponent) - _weighted_expm1(teacher_logp_star, exponent)) / (alpha - 1.0)
    tangent = _alpha_terms(teacher_logp_star, student_logp, alpha) + tail
    return torch.where(clipped, tangent, exact).sum(dim=-1)


def _importance_rho(log_ratio: torch.Tensor, alpha: float, clip: float | None) -> torch.Tensor:
    """ρ = (min(w, clip) − 1)/α with importance weight w = (p/q)^α = exp(α r); log(p/q) = r at α = 0.

    ``−ρ_i`` is ∂/∂q_i of ``q_i f(p_i/q_i)``. AlphaNet writes ρ as w/α + 1/(α(α−1)); the constants differ only
    by a multiple of Σ_i q_i ∇log q_i = 0, and ours stays finite at α = 1.
    """
    if alpha == 0.0:
        return log_ratio
    log_weight = alpha * log_ratio
    if clip is not None:
        log_weight = log_weight.clamp(max=math.log(clip))
    return torch.expm1(log_weight) / alpha


# --------------------------------------------------------------------------------------------- CTC loss
def ctc_distillation_loss(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    method: str = "kl",
    top_k: int | None = 10,
    alpha_min: float = -1.0,
    alpha_max: float = 1.0,
    alpha_clip: float | None = 5.0,
) -> torch.Tensor:
    """Frame-level in-place distillation loss from a CTC teacher to a CTC student.

    The teacher is detached. Padded frames (mask 0) are dropped before anything is computed, so their values,
    even inf/NaN, can neither change the loss nor reach the student's gradient.

    * ``method="kl"``: KL(p‖q) per frame, averaged over all valid frames of the batch.
    * ``method="alpha"``: AlphaNet's adaptive alpha-divergence with the utterance as the sample: per utterance,
      ``D_{alpha_min}`` and ``D_{alpha_max}`` are averaged over its valid frames, the larger of the two is kept,
      and these maxima are averaged over utterances (utterances without valid frames are skipped). So an
      utterance counts once whatever its length, as in AlphaNet where a sample is one image.

    Args:
        teacher_logits: ``(B, T, V)`` logits of the largest subnet (V = vocabulary incl. blank).
        student_logits: ``(B, T, V)`` logits of the student subnet.
        attention_mask: ``(B, T)`` frame mask, 1 = valid, 0 = padding; None = every frame is valid.
        method: ``"kl"`` or ``"alpha"``.
        top_k: TODM's reduction to the teacher's top-k classes + a rest bin; None or 0 = full distribution.
        alpha_min, alpha_max, alpha_clip: see :func:`adaptive_alpha_divergence`.

    Returns:
        Scalar float32 loss (0, still attached to the student, when no frame is valid).
    """
    if method not in DISTILLATION_METHODS:
        raise ValueError(f"method must be one of {DISTILLATION_METHODS}, got {method!r}.")
    if teacher_logits.shape != student_logits.shape or student_logits.dim() != 3:
        raise ValueError(
            f"teacher {tuple(teacher_logits.shape)} and student {tuple(student_logits.shape)} must both be (B, T, V)."
        )
    batch, frames, _ = student_logits.shape
    if attention_mask is None:
        valid = torch.ones(batch, frames, dtype=torch.bool, device=student_logits.device)
    else:
        if attention_mask.shape != (batch, frames):
            raise ValueError(f"attention_mask {tuple(attention_mask.shape)} is not (B, T) = {(batch, frames)}.")
        valid = attention_mask.to(device=student_logits.device).bool()
    if not valid.any():
        return student_logits.sum().float() * 0.0

    # (N, V) rows of the valid frames only.
    teacher_logp, student_logp = _frame_distributions(teacher_logits.detach()[valid], student_logits[valid], top_k)
    if method == "kl":
        return kl_divergence(teacher_logp, student_logp).mean()

    utterance = valid.nonzero()[:, 0]  # utterance of each valid frame
    frames_per_utterance = valid.sum(dim=1)
    has_frames = frames_per_utterance > 0

    def utterance_means(per_frame: torch.Tensor) -> torch.Tensor:
        sums = per_frame.new_zeros(batch).index_add(0, utterance, per_frame)
        return sums[has_frames] / frames_per_utterance[has_frames]

    low = utterance_means(alpha_divergence(teacher_logp, student_logp, alpha_min, alpha_clip))
    high = utterance_means(alpha_divergence(teacher_logp, student_logp, alpha_max, alpha_clip))
    return torch.where(low > high, low, high).mean()


def _frame_distributions(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, top_k: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the bins distilled on: top-k + rest, or the full vocabulary."""
    if top_k:
        return topk_rest_distributions(teacher_logits, student_logits, top_k)
    return (
        F.log_softmax(_at_least_fp32(teacher_logits), dim=-1),
        F.log_softmax(_at_least_fp32(student_logits), dim=-1),
    )
