import numpy as np
import pytest

from effcourse import hardware, latency, models


def test_time_calls_runs_warmup_then_timed_calls():
    calls = []
    times = latency.time_calls(lambda: calls.append(1), runs=7, warmup=3)
    assert len(calls) == 10 and times.shape == (7,) and (times >= 0).all()
    with pytest.raises(ValueError):
        latency.time_calls(lambda: None, runs=0, warmup=0)


def test_latency_stats_are_ordered_and_state_threads():
    stats = latency.latency(lambda: sum(range(1000)), runs=50, warmup=5, threads=3)
    assert 0 < stats.median_ms <= stats.p95_ms
    assert "3 threads" in str(stats) and "50 runs" in str(stats)


def test_keras_runner_matches_predict_and_throughput_is_positive():
    model = models.reference_cnn()
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    run = latency.keras_runner(model, images)
    np.testing.assert_allclose(run(), model.predict(images, verbose=0), atol=1e-5)
    assert latency.throughput(run, len(images)) > 0


def test_hardware_description():
    assert f"({hardware.cpu_threads()} threads)" in hardware.describe()
    assert set(hardware.LIBRARIES) <= set(hardware.versions())
