"""Connected digits built on the fly: reproducible, label-preserving, never mixing recordings across splits."""

import numpy as np
import pytest
from datasets import Dataset

from hf_supernet.data import load_speech_dataset
from hf_supernet.data.connected_digits import ConnectedDigits, ConnectedDigitsConfig, colored_noise


@pytest.fixture(scope="module")
def fsdd():
    return load_speech_dataset("fsdd")


def test_same_seed_same_utterances_other_seed_or_epoch_other_ones(fsdd):
    a, b = ConnectedDigits(fsdd["test"], 20, seed=3), ConnectedDigits(fsdd["test"], 20, seed=3)
    for i in (0, 7, 19):
        np.testing.assert_array_equal(a[i]["audio"]["array"], b[i]["audio"]["array"])
        assert a[i]["text"] == b[i]["text"]
    other = ConnectedDigits(fsdd["test"], 20, seed=4)
    assert any(a[i]["text"] != other[i]["text"] for i in range(20))
    b.set_epoch(1)
    assert any(a[i]["text"] != b[i]["text"] for i in range(20))


def test_utterances_use_only_the_given_recordings_and_keep_their_labels(fsdd):
    train_ids, test_ids = set(fsdd["train"]["id"]), set(fsdd["test"]["id"])
    words = dict(zip(fsdd["test"]["id"], fsdd["test"]["text"]))
    config = ConnectedDigitsConfig(min_digits=2, max_digits=7)
    data = ConnectedDigits(fsdd["test"], 40, config, seed=0)
    counts = set()
    for item in data:
        assert set(item["sources"]) <= test_ids and not set(item["sources"]) & train_ids
        # The transcript is the sources' words in order: silence, noise, gain and speed keep the label.
        assert item["text"] == " ".join(words[s] for s in item["sources"])
        counts.add(len(item["sources"]))
        assert item["audio"]["sampling_rate"] == 16000 and np.isfinite(item["audio"]["array"]).all()
        assert np.abs(item["audio"]["array"]).max() <= 0.99 + 1e-6
    assert min(counts) >= 2 and max(counts) <= 7 and len(counts) > 2


def test_silence_and_speed_change_the_length_as_configured():
    clip = (0.5 * np.sin(np.linspace(0, 400, 8000))).astype(np.float32)  # 0.5 s at 16 kHz
    recordings = Dataset.from_dict({"audio": [{"array": clip, "sampling_rate": 16000}], "text": ["one"]})
    still = dict(snr_db=(30, 30), noise_probability=0.0, gain_db=(0, 0))
    plain = ConnectedDigits(recordings, 1, ConnectedDigitsConfig(
        min_digits=3, max_digits=3, pause_seconds=(0.25, 0.25), edge_silence_seconds=(0.5, 0.5), speed=(1, 1), **still))
    item = plain[0]
    assert item["text"] == "one one one"
    assert item["audio"]["array"].size == 3 * 8000 + 2 * 4000 + 2 * 8000
    # Leading silence is digital silence without noise.
    assert not item["audio"]["array"][:8000].any()
    fast = ConnectedDigits(recordings, 1, ConnectedDigitsConfig(
        min_digits=3, max_digits=3, pause_seconds=(0.25, 0.25), edge_silence_seconds=(0.5, 0.5), speed=(1.1, 1.1),
        **still))
    assert fast[0]["audio"]["array"].size == pytest.approx(item["audio"]["array"].size / 1.1, abs=2)


def test_noise_is_added_at_the_drawn_snr():
    clip = (0.5 * np.sin(np.linspace(0, 400, 16000))).astype(np.float32)
    recordings = Dataset.from_dict({"audio": [{"array": clip, "sampling_rate": 16000}], "text": ["two"]})
    config = ConnectedDigitsConfig(min_digits=1, max_digits=1, edge_silence_seconds=(0, 0), speed=(1, 1),
                                   gain_db=(0, 0), snr_db=(10, 10), noise_probability=1.0)
    noisy = ConnectedDigits(recordings, 1, config)[0]["audio"]["array"]
    noise = noisy - clip
    snr = 10 * np.log10(np.mean(clip**2) / np.mean(noise**2))
    assert snr == pytest.approx(10, abs=0.1)
    for color in ("white", "pink", "brown"):
        assert np.mean(colored_noise(4000, color, np.random.default_rng(0)) ** 2) == pytest.approx(1.0, rel=1e-4)


