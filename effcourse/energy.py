"""Energy of a span of work, measured where the machine allows it, else estimated and labelled so.

Methods, in the order ``method="auto"`` tries them (the sources live in counters.py);
``method="cpu"`` tries RAPL, then the estimate, for work that runs on the CPU (LiteRT inference),
which a GPU's counter would not see:

* ``"rapl"``: the CPU package (and DRAM) energy counters Linux exposes under /sys/class/powercap
  (Intel; AMD Zen in powercap since kernel 5.11). They cover whole packages: other processes count too.
* ``"nvml"``: the total-energy counter of each NVIDIA GPU (Volta or newer), via nvidia-ml-py;
  for older GPUs their power, sampled and integrated. They cover whole GPUs, and not the CPU.
* ``"estimate"``: CPU time of this process x a power per busy core. Not a measurement.

Every reading carries the method that produced it, and says when its window was too short for the
counter (``reading.reliable``): counters move in steps, so measure many inferences in one window
and divide (``reading.per(n)``). A counter that does not move over a window of more than a second
raises EnergyError rather than report 0 J.

This module and counters.py use the standard library only, so a machine without TensorFlow (a GPU
server) can load them without effcourse/__init__.py, through a stand-in package named as you like:

    import sys, types
    meter = types.ModuleType("meter")
    meter.__path__ = ["path/to/effcourse"]  # the folder holding energy.py and counters.py
    sys.modules["meter"] = meter
    from meter import energy                # loads counters.py too; effcourse/__init__ never runs
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from . import counters
from .counters import DEFAULT_WATTS_PER_CORE, ESTIMATE_LIMIT, POWER_SAMPLE_S, WATTS_ENV_VAR

__all__ = ["AUTO_ORDERS", "DEFAULT_WATTS_PER_CORE", "ESTIMATE_LIMIT", "METHODS", "MIN_UPDATES", "STUCK_AFTER_S",
           "WATTS_ENV_VAR", "EnergyError", "EnergyMeter", "EnergyReading"]

METHODS = ("rapl", "nvml", "estimate")
# The methods "auto" and "cpu" try, in order: "cpu" skips NVML, which counts a GPU, not the CPU.
AUTO_ORDERS = {"auto": METHODS, "cpu": ("rapl", "estimate")}
# A window should span at least this many counter updates: each end of it can be off by one
# update, so 100 updates keep that error within 2% of the reading.
MIN_UPDATES = 100
# A measured counter that has not moved over a window longer than this is stuck, not idle.
STUCK_AFTER_S = 1.0
_TITLES = {"rapl": "RAPL", "nvml": "NVML", "estimate": "estimate"}


class EnergyError(RuntimeError):
    """An energy method that cannot be used here; the message says why and what to do."""


@dataclass(frozen=True)
class EnergyReading:
    """Energy of one measured span, with the method that produced it."""

    joules: float
    seconds: float  # wall time of the span
    method: str  # e.g. "measured: RAPL package", "estimated: CPU time x 5.0 W/core"
    measured: bool  # False for estimates
    update_s: float = 0.0  # how often the counter moves (0: not stated)

    @property
    def watts(self) -> float:
        """Average power over the span."""
        return self.joules / self.seconds if self.seconds > 0 else 0.0

    @property
    def reliable(self) -> bool:
        """Was the span long enough for the counter (at least MIN_UPDATES of its updates)?"""
        return self.seconds >= MIN_UPDATES * self.update_s

    @property
    def note(self) -> str:
        """Why the reading is not reliable; empty when it is."""
        if self.reliable:
            return ""
        return (f"the window ({self.seconds:.3g} s) is shorter than {MIN_UPDATES} updates of this "
                f"counter ({MIN_UPDATES} x {self.update_s:g} s = {MIN_UPDATES * self.update_s:g} s), "
                "so its steps alone can be more than 2% of the reading: repeat the work inside "
                "one longer window")

    def per(self, n: int) -> float:
        """Joules per item when the span processed `n` items."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        return self.joules / n

    def __str__(self) -> str:
        text = f"{self.joules:.3g} J over {self.seconds:.2f} s ({self.watts:.3g} W) [{self.method}]"
        return text if self.reliable else f"{text} (window too short for the counter)"


