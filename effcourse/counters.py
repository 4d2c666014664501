"""Where joules come from: the energy counters the meter reads, and the estimate where there are none.

Each source has a `label` ("measured: RAPL package", "estimated: CPU time x 5.0 W/core"), a
`measured` flag, a `description` (what it covers and misses), `update_s` (how often its counter
moves: a window shorter than ~100 updates is too short for it), `uncertainty` (a factor, for the
estimate; None for counters), and `open()` / `read()` / `joules(start, end)` / `close()`: the meter
opens the source, reads it at the start and end of a window, converts the two readings to joules
and closes it. A source that cannot be used here raises `Unavailable` with the reason and the fix.

* `Rapl`: the RAPL counters of Linux powercap: CPU packages, and their DRAM where exposed (Intel
  and AMD; AMD zones carry the same intel-rapl names, amd-rapl names are accepted too).
* `NvmlEnergy`: the total-energy counter of NVIDIA GPUs (Volta and later), through nvidia-ml-py.
  `NvmlPower`: older GPUs' power, sampled in a background thread and integrated. `nvml_counter`
  picks the first the GPUs allow.
* `Estimate`: CPU time of this process x a power per busy core. Not a measurement.

Standard library only, like energy.py: see energy.py for loading both without TensorFlow.
"""
from __future__ import annotations

import math
import os
import platform
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable

WATTS_ENV_VAR = "EFFCOURSE_WATTS_PER_CORE"
# Rough power of one busy core: package TDP / core count, the method of the Green Algorithms
# calculator (Lannelongue, Grealey & Inouye, Advanced Science 2021). A 15 W 4-core laptop chip
# gives ~4 W, a 65 W 8-core desktop ~8 W, a 280 W 64-core server ~4.4 W: 5 W sits among them.
DEFAULT_WATTS_PER_CORE = 5.0
# A core draws watts to tens of watts (a 180 W 8-core server chip: 22 W each): a figure above this
# is a typo, milliwatts or a whole machine's watts, and would make every estimate absurd.
MAX_WATTS_PER_CORE = 1000.0
# The estimate's uncertainty, as a factor: the energy is likely between figure / 2 and figure x 2
# (TDP is a design figure, and a core's real power depends on the CPU, its clock and the work).
ESTIMATE_UNCERTAINTY = 2.0
# What an estimate from CPU time cannot do, said wherever an estimate is shown.
ESTIMATE_LIMIT = ("proportional to CPU time: it cannot rank models whose power per core differs "
                  "(int8 against float32 SIMD work)")
WINDOWS_TICK_S = 0.0156  # the Windows clock tick (1/64 s) in which it counts a process's CPU time
POWER_SAMPLE_S = 0.1  # default interval of GPU power sampling where there is no energy counter

_PACKAGE_ZONE = re.compile(r"(intel|amd)-rapl:(\d+)")  # not intel-rapl:0:0, not intel-rapl-mmio:0
_NVML_NO_COUNTER = (3, 13)  # NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND


class Unavailable(Exception):
    """Why a source cannot be used on this machine, and what would make it usable."""


class Counter:
    """An energy source: `read()` snapshots, `joules(start, end)` converts two snapshots."""

    label: str
    description: str
    measured: bool = True
    update_s: float  # how often the counter moves, in seconds
    uncertainty: float | None = None  # a factor (estimates only)

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


def positive_number(value: Any) -> bool:
    """Is `value` (a number or its text) a finite number above zero?"""
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


# --- RAPL ---------------------------------------------------------------------------------