def test_items_say_what_was_drawn_for_them(fsdd):
    config = ConnectedDigitsConfig(min_digits=1, max_digits=2, snr_db=(5, 15), noise_probability=0.5,
                                   clean_probability=0.3, speed=(0.9, 1.1), gain_db=(-6, 0))
    data = ConnectedDigits(fsdd["test"], 60, config, seed=1)
    items = list(data)
    seen = {"clean": 0, "noise": 0, "quiet": 0}
    for item in items:
        drawn = item["conditions"]
        if drawn["clean"]:
            seen["clean"] += 1
            assert (drawn["snr_db"], drawn["speed"], drawn["gain_db"]) == (None, 1.0, 0.0)
            continue
        assert 0.9 <= drawn["speed"] <= 1.1 and -6 <= drawn["gain_db"] <= 0
        if drawn["snr_db"] is None:
            seen["quiet"] += 1
            assert drawn["noise_color"] is None
        else:
            seen["noise"] += 1
            assert 5 <= drawn["snr_db"] <= 15 and drawn["noise_color"] in ("white", "pink", "brown")
    assert min(seen.values()) > 0
    # Recording the conditions draws nothing: composing the same clips from the same random state without it gives
    # the same audio.
    rng = np.random.default_rng([1, 0, 0])
    picks = rng.integers(0, len(data.arrays), rng.integers(config.min_digits, config.max_digits + 1))
    np.testing.assert_array_equal(data.compose([data.arrays[p] for p in picks], rng), items[0]["audio"]["array"])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="min_digits <= max_digits"):
        ConnectedDigitsConfig(min_digits=3, max_digits=2)
    with pytest.raises(ValueError, match="speed"):
        ConnectedDigitsConfig(speed=(1.2, 0.9))
    sentence = Dataset.from_dict({"audio": [{"array": np.ones(10, np.float32), "sampling_rate": 16000}],
                                  "text": ["one two"], "id": ["clip-7"]})
    with pytest.raises(ValueError, match="'clip-7'.*one word each"):
        ConnectedDigits(sentence, 1)
    with pytest.raises(ValueError, match="missing"):
        ConnectedDigits(Dataset.from_dict({"text": ["one"]}), 1)


def test_noise_colors_restrict_the_drawn_noise(fsdd):
    # With white noise only, the noise in the leading silence has a flat spectrum: its low and high bands carry
    # similar power (pink/brown noise puts almost all of it in the low band).
    config = ConnectedDigitsConfig(min_digits=1, max_digits=1, edge_silence_seconds=(1.0, 1.0), snr_db=(0.0, 0.0),
                                   noise_probability=1.0, noise_colors=("white",), gain_db=(0.0, 0.0), speed=(1.0, 1.0))
    data = ConnectedDigits(fsdd["test"].select(range(4)), 4, config, seed=0)
    for item in data:
        power = np.abs(np.fft.rfft(item["audio"]["array"][:16000])) ** 2
        low, high = power[1:2000].mean(), power[6000:8000].mean()
        assert 0.5 < low / high < 2.0
    with pytest.raises(ValueError, match="noise_colors"):
        ConnectedDigitsConfig(noise_colors=("purple",))
    assert ConnectedDigitsConfig(noise_colors="pink").noise_colors == ("pink",)


def test_the_recipe_names_the_training_sets_it_knows():
    from hf_supernet.training.recipes import load_connected_digits

    with pytest.raises(ValueError, match="train_on must be one of .*isolated_then_connected"):
        load_connected_digits(train_on="both")
    with pytest.raises(ValueError, match="isolated_items >= 1"):
        load_connected_digits(train_on="isolated_then_connected")


def test_curriculum_gives_clean_clips_first_then_strings_and_split_seed_keeps_the_dev_set(fsdd):
    from hf_supernet.training.recipes import load_connected_digits

    data = load_connected_digits("fsdd", seed=1, split_seed=0, smoke=True, train_on="isolated_then_connected",
                                 isolated_items=6)
    clips = {tuple(np.round(np.asarray(a["array"], np.float32)[:64], 6)) for a in fsdd["train"]["audio"]}
    for i in range(6):  # the first stage: one recording each, as it is (no silence, noise, speed or gain)
        item = data.train[i]
        assert len(item["sources"]) == 1 and len(item["text"].split()) == 1
        assert tuple(np.round(item["audio"]["array"][:64], 6)) in clips
    later = [data.train[i] for i in range(6, 30)]
    assert any(len(item["sources"]) > 1 for item in later)  # then connected strings
    same_split = load_connected_digits("fsdd", seed=2, split_seed=0, smoke=True, train_on="connected")
    assert [x["text"] for x in same_split.dev] == [x["text"] for x in data.dev]
    np.testing.assert_array_equal(same_split.dev[0]["audio"]["array"], data.dev[0]["audio"]["array"])
    assert [same_split.train[i]["text"] for i in range(10)] != [data.train[6 + i]["text"] for i in range(10)]


