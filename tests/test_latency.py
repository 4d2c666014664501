import dataclasses
import functools
import time

import numpy as np
import pytest
from energyfakes import powercap

from effcourse import energy, hardware, latency


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


@pytest.mark.parametrize("call", [
    lambda: latency.latency(lambda: None, runs=3, warmup=-1, threads=1),  # would report "-1 warm-up"
    lambda: latency.latency(lambda: None, runs=3, warmup=1, threads=0),  # would report "0 threads"
    lambda: latency.interleaved({"a": lambda: None}, runs=3, warmup=-1, threads=1, energy_method="estimate"),
    lambda: latency.interleaved({"a": lambda: None}, runs=3, warmup=0, threads=0, energy_method="estimate"),
    lambda: latency.interleaved_throughput({"a": lambda: None}, batch_size=0),  # would report 0 images/s
    lambda: latency.interleaved_throughput({"a": lambda: None}, batch_size=8, repeats=0),
])
def test_counts_that_would_be_reported_wrong_are_refused(call):
    with pytest.raises(ValueError, match=r"(warmup|threads|batch_size|repeats) must be at least [01], got -?\d"):
        call()


def sleeper(calls, name, seconds):
    def run():
        calls[name] += 1
        time.sleep(seconds)
    return run


def test_interleaved_times_every_model_in_small_blocks_every_round():
    calls = {"quick": 0, "slow": 0}
    timing = latency.interleaved({"quick": sleeper(calls, "quick", 0), "slow": sleeper(calls, "slow", 0.002)},
                                 runs=40, warmup=2, threads=2, energy_method="estimate")
    # at least MIN_ROUNDS rounds, each one untimed call and a block of timed ones per model
    assert timing.rounds == latency.MIN_ROUNDS and timing.block == 4 and timing.runs == 40
    assert calls == {"quick": 2 + 10 * (1 + 4), "slow": 2 + 10 * (1 + 4)}
    assert timing.times_ms["slow"].shape == (10, 4) and (timing.times_ms["slow"] >= 2).all()
    ratio = timing.latency_ratio("slow", "quick")
    assert ratio.low > 1.03 and ratio.verdict() == "slower"
    assert timing.latency_ratio("quick", "quick").median == 1.0
    assert timing.stats("slow").median_ms <= timing.stats("slow").p95_ms
    assert timing.energy_method.startswith("estimated") and not timing.energy_measured
    assert timing.joules_per_inference("quick") >= 0
    with pytest.raises(ValueError, match="No models"):
        latency.interleaved({}, runs=1, warmup=0, threads=1)
    with pytest.raises(ValueError, match="at least 1"):
        latency.interleaved({"quick": sleeper(calls, "quick", 0)}, runs=0, warmup=0, threads=1)


def test_interleaving_shares_a_slow_spell_between_models():
    """A slow spell of the machine (here: every call after the 60th is 3x slower) would make the model
    timed last look slower if each model's runs came in one piece; interleaved, both see it alike."""
    state = {"calls": 0}

    def work():
        state["calls"] += 1
        time.sleep(0.0005 if state["calls"] < 60 else 0.0015)

    timing = latency.interleaved({"a": work, "b": work}, runs=50, warmup=0, threads=1, energy_method="estimate")
    ratio = timing.latency_ratio("b", "a")
    assert ratio.verdict() == "no measurable difference", ratio


def test_interleaved_throughput_runs_every_model_in_every_round():
    calls = {"a": 0, "b": 0}
    speed = latency.interleaved_throughput({"a": sleeper(calls, "a", 0.001), "b": sleeper(calls, "b", 0.004)},
                                           batch_size=10, repeats=3)
    assert calls == {"a": 4, "b": 4} and speed["a"] > speed["b"] > 0


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


class Renewable:
    """A runner that counts its calls and renewals, as a LiteRT runner would swap interpreters."""

    def __init__(self):
        self.calls, self.renewals, self.log = 0, 0, []

    def renew(self):
        self.renewals += 1
        self.log.append("renew")

    def __call__(self):
        self.calls += 1
        self.log.append("call")


def test_interleaved_renews_a_renewable_runner_before_each_round_and_warms_it_up():
    runner = Renewable()
    timing = latency.interleaved({"renewed": runner, "plain": lambda: None}, runs=40, warmup=3, threads=1,
                                 energy_method="estimate")
    assert runner.renewals == timing.rounds == latency.MIN_ROUNDS
    assert runner.calls == 3 + timing.rounds * (1 + timing.block)
    # every round: a renewal, then one untimed call before the block's timed calls
    round_log = ["renew", "call"] + ["call"] * timing.block
    assert runner.log == ["call"] * 3 + round_log * timing.rounds


def test_a_counter_too_coarse_for_the_rounds_gives_no_energy_ratio(tmp_path, monkeypatch):
    """RAPL moves every millisecond and needs 100 updates; a round of a few calls is far shorter."""
    powercap(tmp_path)
    monkeypatch.setattr(latency.energy, "EnergyMeter", functools.partial(energy.EnergyMeter, powercap_root=tmp_path))
    timing = latency.interleaved({"a": lambda: None, "b": lambda: None}, runs=20, warmup=1, threads=1,
                                 energy_method="rapl")
    assert not timing.energy_reliable and timing.energy_method.endswith("rough: rounds too short for the counter")
    ratio = timing.energy_ratio("b", "a")
    assert ratio.verdict() == "not measurable" and str(ratio) == "not measurable (10 rounds)"


def test_a_round_that_read_no_energy_gives_no_ratio_rather_than_a_made_up_one():
    ones = np.ones((10, 1))
    zeros = latency.Interleaved({"a": ones, "b": ones}, {"a": np.zeros(10), "b": np.zeros(10)}, threads=1, warmup=0,
                                energy_method="estimated: test", energy_measured=False)
    assert zeros.energy_ratio("b", "a").verdict() == "not measurable"
    halved = dataclasses.replace(zeros, joules={"a": np.full(10, 2.0), "b": np.full(10, 1.0)})
    assert halved.energy_ratio("b", "a").median == 0.5
    assert halved.energy_ratio("b", "a").verdict(words=("less", "more")) == "less"
    too_short = dataclasses.replace(halved, energy_reliable=False)  # readings, but from rounds too short for a counter
    assert too_short.energy_ratio("b", "a").verdict() == "not measurable"
