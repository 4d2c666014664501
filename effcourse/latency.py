"""Timing inference: single-image latency (median and p95, warm-up excluded), batch throughput,
and several models timed side by side in interleaved rounds."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np


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


def time_calls(run: Callable[[], object], runs: int, warmup: int) -> np.ndarray:
    """Seconds each of `runs` calls of `run` took, after `warmup` untimed calls."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
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
    times_ms = time_calls(run, runs, warmup) * 1e3
    return LatencyStats(float(np.median(times_ms)), float(np.percentile(times_ms, 95)), runs, warmup, threads)


def throughput(run_batch: Callable[[], object], batch_size: int, *, repeats: int = 3) -> float:
    """Images per second of `run_batch` (one batch of `batch_size` images), best of `repeats` after one warm-up."""
    seconds = time_calls(run_batch, repeats, warmup=1).min()
    return batch_size / seconds


def keras_runner(model, images: np.ndarray) -> Callable[[], np.ndarray]:
    """A no-argument callable running `model` on `images` as one compiled graph call."""
    import tensorflow as tf

    call = tf.function(lambda x: model(x, training=False))
    x = tf.constant(np.asarray(images, dtype=np.float32))
    call(x)  # trace once, outside any timing
    return lambda: call(x).numpy()


def interleaved(runners: Mapping[str, Callable[[], object]], *, runs: int, warmup: int, threads: int,
                rounds: int = 5):
    """Single-image latency of several models measured side by side: in each of `rounds` rounds every
    runner is timed in turn, so a slow spell of a shared machine hits every model alike. Per model:
    the median over rounds of each round's median (and p95); `vs first`, its latency over the first
    model's; and the lowest and highest ratio of any single round: a ratio whose range includes 1 is
    no measurable difference. A DataFrame indexed by model; attrs hold threads, rounds and runs."""
    import pandas as pd

    if not runners:
        raise ValueError("No models to time.")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    medians = {name: [] for name in runners}
    p95s = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            stats = latency(run, runs=runs, warmup=warmup, threads=threads)
            medians[name].append(stats.median_ms)
            p95s[name].append(stats.p95_ms)
    first = np.asarray(medians[next(iter(runners))])
    rows = []
    for name in runners:
        ratios = np.asarray(medians[name]) / first
        rows.append({"model": name, "latency ms": round(float(np.median(medians[name])), 3),
                     "p95 ms": round(float(np.median(p95s[name])), 3),
                     "vs first": round(float(np.median(medians[name]) / np.median(first)), 2),
                     "lowest round": round(float(ratios.min()), 2), "highest round": round(float(ratios.max()), 2)})
    table = pd.DataFrame(rows).set_index("model")
    table.attrs.update(threads=threads, rounds=rounds, runs=runs)
    return table


def speed_verdict(row, margin: float = 0.05) -> str:
    """'faster', 'slower' or 'no measurable difference' than the first model, from an `interleaved`
    row: faster or slower only if every round says so by more than `margin` (5%: what two runs of
    one model can differ by on a shared machine)."""
    if row["highest round"] < 1 - margin:
        return "faster"
    if row["lowest round"] > 1 + margin:
        return "slower"
    return "no measurable difference"
