"""Energy of a span of work, measured where the machine allows it, else estimated and labelled so.

Methods, in the order ``method="auto"`` tries them:

* ``"rapl"``: the CPU package energy counters Linux exposes under /sys/class/powercap
  (Intel; AMD Zen since kernel 5.8). They cover whole packages: other processes count too.
* ``"nvml"``: the total-energy counter of each NVIDIA GPU (Volta or newer), via nvidia-ml-py.
  They cover whole GPUs, and not the CPU.
* ``"estimate"``: CPU time of this process x a power per busy core. Not a measurement.

Every reading carries the method that produced it. Counters tick about every millisecond,
so measure many inferences in one span and divide (``reading.per(n)``).
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

WATTS_ENV_VAR = "EFFCOURSE_WATTS_PER_CORE"
# Rough power of one busy core: package TDP / core count, as the Green Algorithms calculator
# (Lannelongue et al., 2021) does. A 15 W 4-core laptop chip gives ~4 W, a 65 W 8-core desktop
# ~8 W, a 280 W 64-core server ~4.4 W. Set EFFCOURSE_WATTS_PER_CORE for your own CPU.
DEFAULT_WATTS_PER_CORE = 5.0

METHODS = ("rapl", "nvml", "estimate")
# What an estimate from CPU time cannot do, said wherever an estimate is shown.
ESTIMATE_LIMIT = ("proportional to CPU time: it cannot rank models whose power per core differs "
                  "(int8 against float32 SIMD work)")
_TITLES = {"rapl": "RAPL", "nvml": "NVML", "estimate": "estimate"}
_RAPL_ZONE = re.compile(r"(intel|amd)-rapl:(\d+)")  # top-level zones only, not intel-rapl:0:0

T = TypeVar("T")


class EnergyError(RuntimeError):
    """An energy method that cannot be used here; the message says why and what to do."""


class _Unavailable(Exception):
    """Why a method cannot be used on this machine (internal)."""


@dataclass(frozen=True)
class EnergyReading:
    """Energy of one measured span, with the method that produced it."""

    joules: float
    seconds: float  # wall time of the span
    method: str  # e.g. "measured: RAPL package", "estimated: CPU time x 5.0 W/core"
    measured: bool  # False for estimates

    @property
    def watts(self) -> float:
        """Average power over the span."""
        return self.joules / self.seconds if self.seconds > 0 else 0.0

    def per(self, n: int) -> float:
        """Joules per item when the span processed `n` items."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        return self.joules / n

    def __str__(self) -> str:
        return f"{self.joules:.3g} J over {self.seconds:.2f} s ({self.watts:.3g} W) [{self.method}]"


class _Counter:
    """An energy source: `read()` snapshots, `joules(start, end)` converts two snapshots."""

    label: str
    measured: bool = True
    description: str

    def open(self) -> None:
        """Prepare for reading (default: nothing to do)."""

    def close(self) -> None:
        """Release what `open` took (default: nothing)."""

    def read(self) -> Any:
        """A snapshot of the counter(s)."""
        raise NotImplementedError

    def joules(self, start: Any, end: Any) -> float:
        """Joules between two snapshots."""
        raise NotImplementedError


