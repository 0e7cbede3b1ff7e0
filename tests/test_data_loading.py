"""load_speech_dataset: bundled corpora, one code path for every source, resampling, and every kind of bad input."""

import json
import logging
import math

import numpy as np
import pytest
import soundfile
from datasets import Audio, Dataset, DatasetDict

from hf_supernet.data import BUNDLED_CORPORA, bundled_data_path, load_audio, load_speech_dataset

DIGIT_WORDS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}


def read_manifest(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_corpus(folder, rows, split="train"):
    """A manifest folder: rows are (id, samples or None, sampling_rate, text[, subtype]); None = no audio file."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for row in rows:
        utterance_id, samples, rate, text = row[:4]
        file = f"{utterance_id}.wav"
        if samples is not None:
            soundfile.write(folder / file, samples, rate, subtype=row[4] if len(row) > 4 else "PCM_16")
        lines.append(json.dumps({"id": utterance_id, "speaker": "s1", "file": file, "text": text}))
    (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def tone(seconds, rate, frequency=440.0):
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


@pytest.fixture
def cache_dir(tmp_path):
    return str(tmp_path / "hf_cache")


# ---------------------------------------------------------------------------------------------------- bundled data


def test_bundled_corpora_are_complete_and_small():
    total_disk = 0
    for corpus in BUNDLED_CORPORA:
        folder = bundled_data_path(corpus)
        for manifest in folder.glob("*.jsonl"):
            rows = read_manifest(manifest)
            assert rows, manifest
            for row in rows:
                assert set(row) == {"id", "speaker", "file", "text"}
                assert (folder / row["file"]).is_file(), row
    fsdd = bundled_data_path("fsdd")
    train, test = read_manifest(fsdd / "train.jsonl"), read_manifest(fsdd / "test.jsonl")
    assert len(test) == 300 and len(train) >= 1500
    # The dataset's own split: recording index 0-4 is test, 5-49 train.
    assert all(int(row["id"].rsplit("_", 1)[1]) < 5 for row in test)
    assert all(int(row["id"].rsplit("_", 1)[1]) >= 5 for row in train)
    assert {row["text"] for row in train} == DIGIT_WORDS
    libri = sum(len(read_manifest(path)) for path in bundled_data_path("mini_librispeech").glob("*.jsonl"))
    assert 25 <= libri <= 35
    root = fsdd.parent
    for path in root.rglob("*"):
        total_disk += math.ceil(path.stat().st_size / 4096) * 4096 if path.is_file() else 4096
    assert total_disk <= 15e6, f"bundled data takes {total_disk / 1e6:.1f} MB on disk"
    readme = (root / "README.md").read_text()
    for fact in ("CC BY-SA 4.0", "CC BY 4.0", "Jackson", "Panayotov", "LibriVox"):
        assert fact in readme


def test_unknown_bundled_corpus_is_an_error():
    with pytest.raises(ValueError, match="fsdd"):
        bundled_data_path("timit")


# ---------------------------------------------------------------------------------------------------- loading


def test_bundled_fsdd_test_split_loads_as_16khz_mono(cache_dir):
    dataset = load_speech_dataset("fsdd", "test", cache_dir=cache_dir)
    assert isinstance(dataset, Dataset) and len(dataset) == 300
    assert set(dataset.column_names) == {"id", "speaker", "text", "audio", "duration"}
    example = dataset[0]
    assert example["audio"]["sampling_rate"] == 16000
    assert example["duration"] == pytest.approx(len(example["audio"]["array"]) / 16000)
    assert set(dataset["text"]) == DIGIT_WORDS
    array = dataset.with_format("numpy")[0]["audio"]["array"]
    assert array.dtype == np.float32 and array.ndim == 1


def test_all_splits_load_as_dataset_dict_with_normalised_text(cache_dir):
    dataset = load_speech_dataset("mini_librispeech", cache_dir=cache_dir)
    assert isinstance(dataset, DatasetDict) and set(dataset) == {"train", "dev", "test"}
    raw = read_manifest(bundled_data_path("mini_librispeech") / "dev.jsonl")
    assert dataset["dev"]["text"] == [row["text"].lower() for row in raw]


def test_decoding_is_cached(cache_dir, monkeypatch):
    first = load_speech_dataset("mini_librispeech", "dev", cache_dir=cache_dir)

    def no_decoding(*args, **kwargs):
        raise AssertionError("audio decoded again instead of read from the datasets cache")

    monkeypatch.setattr(soundfile, "read", no_decoding)
    second = load_speech_dataset("mini_librispeech", "dev", cache_dir=cache_dir)
    assert second["audio"] == first["audio"]


def test_manifest_and_in_memory_dataset_take_the_same_path(cache_dir):
    folder = bundled_data_path("fsdd")
    rows = read_manifest(folder / "test.jsonl")[:6]
    from_manifest = load_speech_dataset("fsdd", "test", cache_dir=cache_dir).select(range(6))
    in_memory = Dataset.from_dict(
        {
            "path": [str(folder / row["file"]) for row in rows],
            "sentence": [row["text"].upper() + "!" for row in rows],
            "id": [row["id"] for row in rows],
            "extra": [0] * len(rows),
        }
    )
    loaded = load_speech_dataset(in_memory, audio_column="path", text_column="sentence")
    assert set(loaded.column_names) == {"id", "text", "audio", "duration"}
    assert loaded["text"] == from_manifest["text"]
    assert loaded["id"] == from_manifest["id"]
    for ours, theirs in zip(loaded["audio"], from_manifest["audio"]):
        np.testing.assert_array_equal(ours["array"], theirs["array"])

    splits = load_speech_dataset(DatasetDict({"a": in_memory, "b": in_memory}), "b", audio_column="path",
                                 text_column="sentence")
    assert isinstance(splits, Dataset) and splits["text"] == loaded["text"]


def test_audio_features_and_embedded_bytes_are_decoded_with_soundfile(cache_dir):
    """Hub-style columns: an `Audio()` feature (datasets would need torchcodec to decode it) or embedded bytes."""
    folder = bundled_data_path("fsdd")
    rows = read_manifest(folder / "test.jsonl")[:3]
    reference = load_speech_dataset("fsdd", "test", cache_dir=cache_dir).select(range(3))
    paths = [str(folder / row["file"]) for row in rows]
    as_audio_feature = Dataset.from_dict({"audio": paths, "text": [r["text"] for r in rows]}).cast_column(
        "audio", Audio(sampling_rate=16000)
    )
    embedded = Dataset.from_dict(
        {"audio": [{"bytes": open(path, "rb").read(), "path": None} for path in paths],
         "text": [r["text"] for r in rows]}
    ).cast_column("audio", Audio(decode=False))
    for source in (as_audio_feature, embedded):
        loaded = load_speech_dataset(source)
        for ours, theirs in zip(loaded["audio"], reference["audio"]):
            np.testing.assert_array_equal(ours["array"], theirs["array"])


def test_decoded_arrays_and_num_proc_give_the_same_result(tmp_path, cache_dir):
    rows = [(f"u{i}", tone(0.3 + 0.1 * i, 8000), 8000, f"utterance {i}") for i in range(4)]
    folder = write_corpus(tmp_path / "corpus", rows)
    serial = load_speech_dataset(folder, "train", cache_dir=cache_dir)
    parallel = load_speech_dataset(folder, "train", cache_dir=cache_dir, num_proc=2, load_from_cache_file=False)
    assert parallel["text"] == serial["text"] == ["utterance zero", "utterance one", "utterance two", "utterance three"]
    assert parallel["audio"] == serial["audio"]
    arrays = Dataset.from_dict({"audio": [{"array": r[1], "sampling_rate": 8000} for r in rows], "text": ["x"] * 4})
    from_arrays = load_speech_dataset(arrays)
    for ours, theirs in zip(from_arrays["audio"], serial["audio"]):
        np.testing.assert_allclose(ours["array"], theirs["array"], atol=1e-4)


# ---------------------------------------------------------------------------------------------------- audio handling


def test_8khz_is_resampled_to_16khz_keeping_duration_and_pitch(tmp_path, cache_dir):
    folder = write_corpus(tmp_path / "corpus", [("tone", tone(0.5, 8000, 440.0), 8000, "a")])
    audio = load_speech_dataset(folder, "train", cache_dir=cache_dir).with_format("numpy")[0]["audio"]
    array = audio["array"]
    assert audio["sampling_rate"] == 16000
    assert abs(len(array) - 8000) <= 1  # 0.5 s at 16 kHz
    spectrum = np.abs(np.fft.rfft(array))
    assert np.fft.rfftfreq(len(array), 1 / 16000)[spectrum.argmax()] == pytest.approx(440.0, abs=4.0)


def test_real_fsdd_recording_keeps_its_duration():
    row = read_manifest(bundled_data_path("fsdd") / "test.jsonl")[0]
    path = bundled_data_path("fsdd") / row["file"]
    frames_8k = soundfile.info(path).frames
    assert abs(len(load_audio(path, 16000)) - 2 * frames_8k) <= 1
    assert len(load_audio(path, 8000)) == frames_8k


def test_stereo_is_downmixed_by_averaging_channels(tmp_path, cache_dir):
    left = tone(0.25, 16000, 300.0)
    right = tone(0.25, 16000, 700.0)
    folder = write_corpus(tmp_path / "corpus", [("stereo", np.stack([left, right], axis=1), 16000, "a")])
    array = load_speech_dataset(folder, "train", cache_dir=cache_dir).with_format("numpy")[0]["audio"]["array"]
    np.testing.assert_allclose(array, (left + right) / 2, atol=1e-4)  # 16-bit PCM rounding
    np.testing.assert_allclose(load_audio({"array": np.stack([left, right]), "sampling_rate": 16000}),
                               (left + right) / 2, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- bad input


def test_missing_audio_file_names_the_file(tmp_path, cache_dir):
    folder = write_corpus(tmp_path / "corpus", [("ok", tone(0.2, 16000), 16000, "a"), ("gone", None, 16000, "b")])
    with pytest.raises(FileNotFoundError, match=r"gone\.wav"):
        load_speech_dataset(folder, "train", cache_dir=cache_dir)


def test_unreadable_audio_file_names_the_file(tmp_path, cache_dir):
    folder = write_corpus(tmp_path / "corpus", [("garbage", None, 16000, "a")])
    (folder / "garbage.wav").write_bytes(b"this is not audio" * 10)
    with pytest.raises(ValueError, match=r"garbage\.wav.*Could not decode|Could not decode.*garbage\.wav"):
        load_speech_dataset(folder, "train", cache_dir=cache_dir)


def test_zero_length_audio_is_an_error(tmp_path, cache_dir):
    folder = write_corpus(tmp_path / "corpus", [("empty", np.zeros(0, np.float32), 16000, "a")])
    with pytest.raises(ValueError, match=r"empty\.wav.*no samples"):
        load_speech_dataset(folder, "train", cache_dir=cache_dir)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_nan_or_inf_samples_are_an_error(tmp_path, cache_dir, bad_value):
    samples = tone(0.2, 16000)
    samples[100] = bad_value
    folder = write_corpus(tmp_path / "corpus", [("broken", samples, 16000, "a", "FLOAT")])
    with pytest.raises(ValueError, match=r"broken\.wav.*NaN or Inf"):
        load_speech_dataset(folder, "train", cache_dir=cache_dir)
    with pytest.raises(ValueError, match="NaN or Inf"):
        load_audio({"array": samples, "sampling_rate": 16000})


def test_empty_transcripts_are_filtered_with_a_logged_count(tmp_path, cache_dir, caplog):
    rows = [("a", tone(0.2, 16000), 16000, "one"), ("b", tone(0.2, 16000), 16000, ""),
            ("c", tone(0.2, 16000), 16000, " ?! "), ("d", tone(0.2, 16000), 16000, "Two.")]
    folder = write_corpus(tmp_path / "corpus", rows)
    with caplog.at_level(logging.WARNING):
        dataset = load_speech_dataset(folder, "train", cache_dir=cache_dir)
    assert dataset["id"] == ["a", "d"] and dataset["text"] == ["one", "two"]
    assert "Filtered out 2 of 4 utterances: empty transcript" in caplog.text


def test_utterances_over_max_duration_are_filtered_with_a_logged_count(tmp_path, cache_dir, caplog):
    rows = [(f"u{i}", tone(seconds, 8000), 8000, "a") for i, seconds in enumerate([0.2, 1.5, 0.9, 2.0])]
    folder = write_corpus(tmp_path / "corpus", rows)
    with caplog.at_level(logging.WARNING):
        dataset = load_speech_dataset(folder, "train", max_duration=1.0, cache_dir=cache_dir)
    assert dataset["id"] == ["u0", "u2"]
    assert "Filtered out 2 of 4 utterances: longer than max_duration=1.0 s" in caplog.text


def test_missing_column_or_split_says_what_exists(cache_dir):
    dataset = Dataset.from_dict({"audio": ["x.wav"], "sentence": ["a"]})
    with pytest.raises(ValueError, match=r"'text' not found.*sentence.*text_column"):
        load_speech_dataset(dataset)
    with pytest.raises(ValueError, match=r"No dev\.jsonl.*test.*train"):
        load_speech_dataset("fsdd", "dev", cache_dir=cache_dir)
