"""Noise in measured accuracies and ratios: Wilson intervals, the exact McNemar test and the
order-statistic interval of a median, checked against known values and brute-force sums."""
import math

import numpy as np
import pytest

from effcourse import stats

Z95 = 1.959963984540054


# --------------------------------------------------------------------------- accuracy_interval


def test_wilson_interval_known_values():
    low, high = stats.accuracy_interval(83, 100)
    assert low == pytest.approx(0.74452, abs=1e-5) and high == pytest.approx(0.89106, abs=1e-5)
    low, high = stats.accuracy_interval(8300, 10000)
    assert low == pytest.approx(0.82251, abs=1e-5) and high == pytest.approx(0.83724, abs=1e-5)


def test_wilson_interval_at_10000_images_is_plus_minus_0_74_points():
    """The course's "about 0.4 points" at 83% of 10,000 images is the standard error; the 95%
    interval is about 1.96 times wider on each side."""
    low, high = stats.accuracy_interval(8300, 10000)
    half_width = (high - low) / 2
    standard_error = math.sqrt(0.83 * 0.17 / 10000)
    assert standard_error == pytest.approx(0.0037, abs=1e-4)
    assert half_width == pytest.approx(0.0074, abs=1e-4)
    assert half_width == pytest.approx(Z95 * standard_error, rel=0.01)  # large n: Wilson ~ normal
    assert low < 0.83 < high


@pytest.mark.parametrize("correct, n", [(83, 100), (1, 20), (19, 20), (500, 1000), (3, 7)])
def test_wilson_endpoints_solve_the_score_equation(correct, n):
    """Wilson's endpoints are the proportions p where the observed p_hat is exactly z standard
    errors sqrt(p (1 - p) / n) away: an independent check of the closed form."""
    p_hat = correct / n
    for p in stats.accuracy_interval(correct, n):
        assert abs(p_hat - p) == pytest.approx(Z95 * math.sqrt(p * (1 - p) / n), rel=1e-9)


