"""Test helpers for the energy meter: fake powercap trees (counter files in a folder) and a fake NVML."""
from __future__ import annotations

import time
from pathlib import Path

MAX_RANGE_UJ = 262_143_328_850  # a real Intel max_energy_range_uj
NOT_SUPPORTED, NO_PERMISSION, LIBRARY_NOT_FOUND = 3, 4, 12  # NVML error codes


def write_zone(path: Path, name: str, energy_uj: int, max_range: int = MAX_RANGE_UJ) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(name + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_range}\n")
    return path


def set_energy(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


def powercap(root: Path) -> dict[str, Path]:
    """A tree like a two-socket Intel machine's /sys/class/powercap, with the zones that must
    not be counted: subzones (nested and listed at top level, as sysfs does), psys, and the
    MMIO copy of package 0 that recent Intel laptops expose."""
    zones = {
        "pkg0": write_zone(root / "intel-rapl:0", "package-0", 1_000_000),
        "pkg1": write_zone(root / "intel-rapl:1", "package-1", 50_000_000),
        "psys": write_zone(root / "intel-rapl:2", "psys", 3_000_000),
        "core": write_zone(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 400_000),
        "top_core": write_zone(root / "intel-rapl:0:0", "core", 400_000),
        "mmio": write_zone(root / "intel-rapl-mmio:0", "package-0", 1_000_000),
    }
    (root / "intel-rapl").mkdir()  # the control type folder, not a zone
    return zones


class FakeNVML:
    """The few pynvml calls the meter uses. `energy_mj[i]` is GPU i's energy counter, set by the
    test; `power_mw` GPU i's power, a list or a function of (index, time.perf_counter()). Errors are
    NVML error codes (NOT_SUPPORTED, ...) raised by nvmlInit, the energy or the power call."""

    class NVMLError(Exception):
        NAMES = {NOT_SUPPORTED: "Not Supported", NO_PERMISSION: "Insufficient Permissions",
                 LIBRARY_NOT_FOUND: "NVML Shared Library Not Found"}

        def __init__(self, value):
            super().__init__(value)
            self.value = value

        def __str__(self):
            return self.NAMES[self.value]

    def __init__(self, energy_mj=(1_000, 20_000), power_mw=(50_000, 70_000), init_error=None,
                 energy_error=None, power_error=None):
        self.energy_mj = list(energy_mj)
        self.power_mw = power_mw
        self.init_error = init_error
        self.energy_error = energy_error
        self.power_error = power_error
        self.open = 0  # nvmlInit calls not yet matched by nvmlShutdown
        self.power_reads = 0

    def nvmlInit(self):
        if self.init_error:
            raise self.NVMLError(self.init_error)
        self.open += 1

    def nvmlShutdown(self):
        self.open -= 1

    def nvmlDeviceGetCount(self):
        return len(self.energy_mj)

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("gpu", index)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        if self.energy_error:
            raise self.NVMLError(self.energy_error)
        return self.energy_mj[handle[1]]

    def nvmlDeviceGetPowerUsage(self, handle):
        if self.power_error:
            raise self.NVMLError(self.power_error)
        self.power_reads += 1
        if callable(self.power_mw):
            return self.power_mw(handle[1], time.perf_counter())
        return self.power_mw[handle[1]]


NO_DRIVER = FakeNVML(init_error=LIBRARY_NOT_FOUND)


def busy(cpu_seconds: float) -> None:
    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        pass
