"""Joules you can trust: the course's energy measurement method, built on the meter (`energy`).

One meter reading is not a measurement. A counter updates every millisecond (RAPL) to every
hundred milliseconds (NVML) and counts a whole CPU package or GPU, idle power and other
processes included; one window can be disturbed. So the method is:

1. warm-up: each piece of work runs untimed first (compilation, caches, clocks);
2. windows long enough for the counter: `window_s` of repeated work (10 s by default);
3. `repeats` windows per subject (at least 5), summarised by the median and the range;
4. idle: the same meter over a window of the same length with nothing running, in every
   repeat; net = gross - idle power x window. Gross and net are both reported;
5. several subjects in interleaved windows, in a new random order in every repeat (the idle
   window too), like latency; ratios to a reference per repeat, with a verdict;
6. every figure carries its method: "measured: RAPL package, net of idle", or "estimated: CPU
   time x 5.0 W/core, net of idle". An estimate counts this process's CPU time only, so its idle
   power is close to zero and it never sees the rest of the machine.

Joules per inference at a stated batch size come from `items_per_call` (images per call);
joules per training epoch from calls that each train `batch / training images` of an epoch.

Stdlib, numpy and the package's `energy` (with its `counters`), `stats` and `tabular` only: it runs where
TensorFlow does not.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from . import counters, energy, stats
from .tabular import TableDisplay

if TYPE_CHECKING:
    import pandas as pd

WINDOW_S = 10.0  # seconds of repeated work per window: long against every counter's update interval
REPEATS = 5
MIN_REPEATS = 5
IDLE = "idle"


@dataclass
class Subject:
    """What one subject did in every repeat: calls, seconds and gross joules of its windows, and
    the raw readings of the same repeats' idle windows (shared with its EnergyMeasurement)."""

    name: str
    items_per_call: float
    calls: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    gross_j: list[float] = field(default_factory=list)
    idle_j: list[float] = field(default_factory=list)
    idle_s: list[float] = field(default_factory=list)

    @property
    def idle_w(self) -> list[float]:
        """The idle power subtracted from each repeat's window: that repeat's idle window's."""
        return [j / s for j, s in zip(self.idle_j, self.idle_s)]

    @property
    def items(self) -> np.ndarray:
        return np.asarray(self.calls) * self.items_per_call

    @property
    def net_j(self) -> np.ndarray:
        """Gross joules minus the idle power of the same repeat over the window's length."""
        return np.asarray(self.gross_j) - np.asarray(self.idle_w) * np.asarray(self.seconds)

    def gross_per_item(self) -> np.ndarray:
        return np.asarray(self.gross_j) / self.items

    def net_per_item(self) -> np.ndarray:
        return self.net_j / self.items

    def items_per_second(self) -> np.ndarray:
        return self.items / np.asarray(self.seconds)


