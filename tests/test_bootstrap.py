import numpy as np
import pytest

from hf_supernet.metrics.bootstrap import bootstrap_error_rate, goal_verdict, paired_bootstrap_ratio, utterance_errors


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


def test_same_seeds_cancel_what_a_seed_does_to_both_systems():
    rng = np.random.default_rng(1)
    base = rng.integers(1, 4, size=200)
    # Seed 1 doubles every error of both systems (a bad draw of data or initial weights); A has 10% more errors
    # than B on every utterance of every seed.
    b = 10 * np.stack([base, 2 * base])
    a = 11 * np.stack([base, 2 * base])
    paired, unpaired = paired_bootstrap_ratio(a, b, same_seeds=True), paired_bootstrap_ratio(a, b)
    assert paired["ratio"] == unpaired["ratio"] == pytest.approx(1.1)
    assert paired["low"] == pytest.approx(1.1) and paired["high"] == pytest.approx(1.1)
    assert unpaired["low"] < 1.0 < unpaired["high"]  # drawn apart, the seeds' spread hides the difference
    with pytest.raises(ValueError, match="one row per seed on both sides"):
        paired_bootstrap_ratio(a, b[:1], same_seeds=True)


def test_utterance_errors_count_edits():
    errors = utterance_errors(["one two", "", "three four"], ["one three", "five", "three"])
    assert errors["word_errors"] == [1, 1, 1] and errors["words"] == [2, 1, 1]
    assert errors["chars"] == [9, 4, 5] and errors["char_errors"][1] == 4


def test_bootstrap_error_rate_on_a_known_example():
    # Two one-word utterances, one wrong: replicates are 1 (a quarter), 0.5 (half) or 0 (a quarter).
    result = bootstrap_error_rate([1, 0], [1, 1], num_samples=4000)
    assert result == {"rate": 0.5, "low": 0.0, "high": 1.0}
    # Longer references weigh more: 3 errors in 10 words + 0 in 30 is 3/40 whatever the draw order.
    assert bootstrap_error_rate([3, 0], [10, 30])["rate"] == 3 / 40
    same = bootstrap_error_rate([2] * 50, [10] * 50)
    assert same == {"rate": 0.2, "low": 0.2, "high": 0.2}


def test_bootstrap_error_rate_rejects_what_has_no_rate():
    with pytest.raises(ValueError, match="no words"):
        bootstrap_error_rate([0, 0], [0, 0])
    with pytest.raises(ValueError, match="equal-length"):
        bootstrap_error_rate([1, 2], [3])


def test_goal_verdict_is_met_only_when_every_interval_says_so():
    assert goal_verdict(1.05, {"low": 0.9, "high": 1.05}, {"low": 0.8, "high": 1.0}) == "met"
    assert goal_verdict(1.05, {"low": 0.9, "high": 1.05}, {"low": 0.95, "high": 1.2}) == "undecided"
    assert goal_verdict(1.05, {"low": 0.9, "high": 1.0}, {"low": 1.06, "high": 1.3}) == "missed"
    assert goal_verdict(10.0, {"low": 9.0, "high": 9.0}) == "met"