def test_augmented_isolated_clips_are_one_recording_each_half_of_them_as_recorded(fsdd):
    from hf_supernet.training.recipes import ISOLATED_AUGMENTED, load_connected_digits

    data = load_connected_digits("fsdd", seed=0, smoke=True, train_on="isolated_augmented")
    recordings = {np.asarray(a["array"], np.float32).tobytes() for a in fsdd["train"]["audio"]}
    items = [data.train[i] for i in range(40)]
    assert all(len(item["sources"]) == 1 and len(item["text"].split()) == 1 for item in items)
    as_recorded = sum(np.asarray(item["audio"]["array"], np.float32).tobytes() in recordings for item in items)
    assert 10 <= as_recorded <= 30  # clean_probability 0.5: the rest got silence, noise, gain and speed
    assert (ISOLATED_AUGMENTED.min_digits, ISOLATED_AUGMENTED.max_digits) == (1, 1)
    assert ISOLATED_AUGMENTED.clean_probability == 0.5 and ISOLATED_AUGMENTED.noise_probability > 0
    # The search scores on what the model learns: fixed single clips from the held-out recordings.
    assert all(len(x["text"].split()) == 1 for x in data.dev)
    again = load_connected_digits("fsdd", seed=0, smoke=True, train_on="isolated_augmented")  # reproducible
    np.testing.assert_array_equal(again.dev[0]["audio"]["array"], data.dev[0]["audio"]["array"])


def test_short_strings_are_one_to_three_recordings_of_the_train_split(fsdd):
    from hf_supernet.training.recipes import SHORT_STRINGS, load_connected_digits

    data = load_connected_digits("fsdd", seed=0, smoke=True, train_on="short_strings")
    items = [data.train[i] for i in range(40)]
    assert {len(item["sources"]) for item in items} == {1, 2, 3}
    assert all(len(item["text"].split()) == len(item["sources"]) for item in items)
    test_ids = set(fsdd["test"]["id"])
    assert not test_ids & {source for item in items for source in item["sources"]}
    assert (SHORT_STRINGS.min_digits, SHORT_STRINGS.max_digits, SHORT_STRINGS.clean_probability) == (1, 3, 0.5)
    # Dev items are drawn as the training items are, from the held-out recordings, the same on every call.
    assert {len(x["text"].split()) for x in data.dev} <= {1, 2, 3}
    assert not test_ids & {source for item in data.dev for source in item["sources"]}
    again = load_connected_digits("fsdd", seed=0, smoke=True, train_on="short_strings")
    assert [x["text"] for x in again.dev] == [x["text"] for x in data.dev]


def test_word_tokenizer_covers_every_digit_word_even_in_the_smoke_subset():
    from hf_supernet.training.recipes import load_connected_digits

    data = load_connected_digits("fsdd", seed=0, smoke=True, train_on="short_strings", tokenizer_model_type="word")
    # Trained on all train transcripts before the smoke subset: ten words, no <unk> in any label.
    assert len(data.tokenizer) == 12
    labels = data.collator([data.train[i] for i in range(8)] + data.test_connected[:4])["labels"]
    assert data.tokenizer.unk_token_id not in labels.tolist()
    assert data.tokenizer.batch_decode(labels, group_tokens=False)[-1] == data.test_connected[3]["text"]


def test_clean_utterances_are_the_clips_joined_by_pauses_only():
    clips = [np.full(100, 0.1, np.float32), np.full(50, -0.2, np.float32)]
    recordings = Dataset.from_dict({"audio": [{"array": c, "sampling_rate": 16000} for c in clips],
                                    "text": ["one", "two"]})
    config = ConnectedDigitsConfig(min_digits=2, max_digits=2, pause_seconds=(0.01, 0.01), clean_probability=1.0)
    item = ConnectedDigits(recordings, 3, config, seed=0)[0]
    audio = item["audio"]["array"]
    lengths = {"one": 100, "two": 50}  # the two clips are drawn with replacement
    assert audio.size == sum(lengths[w] for w in item["text"].split()) + 160  # one 10 ms pause, nothing around
    assert set(np.unique(audio)) <= {np.float32(0.1), np.float32(-0.2), np.float32(0.0)}
    with pytest.raises(ValueError, match="clean_probability"):
        ConnectedDigitsConfig(clean_probability=1.5)
