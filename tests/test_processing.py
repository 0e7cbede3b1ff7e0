"""Feature extractor, CTC tokenizer, processor: outputs, CTC decoding, bad input, save/load through the Auto classes."""

import json
import logging
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer

from hf_supernet.data import (
    SupernetCTCTokenizer,
    SupernetFeatureExtractor,
    SupernetSpeechProcessor,
    build_processor,
    bundled_data_path,
    train_tokenizer,
)

DIGITS = "zero one two three four five six seven eight nine".split()
REPO = Path(__file__).resolve().parent.parent


def noise(seconds, seed=0, rate=16000):
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))).astype(np.float32)


@pytest.fixture(scope="module")
def char_tokenizer():
    return train_tokenizer(DIGITS * 3 + ["one two three", "nine eight"], model_type="char")


@pytest.fixture(scope="module")
def feature_extractor():
    return SupernetFeatureExtractor()


# ---------------------------------------------------------------------------------------------------- features


def test_features_are_80_bin_log_mel_at_100_frames_per_second(feature_extractor):
    features = feature_extractor(noise(1.0), sampling_rate=16000, return_tensors="pt")
    assert features["input_features"].shape[0] == 1 and features["input_features"].shape[2] == 80
    assert features["attention_mask"].dtype == torch.long
    assert int(features["attention_mask"].sum()) == 100


def test_no_frame_is_padding_in_every_utterance(feature_extractor):
    # Parakeet's centred STFT yields one frame more than the valid ones; a decoder that ignores the attention mask
    # (the unchunked ASR pipeline) would decode it, so the batch ends with its longest utterance's last valid frame.
    features = feature_extractor([noise(1.0), noise(0.55, seed=1)], sampling_rate=16000, return_tensors="pt")
    assert features["input_features"].shape[1] == 100
    assert features["attention_mask"].sum(dim=1).tolist() == [100, 55]
    padded = feature_extractor(noise(1.0), sampling_rate=16000, padding="max_length", max_length=32000)
    assert padded["input_features"].shape[1] > 100  # an explicit length is kept


