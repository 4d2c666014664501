"""Noise: how far a measured accuracy or a measured ratio can be trusted.

* An accuracy on n test images is a binomial proportion: its 95% interval (Wilson's).
* Two models on the *same* test images: an exact McNemar test on the images where exactly
  one of them is right gives "better", "worse" or "within noise"; several training runs (seeds)
  of each: the interval of the difference of their mean accuracies.
* A ratio measured in rounds (latency, energy): the median over rounds and a distribution-free
  95% confidence interval of that median (order statistics), read as "faster", "slower" or
  "no measurable difference".
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05  # 95% intervals, 5% tests
# A ratio must differ from 1 by more than this (its whole confidence interval) to be called a
# difference: XNNPACK runs and cache states make two copies of one model differ by 1-2%.
RATIO_MARGIN = 0.03
_Z95 = 1.959963984540054


def accuracy_interval(correct: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy of `correct` out of `n` test images."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= correct <= n:
        raise ValueError(f"correct must be in [0, {n}], got {correct}")
    if not (float(correct).is_integer() and float(n).is_integer()):
        raise ValueError(f"correct and n count test images, got {correct} and {n}; "
                         "from an accuracy, pass round(accuracy * n) images right")
    p, z2 = correct / n, _Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of seeing `k` or a more lopsided split of `n` fair coin flips."""
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, {n}], got {k}")
    if n == 0:
        return 1.0
    low = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(low + 1))
    return min(1.0, 2 * tail / 2**n)


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), e.g. 0.05 for 95%, got {alpha}")


def _correctness(values) -> np.ndarray:
    """Per-image correctness (booleans, or 0 and 1) as a boolean array; anything else, such as
    predicted labels or probabilities, a cast to bool would silently misread."""
    values = np.asarray(values)
    if not np.isin(values, (0, 1)).all():
        raise ValueError("Per-image correctness is needed: one boolean (or 0/1) per test image, as "
                         "measure.correct gives, not predicted labels or probabilities.")
    return values.astype(bool)


def _paired(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _correctness(correct_a), _correctness(correct_b)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"Per-image results of the same test images are needed (1-D, equal lengths, at least one "
                         f"image); got shapes {a.shape} and {b.shape}.")
    return a, b


@dataclass(frozen=True)
class PairedAccuracy:
    """Model B against model A on the same test images."""

    difference: float  # accuracy of B minus accuracy of A
    only_a_right: int  # images A classifies correctly and B does not
    only_b_right: int
    p_value: float  # exact McNemar test
    verdict: str  # "better", "worse" or "within noise" (B against A)

    @property
    def p_for_table(self) -> float:
        """The p-value to two significant digits, as a table shows it (4 decimals showed p = 3e-6 as 0)."""
        return float(f"{self.p_value:.2g}")

    def __str__(self) -> str:
        return (f"{100 * self.difference:+.2f} points ({self.verdict}: {self.only_b_right} images only "
                f"it gets right, {self.only_a_right} only the other; p = {self.p_value:.2g})")


def paired_accuracy(correct_a, correct_b, alpha: float = ALPHA) -> PairedAccuracy:
    """Compare two models from their per-image correctness (boolean arrays over the same test
    images): an exact McNemar test on the images where they disagree. The verdict is
    "better" or "worse" (B against A) only if p < alpha, else "within noise"."""
    _check_alpha(alpha)
    a, b = _paired(correct_a, correct_b)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    p = binomial_two_sided(only_b, only_a + only_b)
    verdict = "within noise" if p >= alpha else ("better" if only_b > only_a else "worse")
    return PairedAccuracy(float(b.mean() - a.mean()), only_a, only_b, p, verdict)


def paired_difference_interval(correct_a, correct_b) -> tuple[float, float]:
    """95% interval of accuracy(B) - accuracy(A) on the same test images (the normal interval
    of a paired difference, whose variance comes from the images where exactly one is right)."""
    a, b = _paired(correct_a, correct_b)
    n = len(a)
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    difference = (only_b - only_a) / n
    spread = math.sqrt(max(only_a + only_b - (only_b - only_a) ** 2 / n, 0.0)) / n
    return difference - _Z95 * spread, difference + _Z95 * spread