def test_wilson_interval_stays_in_0_1_at_the_extremes():
    low, high = stats.accuracy_interval(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35  # not degenerate: 0 of 10 does not prove 0%
    low, high = stats.accuracy_interval(10, 10)
    assert 0.65 < low < 0.8 and high == pytest.approx(1.0) and high <= 1.0
    low, high = stats.accuracy_interval(0, 1)
    assert 0.0 <= low < high <= 1.0


def test_wilson_interval_narrows_with_more_images():
    widths = [np.subtract(*stats.accuracy_interval(n // 2, n)[::-1]) for n in (10, 100, 1000, 10000)]
    assert all(a > b for a, b in zip(widths, widths[1:]))


@pytest.mark.parametrize("correct, n, message", [(0, 0, "n must be at least 1"), (5, -1, "n must be at least 1"),
                                                 (-1, 10, "correct must be in"), (11, 10, "correct must be in"),
                                                 (0.83, 100, "count test images.*round\\(accuracy \\* n\\)"),
                                                 (5, 10.5, "count test images")])
def test_wilson_interval_bad_arguments_raise(correct, n, message):
    with pytest.raises(ValueError, match=message):
        stats.accuracy_interval(correct, n)


# --------------------------------------------------------------------------- binomial_two_sided


def brute_force_two_sided(k: int, n: int) -> float:
    """Probability of a split at least as far from n/2 as k, under fair coins."""
    far = abs(k - n / 2)
    return sum(math.comb(n, i) for i in range(n + 1) if abs(i - n / 2) >= far - 1e-12) / 2**n


def test_binomial_two_sided_refuses_k_outside_0_to_n():
    for k, n in ((-1, 5), (6, 5), (0, -1)):
        with pytest.raises(ValueError, match="k must be in"):
            stats.binomial_two_sided(k, n)


def test_binomial_two_sided_known_values():
    assert stats.binomial_two_sided(0, 5) == pytest.approx(0.0625)
    assert stats.binomial_two_sided(5, 5) == pytest.approx(0.0625)
    assert stats.binomial_two_sided(1, 10) == pytest.approx(22 / 1024)
    assert stats.binomial_two_sided(8, 20) == pytest.approx(0.50344, abs=1e-5)
    assert stats.binomial_two_sided(5, 10) == 1.0
    assert stats.binomial_two_sided(0, 0) == 1.0


@pytest.mark.parametrize("n", [1, 2, 3, 6, 11, 20, 31])
def test_binomial_two_sided_matches_brute_force_and_is_symmetric(n):
    for k in range(n + 1):
        p = stats.binomial_two_sided(k, n)
        assert p == pytest.approx(brute_force_two_sided(k, n), rel=1e-12), (k, n)
        assert p == stats.binomial_two_sided(n - k, n)
        assert 0.0 < p <= 1.0


# --------------------------------------------------------------------------- paired_accuracy


def correctness(both: int, only_a: int, only_b: int, neither: int):
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    order = np.random.default_rng(0).permutation(len(a))
    return np.array(a)[order], np.array(b)[order]


def test_identical_models_are_within_noise():
    a, _ = correctness(70, 0, 0, 30)
    result = stats.paired_accuracy(a, a.copy())
    assert result.verdict == "within noise" and result.p_value == 1.0
    assert result.difference == 0.0 and result.only_a_right == result.only_b_right == 0


def test_b_right_on_30_more_images_is_better_and_the_reverse_worse():
    a, b = correctness(500, 0, 30, 470)
    better = stats.paired_accuracy(a, b)
    assert better.verdict == "better"
    assert (better.only_a_right, better.only_b_right) == (0, 30)
    assert better.difference == pytest.approx(30 / 1000)
    assert better.p_value == pytest.approx(2 / 2**30)
    worse = stats.paired_accuracy(b, a)
    assert worse.verdict == "worse" and worse.difference == pytest.approx(-30 / 1000)
    assert worse.p_value == better.p_value
    assert "+3.00 points (better: 30 images only it gets right, 0 only the other" in str(better)


def test_12_against_8_disagreements_are_within_noise():
    a, b = correctness(800, 8, 12, 180)
    result = stats.paired_accuracy(a, b)
    assert result.verdict == "within noise"
    assert (result.only_a_right, result.only_b_right) == (8, 12)
    assert result.p_value == pytest.approx(brute_force_two_sided(12, 20))
    assert result.difference == pytest.approx(4 / 1000)


def test_paired_accuracy_alpha_decides_the_verdict():
    a, b = correctness(10, 0, 5, 10)  # p = 2 / 32 = 0.0625
    assert stats.paired_accuracy(a, b).verdict == "within noise"
    assert stats.paired_accuracy(a, b, alpha=0.1).verdict == "better"
    a, b = correctness(10, 0, 6, 10)  # p = 2 / 64 < 0.05
    assert stats.paired_accuracy(a, b).verdict == "better"



def test_a_table_shows_a_small_p_value_to_two_significant_digits_never_as_0():
    """Tables rounded p to 4 decimals: lesson 05's printed 0.0 and lesson 03's quiz "McNemar p = 0"."""
    a, b = correctness(10, 0, 30, 10)  # 30 images only B gets right, none only A: p = 2 / 2**30
    paired = stats.paired_accuracy(a, b)
    assert paired.p_value == pytest.approx(2 / 2**30)
    assert paired.p_for_table == 1.9e-09 and f"{paired.p_for_table:.2g}" == "1.9e-09"
    assert stats.paired_accuracy(*correctness(10, 0, 5, 10)).p_for_table == 0.062  # 0.0625

def test_paired_accuracy_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same test images"):
        stats.paired_accuracy(np.ones(10, bool), np.ones(11, bool))
    with pytest.raises(ValueError, match="same test images"):
        stats.paired_accuracy(np.ones((2, 5), bool), np.ones((2, 5), bool))


@pytest.mark.parametrize("a, b", [([3, 5, 7], [3, 4, 7]),  # predicted labels
                                  ([0.2, 0.9, 0.4], [0.8, 0.1, 0.4]),  # probabilities
                                  ([1.0, float("nan"), 0.0], [1.0, 1.0, 0.0])])
def test_paired_comparisons_refuse_what_is_not_per_image_correctness(a, b):
    """A cast to bool would read any label but 0 and any probability as "right"."""
    for compare in (stats.paired_accuracy, stats.paired_difference_interval, stats.mean_difference_interval):
        with pytest.raises(ValueError, match="Per-image correctness is needed.*measure.correct"):
            compare(a, b)


def test_paired_comparisons_need_the_same_images_and_at_least_one():
    for a, b in ((np.ones(10, bool), np.ones(11, bool)), (np.ones((2, 5), bool), np.ones((2, 5), bool)),
                 (np.ones(0, bool), np.ones(0, bool))):
        for compare in (stats.paired_accuracy, stats.paired_difference_interval):
            with pytest.raises(ValueError, match="same test images"):
                compare(a, b)
    for a, b in ((np.ones((2, 0)), np.ones((2, 0))), (np.ones((2, 3, 4)), np.ones((2, 3, 4)))):
        with pytest.raises(ValueError, match="same test images.*\\(runs, images\\)"):
            stats.mean_difference_interval(a, b)


def test_alpha_must_be_a_probability():
    a, b = correctness(10, 0, 5, 10)
    for alpha in (0, 5, -0.05):  # 5 meaning 5% would call every difference significant
        with pytest.raises(ValueError, match="alpha must be in \\(0, 1\\)"):
            stats.paired_accuracy(a, b, alpha=alpha)
        with pytest.raises(ValueError, match="alpha must be in \\(0, 1\\)"):
            stats.median_interval(np.arange(20.0), alpha=alpha)


# --------------------------------------------------------------------------- median_interval


def order_statistic_rank(n: int, alpha: float = 0.05) -> int:
    """The largest k (at least 1, at most n // 2) with P(Binomial(n, 1/2) < k) <= alpha / 2."""
    best = 1
    for k in range(1, n // 2 + 1):
        if sum(math.comb(n, i) for i in range(k)) / 2**n <= alpha / 2:
            best = k
    return best


def test_median_interval_for_10_rounds_is_second_smallest_to_second_largest():
    # P(Binomial(10, 1/2) < 2) = 11/1024 <= 2.5% < P(< 3) = 56/1024: rank 2, coverage 97.9%.
    assert sum(math.comb(10, i) for i in range(2)) / 2**10 <= 0.025 < sum(math.comb(10, i) for i in range(3)) / 2**10
    values = np.random.default_rng(0).permutation([0.80, 0.85, 0.90, 0.91, 0.92, 0.93, 0.94, 0.95, 1.00, 1.20])
    ratio = stats.median_interval(values)
    assert (ratio.low, ratio.high) == (0.85, 1.00)
    assert ratio.median == pytest.approx(0.925) and ratio.rounds == 10


@pytest.mark.parametrize("n, rank", [(6, 1), (8, 1), (9, 2), (10, 2), (12, 3), (20, 6), (30, 10)])
def test_median_interval_ranks_follow_the_binomial_rule(n, rank):
    """Known ranks of the distribution-free 95% interval of a median (n = 9: 2nd and 8th;
    n = 20: 6th and 15th), and the binomial rule computed here."""
    assert order_statistic_rank(n) == rank
    values = np.arange(1, n + 1, dtype=float)  # the k-th smallest value is k
    ratio = stats.median_interval(values[::-1])
    assert (ratio.low, ratio.high) == (rank, n + 1 - rank)
    coverage = 1 - 2 * sum(math.comb(n, i) for i in range(rank)) / 2**n
    assert coverage >= 0.95


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_median_interval_under_six_rounds_is_the_full_range(n):
    values = np.random.default_rng(n).normal(1.0, 0.1, n)
    ratio = stats.median_interval(values)
    assert (ratio.low, ratio.high) == (values.min(), values.max())
    assert ratio.median == pytest.approx(np.median(values)) and ratio.rounds == n


def test_median_interval_of_no_rounds_raises():
    with pytest.raises(ValueError, match="No rounds"):
        stats.median_interval([])


def test_median_interval_needs_one_value_per_round():
    for values in (np.ones((3, 4)), 1.0):
        with pytest.raises(ValueError, match="One value per round"):
            stats.median_interval(values)


# --------------------------------------------------------------------------- Ratio.verdict


@pytest.mark.parametrize("low, high, verdict", [
    (0.80, 0.969, "faster"),
    (0.80, 0.97, "no measurable difference"),  # the interval must clear the margin
    (0.95, 1.05, "no measurable difference"),
    (0.98, 0.99, "no measurable difference"),  # below 1 but within the margin
    (1.03, 1.20, "no measurable difference"),
    (1.031, 1.20, "slower"),
])
def test_ratio_verdict_with_the_margin(low, high, verdict):
    assert stats.Ratio((low + high) / 2, low, high, 10).verdict() == verdict


def test_ratio_verdict_custom_margin_and_words():
    inside_margin = stats.Ratio(0.985, 0.98, 0.99, 10)
    assert inside_margin.verdict() == "no measurable difference"
    assert inside_margin.verdict(margin=0.0) == "faster"
    assert inside_margin.verdict(margin=0.0, words=("smaller", "larger")) == "smaller"
    assert stats.Ratio(1.5, 1.4, 1.6, 10).verdict(words=("less energy", "more energy")) == "more energy"
    assert str(stats.Ratio(0.5, 0.45, 0.55, 12)) == "0.50x (95% CI 0.45-0.55, 12 rounds)"


def test_median_range_spans_every_round():
    ratio = stats.median_range(np.arange(1.0, 11.0))
    assert (ratio.median, ratio.low, ratio.high, ratio.rounds) == (5.5, 1.0, 10.0, 10)
    assert str(ratio) == "5.50x (range 1.00-10.00 over 10 rounds)"
    assert stats.median_interval(np.arange(1.0, 11.0)).low == 2.0  # the interval of the median is narrower


def test_ratio_of_too_few_rounds_for_95_percent_reads_as_a_range():
    assert str(stats.median_interval([1.17, 0.86, 1.08, 1.1, 0.9])) == "1.08x (range 0.86-1.17 over 5 rounds, a 93.8% interval)"
    assert str(stats.median_interval([1.0, 0.9, 1.1, 1.05, 0.95, 1.02])).endswith("(95% CI 0.90-1.10, 6 rounds)")


def test_paired_difference_interval_holds_the_difference_and_shrinks_with_agreement():
    rng = np.random.default_rng(0)
    a = rng.random(10_000) < 0.83
    b = a.copy()
    flip = rng.choice(10_000, 300, replace=False)
    b[flip] = ~b[flip]
    low, high = stats.paired_difference_interval(a, b)
    assert low < b.mean() - a.mean() < high and high - low < 0.01
    assert stats.paired_difference_interval(a, a) == (0.0, 0.0)


@pytest.mark.parametrize("low, high, target, at_least, verdict", [
    (0.81, 0.83, 0.80, True, "met"), (0.78, 0.79, 0.80, True, "not met"),
    (0.79, 0.81, 0.80, True, "within noise of the target"),
    (-0.2, 0.9, 1.0, False, "met"), (1.1, 1.5, 1.0, False, "not met"), (0.5, 1.2, 1.0, False, "within noise of the target")])
def test_against_target_needs_the_whole_interval(low, high, target, at_least, verdict):
    assert stats.against_target(low, high, target, at_least=at_least) == verdict


@pytest.mark.parametrize("low, high", [(0.9, 0.8), (float("nan"), 0.8)])
def test_against_target_refuses_bounds_out_of_order(low, high):
    """Swapped bounds would read as "met" on both sides of the target."""
    for at_least in (True, False):
        with pytest.raises(ValueError, match="low <= high"):
            stats.against_target(low, high, 0.85, at_least=at_least)


def test_mean_difference_interval_over_runs():
    rng = np.random.default_rng(1)
    a, b = rng.random(2000) < 0.8, rng.random(2000) < 0.82
    assert stats.mean_difference_interval(a, b) == pytest.approx(stats.paired_difference_interval(a, b))
    # per image, b's runs minus a's runs averaged: [0, 0.5, 0.5, 1], mean 0.5, population sd sqrt(0.125)
    runs_a, runs_b = [[1, 0, 1, 0], [1, 1, 0, 0]], [[1, 1, 1, 1], [1, 1, 1, 1]]
    half = Z95 * math.sqrt(0.125) / 2
    assert stats.mean_difference_interval(runs_a, runs_b) == pytest.approx((0.5 - half, 0.5 + half))
    low, high = stats.mean_difference_interval(runs_b, runs_a)  # the other way round: the sign flips
    assert (low, high) == pytest.approx((-0.5 - half, -0.5 + half))
    # one run against several: the teacher against the mean of the students
    assert stats.mean_difference_interval([1, 1, 1, 1], runs_a)[1] == pytest.approx(-0.5 + half)
    with pytest.raises(ValueError, match="same test images"):
        stats.mean_difference_interval(np.ones((2, 4)), np.ones((2, 5)))