def test_features_are_normalised_per_utterance(feature_extractor):
    loud = noise(0.8, seed=1) * 50
    features = feature_extractor([loud, noise(0.5, seed=2)], sampling_rate=16000, return_tensors="pt")
    for row, mask in zip(features["input_features"], features["attention_mask"]):
        valid = row[mask.bool()]
        torch.testing.assert_close(valid.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
        torch.testing.assert_close(valid.std(0), torch.ones(80), atol=1e-3, rtol=0)


def test_padding_is_zero_and_does_not_change_valid_frames(feature_extractor):
    short, long = noise(0.37, seed=3), noise(1.21, seed=4)
    alone = feature_extractor(short, sampling_rate=16000, return_tensors="pt")
    batch = feature_extractor([short, long], sampling_rate=16000, return_tensors="pt")
    frames = int(alone["attention_mask"].sum())
    assert int(batch["attention_mask"][0].sum()) == frames
    torch.testing.assert_close(batch["input_features"][0, :frames], alone["input_features"][0, :frames],
                               atol=1e-5, rtol=0)
    assert torch.all(batch["input_features"][0, frames:] == 0)
    assert torch.all(batch["attention_mask"][0, frames:] == 0)


def test_wrong_sampling_rate_says_how_to_resample(feature_extractor):
    with pytest.raises(ValueError, match=r"16000 Hz.*8000.*soxr\.resample.*load_speech_dataset"):
        feature_extractor(noise(0.5, rate=8000), sampling_rate=8000)


@pytest.mark.parametrize(
    "audio, message",
    [
        (np.zeros(0, np.float32), "empty"),
        (np.ones(200, np.float32), "at least 320"),
        (np.array([0.1] * 999 + [np.nan], np.float32), "NaN or Inf"),
        (np.array([0.1] * 999 + [np.inf], np.float32), "NaN or Inf"),
    ],
)
def test_unusable_audio_is_an_error_not_nan_features(feature_extractor, audio, message):
    with pytest.raises(ValueError, match=message):
        feature_extractor([noise(0.5), audio], sampling_rate=16000)


def test_multichannel_audio_is_downmixed(feature_extractor):
    left, right = noise(0.6, seed=5), noise(0.6, seed=6)
    mono = feature_extractor((left + right) / 2, sampling_rate=16000, return_tensors="pt")["input_features"]
    frames_first = np.stack([left, right], axis=1)  # soundfile layout
    for stereo in (frames_first, [frames_first], [frames_first.T]):
        features = feature_extractor(stereo, sampling_rate=16000, return_tensors="pt")["input_features"]
        torch.testing.assert_close(features, mono, atol=1e-5, rtol=0)


def test_a_2d_array_of_equal_length_clips_is_still_a_batch(feature_extractor):
    clips = np.stack([noise(0.5, seed=7), noise(0.5, seed=8)])
    assert feature_extractor(clips, sampling_rate=16000, return_tensors="pt")["input_features"].shape[0] == 2


# ---------------------------------------------------------------------------------------------------- tokenizer


def test_blank_is_pad_at_id_zero_and_unk_exists(char_tokenizer):
    assert char_tokenizer.pad_token == "<pad>" and char_tokenizer.pad_token_id == 0
    assert char_tokenizer.unk_token == "<unk>" and char_tokenizer.unk_token_id == 1
    assert char_tokenizer.bos_token is None and char_tokenizer.eos_token is None
    assert len(char_tokenizer) == char_tokenizer.vocab_size
    # char model: one piece per character, words separated by "▁", no leading "▁"
    assert char_tokenizer.convert_ids_to_tokens(char_tokenizer("one two")["input_ids"]) == list("one▁two")


def test_ctc_decoding_merges_repeats_and_drops_blanks(char_tokenizer):
    a, b, n = (char_tokenizer.convert_tokens_to_ids(c) for c in "one")
    blank = char_tokenizer.pad_token_id
    assert char_tokenizer.decode([a, a, blank, a, b]) == "oon"
    assert char_tokenizer.decode([a, a, blank, a, b], group_tokens=False) == "ooon"
    assert char_tokenizer.decode([blank, blank]) == ""
    space = char_tokenizer.convert_tokens_to_ids("▁")
    assert char_tokenizer.batch_decode([[a, n, n, b, space, space, a], [a, -100, -100]]) == ["oen o", "o"]
    assert char_tokenizer.decode(torch.tensor([a, b, n, blank])) == "one"


def test_round_trip_through_encode_and_ctc_decode(char_tokenizer):
    text = "three one nine seven"
    ids = char_tokenizer(text)["input_ids"]
    assert char_tokenizer.decode(ids, group_tokens=False) == text
    # "three" has a double "e": merging repeats without a blank between them loses one
    assert char_tokenizer.decode(ids) == "thre one nine seven"


def test_tokenizer_normalises_text(char_tokenizer):
    assert char_tokenizer("  One, TWO!")["input_ids"] == char_tokenizer("one two")["input_ids"]
    assert char_tokenizer("One", do_normalize=False)["input_ids"] != char_tokenizer("one")["input_ids"]


def test_word_separator_is_in_the_vocabulary_even_without_multiword_training_text():
    tokenizer = train_tokenizer(DIGITS, model_type="char")
    ids = tokenizer("two one")["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, group_tokens=False) == "two one"


def test_unknown_characters_become_unk_with_a_warning(caplog):
    tokenizer = train_tokenizer(DIGITS, model_type="char")
    with caplog.at_level(logging.WARNING):
        ids = tokenizer("a one bb")["input_ids"]
    # SentencePiece encodes each run of unknown characters as one <unk>
    assert tokenizer.convert_ids_to_tokens(ids) == ["<unk>", "▁", "o", "n", "e", "▁", "<unk>"]
    assert "['a', 'b']" in caplog.text and "<unk>" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        tokenizer("bab")
    assert caplog.text == ""  # warned once per character


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_subword_tokenizers_respect_the_vocabulary_bound(model_type):
    texts = [row["text"] for row in map(json.loads, (bundled_data_path("mini_librispeech") / "train.jsonl")
                                         .read_text().splitlines())]
    tokenizer = train_tokenizer(texts, vocab_size=60, model_type=model_type)
    assert 30 <= len(tokenizer) <= 60
    assert tokenizer.convert_ids_to_tokens([0, 1]) == ["<pad>", "<unk>"]
    ids = tokenizer(texts[0])["input_ids"]
    assert 0 not in ids and tokenizer.decode(ids, group_tokens=False) == texts[0].lower()


def test_word_tokenizer_has_one_piece_per_word_and_ctc_decodes_repeated_words(tmp_path):
    tokenizer = train_tokenizer(DIGITS, model_type="word")
    assert len(tokenizer) == len(DIGITS) + 2  # <pad>, <unk> and the ten words
    ids = tokenizer("one one seven")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["▁one", "▁one", "▁seven"]
    # CTC: a repeated word needs a blank between its two frames, as a repeated letter does
    assert tokenizer.decode(ids) == "one seven"
    assert tokenizer.decode([ids[0], tokenizer.pad_token_id, ids[1], ids[2]]) == "one one seven"
    assert tokenizer.convert_ids_to_tokens(tokenizer("one eleven")["input_ids"]) == ["▁one", "<unk>"]
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)("nine two")["input_ids"] == tokenizer("nine two")["input_ids"]


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="model_type"):
        train_tokenizer(DIGITS, model_type="wordpiece")
    with pytest.raises(ValueError, match="no non-empty transcripts"):
        train_tokenizer(["", "?!"])