def mean_difference_interval(correct_a, correct_b) -> tuple[float, float]:
    """95% interval of the mean accuracy of B minus that of A when each was trained several times
    (seeds) and every run was tested on the same images: per-image correctness as arrays of shape
    (runs, images), or (images,) for a single run. It holds the test images' sampling noise of the
    mean over these runs; how much another set of seeds would move it is not in it. With one run
    each it is `paired_difference_interval`."""
    a, b = (np.atleast_2d(_correctness(c).astype(float)) for c in (correct_a, correct_b))
    if a.ndim != 2 or a.shape[1:] != b.shape[1:] or a.size == 0 or b.size == 0:
        raise ValueError(f"Runs on the same test images are needed, each of shape (runs, images) or (images,); "
                         f"got shapes {a.shape} and {b.shape}.")
    per_image = b.mean(axis=0) - a.mean(axis=0)
    spread = float(per_image.std()) / math.sqrt(len(per_image))
    return float(per_image.mean()) - _Z95 * spread, float(per_image.mean()) + _Z95 * spread


def against_target(low: float, high: float, target: float, *, at_least: bool) -> str:
    """Read a measured interval [low, high] against a target (`at_least`: the figure must reach
    `target`; else it must not exceed it): "met" if the whole interval is on the right side,
    "not met" if the whole of it is on the wrong side, else "within noise of the target"."""
    if not low <= high:
        raise ValueError(f"low and high must bound an interval (low <= high, neither NaN), got {low} and {high}")
    good, bad = (low >= target, high < target) if at_least else (high <= target, low > target)
    return "met" if good else "not met" if bad else "within noise of the target"


@dataclass(frozen=True)
class Ratio:
    """A ratio measured once per round: its median and either the 95% confidence interval of the
    median (`median_interval`; the whole range, with its lower coverage, where there are too few
    rounds for 95%) or the range of the rounds (`median_range`, spread="range")."""

    median: float
    low: float
    high: float
    rounds: int
    spread: str = "ci"  # "ci" or "range"

    def verdict(self, margin: float = RATIO_MARGIN, words=("faster", "slower")) -> str:
        """`words[0]` if the whole interval lies below 1 - margin, `words[1]` if above 1 + margin,
        "not measurable" if there is no ratio (a NaN), else "no measurable difference"."""
        if math.isnan(self.median):
            return "not measurable"
        if self.high < 1 - margin:
            return words[0]
        if self.low > 1 + margin:
            return words[1]
        return "no measurable difference"

    def __str__(self) -> str:
        if math.isnan(self.median):
            return f"not measurable ({self.rounds} rounds)"
        if self.spread == "range":
            return f"{self.median:.2f}x (range {self.low:.2f}-{self.high:.2f} over {self.rounds} rounds)"
        if 2 / 2**self.rounds > ALPHA:  # too few rounds for a 95% interval: median_interval gave the range
            return (f"{self.median:.2f}x (range {self.low:.2f}-{self.high:.2f} over {self.rounds} rounds, "
                    f"a {1 - 2 / 2**self.rounds:.1%} interval)")
        return f"{self.median:.2f}x (95% CI {self.low:.2f}-{self.high:.2f}, {self.rounds} rounds)"


def median_range(values) -> Ratio:
    """Median of per-round values and their whole range: for a rule that every round must meet."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("No rounds to summarise.")
    return Ratio(float(np.median(v)), float(v.min()), float(v.max()), v.size, spread="range")


def median_interval(values, alpha: float = ALPHA) -> Ratio:
    """Median of per-round values and its distribution-free confidence interval: the k-th smallest
    and k-th largest values, k the largest rank with P(Binomial(n, 1/2) < k) <= alpha / 2. Under
    six rounds no such k exists and the interval is the whole range (coverage 1 - 2 / 2**n)."""
    _check_alpha(alpha)
    v = np.asarray(values, dtype=float)
    if v.ndim != 1:
        raise ValueError(f"One value per round is needed (a 1-D sequence), got shape {v.shape}.")
    v = np.sort(v)
    n = len(v)
    if n == 0:
        raise ValueError("No rounds to summarise.")
    k, cumulative = 1, 0.0
    for rank in range(1, n // 2 + 1):
        cumulative += math.comb(n, rank - 1) / 2**n  # P(Binomial < rank)
        if cumulative <= alpha / 2:
            k = rank
        else:
            break
    return Ratio(float(np.median(v)), float(v[k - 1]), float(v[n - k]), n)
