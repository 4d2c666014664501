import time

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


def test_interleaved_times_every_model_in_every_round():
    calls = {"quick": 0, "slow": 0}

    def runner(name, seconds):
        def run():
            calls[name] += 1
            time.sleep(seconds)
        return run

    table = latency.interleaved({"quick": runner("quick", 0), "slow": runner("slow", 0.002)},
                                runs=4, warmup=1, threads=2, rounds=3)
    assert calls == {"quick": 15, "slow": 15}  # 3 rounds x (1 warm-up + 4 timed)
    assert list(table.index) == ["quick", "slow"] and table.attrs == {"threads": 2, "rounds": 3, "runs": 4}
    assert table.loc["quick", "vs first"] == table.loc["quick", "lowest round"] == table.loc["quick", "highest round"] == 1.0
    assert table.loc["slow", "lowest round"] > 1 and latency.speed_verdict(table.loc["slow"]) == "slower"
    assert (table["p95 ms"] >= table["latency ms"]).all()
    with pytest.raises(ValueError, match="No models"):
        latency.interleaved({}, runs=1, warmup=0, threads=1)
    with pytest.raises(ValueError, match="rounds"):
        latency.interleaved({"quick": runner("quick", 0)}, runs=1, warmup=0, threads=1, rounds=0)


def test_speed_verdict_needs_every_round_to_agree():
    assert latency.speed_verdict({"lowest round": 0.4, "highest round": 0.7}) == "faster"
    assert latency.speed_verdict({"lowest round": 1.1, "highest round": 1.3}) == "slower"
    assert latency.speed_verdict({"lowest round": 0.8, "highest round": 1.2}) == "no measurable difference"
    # every round agrees, but by less than the margin: two runs of one model differ that much
    assert latency.speed_verdict({"lowest round": 0.85, "highest round": 0.98}) == "no measurable difference"
    assert latency.speed_verdict({"lowest round": 1.02, "highest round": 1.24}) == "no measurable difference"
    assert latency.speed_verdict({"lowest round": 0.85, "highest round": 0.98}, margin=0.01) == "faster"


def test_cpu_flags_and_simd_support(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_vnni\n\n"
                       "processor\t: 1\nflags\t\t: fpu\n")
    flags = hardware.cpu_flags(str(cpuinfo))
    assert {"avx2", "avx512f", "avx512_vnni"} <= flags and "fpu" in flags
    assert hardware.simd_support(flags).startswith("has: AVX2, AVX-512, AVX-512 VNNI; lacks: AVX-VNNI, AVX-512 BF16")
    assert hardware.simd_support({"fpu"}).startswith("has: none; lacks: AVX2")
    assert hardware.simd_support(set()).startswith("unknown")
    assert hardware.cpu_flags(str(tmp_path / "missing")) == set()