@dataclass(repr=False)
class EnergyMeasurement(TableDisplay):
    """Subjects measured together in interleaved windows, with idle power measured between them."""

    WIDTH = 120

    subjects: dict[str, Subject]
    idle_j: np.ndarray  # the idle windows' raw readings, one per repeat
    idle_s: np.ndarray
    unit: str  # what one item is: "inference", "image", "epoch"
    batch: int  # images per call (the batch size the figures hold for)
    window_s: float
    reference: str
    method: str  # the meter's label, e.g. "measured: RAPL package"
    measured: bool
    description: str  # the meter's explanation: what it counts, and why no other method was used
    notes: list[str] = field(default_factory=list)  # how many windows the meter flagged as too short, and why

    @property
    def repeats(self) -> int:
        return len(self.idle_j)

    @property
    def idle_w(self) -> np.ndarray:
        """Idle power per repeat: its idle window's joules over its seconds."""
        return np.asarray(self.idle_j) / np.asarray(self.idle_s)

    @property
    def net_label(self) -> str:
        return f"{self.method}, net of idle"

    def net_ratio(self, name: str) -> stats.Ratio:
        """`name`'s net joules per item over the reference's, one ratio per repeat."""
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = self.subjects[name].net_per_item() / self.subjects[self.reference].net_per_item()
        return stats.median_range(ratios)

    def table(self) -> "pd.DataFrame":
        """Per subject: gross and net millijoules per item (median and range over repeats), the
        net ratio to the reference (median and range over repeats) and its verdict, throughput, and the method."""
        import pandas as pd

        unit = f"mJ/{self.unit}"
        rows = []
        for name, s in self.subjects.items():
            net, gross = 1e3 * s.net_per_item(), 1e3 * s.gross_per_item()
            ratio = self.net_ratio(name)
            rows.append({
                "model": name,
                f"gross {unit}": _round(np.median(gross)),
                f"net {unit}": _round(np.median(net)),
                "net range": f"{_round(net.min())}-{_round(net.max())}",
                "net x ref": round(ratio.median, 3),
                "ratio range": f"{ratio.low:.2f}-{ratio.high:.2f}",
                "energy verdict": "reference" if name == self.reference else ratio.verdict(words=("less", "more")),
                f"{self.unit}s/s": _round(np.median(s.items_per_second())),
                "method": self.net_label,
            })
        return pd.DataFrame(rows).set_index("model")

    def conditions(self) -> str:
        """How the figures were measured (one paragraph)."""
        idle = f"idle {np.median(self.idle_w):.3g} W (range {self.idle_w.min():.3g}-{self.idle_w.max():.3g})"
        lengths = np.concatenate([s.seconds for s in self.subjects.values()])
        text = (f"{self.description} Method: {self.repeats} repeats of interleaved windows "
                f"of repeated work per model ({self.window_s:g} s asked, {lengths.min():.3g}-{lengths.max():.3g} s "
                f"measured), in a new random order each repeat, "
                f"with an idle window of the same length in each; {idle} subtracted (net), gross shown too; "
                f"batch size {self.batch}; ratios are to '{self.reference}' (median over repeats, with their range).")
        if not self.measured:
            text += f" An estimate, not a measurement: {energy.ESTIMATE_LIMIT}."
        return " ".join([text, *self.notes])

    def check(self) -> None:
        """Raise AssertionError unless the figures can be read: at least MIN_REPEATS repeats, an idle
        power measured in each, every subject's net energy above the idle's own spread over its
        window (else the work is too small for this counter), and every figure labelled."""
        assert self.repeats >= MIN_REPEATS, f"{self.repeats} repeats, fewer than {MIN_REPEATS}"
        assert np.all(np.isfinite(self.idle_w)) and np.all(self.idle_w >= 0), f"idle power {self.idle_w} W"
        idle_spread_w = float(self.idle_w.max() - self.idle_w.min())
        for s in self.subjects.values():
            floor = idle_spread_w * float(np.median(s.seconds))
            assert np.median(s.net_j) > floor, (
                f"{s.name}: net energy {np.median(s.net_j):.3g} J per window is not above the idle's spread "
                f"({floor:.3g} J): the work is too small for this counter; lengthen window_s or batch more")
        labels = self.table()["method"]
        assert all(label.startswith(("measured:", "estimated:")) for label in labels), "a figure has no method"

    def _shown(self) -> "pd.DataFrame":
        return self.table()


def _round(value: float) -> float:
    """Four significant figures."""
    value = float(value)
    return 0.0 if value == 0 or not math.isfinite(value) else round(value, 3 - int(math.floor(math.log10(abs(value)))))


def _calls_for(work: Callable[[], object], window_s: float, warmup_s: float) -> int:
    """Warm `work` up: one untimed call (compilation, first allocations), then about `warmup_s`
    of calls, whose pace gives how many calls fill a window."""
    work()
    start = time.perf_counter()
    calls = 0
    while calls == 0 or time.perf_counter() - start < warmup_s:
        work()
        calls += 1
    per_call = (time.perf_counter() - start) / calls
    return max(1, math.ceil(window_s / max(per_call, 1e-9)))


