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

from effcourse import energy
from effcourse.energy import (
    DEFAULT_WATTS_PER_CORE,
    WATTS_ENV_VAR,
    EnergyError,
    EnergyMeter,
    EnergyReading,
)

from energyfakes import (NO_DRIVER, NO_PERMISSION, NOT_SUPPORTED, FakeNVML, busy, powercap,
                         set_energy, write_zone)

REPO = Path(__file__).resolve().parents[1]


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
        (lambda root: write_zone(root / "intel-rapl:0", "psys", 0), "no RAPL package zone"),
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
    "nvml, gpus, reason",
    [
        (NO_DRIVER, None, "no usable NVIDIA driver (nvmlInit: NVML Shared Library Not Found)"),
        (FakeNVML(energy_mj=()), None, "no NVIDIA GPU"),
        (FakeNVML(energy_error=NO_PERMISSION), None,
         "cannot read the energy counter of GPU 0 (Insufficient Permissions)"),
        (FakeNVML(energy_mj=(0,), energy_error=NOT_SUPPORTED, power_error=NOT_SUPPORTED), None,
         "GPU 0 has no energy counter (Not Supported; it needs Volta or newer), and cannot read "
         "the power of GPU 0 (Not Supported)"),
        (FakeNVML(), [0, 2], "no GPU 2: NVML sees 2 (0 to 1)"),
    ],
    ids=["no-driver", "no-gpu", "energy-counter-denied", "no-energy-counter-nor-power", "no-such-gpu"],
)
def test_nvml_unavailable_is_explained(tmp_path, nvml, gpus, reason):
    with pytest.raises(EnergyError) as error:
        EnergyMeter("nvml", nvml=nvml, gpus=gpus)
    assert str(error.value).startswith(f"NVML not available: {reason}")
    meter = EnergyMeter(powercap_root=tmp_path / "absent", nvml=nvml, gpus=gpus)
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


def test_cpu_never_measures_work_on_the_cpu_with_a_gpu_counter(tmp_path):
    """On a GPU machine without RAPL, "auto" reads the GPU; "cpu" (for LiteRT inference) estimates."""
    meter = EnergyMeter("cpu", powercap_root=tmp_path / "without", nvml=FakeNVML(energy_mj=(5,)))
    assert meter.method_label.startswith("estimated: CPU time")
    assert "NVML: not used (method='cpu' measures work on the CPU" in meter.explain()
    powercap(tmp_path / "with")
    meter = EnergyMeter("cpu", powercap_root=tmp_path / "with", nvml=FakeNVML())
    assert meter.method_label == "measured: RAPL packages 0+1"
    assert "estimate: available, not used (cpu prefers RAPL)" in meter.explain()


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


def test_unknown_method():
    with pytest.raises(ValueError, match="method must be"):
        EnergyMeter("joulemeter")


# --- Windows too short, counters that do not move ------------------------------------------


def test_window_too_short_for_the_counter_is_flagged(tmp_path):
    zone = write_zone(tmp_path / "intel-rapl:0", "package-0", 0)
    meter = EnergyMeter("rapl", powercap_root=tmp_path)
    needed = energy.MIN_UPDATES * meter.update_s
    with meter:
        set_energy(zone, 1_000)
    short = meter.reading
    assert short.seconds < needed
    assert short.update_s == meter.update_s > 0
    assert short.reliable is False
    assert f"shorter than {energy.MIN_UPDATES} updates of this counter" in short.note
    assert str(short).endswith("(window too short for the counter)")
    with meter:
        set_energy(zone, 2_000)
        time.sleep(needed * 1.2)
    assert meter.reading.reliable is True
    assert meter.reading.note == ""
    assert "too short" not in str(meter.reading)


def test_reading_reliability_boundary():
    def reading(seconds):
        return EnergyReading(joules=1.0, seconds=seconds, method="measured: NVML GPU 0",
                             measured=True, update_s=0.1)

    assert reading(10.0).reliable and not reading(9.99).reliable
    assert "(100 x 0.1 s = 10 s)" in reading(2.0).note