def test_tokenizer_saves_and_loads_through_auto_tokenizer(char_tokenizer, tmp_path):
    char_tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(loaded, SupernetCTCTokenizer)
    assert loaded.get_vocab() == char_tokenizer.get_vocab()
    ids = loaded("nine eight two")["input_ids"]
    assert ids == char_tokenizer("nine eight two")["input_ids"]
    assert loaded.decode(ids, group_tokens=False) == "nine eight two"


def test_train_tokenizer_writes_output_dir(tmp_path):
    tokenizer = train_tokenizer(DIGITS, model_type="char", output_dir=tmp_path / "tok")
    assert (tmp_path / "tok" / "tokenizer.model").is_file()
    assert AutoTokenizer.from_pretrained(tmp_path / "tok").get_vocab() == tokenizer.get_vocab()


# ---------------------------------------------------------------------------------------------------- processor


def test_processor_returns_features_and_minus_100_padded_labels(char_tokenizer):
    processor = build_processor(char_tokenizer)
    assert isinstance(processor.feature_extractor, SupernetFeatureExtractor)
    assert processor.feature_extractor.feature_size == 80
    out = processor(audio=[noise(0.5), noise(0.3)], text=["one two", "six"], sampling_rate=16000)
    assert set(out) == {"input_features", "attention_mask", "labels"}
    assert out["labels"][1].tolist() == char_tokenizer("six")["input_ids"] + [-100] * 4
    assert processor.batch_decode(out["labels"], group_tokens=False) == ["one two", "six"]
    with pytest.raises(ValueError, match="16000 Hz"):
        processor(audio=noise(0.5), sampling_rate=22050)


def test_processor_round_trips_through_auto_processor(char_tokenizer, tmp_path):
    processor = build_processor(char_tokenizer, feature_size=40)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, SupernetSpeechProcessor)
    assert isinstance(loaded.tokenizer, SupernetCTCTokenizer)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path), SupernetFeatureExtractor)
    assert loaded.feature_extractor.to_dict() == processor.feature_extractor.to_dict()
    audio, text = [noise(0.4, seed=9), noise(0.7, seed=10)], ["five four", "zero"]
    ours = processor(audio=audio, text=text, sampling_rate=16000)
    theirs = loaded(audio=audio, text=text, sampling_rate=16000)
    assert theirs["input_features"].shape[-1] == 40
    for key in ours:
        torch.testing.assert_close(theirs[key], ours[key])


def test_train_tokenizer_script_saves_a_processor(tmp_path, monkeypatch):
    script = runpy.run_path(str(REPO / "scripts" / "train_tokenizer.py"))
    script["main"](["--dataset", "fsdd", "--model_type", "char", "--output_dir", str(tmp_path / "proc")])
    processor = AutoProcessor.from_pretrained(tmp_path / "proc")
    assert processor.batch_decode(processor(text=["seven", "zero"])["input_ids"], group_tokens=False) == [
        "seven",
        "zero",
    ]
    assert set("".join(DIGITS)) <= set(processor.tokenizer.get_vocab())
