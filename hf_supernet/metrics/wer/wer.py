"""Word error rate, an `evaluate` metric script shipped with hf_supernet and computed with jiwer.

Loaded from this file by `hf_supernet.metrics.load_metric("wer")`, so it needs no Hub access. The result is a
float, like the Hub's "wer" metric: the corpus-level rate (substitutions + deletions + insertions over the number
of reference words, all utterances pooled), not a mean of per-utterance rates.
"""

import datasets
import evaluate
import jiwer

_CITATION = """\
@inproceedings{morris2004,
  author = {Morris, Andrew and Maier, Viktoria and Green, Phil},
  year = {2004},
  title = {From WER and RIL to MER and WIL: improved evaluation measures for connected speech recognition.},
  booktitle = {Interspeech}
}
"""

_DESCRIPTION = """\
Word error rate (WER): the word-level edit distance between predictions and references divided by the number of
reference words, pooled over the corpus. Texts are compared as given (split on whitespace): normalise both sides the
same way first (hf_supernet's decoded predictions and references already are, see `hf_supernet.data.normalize_text`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): transcripts produced by the system.
    references (`list[str]`): reference transcripts, one per prediction.
    concatenate_texts (`bool`, *optional*, defaults to `False`): score all texts joined (with spaces) into one, as
        the Hub's "wer" option does; the alignment may then cross utterance boundaries.
Returns:
    `float`: the WER; 0 is perfect and it can exceed 1 when there are many insertions.
Examples:
    >>> wer = hf_supernet.metrics.load_metric("wer")
    >>> wer.compute(predictions=["the cat sat"], references=["the cat sat down"])
    0.25
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WER(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
            codebase_urls=["https://github.com/jitsi/jiwer/"],
            reference_urls=["https://en.wikipedia.org/wiki/Word_error_rate"],
        )

    def _compute(self, predictions, references, concatenate_texts=False):
        if concatenate_texts:
            references, predictions = [" ".join(references)], [" ".join(predictions)]
        return jiwer.process_words(list(references), list(predictions)).wer
