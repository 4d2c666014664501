"""benchmarks/verdict_false_alarms.py: the spread of a ratio over many comparisons is summarised
truly (which intervals hold the median of all, the verdicts), on made-up ratios and on real timings."""
import numpy as np

from effcourse import profiles
from effcourse.stats import Ratio

import benchmark_scripts
from tiny import SHAPE, lite_bytes, small_model

benchmark = benchmark_scripts.load("verdict_false_alarms")


def test_spread_counts_the_intervals_that_hold_the_median_of_all_trials():
    ratios = [Ratio(1.00, 0.98, 1.02, 20), Ratio(1.10, 1.08, 1.12, 20), Ratio(0.90, 0.85, 1.01, 20)]
    summary = benchmark.spread(ratios, reference_ms=[0.1, 0.2, 0.3])
    assert summary["median ratio"] == 1.0
    assert summary["lowest and highest"] == [0.9, 1.1]
    assert summary["trials whose interval holds the median of all"] == 2  # not the trial at 1.08-1.12
    assert summary["verdicts"] == {"no measurable difference": 2, "slower": 1}
    assert summary["mean width of one trial's 95% interval"] == round((0.04 + 0.04 + 0.16) / 3, 4)
    assert summary["reference's median ms, middle 90% of trials"] == [0.11, 0.29]


def test_reproducibility_times_every_trial_of_a_real_pair():
    image = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    model, reference = lite_bytes(small_model(0)), lite_bytes(small_model(1))
    summary = benchmark.reproducibility(model, reference, image, threads=1, profile=profiles.get("smoke"), count=3)
    assert sum(summary["verdicts"].values()) == 3
    low, high = summary["lowest and highest"]
    assert 0 < low <= summary["median ratio"] <= high
    assert 1 <= summary["trials whose interval holds the median of all"] <= 3  # the median trial's own interval
    assert 0 < summary["reference's median ms, middle 90% of trials"][0]
