"""Timing inference: single-image latency (median and p95, warm-up excluded) and batch throughput."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

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