@pytest.mark.parametrize("method", ["rapl", "nvml"])
def test_counter_that_does_not_move_raises(tmp_path, monkeypatch, method):
    monkeypatch.setattr(energy, "STUCK_AFTER_S", 0.05)
    write_zone(tmp_path / "intel-rapl:0", "package-0", 5_000)
    meter = EnergyMeter(method, powercap_root=tmp_path, nvml=FakeNVML(energy_mj=(7,)))
    with pytest.raises(EnergyError, match=r"counter did not advance over 0\.\d s: a stuck counter"):
        with meter:
            time.sleep(0.1)
    with pytest.raises(EnergyError, match="no reading yet"):
        meter.reading
    with meter:  # a window shorter than STUCK_AFTER_S may see no step: 0 J, no error
        pass
    assert meter.reading.joules == 0


def test_stuck_counter_lets_the_blocks_own_error_through(tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "STUCK_AFTER_S", 0.05)
    write_zone(tmp_path / "intel-rapl:0", "package-0", 5_000)
    with pytest.raises(KeyError), EnergyMeter("rapl", powercap_root=tmp_path):
        time.sleep(0.1)
        raise KeyError("the work failed")


def test_estimate_over_idle_time_is_not_a_stuck_counter(monkeypatch):
    monkeypatch.setattr(energy, "STUCK_AFTER_S", 0.05)
    with EnergyMeter("estimate") as meter:
        time.sleep(0.1)  # no CPU time: an estimate near 0 J, and no error
    assert meter.reading.joules < 0.05 * DEFAULT_WATTS_PER_CORE


def test_update_interval_and_uncertainty_of_each_method(tmp_path):
    powercap(tmp_path)
    rapl = EnergyMeter("rapl", powercap_root=tmp_path)
    nvml = EnergyMeter("nvml", nvml=FakeNVML())
    sampled = EnergyMeter("nvml", nvml=FakeNVML(energy_error=NOT_SUPPORTED), sample_interval_s=0.25)
    estimate = EnergyMeter("estimate")
    assert rapl.update_s < estimate.update_s < nvml.update_s < sampled.update_s == 0.25
    assert rapl.uncertainty is nvml.uncertainty is sampled.uncertainty is None
    assert estimate.uncertainty == 2.0
    assert "factor of about 2 either way" in estimate.explain()
    with pytest.raises(ValueError, match="sample_interval_s"):
        EnergyMeter("nvml", nvml=FakeNVML(), sample_interval_s=0)


def test_nvml_without_energy_counter_samples_power():
    nvml = FakeNVML(energy_mj=(0, 0), power_mw=(30_000, 90_000), energy_error=NOT_SUPPORTED)
    meter = EnergyMeter("nvml", nvml=nvml, sample_interval_s=0.02)
    assert meter.method_label == "measured: NVML GPU 0+1 power sampled every 0.02 s"
    with meter:
        time.sleep(0.2)
    assert nvml.open == 0
    reading = meter.reading
    assert reading.measured is True
    assert reading.joules == pytest.approx(120 * reading.seconds, rel=0.05)
    assert "misses spikes between samples" in meter.explain()


STANDALONE_SCRIPT = """
import json, sys, types
sys.modules["tensorflow"] = None  # importing TensorFlow now fails, as on a machine without it
meter = types.ModuleType("meter")
meter.__path__ = [sys.argv[1]]
sys.modules["meter"] = meter
from meter import energy
with energy.EnergyMeter("estimate") as m:
    sum(range(10**5))
print(json.dumps({"method": m.reading.method, "counters": energy.counters.__name__,
                  "effcourse": "effcourse" in sys.modules}))
"""


def test_energy_and_counters_load_without_tensorflow():
    folder = str(REPO / "effcourse")
    env = {key: value for key, value in os.environ.items() if key != WATTS_ENV_VAR}
    proc = subprocess.run([sys.executable, "-c", STANDALONE_SCRIPT, folder],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == {"method": f"estimated: CPU time x {DEFAULT_WATTS_PER_CORE:.1f} W/core",
                      "counters": "meter.counters", "effcourse": False}