class EnergyMeter:
    """Context manager: `with EnergyMeter() as m: work()` then `m.reading`.

    method: "auto" (RAPL if readable, then NVML if a GPU is present, else the estimate), "cpu"
    (RAPL, else the estimate: for work on the CPU), "rapl", "nvml" or "estimate"; a method that
    cannot be used raises EnergyError saying why.
    watts_per_core: power per busy core for the estimate (else EFFCOURSE_WATTS_PER_CORE,
    else DEFAULT_WATTS_PER_CORE). gpus: the GPU indices NVML reads (default all);
    sample_interval_s: how often a GPU without an energy counter has its power sampled.
    powercap_root, nvml: where RAPL counters live and an object with the pynvml API (default:
    pynvml, imported when needed); both are there for tests.
    """

    def __init__(
        self,
        method: str = "auto",
        *,
        watts_per_core: float | None = None,
        powercap_root: str | os.PathLike = "/sys/class/powercap",
        nvml: Any = None,
        gpus: Iterable[int] | None = None,
        sample_interval_s: float = POWER_SAMPLE_S,
    ) -> None:
        if method not in AUTO_ORDERS and method not in METHODS:
            raise ValueError(f"method must be one of {(*AUTO_ORDERS, *METHODS)}, got {method!r}")
        if watts_per_core is not None and not counters.positive_number(watts_per_core):
            raise ValueError(f"watts_per_core must be a positive number, got {watts_per_core!r}")
        if gpus is not None:
            gpus = tuple(gpus)
            if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in gpus):
                raise ValueError(f"gpus must be GPU indices (whole numbers from 0), got {gpus!r}")
        if not counters.positive_number(sample_interval_s):
            raise ValueError(f"sample_interval_s must be a positive number, got {sample_interval_s!r}")
        self.method = method
        self._sources: dict[str, Callable[[], counters.Counter]] = {
            "rapl": lambda: counters.Rapl(powercap_root),
            "nvml": lambda: counters.nvml_counter(nvml, gpus, sample_interval_s),
            "estimate": lambda: counters.Estimate(watts_per_core),
        }
        self._reasons: dict[str, str] = {}  # method -> why it cannot be used
        self._reading: EnergyReading | None = None
        for name in AUTO_ORDERS.get(method, (method,)):
            counter = self._probe(name)
            if counter is not None:
                self._chosen, self._counter = name, counter
                return
        reasons = reversed(self._reasons.items())  # the last method tried first
        raise EnergyError("; ".join(f"{_TITLES[n]} not available: {r}" for n, r in reasons))

    def _probe(self, name: str) -> counters.Counter | None:
        """The counter for method `name`, or None with the reason kept in `_reasons`."""
        try:
            return self._sources[name]()
        except counters.Unavailable as exc:
            self._reasons[name] = str(exc)
            return None

    @property
    def method_label(self) -> str:
        """The label the readings will carry, e.g. "estimated: CPU time x 5.0 W/core"."""
        return self._counter.label

    @property
    def update_s(self) -> float:
        """How often the counter moves, in seconds: windows need MIN_UPDATES of these."""
        return self._counter.update_s

    @property
    def uncertainty(self) -> float | None:
        """For an estimate, its uncertainty as a factor (2.0: between half and twice the
        figure); None for counters."""
        return self._counter.uncertainty

    @property
    def reading(self) -> EnergyReading:
        """The reading of the last completed `with` block."""
        if self._reading is None:
            raise EnergyError("no reading yet: read it after the `with EnergyMeter() as m:` block")
        return self._reading

    def explain(self) -> str:
        """One paragraph: the method used, and why each other one is not."""
        parts = [f"Energy is {self._counter.description} [{self.method_label}]."]
        for name in METHODS:
            if name == self._chosen:
                continue
            if self.method in AUTO_ORDERS and name not in AUTO_ORDERS[self.method]:
                parts.append(f"{_TITLES[name]}: not used (method={self.method!r} measures work on the CPU, "
                             "which a GPU's counter does not count).")
            elif name not in self._reasons and self._probe(name) is not None:
                why = f"{self.method} prefers" if self.method in AUTO_ORDERS else f"method={self.method!r} asks for"
                why += " " + _TITLES[self._chosen]
                parts.append(f"{_TITLES[name]}: available, not used ({why}).")
            else:
                parts.append(f"{_TITLES[name]}: not available: {self._reasons[name]}.")
        return " ".join(parts)

    def _snapshot(self) -> Any:
        try:
            return self._counter.read()
        except counters.Unavailable as exc:
            raise EnergyError(f"{_TITLES[self._chosen]} failed while measuring: {exc}") from None

    def __enter__(self) -> EnergyMeter:
        self._reading = None
        try:
            self._counter.open()
        except counters.Unavailable as exc:
            raise EnergyError(f"{_TITLES[self._chosen]} not available: {exc}") from None
        try:
            self._start = self._snapshot()
        except EnergyError:
            self._counter.close()
            raise
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, *exc_info: Any) -> None:
        seconds = time.perf_counter() - self._t0
        try:
            end = self._snapshot()
        finally:
            self._counter.close()
        joules = self._counter.joules(self._start, end)
        if self._counter.measured and joules == 0 and seconds > STUCK_AFTER_S:
            if exc_type is None:  # else let the block's own exception through
                raise EnergyError(
                    f"the {self.method_label.removeprefix('measured: ')} counter did not advance "
                    f"over {seconds:.1f} s: a stuck counter, or one a virtual machine exposes but "
                    "does not update; measure on bare metal, or use method='estimate'"
                )
            return
        self._reading = EnergyReading(
            joules=joules,
            seconds=seconds,
            method=self.method_label,
            measured=self._counter.measured,
            update_s=self._counter.update_s,
        )