def _read_text(path: Path, fix: str = "") -> str:
    """The stripped text of a counter file; `fix` is added to a permission-denied reason."""
    try:
        return path.read_text().strip()
    except PermissionError:
        raise _Unavailable(f"permission denied on {path}{fix}") from None
    except OSError as exc:
        raise _Unavailable(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_int(path: Path, fix: str = "") -> int:
    text = _read_text(path, fix)
    try:
        return int(text)
    except ValueError:
        raise _Unavailable(f"{path} does not hold a whole number: {text!r}") from None


class _Rapl(_Counter):
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise _Unavailable(f"{root} absent (not Linux, or no powercap support)")
        try:
            entries = list(root.iterdir())
        except OSError as exc:
            raise _Unavailable(f"cannot list {root}: {exc.strerror or exc}") from None
        zones = []
        for zone in entries:
            match = _RAPL_ZONE.fullmatch(zone.name)
            if match and zone.is_dir() and _read_text(zone / "name").startswith("package"):
                zones.append((int(match.group(2)), zone))
        if not zones:
            raise _Unavailable(f"no package zone in {root} (virtual machine, or CPU without RAPL)")
        zones.sort()
        self._energy = [zone / "energy_uj" for _, zone in zones]
        paths = " ".join(map(str, self._energy))
        self._fix = (
            " (root-only on most distributions since 2020): "
            f"run `sudo chmod o+r {paths}` (lasts until reboot), or run as root"
        )
        self._ranges = [_read_int(zone / "max_energy_range_uj") for _, zone in zones]
        indices = "+".join(str(index) for index, _ in zones)
        self.label = "measured: RAPL package" + ("" if len(zones) == 1 else f"s {indices}")
        self.description = (
            f"measured by the RAPL energy counters of CPU package {indices} in {root}; they count "
            "the whole package (other processes too), not memory or GPU"
        )
        self.read()  # readable now, or _Unavailable with the reason

    def read(self) -> list[int]:
        return [_read_int(path, self._fix) for path in self._energy]

    def joules(self, start: list[int], end: list[int]) -> float:
        total = 0
        for first, last, span in zip(start, end, self._ranges):
            total += last - first if last >= first else last + span - first  # wrapped once
        return total / 1e6


class _Nvml(_Counter):
    def __init__(self, nvml: Any) -> None:
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError as exc:
                raise _Unavailable(f"nvidia-ml-py not installed ({exc})") from None
        self._nvml = nvml
        self.open()
        try:
            if not self._handles:
                raise _Unavailable("no NVIDIA GPU")
            self.read()
        finally:
            self.close()
        gpus = "+".join(str(index) for index in range(len(self._handles)))
        self.label = f"measured: NVML GPU {gpus}"
        self.description = (
            f"measured by the NVML energy counters of GPU {gpus}; they count the whole GPU "
            "(other processes too), not the CPU"
        )

    def open(self) -> None:
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise _Unavailable(f"no usable NVIDIA driver (nvmlInit: {exc})") from None
        try:
            count = nvml.nvmlDeviceGetCount()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(index) for index in range(count)]
        except nvml.NVMLError as exc:
            nvml.nvmlShutdown()
            raise _Unavailable(f"cannot list GPUs ({exc})") from None

    def close(self) -> None:
        self._nvml.nvmlShutdown()

    def read(self) -> list[int]:
        energies = []
        for index, handle in enumerate(self._handles):
            try:
                energies.append(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            except self._nvml.NVMLError as exc:
                raise _Unavailable(
                    f"GPU {index} has no readable energy counter ({exc}; it needs Volta or newer)"
                ) from None
        return energies

    def joules(self, start: list[int], end: list[int]) -> float:
        return sum(last - first for first, last in zip(start, end)) / 1e3  # millijoules


def _positive(value: Any) -> bool:
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


class _Estimate(_Counter):
    measured = False

    def __init__(self, watts_per_core: float | None) -> None:
        if watts_per_core is not None:
            source = "the watts_per_core argument"
        elif WATTS_ENV_VAR in os.environ:
            watts_per_core = os.environ[WATTS_ENV_VAR]
            if not _positive(watts_per_core):
                raise _Unavailable(
                    f"{WATTS_ENV_VAR}={watts_per_core!r} is not a positive number of watts per "
                    "core; set it to e.g. 5.0, or unset it"
                )
            source = WATTS_ENV_VAR
        else:
            watts_per_core = DEFAULT_WATTS_PER_CORE
            source = f"the default; set {WATTS_ENV_VAR} to your CPU's TDP / cores"
        self.watts = float(watts_per_core)
        watts = f"{self.watts:.1f}" if round(self.watts, 1) == self.watts else f"{self.watts:g}"
        self.label = f"estimated: CPU time x {watts} W/core"
        self.description = (
            f"estimated as the CPU time of this process (all its threads) x {watts} W per core "
            f"({source}); idle, memory and GPU power are left out, so compare it only with "
            f"other estimates, and it is {ESTIMATE_LIMIT}"
        )

    def read(self) -> float:
        return time.process_time()

    def joules(self, start: float, end: float) -> float:
        return (end - start) * self.watts


class EnergyMeter:
    """Context manager: `with EnergyMeter() as m: work()` then `m.reading`.

    method: "auto" (RAPL if readable, then NVML if a GPU is present, else the estimate),
    "rapl", "nvml" or "estimate"; a method that cannot be used raises EnergyError saying why.
    watts_per_core: power per busy core for the estimate (else EFFCOURSE_WATTS_PER_CORE,
    else DEFAULT_WATTS_PER_CORE). powercap_root, nvml: where RAPL counters live and an object
    with the pynvml API (default: pynvml, imported when needed); both are there for tests.
    """

    def __init__(
        self,
        method: str = "auto",
        *,
        watts_per_core: float | None = None,
        powercap_root: str | os.PathLike = "/sys/class/powercap",
        nvml: Any = None,
    ) -> None:
        if method != "auto" and method not in METHODS:
            raise ValueError(f"method must be 'auto' or one of {METHODS}, got {method!r}")
        if watts_per_core is not None and not _positive(watts_per_core):
            raise ValueError(f"watts_per_core must be a positive number, got {watts_per_core!r}")
        self.method = method
        self._watts_per_core = watts_per_core
        self._powercap_root = Path(powercap_root)
        self._nvml = nvml
        self._reasons: dict[str, str] = {}  # method -> why it cannot be used
        self._reading: EnergyReading | None = None
        for name in METHODS if method == "auto" else (method,):
            counter = self._probe(name)
            if counter is not None:
                self._chosen, self._counter = name, counter
                return
        reasons = reversed(self._reasons.items())  # the last method tried first
        raise EnergyError("; ".join(f"{_TITLES[n]} not available: {r}" for n, r in reasons))

    def _probe(self, name: str) -> _Counter | None:
        """The counter for method `name`, or None with the reason kept in `_reasons`."""
        try:
            if name == "rapl":
                return _Rapl(self._powercap_root)
            if name == "nvml":
                return _Nvml(self._nvml)
            return _Estimate(self._watts_per_core)
        except _Unavailable as exc:
            self._reasons[name] = str(exc)
            return None

    @property
    def method_label(self) -> str:
        """The label the readings will carry, e.g. "estimated: CPU time x 5.0 W/core"."""
        return self._counter.label

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
            if name not in self._reasons and self._probe(name) is not None:
                why = "auto prefers" if self.method == "auto" else f"method={self.method!r} asks for"
                why += " " + _TITLES[self._chosen]
                parts.append(f"{_TITLES[name]}: available, not used ({why}).")
            else:
                parts.append(f"{_TITLES[name]}: not available: {self._reasons[name]}.")
        return " ".join(parts)

    def _snapshot(self) -> Any:
        try:
            return self._counter.read()
        except _Unavailable as exc:
            raise EnergyError(f"{_TITLES[self._chosen]} failed while measuring: {exc}") from None

    def __enter__(self) -> EnergyMeter:
        self._reading = None
        try:
            self._counter.open()
        except _Unavailable as exc:
            raise EnergyError(f"{_TITLES[self._chosen]} not available: {exc}") from None
        try:
            self._start = self._snapshot()
        except EnergyError:
            self._counter.close()
            raise
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        seconds = time.perf_counter() - self._t0
        try:
            end = self._snapshot()
        finally:
            self._counter.close()
        self._reading = EnergyReading(
            joules=self._counter.joules(self._start, end),
            seconds=seconds,
            method=self.method_label,
            measured=self._counter.measured,
        )


def measure(
    fn: Callable[..., T], *args: Any, method: str = "auto", **kwargs: Any
) -> tuple[T, EnergyReading]:
    """Call `fn(*args, **kwargs)` inside an EnergyMeter; return its result and the reading."""
    with EnergyMeter(method) as meter:
        result = fn(*args, **kwargs)
    return result, meter.reading