def _read_text(path: Path, denied: str = "") -> str:
    """The stripped text of a counter file; `denied` is added to a permission-denied reason."""
    try:
        return path.read_text().strip()
    except PermissionError:
        raise Unavailable(f"permission denied on {path}{denied}") from None
    except OSError as exc:
        raise Unavailable(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_int(path: Path, denied: str = "") -> int:
    text = _read_text(path, denied)
    try:
        return int(text)
    except ValueError:
        raise Unavailable(f"{path} does not hold a whole number: {text!r}") from None


def _no_powercap(root: Path) -> str:
    """Why there is no powercap folder on this platform, and where energy could come from."""
    system = platform.system()
    if system == "Linux":
        return (f"{root} absent: this Linux exposes no RAPL counters. In a virtual machine (most "
                "cloud instances; `systemd-detect-virt` tells) the hypervisor does not pass them "
                "through; on bare metal, load the driver with `sudo modprobe intel_rapl_msr` "
                "(it serves AMD CPUs too)")
    if system == "Darwin":
        return (f"{root} absent: macOS has no powercap; its energy counters are read by "
                "`powermetrics`, which needs sudo and which this meter does not run (see "
                "`sudo powermetrics --samplers cpu_power -n 1`)")
    if system == "Windows":
        return ("Windows has no powercap: RAPL is read there through a kernel driver, which the "
                "discontinued Intel Power Gadget provided and vendor tools (Intel PCM, AMD uProf) "
                "provide; this meter does not read them")
    return f"{root} absent: {system or 'this system'} has no Linux powercap interface"


def _permission_fix(root: Path, prefix: str, paths: Iterable[Path]) -> str:
    """Why RAPL is root-only, how an administrator opens it, and what that costs."""
    return (
        ": RAPL counters are readable by root only since Linux 5.10 and the distributions' kernel "
        "updates of November 2020, because their fine-grained readings leak what other programs "
        "compute (the PLATYPUS power side channel, CVE-2020-8694 and CVE-2020-8695). An "
        "administrator can open them to every local user, which reopens that side channel, so only "
        f"where you trust every local user: `sudo chmod o+r {' '.join(map(str, paths))}` lasts "
        f"until reboot; the line `z {root}/{prefix}:*/energy_uj 0444 - - -` in "
        "/etc/tmpfiles.d/rapl.conf applies it at every boot (and now, with "
        "`sudo systemd-tmpfiles --create /etc/tmpfiles.d/rapl.conf`). Or run as root"
    )


class Rapl(Counter):
    """The RAPL energy counters of every CPU package under `root`, plus their DRAM subzones.

    Never counted: psys (the platform, which contains the packages), core/uncore subzones (parts
    of a package) and intel-rapl-mmio (a second view of package 0)."""

    update_s = 0.001  # the counters update about every millisecond

    def __init__(self, root: str | os.PathLike = "/sys/class/powercap") -> None:
        root = Path(root)
        if not root.is_dir():
            raise Unavailable(_no_powercap(root))
        try:
            entries = sorted(root.iterdir())
        except OSError as exc:
            raise Unavailable(f"cannot list {root}: {exc.strerror or exc}") from None
        packages = []
        for zone in entries:
            match = _PACKAGE_ZONE.fullmatch(zone.name)
            if match and zone.is_dir() and _read_text(zone / "name").startswith("package"):
                packages.append((int(match.group(2)), match.group(1), zone))
        if not packages:
            raise Unavailable(f"no RAPL package zone in {root} (a virtual machine, or a CPU "
                              "without RAPL)")
        packages.sort()
        drams = [sub for _, _, zone in packages for sub in sorted(zone.iterdir())
                 if sub.name.startswith(zone.name + ":") and _read_text(sub / "name") == "dram"]
        zones = [zone for _, _, zone in packages] + drams
        self._energy = [zone / "energy_uj" for zone in zones]
        self._denied = _permission_fix(root, f"{packages[0][1]}-rapl", self._energy)
        self._ranges = [_read_int(zone / "max_energy_range_uj") for zone in zones]
        indices = "+".join(str(index) for index, _, _ in packages)
        self.label = "measured: RAPL package" + ("" if len(packages) == 1 else f"s {indices}")
        self.label += (" + DRAM" if len(packages) > 1 else "+DRAM") if drams else ""
        covers = "and their DRAM (memory)" if drams else "not memory (no DRAM zone exposed)"
        self.description = (
            f"measured by the RAPL energy counters of CPU package {indices} in {root}, "
            f"{covers}; they count the whole package (other processes too), not the GPU"
        )
        self.read()  # readable now, or Unavailable with the reason

    def read(self) -> list[int]:
        return [_read_int(path, self._denied) for path in self._energy]

    def joules(self, start: list[int], end: list[int]) -> float:
        total = 0
        for first, last, span in zip(start, end, self._ranges):
            total += last - first if last >= first else last + span - first  # wrapped once
        return total / 1e6


# --- NVML ---------------------------------------------------------------------------------


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError as exc:
        raise Unavailable(f"nvidia-ml-py not installed ({exc})") from None
    return pynvml


class _NoEnergyCounter(Unavailable):
    """A GPU without a total-energy counter (older than Volta): sample its power instead."""


class _NvmlGpus(Counter):
    """An NVML session (`open` to `close`) with the handles of the chosen GPUs."""

    def __init__(self, nvml: Any, gpus: Iterable[int] | None) -> None:
        self._nvml = nvml
        self._chosen = None if gpus is None else tuple(gpus)
        self._handles: dict[int, Any] = {}

    @property
    def gpus(self) -> str:
        """The GPUs read, as in labels: "0", "0+1"."""
        return "+".join(map(str, self._handles))

    def open(self) -> None:
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise Unavailable(f"no usable NVIDIA driver (nvmlInit: {exc})") from None
        try:
            count = nvml.nvmlDeviceGetCount()
            if count == 0:
                raise Unavailable("no NVIDIA GPU")
            indices = range(count) if self._chosen is None else self._chosen
            if not indices:
                raise Unavailable("gpus= chooses no GPU")
            absent = [index for index in indices if not 0 <= index < count]
            if absent:
                raise Unavailable(f"no GPU {absent[0]}: NVML sees {count} (0 to {count - 1})")
            self._handles = {index: nvml.nvmlDeviceGetHandleByIndex(index) for index in indices}
        except nvml.NVMLError as exc:
            nvml.nvmlShutdown()
            raise Unavailable(f"cannot list GPUs ({exc})") from None
        except Unavailable:
            nvml.nvmlShutdown()
            raise

    def close(self) -> None:
        self._nvml.nvmlShutdown()


class NvmlEnergy(_NvmlGpus):
    """The total-energy counters (millijoules since the driver loaded) of the chosen GPUs."""

    update_s = 0.1  # taken as 0.1 s: NVML does not state how often the counter moves

    def __init__(self, nvml: Any, gpus: Iterable[int] | None = None) -> None:
        super().__init__(nvml, gpus)
        self.open()
        try:
            self.read()
        finally:
            self.close()
        self.label = f"measured: NVML GPU {self.gpus}"
        self.description = (
            f"measured by the NVML energy counters of GPU {self.gpus}; they count the whole GPU "
            "(other processes too), not the CPU"
        )

    def read(self) -> list[int]:
        energies = []
        for index, handle in self._handles.items():
            try:
                energies.append(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
            except self._nvml.NVMLError as exc:
                if getattr(exc, "value", None) in _NVML_NO_COUNTER:
                    raise _NoEnergyCounter(f"GPU {index} has no energy counter ({exc}; it needs "
                                           "Volta or newer)") from None
                raise Unavailable(f"cannot read the energy counter of GPU {index} ({exc})") from None
        return energies

    def joules(self, start: list[int], end: list[int]) -> float:
        return sum(last - first for first, last in zip(start, end)) / 1e3  # millijoules


class NvmlPower(_NvmlGpus):
    """The power of the chosen GPUs, sampled every `interval` seconds by a background thread
    between `open` and `close` and integrated by the trapezoid rule; `read()` adds a sample."""

    def __init__(self, nvml: Any, gpus: Iterable[int] | None = None,
                 interval: float = POWER_SAMPLE_S, why: str = "") -> None:
        if not positive_number(interval):
            raise ValueError(f"the sampling interval must be a positive number, got {interval!r}")
        super().__init__(nvml, gpus)
        self.update_s = float(interval)
        super().open()
        try:
            self._watts()
        finally:
            super().close()
        self.label = f"measured: NVML GPU {self.gpus} power sampled every {self.update_s:g} s"
        self.description = (
            f"measured by sampling the power of GPU {self.gpus} through NVML every "
            f"{self.update_s:g} s and integrating it{f', because {why}' if why else ''}; it misses "
            "spikes between samples, counts the whole GPU (other processes too) and not the CPU"
        )

    def _watts(self) -> float:
        try:
            milliwatts = [self._nvml.nvmlDeviceGetPowerUsage(h) for h in self._handles.values()]
        except self._nvml.NVMLError as exc:
            raise Unavailable(f"cannot read the power of GPU {self.gpus} ({exc})") from None
        return sum(milliwatts) / 1e3

    def open(self) -> None:
        super().open()
        try:
            self._last = (time.perf_counter(), self._watts())
        except Unavailable:
            super().close()
            raise
        self._total, self._error = 0.0, None
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True,
                                        name="effcourse-gpu-power")
        self._thread.start()

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.update_s):
            try:
                self._sample()
            except Unavailable as exc:
                self._error = exc
                return

    def _sample(self) -> float:
        """Add the energy since the last sample (trapezoid rule); the joules so far."""
        with self._lock:
            now, watts = time.perf_counter(), self._watts()
            then, before = self._last
            self._total += (now - then) * (watts + before) / 2
            self._last = now, watts
            return self._total

    def read(self) -> float:
        if self._error is not None:
            raise self._error
        return self._sample()

    def joules(self, start: float, end: float) -> float:
        return end - start

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        super().close()


