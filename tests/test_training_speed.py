"""benchmarks/training_speed.py: every model takes real optimizer steps, timed together, and its
row's figures are consistent with one another and with the reference's."""
import numpy as np
import pytest

from effcourse import models, recipes

import benchmark_scripts

training_speed = benchmark_scripts.load("training_speed")


def test_each_model_trains_and_its_step_is_timed_against_the_reference():
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, 16)
    built = {"reference": recipes.compile_model(models.reference_cnn()),
             "student": recipes.compile_model(models.student_cnn())}
    before = {name: [w.copy() for w in m.get_weights()] for name, m in built.items()}
    rows = training_speed.step_times(built, x, y, runs=10, reference="reference")
    assert [r["model"] for r in rows] == ["reference", "student"]
    for row, model in zip(rows, built.values()):
        assert any(not np.array_equal(a, b) for a, b in zip(before[row["model"]], model.get_weights())), "steps were taken"
        assert row["images/s"] == pytest.approx(16 / row["ms per step"] * 1000, rel=0.01)
        low, high = row["95% interval"]
        assert low <= row["x reference"] <= high
        assert row["MACs (M)"] > 0
    assert rows[0]["x reference"] == 1.0 and rows[0]["95% interval"] == [1.0, 1.0]


def test_every_course_cnn_is_in_the_benchmark_and_the_reference_is_one_of_them():
    assert training_speed.REFERENCE in training_speed.BUILDERS
    assert {models.separable_student_cnn, models.improved_cnn, models.reference_cnn} <= set(training_speed.BUILDERS.values())
