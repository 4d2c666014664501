"""benchmarks/policy_seeds.py: each seed's pair is lesson 04's model trained under float32 and the
16-bit policy from that seed, and its figures are the paired comparison of their test images."""
import numpy as np
import pytest
import tf_keras as keras

from effcourse import paths, profiles, stats, training
from effcourse.data import ImageData

import benchmark_scripts

policy_seeds = benchmark_scripts.load("policy_seeds")

PLAN = training.Plan(widths=(16, 16, 16), batch_size=16, rounds=2, steps=1, warmup=1)


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))


def _data() -> ImageData:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 160)
    x = np.clip(rng.normal(40 + 70 * y[:, None, None, None], 20, (160, 8, 8, 3)), 0, 255).astype(np.uint8)
    return ImageData(x[:96], y[:96], x[96:112], y[96:112], x[112:], y[112:], ("a", "b", "c"), "tiny", True, 16)


@pytest.mark.parametrize("xla", [False, True])
def test_each_seed_is_a_paired_comparison_of_the_two_policies_trained_together(xla):
    data = _data()
    figures, correct = policy_seeds.compare_seed(data, "mixed_bfloat16", 3, PLAN, profiles.get("smoke"), xla=xla)
    label = "mixed_bfloat16 + XLA" if xla else "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32", "the policy is float32 again afterwards"
    assert set(correct) == {"float32", label} and all(len(c) == len(data.y_test) for c in correct.values())
    paired = stats.paired_accuracy(correct["float32"], correct[label])
    assert figures["seed"] == 3 and figures["verdict"] == paired.verdict
    assert figures["difference (points)"] == pytest.approx(figures[f"{label} %"] - figures["float32 %"], abs=0.02)
    low, high = figures["95% interval"]
    assert low <= figures["difference (points)"] <= high
    assert figures["throughput x float32"] > 0


def test_the_mean_over_seeds_needs_two_and_averages_the_differences():
    rng = np.random.default_rng(1)
    correct = {s: {"float32": rng.random(400) < 0.7, "mixed_bfloat16": rng.random(400) < 0.7 + 0.05 * s} for s in (0, 1)}
    assert policy_seeds.summary({0: correct[0]}, "mixed_bfloat16") is None
    mean = policy_seeds.summary(correct, "mixed_bfloat16")
    differences = [c["mixed_bfloat16"].mean() - c["float32"].mean() for c in correct.values()]
    assert mean["seeds"] == 2
    assert mean["mean difference (points)"] == pytest.approx(100 * np.mean(differences), abs=0.01)
    low, high = mean["95% interval"]
    assert low < mean["mean difference (points)"] < high


def test_the_convolution_errors_are_recorded_for_both_kernels_at_the_plans_middle_width():
    errors = policy_seeds.convolution_errors(PLAN)
    assert set(errors) == {"TensorFlow", "XLA"}
    for rows in errors.values():
        assert {(r["part"], r["format"]) for r in rows} == {(p, f) for p in training.CONVOLUTION_PARTS
                                                            for f in ("float32", "float16", "bfloat16")}
        assert all(r["x rounding once"] >= 0.99 for r in rows if r["format"] != "float32")