def nvml_counter(nvml: Any = None, gpus: Iterable[int] | None = None,
                 interval: float = POWER_SAMPLE_S) -> Counter:
    """The energy counters of the chosen GPUs (default all), or, where a GPU has none, their power
    sampled every `interval` seconds. `nvml`: an object with pynvml's API (default: pynvml)."""
    nvml = _import_pynvml() if nvml is None else nvml
    try:
        return NvmlEnergy(nvml, gpus)
    except _NoEnergyCounter as exc:
        try:
            return NvmlPower(nvml, gpus, interval, why=str(exc))
        except Unavailable as power:
            raise Unavailable(f"{exc}, and {power}") from None


# --- Estimate -----------------------------------------------------------------------------


class Estimate(Counter):
    """CPU time of this process (all its threads) x a power per busy core."""

    measured = False
    uncertainty = ESTIMATE_UNCERTAINTY

    def __init__(self, watts_per_core: float | None = None) -> None:
        # How often CPU time moves: Windows counts it in clock ticks of 15.6 ms; elsewhere a
        # scheduler tick of at most 10 ms, the coarsest common resolution.
        self.update_s = WINDOWS_TICK_S if sys.platform == "win32" else 0.01
        if watts_per_core is not None:
            source, setting = "the watts_per_core argument", f"watts_per_core={watts_per_core!r}"
        elif WATTS_ENV_VAR in os.environ:
            watts_per_core = os.environ[WATTS_ENV_VAR]
            source, setting = WATTS_ENV_VAR, f"{WATTS_ENV_VAR}={watts_per_core!r}"
            if not positive_number(watts_per_core):
                raise Unavailable(f"{setting} is not a positive number of watts per core; set it to e.g. 5.0, "
                                  "or unset it")
        else:
            watts_per_core, setting = DEFAULT_WATTS_PER_CORE, "the default"
            source = ("the default, TDP / cores of common CPUs as in the Green Algorithms "
                      f"calculator, Lannelongue et al. 2021; set {WATTS_ENV_VAR} to your CPU's "
                      "TDP / cores")
        self.watts = float(watts_per_core)
        if self.watts > MAX_WATTS_PER_CORE:
            raise Unavailable(f"{setting} is not a plausible power per core: no CPU core draws more than "
                              f"{MAX_WATTS_PER_CORE:,.0f} W (milliwatts, or a whole machine's watts?); give "
                              "your CPU's TDP / cores, e.g. 5.0")
        watts = f"{self.watts:.1f}" if round(self.watts, 1) == self.watts else f"{self.watts:g}"
        self.label = f"estimated: CPU time x {watts} W/core"
        self.description = (
            f"estimated as the CPU time of this process (all its threads) x {watts} W per core "
            f"({source}); uncertain by a factor of about {ESTIMATE_UNCERTAINTY:g} either way, "
            "since a core's real power depends on the CPU, its clock and the instructions run; "
            "idle, memory and GPU power are left out, so compare it only with other estimates, "
            f"and it is {ESTIMATE_LIMIT}"
        )

    def read(self) -> float:
        return time.process_time()

    def joules(self, start: float, end: float) -> float:
        return (end - start) * self.watts
