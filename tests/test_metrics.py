"""WER/CER metric scripts shipped in the package (offline), greedy CTC decoding, Trainer compute_metrics."""

import evaluate
import numpy as np
import pytest
import torch
from transformers import EvalPrediction

from hf_supernet.data import build_processor, train_tokenizer
from hf_supernet.metrics import (
    ctc_greedy_decode,
    load_metric,
    make_compute_metrics,
    preprocess_logits_for_metrics,
)

DIGITS = "zero one two three four five six seven eight nine".split()


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(DIGITS, model_type="char")


def one_hot_logits(paths, vocab_size, fill=-5.0):
    """Logits whose argmax follows `paths` (list of id lists, padded by repeating the last id)."""
    frames = max(len(path) for path in paths)
    logits = torch.full((len(paths), frames, vocab_size), fill)
    for row, path in enumerate(paths):
        for frame in range(frames):
            logits[row, frame, path[min(frame, len(path) - 1)]] = 5.0
    return logits


# ---------------------------------------------------------------------------------------------------- metrics


def test_wer_and_cer_load_offline_from_the_package():
    for name in ("wer", "cer"):
        metric = load_metric(name)
        assert isinstance(metric, evaluate.EvaluationModule)
        assert metric.name == name


def test_wer_exact_values():
    wer = load_metric("wer")
    # "sat"→"sit" (substitution) and one "the" deleted: 2 errors over 8 reference words, pooled over the corpus.
    assert wer.compute(
        predictions=["the cat sit on mat", "hello world"], references=["the cat sat on the mat", "hello world"]
    ) == pytest.approx(2 / 8)
    assert wer.compute(predictions=["a b c"], references=["a b"]) == pytest.approx(1 / 2)  # insertion
    assert wer.compute(predictions=["one two"], references=["one two"]) == 0.0


def test_cer_exact_values():
    cer = load_metric("cer")
    assert cer.compute(predictions=["abd"], references=["abc"]) == pytest.approx(1 / 3)
    # one deletion ("c") and one insertion ("z") over 6 reference characters
    assert cer.compute(predictions=["abd", "xyz"], references=["abcd", "xy"]) == pytest.approx(2 / 6)
    assert cer.compute(predictions=["ab cd"], references=["abcd"]) == pytest.approx(1 / 4)  # spaces count


def test_unknown_metric_is_an_error():
    with pytest.raises(ValueError, match="wer"):
        load_metric("bleu")


# ---------------------------------------------------------------------------------------------------- decoding


def test_ctc_greedy_decode_merges_repeats_drops_blanks_and_stops_at_the_length(tokenizer):
    a, b = tokenizer.convert_tokens_to_ids(["o", "n"])
    blank = tokenizer.pad_token_id
    logits = one_hot_logits([[a, a, blank, a, b, b, a], [b, blank, b]], tokenizer.vocab_size)
    assert ctc_greedy_decode(logits) == [[a, a, b, a], [b, b]]
    assert ctc_greedy_decode(logits, lengths=torch.tensor([5, 3])) == [[a, a, b], [b, b]]
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0, 0]])
    ids = ctc_greedy_decode(logits.numpy(), attention_mask=mask)
    assert ids == [[a, a, b], [b]]
    assert tokenizer.batch_decode(ids, group_tokens=False) == ["oon", "n"]


def test_compute_metrics_decodes_logits_and_minus_100_labels(tokenizer):
    processor = build_processor(tokenizer)
    compute_metrics = make_compute_metrics(processor)
    ids = {c: tokenizer.convert_tokens_to_ids(c) for c in "onetw▁"}
    blank = tokenizer.pad_token_id
    # predictions decode to "one" (correct) and "on two" (reference "two one": 2 word errors)
    paths = [
        [ids["o"], blank, ids["n"], ids["e"], ids["e"]],
        [ids["o"], ids["n"], ids["▁"], ids["t"], ids["w"], ids["o"]],
    ]
    logits = one_hot_logits(paths, tokenizer.vocab_size).numpy()
    labels = np.array([tokenizer("one")["input_ids"] + [-100] * 4, tokenizer("two one")["input_ids"]])
    result = compute_metrics(EvalPrediction(predictions=logits, label_ids=labels))
    cer = load_metric("cer").compute(predictions=["one", "on two"], references=["one", "two one"])
    assert result == {"wer": pytest.approx(2 / 3), "cer": pytest.approx(cer)}
    assert 0 < cer < 1

    # With the model's output mask after the logits (as Trainer passes model outputs), frames past it are ignored.
    mask = np.ones(logits.shape[:2], dtype=bool)
    mask[1, 2:] = False  # second utterance decodes to "on"
    result = compute_metrics(EvalPrediction(predictions=(logits, mask), label_ids=labels))
    wer = load_metric("wer").compute(predictions=["one", "on"], references=["one", "two one"])
    assert result["wer"] == pytest.approx(wer)


def test_preprocess_logits_for_metrics_keeps_argmax_ids_for_compute_metrics(tokenizer):
    ids = {c: tokenizer.convert_tokens_to_ids(c) for c in "sixz"}
    logits = one_hot_logits([[ids["s"], ids["i"], ids["x"], ids["z"]]], tokenizer.vocab_size)
    mask = torch.tensor([[True, True, True, False]])
    predicted = preprocess_logits_for_metrics((logits, mask), labels=None)
    assert predicted.tolist() == [[ids["s"], ids["i"], ids["x"], -100]]
    labels = np.array([tokenizer("six")["input_ids"]])
    result = make_compute_metrics(tokenizer, metrics=("wer",))(
        EvalPrediction(predictions=predicted.numpy(), label_ids=labels)
    )
    assert result == {"wer": 0.0}
