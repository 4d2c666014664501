"""Energy meter: each method driven through fake counters (powercap files, an NVML stand-in)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from effcourse.energy import (
    DEFAULT_WATTS_PER_CORE,
    WATTS_ENV_VAR,
    EnergyError,
    EnergyMeter,
    EnergyReading,
    measure,
)

REPO = Path(__file__).resolve().parents[1]
MAX_RANGE_UJ = 262_143_328_850  # a real Intel max_energy_range_uj


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
    """The few pynvml calls the meter uses; `energy_mj[i]` is GPU i's counter, set by the test."""

    class NVMLError(Exception):
        pass

    def __init__(self, energy_mj=(1_000, 20_000), init_error=None, energy_error=None):
        self.energy_mj = list(energy_mj)
        self.init_error = init_error
        self.energy_error = energy_error
        self.open = 0  # nvmlInit calls not yet matched by nvmlShutdown

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


NO_DRIVER = FakeNVML(init_error="NVML Shared Library Not Found")


def busy(cpu_seconds: float) -> None:
    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        pass


# --- RAPL ---------------------------------------------------------------------------------


def test_rapl_sums_packages_and_nothing_else(tmp_path):
    zones = powercap(tmp_path)
    meter = EnergyMeter("rapl", powercap_root=tmp_path)
    with meter:
        set_energy(zones["pkg0"], 1_000_000 + 1_500_000)
        set_energy(zones["pkg1"], 50_000_000 + 2_500_000)
        for other in ("psys", "core", "top_core", "mmio"):  # would add 9 J if counted
            set_energy(zones[other], 9_000_000 + 10_000_000)
    reading = meter.reading
    assert reading.joules == pytest.approx(4.0)
    assert reading.measured is True
    assert reading.method == meter.method_label == "measured: RAPL packages 0+1"
    assert reading.seconds > 0


def test_rapl_counter_wraparound(tmp_path):
    zone = write_zone(tmp_path / "intel-rapl:0", "package-0", 0, max_range=10_000_000)
    set_energy(zone, 9_000_000)
    with EnergyMeter("rapl", powercap_root=tmp_path) as meter:
        set_energy(zone, 500_000)  # 1 J to the top of the range, then 0.5 J past zero
    assert meter.reading.joules == pytest.approx(1.5)
    assert meter.reading.method == "measured: RAPL package"


def test_rapl_accepts_amd_zone_names(tmp_path):
    zone = write_zone(tmp_path / "amd-rapl:0", "package-0", 7_000_000)
    with EnergyMeter("rapl", powercap_root=tmp_path) as meter:
        set_energy(zone, 9_000_000)
    assert meter.reading.joules == pytest.approx(2.0)


@pytest.mark.parametrize(
    "build, reason",
    [
        (lambda root: None, "absent"),
        (lambda root: write_zone(root / "intel-rapl:0", "psys", 0), "no package zone"),
    ],
    ids=["no-powercap", "no-package-zone"],
)
def test_rapl_missing_is_explained(tmp_path, build, reason):
    root = tmp_path / "powercap"
    if reason != "absent":
        root.mkdir()
    build(root)
    with pytest.raises(EnergyError, match=f"RAPL not available: .*{reason}"):
        EnergyMeter("rapl", powercap_root=root)
    meter = EnergyMeter(powercap_root=root, nvml=NO_DRIVER)
    assert meter.method_label.startswith("estimated:")
    assert reason in meter.explain()


def test_unreadable_counter_falls_through_to_next_method(tmp_path):
    # A counter that cannot be read, in a way root cannot read either: energy_uj is a folder
    # (IsADirectoryError). Covers the general "counter unreadable" path; the permission-denied
    # message and its fix are covered by the next test.
    zone = write_zone(tmp_path / "intel-rapl:0", "package-0", 0)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()
    with pytest.raises(EnergyError, match=r"RAPL not available: cannot read .*energy_uj"):
        EnergyMeter("rapl", powercap_root=tmp_path)
    nvml = FakeNVML()
    meter = EnergyMeter(powercap_root=tmp_path, nvml=nvml)
    assert meter.method_label == "measured: NVML GPU 0+1"
    assert f"RAPL: not available: cannot read {zone / 'energy_uj'}" in meter.explain()


PERMISSION_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from effcourse.energy import EnergyError, EnergyMeter

class NoDriver:
    class NVMLError(Exception):
        pass
    def nvmlInit(self):
        raise self.NVMLError("no driver")

