"""Greedy CTC decoding and a `compute_metrics` for `Trainer` (WER/CER of CTC logits against labels)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .loading import load_metric

__all__ = ["ctc_greedy_decode", "make_compute_metrics", "preprocess_logits_for_metrics"]

IGNORE_INDEX = -100


def _as_numpy(array) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().float().cpu().numpy() if array.is_floating_point() else array.detach().cpu().numpy()
    return np.asarray(array)


def _valid_lengths(frames: int, batch: int, attention_mask=None, lengths=None) -> list[int]:
    if lengths is not None:
        return [min(int(length), frames) for length in _as_numpy(lengths).reshape(-1)]
    if attention_mask is not None:
        # > 0 rather than != 0: `Trainer` pads masks from different batches with -100.
        return (_as_numpy(attention_mask) > 0).sum(-1).astype(int).tolist()
    return [frames] * batch


def ctc_greedy_decode(logits, attention_mask=None, lengths=None, blank_id: int = 0) -> list[list[int]]:
    """Best-path CTC decoding: argmax per frame over each utterance's valid frames, merge repeats, drop blanks.

    Args:
        logits (`torch.Tensor` or `np.ndarray` of shape `(batch, frames, vocab)`): model output (or log-probs).
        attention_mask (`(batch, frames)`, *optional*): 1 on valid output frames (e.g. the model's
            `output_attention_mask`).
        lengths (`(batch,)`, *optional*): valid output frames per utterance; overrides `attention_mask`.
        blank_id (`int`, *optional*, defaults to 0): the CTC blank (the tokenizer's pad id).

    Returns:
        `list[list[int]]`: token ids per utterance, already collapsed — decode them with
        ``tokenizer.batch_decode(ids, group_tokens=False)``.
    """
    logits = _as_numpy(logits)
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape (batch, frames, vocab), got {logits.shape}.")
    best = logits.argmax(-1)
    valid = _valid_lengths(best.shape[1], best.shape[0], attention_mask, lengths)
    return [
        [int(token) for token, _ in itertools.groupby(row[:length]) if token != blank_id]
        for row, length in zip(best, valid)
    ]


def preprocess_logits_for_metrics(logits, labels) -> torch.Tensor:
    """`Trainer(preprocess_logits_for_metrics=...)`: keep argmax ids (not full logits) across evaluation.

    Frames past each utterance's output length (from the model's `output_attention_mask`, when the model returns
    one after the logits) become -100, which :func:`make_compute_metrics`'s function treats as blank.
    """
    mask = None
    if isinstance(logits, (tuple, list)):
        logits, mask = logits[0], next((x for x in logits[1:] if x is not None and x.dim() == 2), None)
    ids = logits.argmax(-1)
    if mask is not None:
        ids = ids.masked_fill(~mask.bool(), IGNORE_INDEX)
    return ids


def _split_predictions(predictions):
    """`EvalPrediction.predictions` → (logits or ids, output mask or None)."""
    mask = None
    if isinstance(predictions, (tuple, list)):
        rest = [np.asarray(x) for x in predictions[1:] if x is not None]
        predictions = predictions[0]
        mask = next((x for x in rest if x.ndim == 2), None)
    return np.asarray(predictions), mask


def make_compute_metrics(processor, metrics: Sequence[str] = ("wer", "cer")) -> Callable:
    """Build `Trainer(compute_metrics=...)` for a CTC model: returns ``{"wer": ..., "cer": ...}``.

    Predictions may be logits `(batch, frames, vocab)` — optionally followed by the model's
    `output_attention_mask`, which limits decoding to valid frames — or argmax ids `(batch, frames)` from
    :func:`preprocess_logits_for_metrics`. Predictions are CTC-decoded (merge repeats, drop blanks); labels have
    -100 mapped to the pad id and are decoded without merging repeats. Both sides are thus normalised text (see
    `hf_supernet.data.normalize_text`).

    Args:
        processor: a [`~hf_supernet.data.SupernetSpeechProcessor`] (or its tokenizer).
        metrics (`Sequence[str]`, *optional*, defaults to `("wer", "cer")`): metrics to report, loaded offline with
            :func:`~hf_supernet.metrics.load_metric`.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    pad_id = tokenizer.pad_token_id
    modules = {name: load_metric(name) for name in metrics}

    def compute_metrics(eval_pred) -> dict[str, float]:
        predictions, mask = _split_predictions(eval_pred.predictions)
        if predictions.ndim == 3:
            # Trainer pads logits of shorter batches with -100 and pads a bool mask with True: drop those frames.
            valid = ~(predictions == IGNORE_INDEX).all(-1)
            if mask is not None:
                valid &= mask > 0
            ids = ctc_greedy_decode(predictions, attention_mask=valid, blank_id=pad_id)
            texts = tokenizer.batch_decode(ids, group_tokens=False)
        else:
            texts = tokenizer.batch_decode(np.where(predictions < 0, pad_id, predictions).tolist())
        labels = np.asarray(eval_pred.label_ids)
        references = tokenizer.batch_decode(np.where(labels < 0, pad_id, labels).tolist(), group_tokens=False)
        return {
            name: float(module.compute(predictions=texts, references=references)) for name, module in modules.items()
        }

    return compute_metrics
