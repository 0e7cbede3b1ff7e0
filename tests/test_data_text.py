"""normalize_text: the one transcript normalisation used for training and scoring."""

import re
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hf_supernet.data import normalize_text, number_to_words


@pytest.mark.parametrize(
    "raw, normalised",
    [
        ("NORTHANGER ABBEY", "northanger abbey"),
        ("Hello, World!  It's  fine.", "hello world it's fine"),
        ("\u201cDon\u2019t,\u201d she said\u2014twice.", "don't she said twice"),
        ("'quoted' students' o'er", "quoted students o'er"),
        ("rock-and-roll_music", "rock and roll music"),
        ("call 911 or 0800", "call nine hundred eleven or zero eight zero zero"),
        ("7", "seven"),
        ("1,000,001 people", "one million one people"),
        ("3.14", "three point one four"),
        ("room 42b", "room forty two b"),
        ("Café ÉTÉ", "café été"),
        ("नमस्ते दुनिया", "नमस्ते दुनिया"),
        ("Chapter Ⅻ", "chapter xii"),
        ("  \t\n ", ""),
        ("?!", ""),
    ],
)
def test_normalize_text_examples(raw, normalised):
    assert normalize_text(raw) == normalised


@pytest.mark.parametrize(
    "digits, words",
    [
        ("0", "zero"),
        ("13", "thirteen"),
        ("20", "twenty"),
        ("105", "one hundred five"),
        ("1905", "one thousand nine hundred five"),
        ("2000000", "two million"),
        ("007", "zero zero seven"),
        ("1000000000000", "one zero zero zero zero zero zero zero zero zero zero zero zero"),
    ],
)
def test_number_to_words(digits, words):
    assert number_to_words(digits) == words


@given(st.text(max_size=60))
def test_normalize_text_is_idempotent_and_uses_only_letters_apostrophes_and_single_spaces(text):
    normalised = normalize_text(text)
    assert normalize_text(normalised) == normalised
    assert normalised == normalised.strip() and "  " not in normalised
    assert not re.search(r"\d|_", normalised)
    assert normalised == normalised.lower()
    assert all(char in " '" or unicodedata.category(char)[0] in "LM" for char in normalised)
    for word in normalised.split():
        assert not word.startswith("'") and not word.endswith("'")


def test_normalize_text_rejects_non_strings():
    with pytest.raises(TypeError):
        normalize_text(None)
