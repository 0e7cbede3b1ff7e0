"""SpecAugment (Park et al., 2019) time and frequency masking on padded log-mel batches.

The fields follow transformers' speech configs (`Wav2Vec2Config.mask_time_prob`, ...): ``mask_*_prob`` is the
expected fraction of frames (bins) covered, spread over spans of ``mask_*_length``; ``mask_*_min_masks`` spans are
always drawn. Masked values are set to 0, the mean of the per-utterance normalised features. Masks are drawn only
inside each utterance's valid frames, so padding stays 0 and does not change how much of an utterance is masked.
Unlike `transformers.models.wav2vec2.modeling_wav2vec2._compute_mask_indices` (numpy's global RNG) the masks come
from a `torch.Generator`, so a seeded generator reproduces them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

__all__ = ["SpecAugmentConfig", "spec_augment"]


@dataclass
class SpecAugmentConfig:
    """SpecAugment settings (transformers field names).

    Args:
        mask_time_prob (`float`, *optional*, defaults to 0.05): expected fraction of valid frames masked.
        mask_time_length (`int`, *optional*, defaults to 10): frames per time mask (100 frames = 1 s).
        mask_time_min_masks (`int`, *optional*, defaults to 2): time masks drawn per utterance at least.
        mask_feature_prob (`float`, *optional*, defaults to 0.0): expected fraction of mel bins masked.
        mask_feature_length (`int`, *optional*, defaults to 10): bins per frequency mask.
        mask_feature_min_masks (`int`, *optional*, defaults to 0): frequency masks drawn per utterance at least.
    """

    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_time_min_masks: int = 2
    mask_feature_prob: float = 0.0
    mask_feature_length: int = 10
    mask_feature_min_masks: int = 0

    def __post_init__(self):
        for name in ("mask_time_prob", "mask_feature_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        for name in ("mask_time_length", "mask_feature_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("mask_time_min_masks", "mask_feature_min_masks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")

    @classmethod
    def from_model_config(cls, config) -> SpecAugmentConfig:
        """The SpecAugment fields a transformers config has (e.g. a `Wav2Vec2Config`); defaults for the rest."""
        fields = {name: getattr(config, name) for name in asdict(cls()) if getattr(config, name, None) is not None}
        return cls(**fields)


def _span_mask(
    lengths: list[int], size: int, prob: float, span: int, min_masks: int, generator: torch.Generator | None
) -> torch.Tensor:
    """(batch, size) bool mask of random spans inside ``[0, length)`` of each row."""
    mask = torch.zeros(len(lengths), size, dtype=torch.bool)
    for row, length in enumerate(lengths):
        if length <= 0:
            continue
        width = min(span, length)
        # Probabilistic rounding keeps the expected masked fraction at `prob` for short utterances too.
        count = int(prob * length / width + torch.rand((), generator=generator).item())
        count = min(max(count, min_masks), length // width)
        if count == 0:
            continue
        starts = torch.randint(0, length - width + 1, (count,), generator=generator)
        mask[row, (starts[:, None] + torch.arange(width)).flatten()] = True
    return mask


def spec_augment(
    features: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    config: SpecAugmentConfig | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return a copy of `features` with SpecAugment time and frequency masks set to 0.

    Args:
        features (`torch.Tensor` of shape `(batch, frames, bins)`): normalised log-mel features, zero-padded.
        attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): 1 on valid frames; all frames if
            omitted. Time masks fall inside the valid frames only.
        config ([`SpecAugmentConfig`], *optional*): mask settings; defaults to `SpecAugmentConfig()`.
        generator (`torch.Generator`, *optional*): random source (CPU); the same seed gives the same masks.
    """
    if features.dim() != 3:
        raise ValueError(f"features must have shape (batch, frames, bins), got {tuple(features.shape)}.")
    config = config if config is not None else SpecAugmentConfig()
    batch, frames, bins = features.shape
    if attention_mask is None:
        lengths = [frames] * batch
    else:
        lengths = attention_mask.sum(-1).tolist()
    time_mask = _span_mask(
        lengths, frames, config.mask_time_prob, config.mask_time_length, config.mask_time_min_masks, generator
    )
    feature_mask = _span_mask(
        [bins] * batch,
        bins,
        config.mask_feature_prob,
        config.mask_feature_length,
        config.mask_feature_min_masks,
        generator,
    )
    # Frequency masks cover the valid frames only; padded frames are 0 already.
    valid = torch.ones(batch, frames, dtype=torch.bool) if attention_mask is None else attention_mask.bool().cpu()
    mask = time_mask[:, :, None] | (feature_mask[:, None, :] & valid[:, :, None])
    return features.masked_fill(mask.to(features.device), 0.0)
