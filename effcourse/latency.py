"""Timing inference: single-image latency (median and p95, warm-up excluded), batch throughput,
and several models timed together in finely interleaved rounds, with the energy of each round.

Interleaving is what makes a comparison fair on a shared machine: every round times a short
block of runs of each model, in a new random order, so a slow spell of the machine (another
process, a frequency change) hits every model alike instead of one model's whole measurement.
A runner that can `renew()` itself (a LiteRT model's `single_image_runner`) gets a fresh
interpreter every round, so an interpreter's lucky or unlucky placement in memory and threads
counts as noise of the rounds rather than as the model's cost.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from . import energy, stats

BLOCK = 10  # timed runs of one model per round (fewer when there are not enough runs for MIN_ROUNDS)
MIN_ROUNDS = 10  # enough for a 95% interval of the median that leaves out the most extreme round


@dataclass(frozen=True)
class LatencyStats:
    """Single-image latency over many timed runs."""

    median_ms: float
    p95_ms: float
    runs: int
    warmup: int
    threads: int

    def __str__(self) -> str:
        return (
            f"{self.median_ms:.3f} ms median, {self.p95_ms:.3f} ms p95 "
            f"({self.runs} runs after {self.warmup} warm-up, {self.threads} threads)"
        )


def _at_least(minimum: int, **counts: int) -> None:
    """Refuse any of `counts` under `minimum`, by name."""
    for name, count in counts.items():
        if count < minimum:
            raise ValueError(f"{name} must be at least {minimum}, got {count}")


def time_calls(run: Callable[[], object], runs: int, warmup: int) -> np.ndarray:
    """Seconds each of `runs` calls of `run` took, after `warmup` untimed calls."""
    _at_least(1, runs=runs)
    _at_least(0, warmup=warmup)
    for _ in range(warmup):
        run()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        run()
        times[i] = time.perf_counter() - start
    return times


def latency(run: Callable[[], object], *, runs: int, warmup: int, threads: int) -> LatencyStats:
    """Median and 95th percentile of single-inference times (warm-up excluded)."""
    _at_least(1, threads=threads)
    times_ms = time_calls(run, runs, warmup) * 1e3
    return LatencyStats(float(np.median(times_ms)), float(np.percentile(times_ms, 95)), runs, warmup, threads)


@dataclass
class Interleaved:
    """Several models timed together: per model, the milliseconds of every timed run (rounds x
    block) and the joules per inference of every round, by one energy method."""

    times_ms: dict[str, np.ndarray]  # name -> (rounds, block) milliseconds
    joules: dict[str, np.ndarray]  # name -> (rounds,) joules per inference
    threads: int
    warmup: int
    energy_method: str  # the label of the energy readings, "measured: ..." or "estimated: ..."
    energy_measured: bool
    energy_reliable: bool = True  # every round long enough for the counter (checked for counters, not estimates)

    @property
    def rounds(self) -> int:
        return next(iter(self.times_ms.values())).shape[0]

    @property
    def block(self) -> int:
        """Timed runs of each model per round."""
        return next(iter(self.times_ms.values())).shape[1]

    @property
    def runs(self) -> int:
        """Timed runs per model."""
        return next(iter(self.times_ms.values())).size

    def stats(self, name: str) -> LatencyStats:
        """Median and p95 over every timed run of one model."""
        t = self.times_ms[name].ravel()
        return LatencyStats(float(np.median(t)), float(np.percentile(t, 95)), t.size, self.warmup, self.threads)

    def joules_per_inference(self, name: str) -> float:
        return float(np.mean(self.joules[name]))

    def latency_ratio(self, name: str, reference: str) -> stats.Ratio:
        """`name`'s latency over `reference`'s, one ratio of block medians per round."""
        per_round = np.median(self.times_ms[name], axis=1) / np.median(self.times_ms[reference], axis=1)
        return stats.median_interval(per_round)

    def energy_ratio(self, name: str, reference: str) -> stats.Ratio:
        """`name`'s energy per inference over `reference`'s, one ratio per round; not a number
        (verdict "not measurable") where the rounds were too short for the counter."""
        with np.errstate(divide="ignore", invalid="ignore"):
            per_round = self.joules[name] / self.joules[reference]
        if not self.energy_reliable or not np.all(np.isfinite(per_round) & (per_round > 0)):
            return stats.Ratio(np.nan, np.nan, np.nan, self.rounds)  # rounds too short for the counter, or a round read 0 J: no ratio
        return stats.median_interval(per_round)


def interleaved(runners: Mapping[str, Callable[[], object]], *, runs: int, warmup: int, threads: int,
                block: int = BLOCK, energy_method: str = "cpu", seed: int = 0) -> Interleaved:
    """Time single inferences of several models together: each model warms up (`warmup` calls),
    then in each of runs // block rounds (at least MIN_ROUNDS, with smaller blocks if need be)
    every model, in a new random order, is renewed if it can be (`run.renew()`), makes one untimed
    call (its caches refill after the switch) and `block` timed calls, inside an energy meter
    window (`energy_method` "cpu": RAPL if readable, else the estimate). Returns every time and every
    round's energy, per model. A counter's round of a few milliseconds is far shorter than it needs
    (energy.MIN_UPDATES updates), so with a counter the energy ratios come out "not measurable" and
    the mean joules are labelled rough: `joules.measure_energy` measures energy in long windows."""
    if not runners:
        raise ValueError("No models to time.")
    _at_least(1, runs=runs, block=block, threads=threads)
    _at_least(0, warmup=warmup)
    rounds = max(MIN_ROUNDS, runs // block)
    block = max(1, runs // rounds)
    names = list(runners)
    meter = energy.EnergyMeter(energy_method)
    times = {name: np.empty((rounds, block)) for name in names}
    joules = {name: np.empty(rounds) for name in names}
    reliable = True
    for name in names:
        for _ in range(warmup):
            runners[name]()
    order = np.random.default_rng(seed)
    for r in range(rounds):
        for i in order.permutation(len(names)):
            name, run = names[i], runners[names[i]]
            if hasattr(run, "renew"):  # a fresh interpreter each round (see litert.SingleImageRunner)
                run.renew()
            run()
            row = times[name][r]
            with meter:
                for j in range(block):
                    start = time.perf_counter()
                    run()
                    row[j] = time.perf_counter() - start
            joules[name][r] = meter.reading.per(block)
            reliable = reliable and (meter.reading.reliable or not meter.reading.measured)
    label = meter.method_label if reliable else f"{meter.method_label}, rough: rounds too short for the counter"
    return Interleaved({n: t * 1e3 for n, t in times.items()}, joules, threads, warmup,
                       label, meter.reading.measured, reliable)


def interleaved_throughput(batch_runners: Mapping[str, Callable[[], object]], batch_size: int,
                           repeats: int = 3) -> dict[str, float]:
    """Images per second of each model in batches of `batch_size`, best of `repeats` rounds in
    which every model runs one timed batch (after one warm-up batch each)."""
    _at_least(1, batch_size=batch_size, repeats=repeats)
    for run in batch_runners.values():
        run()
    best = {name: np.inf for name in batch_runners}
    for _ in range(repeats):
        for name, run in batch_runners.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: batch_size / seconds for name, seconds in best.items()}
