"""Scoring subnets on speech: CTC loss (the cheap search proxy) and WER/CER, without extracting anything.

Each subnet runs as a masked supernet (``model.use_subnet``); batches are collated once and reused for every
subnet, since collation (feature padding, label padding) is the same whatever subnet runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from ..metrics import ctc_greedy_decode, load_metric
from ..metrics.bootstrap import utterance_errors
from ..subnets import SubnetSpec


def collate_batches(dataset, data_collator, batch_size: int = 32, max_examples: int | None = None) -> list[dict]:
    """``dataset`` (or its first ``max_examples`` rows) as a list of collated batches, in order."""
    n = len(dataset) if max_examples is None else min(max_examples, len(dataset))
    if hasattr(data_collator, "eval"):
        data_collator = data_collator.eval()  # never SpecAugment what we score
    return [data_collator([dataset[j] for j in range(i, min(i + batch_size, n))]) for i in range(0, n, batch_size)]


@torch.no_grad()
def evaluate_subnet(
    model, spec: SubnetSpec | None, batches: Sequence[dict], tokenizer=None, per_utterance: bool = False
) -> dict:
    """Mean CTC ``loss`` of ``spec`` over ``batches`` (weighted by utterances; ``spec=None``: the whole model, which may
    be a plain model such as an extracted subnet) and, given the ``tokenizer``, the
    ``wer``/``cer`` of its greedy CTC transcripts against the labels — all from one forward pass per batch.

    With ``per_utterance`` (and a ``tokenizer``) the scores also hold the ``hypotheses`` and ``references`` in
    order, and ``ctc_loss_per_frame``: the summed CTC loss over the summed output frames (a loss that does not
    favour utterances with short transcripts)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count, hypotheses, references = 0.0, 0, [], []
    frame_loss, frames = 0.0, 0
    try:
        with _running_as(model, spec):
            for batch in batches:
                batch = {k: v.to(device) for k, v in batch.items()}
                out = model(**batch)
                size = batch[model.main_input_name].shape[0]
                total, count = total + float(out.loss) * size, count + size
                if tokenizer is not None:
                    pad = tokenizer.pad_token_id
                    valid = _output_frame_mask(model, out, batch)
                    if per_utterance:
                        lengths = valid.sum(-1)
                        frame_loss += float(_ctc_loss_sum(out.logits, lengths, batch["labels"], pad))
                        frames += int(lengths.sum())
                    ids = ctc_greedy_decode(out.logits, attention_mask=valid, blank_id=pad)
                    hypotheses += tokenizer.batch_decode(ids, group_tokens=False)
                    labels = batch["labels"].masked_fill(batch["labels"] < 0, pad)
                    references += tokenizer.batch_decode(labels.tolist(), group_tokens=False)
    finally:
        model.train(was_training)
    scores = {"loss": total / max(count, 1)}
    if tokenizer is not None:
        scores.update(error_rates(hypotheses, references))
        if per_utterance:
            scores.update(hypotheses=hypotheses, references=references, ctc_loss_per_frame=frame_loss / max(frames, 1))
    return scores


def score_utterances(model, spec: SubnetSpec | None, batches: Sequence[dict], tokenizer) -> dict:
    """:func:`evaluate_subnet` per utterance, in the form paired comparisons need: ``word_errors`` and
    ``char_errors`` of each utterance (:func:`~hf_supernet.metrics.bootstrap.utterance_errors`), the ``wer`` and
    ``cer`` they add up to, ``ctc_loss_per_frame``, and the ``hypotheses`` and ``references`` in order."""
    scores = evaluate_subnet(model, spec, batches, tokenizer, per_utterance=True)
    errors = utterance_errors(scores["hypotheses"], scores["references"])
    return {
        "wer": sum(errors["word_errors"]) / sum(errors["words"]),
        "cer": sum(errors["char_errors"]) / sum(errors["chars"]),
        "ctc_loss_per_frame": scores["ctc_loss_per_frame"],
        "word_errors": errors["word_errors"],
        "char_errors": errors["char_errors"],
        "hypotheses": scores["hypotheses"],
        "references": scores["references"],
    }


def _output_frame_mask(model, out, batch: dict) -> torch.Tensor:
    """Which output frames are real: our models say so (``output_attention_mask``); for a stock transformers model
    (e.g. an extracted ``ParakeetForCTC``) the input mask's lengths go through the model's own subsampling arithmetic."""
    mask = getattr(out, "output_attention_mask", None)
    if mask is not None:
        return mask.bool()
    frames = out.logits.shape[1]
    if batch.get("attention_mask") is None:
        return torch.ones(out.logits.shape[:2], dtype=torch.bool, device=out.logits.device)
    lengths = batch["attention_mask"].sum(-1)
    for name in ("_get_subsampling_output_length", "_get_feat_extract_output_lengths"):
        if hasattr(model, name):
            lengths = getattr(model, name)(lengths)
            break
    else:
        raise TypeError(f"{type(model).__name__} reports no output frame mask and no length function; cannot tell its "
                        "padded output frames from real ones.")
    return torch.arange(frames, device=out.logits.device)[None, :] < lengths.to(out.logits.device)[:, None]


def _running_as(model, spec: SubnetSpec | None):
    """``model.use_subnet(spec)``; a plain model (e.g. an extracted subnet, which has no subnets) runs as itself."""
    if hasattr(model, "use_subnet"):
        return model.use_subnet(spec)
    if spec is not None:
        raise TypeError(f"A {type(model).__name__} has no subnets to run as {spec!r}; pass spec=None to score it whole.")
    return contextlib.nullcontext()


def _ctc_loss_sum(logits: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, blank: int) -> torch.Tensor:
    """Summed (not length-normalised) CTC loss of a batch; labels padded with -100."""
    log_probs = logits.float().log_softmax(-1).transpose(0, 1)
    losses = torch.nn.functional.ctc_loss(
        log_probs, labels.clamp(min=0), lengths, (labels >= 0).sum(-1), blank=blank, reduction="none",
        zero_infinity=True,
    )
    return losses.sum()


def error_rates(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """WER and CER (offline `evaluate` modules shipped with hf_supernet)."""
    return {
        name: float(load_metric(name).compute(predictions=hypotheses, references=references)) for name in ("wer", "cer")
    }
