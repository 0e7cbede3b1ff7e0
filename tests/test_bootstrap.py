import numpy as np
import pytest

from hf_supernet.metrics.bootstrap import paired_bootstrap_ratio, utterance_errors


def test_known_interval_of_a_two_utterance_example():
    # Resampling 2 utterances: {0,0} -> 4/2 = 2 (p = 1/4), {1,1} -> 2/2 = 1 (1/4), one of each -> 3/2 (1/2):
    # the 2.5th and 97.5th percentiles are 1 and 2; the ratio on the data is 3/2.
    result = paired_bootstrap_ratio([2, 1], [1, 1], num_samples=4000)
    assert result == {"ratio": 1.5, "low": 1.0, "high": 2.0}


def test_identical_and_proportional_systems_have_a_degenerate_interval():
    b = np.array([0, 3, 1, 2])
    assert paired_bootstrap_ratio(b, b) == {"ratio": 1.0, "low": 1.0, "high": 1.0}
    doubled = paired_bootstrap_ratio(2 * b, b)
    assert doubled["ratio"] == doubled["low"] == doubled["high"] == 2.0
    # With two seeds that disagree, the same system compared with itself has ratio 1 inside a non-degenerate interval
    # (seeds are drawn separately for each side).
    seeds = np.array([[0, 3, 1, 2], [1, 2, 1, 2]])
    itself = paired_bootstrap_ratio(seeds, seeds)
    assert itself["ratio"] == 1.0 and itself["low"] < 1.0 < itself["high"]


def test_seed_spread_widens_the_interval():
    rng = np.random.default_rng(0)
    b = rng.integers(0, 3, size=(1, 200))
    one_seed = paired_bootstrap_ratio(b, b)
    # Two seeds of A that disagree (one with 20% fewer errors, one with 20% more): the same mean, a wider interval.
    a = np.concatenate([np.floor(b * 0.8), np.ceil(b * 1.2)])
    spread = paired_bootstrap_ratio(a, b)
    assert spread["high"] - spread["low"] > one_seed["high"] - one_seed["low"]
    with pytest.raises(ValueError, match="different utterance counts"):
        paired_bootstrap_ratio([1, 2], [1, 2, 3])


def test_utterance_errors_count_edits():
    errors = utterance_errors(["one two", "", "three four"], ["one three", "five", "three"])
    assert errors["word_errors"] == [1, 1, 1] and errors["words"] == [2, 1, 1]
    assert errors["chars"] == [9, 4, 5] and errors["char_errors"][1] == 4
