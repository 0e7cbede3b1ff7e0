"""Transcript normalisation shared by training (tokenizer, datasets) and scoring (WER/CER).

One function, :func:`normalize_text`, decides what a transcript looks like everywhere in hf_supernet, so a model is
never scored against text written differently from the text it was trained on. The convention:

- **lower case** (FSDD is lower case; LibriSpeech's upper-case transcripts are lowered);
- letters and combining marks of any script are kept; the apostrophe is kept *inside* words (``don't``, ``o'er``)
  and dropped at word edges, where it is a quotation mark; every other character (punctuation, symbols, ``_``,
  numerals that are not decimal digits such as ``Ⅻ`` after NFKC) becomes a space;
- decimal digit strings are spelled out: integers below 10**12 without a leading zero are read as cardinals
  (``"42"`` → ``"forty two"``), anything else digit by digit (``"007"`` → ``"zero zero seven"``); a decimal point
  between digits is read ``"point"`` with the fraction digit by digit (``"3.14"`` → ``"three point one four"``),
  and thousands separators (``"1,000"``) are dropped;
- runs of whitespace collapse to one space, with none at either end.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_text", "number_to_words"]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (10**3, "thousand"))
_MAX_CARDINAL = 10**12

# Curly quotes and primes that people type for an apostrophe; NFKC does not fold them to "'".
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_DECIMAL = re.compile(r"(\d+)\.(\d+)")
_DIGITS = re.compile(r"\d+")
# Unicode categories kept: letters (L*) and combining marks (M*, e.g. Devanagari vowel signs).
_KEPT_CATEGORIES = ("L", "M")


def _below_thousand(number: int) -> list[str]:
    words = []
    hundreds, rest = divmod(number, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def number_to_words(digits: str) -> str:
    """Spell a string of decimal digits in English words, lower case.

    Integers below 10**12 without a leading zero read as cardinals (``"1905"`` → ``"one thousand nine hundred
    five"``); other strings (leading zero, very long) read digit by digit (``"0042"`` → ``"zero zero four two"``).
    """
    if not digits or not digits.isdigit():
        raise ValueError(f"number_to_words expects a non-empty string of digits, got {digits!r}.")
    number = int(digits)
    if (len(digits) > 1 and digits[0] == "0") or number >= _MAX_CARDINAL:
        return " ".join(_ONES[int(digit)] for digit in digits)
    if number == 0:
        return _ONES[0]
    words = []
    for scale, name in _SCALES:
        count, number = divmod(number, scale)
        if count:
            words += _below_thousand(count) + [name]
    if number:
        words += _below_thousand(number)
    return " ".join(words)


def normalize_text(text: str) -> str:
    """Normalise a transcript: lower case, letters + in-word apostrophes only, digits spelled out, single spaces.

    This is the only normalisation hf_supernet applies; :func:`~hf_supernet.data.load_speech_dataset`, the
    tokenizer (``do_normalize=True``) and :func:`~hf_supernet.data.train_tokenizer` all call it, so training text,
    model output and references agree. See the module docstring for the exact rules.

    Example: ``normalize_text("Hello, World! It's 42 o'clock.")`` → ``"hello world it's forty two o'clock"``.
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_text expects a string, got {type(text).__name__}.")
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = _THOUSANDS_SEPARATOR.sub("", text)
    text = _DECIMAL.sub(lambda match: f"{match.group(1)} point {' '.join(match.group(2))}", text)
    # Pad with spaces so "3rd" or "a1" do not glue digits' words onto letters.
    text = _DIGITS.sub(lambda match: f" {number_to_words(match.group())} ", text)
    text = "".join(char if _is_kept(char) else " " for char in text)
    words = (word.strip("'") for word in text.split())
    return " ".join(word for word in words if word)


def _is_kept(char: str) -> bool:
    return char == "'" or unicodedata.category(char)[0] in _KEPT_CATEGORIES
