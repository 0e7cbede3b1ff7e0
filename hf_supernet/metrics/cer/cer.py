"""Character error rate, an `evaluate` metric script shipped with hf_supernet and computed with jiwer.

Loaded from this file by `hf_supernet.metrics.load_metric("cer")`, so it needs no Hub access. The result is a
float, like the Hub's "cer" metric: the corpus-level rate (character edits over reference characters, spaces
included, all utterances pooled).
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
Character error rate (CER): the character-level edit distance between predictions and references divided by the
number of reference characters (spaces count as characters), pooled over the corpus. Texts are compared as given:
normalise both sides the same way first (see `hf_supernet.data.normalize_text`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[str]`): transcripts produced by the system.
    references (`list[str]`): reference transcripts, one per prediction.
    concatenate_texts (`bool`, *optional*, defaults to `False`): score all texts joined (with spaces) into one.
Returns:
    `float`: the CER; 0 is perfect and it can exceed 1 when there are many insertions.
Examples:
    >>> cer = hf_supernet.metrics.load_metric("cer")
    >>> cer.compute(predictions=["abd"], references=["abc"])
    0.3333333333333333
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CER(evaluate.Metric):
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
        return jiwer.process_characters(list(references), list(predictions)).cer