def measure_energy(works: Mapping[str, Callable[[], object]], *, items_per_call: float | Mapping[str, float] = 1,
                   unit: str = "inference", batch: int = 1, window_s: float = WINDOW_S, repeats: int = REPEATS,
                   warmup_s: float | None = None, reference: str | None = None,
                   meter: energy.EnergyMeter | None = None, method: str = "auto", seed: int = 0) -> EnergyMeasurement:
    """Measure the energy of each piece of work (name -> a call that does one batch) by the course's
    method: warm-up, interleaved windows of about `window_s` seconds, `repeats` of them, an idle
    window of the same length in every repeat, gross and net per item. A work that can `renew()`
    itself (a LiteRT model's `single_image_runner`) runs each window in a fresh interpreter.

    `items_per_call`: what one call does in `unit`s (e.g. 32 inferences, or 64/10000 of an epoch),
    one number or one per name. `meter`: an `energy.EnergyMeter` (default: `method`, "auto")."""
    if not works:
        raise ValueError("Nothing to measure: pass {name: callable}.")
    if IDLE in works:
        raise ValueError(f"{IDLE!r} names the idle windows; call the work something else.")
    if repeats < MIN_REPEATS:
        raise ValueError(f"At least {MIN_REPEATS} repeats are needed for a spread; got {repeats}.")
    if not counters.positive_number(window_s):
        raise ValueError(f"window_s must be positive and finite (seconds), got {window_s!r}")
    if warmup_s is not None and not (counters.positive_number(warmup_s) or warmup_s == 0):
        raise ValueError(f"warmup_s must be 0 or more seconds (finite), got {warmup_s!r}")
    reference = reference or next(iter(works))
    if reference not in works:
        raise KeyError(f"The reference {reference!r} is not one of {', '.join(works)}.")
    per_call = items_per_call if isinstance(items_per_call, Mapping) else {name: items_per_call for name in works}
    missing = [name for name in works if name not in per_call]
    if missing:
        raise ValueError(f"items_per_call has no figure for {', '.join(map(repr, missing))}: give one per work, "
                         "or one number for all.")
    for name in works:
        if not counters.positive_number(per_call[name]):
            raise ValueError(f"items_per_call must be a positive, finite number of {unit}s per call; "
                             f"got {per_call[name]!r} for {name!r}.")
    meter = meter or energy.EnergyMeter(method)
    idle_j, idle_s, short = [], [], []
    subjects = {name: Subject(name, float(per_call[name]), idle_j=idle_j, idle_s=idle_s) for name in works}
    calls = {name: _calls_for(work, window_s, window_s / 5 if warmup_s is None else warmup_s)
             for name, work in works.items()}
    order = np.random.default_rng(seed)
    names = [*works, IDLE]
    for _ in range(repeats):
        readings = {}
        for i in order.permutation(len(names)):
            name = names[i]
            if hasattr(works.get(name), "renew"):  # a fresh interpreter per window, warmed outside it
                works[name].renew()
                works[name]()
            with meter:
                if name == IDLE:
                    time.sleep(window_s)
                else:
                    for _ in range(calls[name]):
                        works[name]()
            readings[name] = meter.reading
            if not meter.reading.reliable:
                short.append(meter.reading)
        idle_j.append(readings[IDLE].joules)
        idle_s.append(readings[IDLE].seconds)
        for name, s in subjects.items():
            s.calls.append(calls[name])
            s.seconds.append(readings[name].seconds)
            s.gross_j.append(readings[name].joules)
    notes = [f"{len(short)} of {repeats * len(names)} windows were too short for the counter, e.g. {short[0].note}"] if short else []
    reading = readings[reference]
    return EnergyMeasurement(subjects, np.asarray(idle_j), np.asarray(idle_s), unit, batch, window_s, reference,
                             reading.method, reading.measured, meter.explain(), notes)