try:
    open(sys.argv[3]).read()
    readable = True
except PermissionError:
    readable = False
meter = EnergyMeter(powercap_root=sys.argv[2], nvml=NoDriver())
try:
    EnergyMeter("rapl", powercap_root=sys.argv[2])
    error = None
except EnergyError as exc:
    error = str(exc)
print(json.dumps({"readable": readable, "label": meter.method_label,
                  "explain": meter.explain(), "error": error}))
"""


def test_permission_denied_is_explained_with_the_fix(tmp_path):
    # A real EACCES on a mode-000 energy_uj, as on distributions since 2020. Root reads such
    # files anyway, so as root the check runs in a new user namespace (`unshare --user`), where
    # root's override of file permissions no longer applies to these files.
    zone = write_zone(tmp_path / "intel-rapl:0", "package-0", 1_000)
    counter = zone / "energy_uj"
    counter.chmod(0)
    command = [sys.executable, "-c", PERMISSION_SCRIPT, str(REPO), str(tmp_path), str(counter)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        unshare = shutil.which("unshare")
        if unshare is None:
            pytest.skip("running as root (reads mode-000 files) and no `unshare` to drop that")
        command = [unshare, "--user", *command]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        counter.chmod(0o644)
    if proc.returncode != 0 and proc.stderr.startswith("unshare:"):
        pytest.skip(f"running as root and cannot drop root's file access: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    if result["readable"]:
        pytest.skip("this process reads mode-000 files (it has CAP_DAC_OVERRIDE)")
    fix = f"sudo chmod o+r {counter}"
    assert result["label"].startswith("estimated:")
    assert f"RAPL: not available: permission denied on {counter}" in result["explain"]
    assert fix in result["explain"]
    assert result["error"].startswith(f"RAPL not available: permission denied on {counter}")
    assert fix in result["error"]


# --- NVML ---------------------------------------------------------------------------------


def test_nvml_sums_gpus_and_shuts_down(tmp_path):
    nvml = FakeNVML(energy_mj=(1_000, 20_000))
    with EnergyMeter("nvml", nvml=nvml) as meter:
        assert nvml.open == 1
        nvml.energy_mj[0] += 2_000
        nvml.energy_mj[1] += 30_500
    assert nvml.open == 0
    assert meter.reading.joules == pytest.approx(32.5)
    assert meter.reading.method == "measured: NVML GPU 0+1"
    assert meter.reading.measured is True


def test_nvml_shuts_down_when_the_block_raises():
    nvml = FakeNVML(energy_mj=(0,))
    meter = EnergyMeter("nvml", nvml=nvml)
    with pytest.raises(ZeroDivisionError), meter:
        nvml.energy_mj[0] = 4_000
        1 / 0
    assert nvml.open == 0
    assert meter.reading.joules == pytest.approx(4.0)
    assert meter.reading.method == "measured: NVML GPU 0"


@pytest.mark.parametrize(
    "nvml, reason",
    [
        (NO_DRIVER, "no usable NVIDIA driver (nvmlInit: NVML Shared Library Not Found)"),
        (FakeNVML(energy_mj=()), "no NVIDIA GPU"),
        (FakeNVML(energy_error="Not Supported"), "GPU 0 has no readable energy counter (Not Sup"),
    ],
    ids=["no-driver", "no-gpu", "no-energy-counter"],
)
def test_nvml_unavailable_is_explained(tmp_path, nvml, reason):
    with pytest.raises(EnergyError) as error:
        EnergyMeter("nvml", nvml=nvml)
    assert str(error.value).startswith(f"NVML not available: {reason}")
    meter = EnergyMeter(powercap_root=tmp_path / "absent", nvml=nvml)
    assert meter.method_label.startswith("estimated:")
    assert f"NVML: not available: {reason}" in meter.explain()
    assert nvml.open == 0


# --- Estimate -----------------------------------------------------------------------------


def test_estimate_is_cpu_time_times_watts_per_core():
    meter = EnergyMeter("estimate", watts_per_core=7.25)
    start = time.process_time()
    with meter:
        busy(0.2)
    cpu = time.process_time() - start
    reading = meter.reading
    assert reading.method == "estimated: CPU time x 7.25 W/core"
    assert reading.measured is False
    assert reading.joules == pytest.approx(cpu * 7.25, rel=0.1)
    assert reading.joules >= 0.2 * 7.25
    assert "7.25 W per core (the watts_per_core argument)" in meter.explain()


def test_estimate_default_and_env_override(monkeypatch):
    monkeypatch.delenv(WATTS_ENV_VAR, raising=False)
    default = EnergyMeter("estimate").method_label
    assert default == f"estimated: CPU time x {DEFAULT_WATTS_PER_CORE:.1f} W/core"
    monkeypatch.setenv(WATTS_ENV_VAR, "12")
    meter = EnergyMeter("estimate")
    assert meter.method_label == "estimated: CPU time x 12.0 W/core"
    assert WATTS_ENV_VAR in meter.explain()
    with meter:
        busy(0.05)
    assert meter.reading.joules >= 0.05 * 12
    assert EnergyMeter("estimate", watts_per_core=3).method_label.endswith("x 3.0 W/core")


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "inf", ""])
def test_bad_env_value_names_variable_and_value(tmp_path, monkeypatch, value):
    monkeypatch.setenv(WATTS_ENV_VAR, value)
    expected = f"{WATTS_ENV_VAR}={value!r} is not a positive number"
    with pytest.raises(EnergyError, match=expected.replace("(", r"\(")):
        EnergyMeter("estimate")
    with pytest.raises(EnergyError) as error:  # auto: nothing left to fall back on
        EnergyMeter(powercap_root=tmp_path / "absent", nvml=NO_DRIVER)
    assert str(error.value).startswith(f"estimate not available: {expected}")
    assert "RAPL not available:" in str(error.value)


@pytest.mark.parametrize("value", [0, -2.0, float("nan"), "five"])
def test_bad_watts_argument(value):
    with pytest.raises(ValueError, match="watts_per_core"):
        EnergyMeter("estimate", watts_per_core=value)


# --- Choice, explanation, readings --------------------------------------------------------


def test_auto_prefers_rapl_then_nvml_then_estimate(tmp_path):
    powercap(tmp_path / "with")
    meter = EnergyMeter(powercap_root=tmp_path / "with", nvml=FakeNVML())
    assert meter.method_label == "measured: RAPL packages 0+1"
    text = meter.explain()
    assert "NVML: available, not used (auto prefers RAPL)" in text
    assert "estimate: available, not used (auto prefers RAPL)" in text

    meter = EnergyMeter(powercap_root=tmp_path / "without", nvml=FakeNVML(energy_mj=(5,)))
    assert meter.method_label == "measured: NVML GPU 0"
    assert f"RAPL: not available: {tmp_path / 'without'} absent" in meter.explain()

    meter = EnergyMeter(powercap_root=tmp_path / "without", nvml=NO_DRIVER)
    assert meter.method_label.startswith("estimated: CPU time x")
    text = meter.explain()
    assert "estimated as the CPU time of this process" in text
    assert "RAPL: not available:" in text and "NVML: not available: no usable NVIDIA driver" in text


def test_explicit_method_explains_the_others(tmp_path):
    powercap(tmp_path)
    text = EnergyMeter("estimate", powercap_root=tmp_path, nvml=NO_DRIVER).explain()
    assert "RAPL: available, not used (method='estimate' asks for estimate)" in text
    assert "NVML: not available: no usable NVIDIA driver" in text


def test_reading_arithmetic_and_text():
    method = "estimated: CPU time x 5.0 W/core"
    reading = EnergyReading(joules=12.3, seconds=2.0, method=method, measured=False)
    assert reading.watts == pytest.approx(6.15)
    assert reading.per(3) == pytest.approx(4.1)
    assert str(reading) == f"12.3 J over 2.00 s (6.15 W) [{method}]"
    with pytest.raises(ValueError):
        reading.per(0)


def test_reading_only_after_the_block_and_meter_reuse():
    meter = EnergyMeter("estimate")
    with pytest.raises(EnergyError, match="no reading yet"):
        meter.reading
    with meter:
        busy(0.01)
    first = meter.reading
    with meter:
        with pytest.raises(EnergyError):
            meter.reading
        busy(0.01)
    assert meter.reading is not first


def test_measure_returns_result_and_reading():
    result, reading = measure(lambda a, b=0: (busy(0.02), a + b)[1], 2, b=3, method="estimate")
    assert result == 5
    assert reading.method.startswith("estimated:") and reading.joules > 0


def test_unknown_method():
    with pytest.raises(ValueError, match="method must be"):
        EnergyMeter("joulemeter")
