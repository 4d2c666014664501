"""Energy sources one by one: RAPL zones and DRAM, permission and platform reasons, NVML's energy
counter and power sampling, the estimate. Fake powercap trees and a fake NVML drive every path."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from effcourse import counters
from effcourse.counters import (ESTIMATE_UNCERTAINTY, WATTS_ENV_VAR, Estimate, NvmlEnergy, NvmlPower,
                                Rapl, Unavailable, nvml_counter)
from effcourse.energy import EnergyError, EnergyMeter

from energyfakes import NOT_SUPPORTED, FakeNVML, busy, powercap, set_energy, write_zone


def window(counter, work) -> float:
    """Joules the counter sees while `work()` runs, read as the meter reads them."""
    counter.open()
    try:
        start = counter.read()
        work()
        end = counter.read()
    finally:
        counter.close()
    return counter.joules(start, end)


# --- RAPL ---------------------------------------------------------------------------------


def dram_tree(root: Path, packages: int = 1) -> dict[str, Path]:
    """Packages with core, uncore and DRAM subzones, as Intel servers expose them."""
    zones = {}
    for p in range(packages):
        package = write_zone(root / f"intel-rapl:{p}", f"package-{p}", 1_000_000)
        zones[f"pkg{p}"] = package
        zones[f"core{p}"] = write_zone(package / f"intel-rapl:{p}:0", "core", 0)
        zones[f"uncore{p}"] = write_zone(package / f"intel-rapl:{p}:1", "uncore", 0)
        zones[f"dram{p}"] = write_zone(package / f"intel-rapl:{p}:2", "dram", 2_000_000,
                                       max_range=65_712_999_613)
    return zones


def test_rapl_counts_dram_beside_the_package_and_skips_other_subzones(tmp_path):
    zones = dram_tree(tmp_path)
    rapl = Rapl(tmp_path)
    assert rapl.label == "measured: RAPL package+DRAM"
    assert "and their DRAM (memory)" in rapl.description

    def work():
        set_energy(zones["pkg0"], 1_000_000 + 3_000_000)
        set_energy(zones["dram0"], 2_000_000 + 500_000)
        set_energy(zones["core0"], 9_000_000)  # part of the package: counting it would add 9 J
        set_energy(zones["uncore0"], 9_000_000)

    assert window(rapl, work) == pytest.approx(3.5)


def test_rapl_two_packages_with_dram(tmp_path):
    zones = dram_tree(tmp_path, packages=2)
    powercap_psys = write_zone(tmp_path / "intel-rapl:2", "psys", 0)
    rapl = Rapl(tmp_path)
    assert rapl.label == "measured: RAPL packages 0+1 + DRAM"

    def work():
        for name in ("pkg0", "pkg1", "dram0", "dram1"):
            set_energy(zones[name], int((zones[name] / "energy_uj").read_text()) + 1_000_000)
        set_energy(powercap_psys, 50_000_000)

    assert window(rapl, work) == pytest.approx(4.0)


def test_rapl_without_dram_says_memory_is_left_out(tmp_path):
    powercap(tmp_path)
    rapl = Rapl(tmp_path)
    assert rapl.label == "measured: RAPL packages 0+1"
    assert "not memory (no DRAM zone exposed)" in rapl.description


def test_rapl_dram_wraps_at_its_own_range(tmp_path):
    package = write_zone(tmp_path / "intel-rapl:0", "package-0", 0, max_range=100_000_000)
    dram = write_zone(package / "intel-rapl:0:0", "dram", 9_500_000, max_range=10_000_000)
    rapl = Rapl(tmp_path)

    def work():
        set_energy(package, 2_000_000)  # 2 J, no wrap
        set_energy(dram, 250_000)  # 0.5 J to the top of 10 J, then 0.25 J past zero

    assert window(rapl, work) == pytest.approx(2.75)


@pytest.fixture
def energy_uj_denied(monkeypatch):
    """Every read of an energy_uj file raises PermissionError, as for a user other than root.
    (Root reads a mode-000 file anyway; test_energy checks a real EACCES in a user namespace.)"""
    read_text = Path.read_text

    def read(path, *args, **kwargs):
        if path.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(path))
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read)


def test_rapl_permission_denied_explains_why_and_the_fix(tmp_path, energy_uj_denied):
    dram_tree(tmp_path)
    with pytest.raises(Unavailable) as error:
        Rapl(tmp_path)
    reason = str(error.value)
    package = tmp_path / "intel-rapl:0" / "energy_uj"
    dram = tmp_path / "intel-rapl:0" / "intel-rapl:0:2" / "energy_uj"
    assert reason.startswith(f"permission denied on {package}: RAPL counters are readable by root")
    assert "PLATYPUS" in reason and "CVE-2020-8694" in reason and "CVE-2020-8695" in reason
    assert f"`sudo chmod o+r {package} {dram}` lasts until reboot" in reason
    assert f"`z {tmp_path}/intel-rapl:*/energy_uj 0444 - - -`" in reason
    assert "reopens that side channel" in reason and "run as root" in reason
    meter = EnergyMeter(powercap_root=tmp_path, nvml=FakeNVML())
    assert meter.method_label == "measured: NVML GPU 0+1"
    assert "CVE-2020-8694" in meter.explain()


def test_rapl_permission_fix_names_amd_zones(tmp_path, energy_uj_denied):
    write_zone(tmp_path / "amd-rapl:0", "package-0", 0)
    with pytest.raises(Unavailable, match=rf"`z {tmp_path}/amd-rapl:\*/energy_uj 0444"):
        Rapl(tmp_path)


@pytest.mark.parametrize(
    "system, says",
    [
        ("Linux", ["absent: this Linux exposes no RAPL counters", "virtual machine",
                   "systemd-detect-virt", "modprobe intel_rapl_msr"]),
        ("Darwin", ["macOS has no powercap", "powermetrics", "needs sudo"]),
        ("Windows", ["Windows has no powercap", "Intel Power Gadget", "AMD uProf"]),
        ("FreeBSD", ["absent: FreeBSD has no Linux powercap interface"]),
    ],
)
def test_no_powercap_is_explained_per_platform(tmp_path, monkeypatch, system, says):
    monkeypatch.setattr(counters.platform, "system", lambda: system)
    with pytest.raises(Unavailable) as error:
        Rapl(tmp_path / "powercap")
    for text in says:
        assert text in str(error.value)


def test_rapl_zones_without_package_are_explained(tmp_path):
    write_zone(tmp_path / "intel-rapl:0", "psys", 0)
    with pytest.raises(Unavailable, match="no RAPL package zone .*virtual machine"):
        Rapl(tmp_path)


# --- NVML ---------------------------------------------------------------------------------


def test_nvml_energy_counter_of_chosen_gpus():
    nvml = FakeNVML(energy_mj=(1_000, 2_000, 3_000))
    counter = nvml_counter(nvml, gpus=[2, 0])
    assert isinstance(counter, NvmlEnergy)
    assert counter.label == "measured: NVML GPU 2+0"

    def work():
        nvml.energy_mj[0] += 1_500
        nvml.energy_mj[1] += 99_000  # GPU 1 is not chosen
        nvml.energy_mj[2] += 500

    assert window(counter, work) == pytest.approx(2.0)
    assert nvml.open == 0


def test_nvml_without_energy_counter_falls_back_to_power_sampling():
    nvml = FakeNVML(energy_mj=(0,), power_mw=(42_000,), energy_error=NOT_SUPPORTED)
    counter = nvml_counter(nvml, interval=0.05)
    assert isinstance(counter, NvmlPower)
    assert counter.label == "measured: NVML GPU 0 power sampled every 0.05 s"
    assert counter.update_s == 0.05
    assert "because GPU 0 has no energy counter (Not Supported" in counter.description
    assert "misses spikes between samples" in counter.description
    assert counter.measured is True


def test_power_sampling_integrates_a_known_power():
    # A ramp, 100 W rising by 400 W each second: the trapezoid rule integrates it exactly,
    # whenever the samples fall. Over [a, b]: 100 (b - a) + 200 ((b - t0)^2 - (a - t0)^2).
    t0 = time.perf_counter()
    nvml = FakeNVML(energy_mj=(0,), power_mw=lambda i, t: 1e3 * (100 + 400 * (t - t0)),
                    energy_error=NOT_SUPPORTED)
    counter = NvmlPower(nvml, interval=0.02)
    counter.open()
    try:
        a = time.perf_counter()
        start = counter.read()
        reads_before = nvml.power_reads
        time.sleep(0.3)
        end = counter.read()
        b = time.perf_counter()
    finally:
        counter.close()
    exact = 100 * (b - a) + 200 * ((b - t0) ** 2 - (a - t0) ** 2)
    assert counter.joules(start, end) == pytest.approx(exact, rel=0.02)
    assert nvml.power_reads - reads_before >= 4  # the background thread sampled meanwhile
    assert nvml.open == 0


def test_power_sampling_failure_during_a_window_is_reported():
    nvml = FakeNVML(energy_mj=(0,), power_mw=(10_000,), energy_error=NOT_SUPPORTED)
    meter = EnergyMeter("nvml", nvml=nvml, sample_interval_s=0.01)
    with pytest.raises(EnergyError, match=r"NVML failed while measuring: cannot read the power of GPU 0"):
        with meter:
            nvml.power_error = NOT_SUPPORTED
            time.sleep(0.05)
    assert nvml.open == 0


def test_gpu_choice_is_checked(tmp_path):
    with pytest.raises(EnergyError, match=r"NVML not available: no NVIDIA GPU"):
        EnergyMeter("nvml", nvml=FakeNVML(energy_mj=()), gpus=[0])
    with pytest.raises(EnergyError, match=r"NVML not available: gpus= chooses no GPU"):
        EnergyMeter("nvml", nvml=FakeNVML(), gpus=[])
    for bad in (["0"], [-1], [1.0], [True]):
        with pytest.raises(ValueError, match="gpus must be GPU indices"):
            EnergyMeter("nvml", nvml=FakeNVML(), gpus=bad)


def test_nvml_not_installed(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)
    with pytest.raises(Unavailable, match="nvidia-ml-py not installed"):
        nvml_counter()


def test_power_sampling_interval_must_be_positive():
    with pytest.raises(ValueError, match="sampling interval"):
        NvmlPower(FakeNVML(), interval=-1)


# --- Estimate -----------------------------------------------------------------------------


def test_estimate_states_its_source_and_uncertainty(monkeypatch):
    monkeypatch.delenv(WATTS_ENV_VAR, raising=False)
    estimate = Estimate()
    assert estimate.measured is False
    assert estimate.uncertainty == ESTIMATE_UNCERTAINTY == 2.0
    assert "Lannelongue et al. 2021" in estimate.description
    assert "TDP / cores" in estimate.description
    assert "factor of about 2 either way" in estimate.description
    assert window(estimate, lambda: busy(0.05)) >= 0.05 * estimate.watts


def test_estimate_windows_need_windows_ticks(monkeypatch):
    assert Estimate().update_s == 0.01
    monkeypatch.setattr(counters.sys, "platform", "win32")
    assert Estimate().update_s == counters.WINDOWS_TICK_S == 0.0156  # a window of 100 updates: 1.56 s


def test_estimate_env_override_and_bad_value(monkeypatch):
    monkeypatch.setenv(WATTS_ENV_VAR, "8.5")
    estimate = Estimate()
    assert estimate.label == "estimated: CPU time x 8.5 W/core"
    assert f"({WATTS_ENV_VAR})" in estimate.description
    monkeypatch.setenv(WATTS_ENV_VAR, "lots")
    with pytest.raises(Unavailable, match=f"{WATTS_ENV_VAR}='lots' is not a positive number"):
        Estimate()
    assert Estimate(3.0).label == "estimated: CPU time x 3.0 W/core"  # the argument wins


@pytest.mark.parametrize("value", ["1e300", "1001", "5000"])
def test_estimate_refuses_an_implausible_power_per_core(monkeypatch, value):
    monkeypatch.setenv(WATTS_ENV_VAR, value)
    with pytest.raises(Unavailable, match=f"{WATTS_ENV_VAR}='{value}' is not a plausible power per core: no CPU "
                                          "core draws more than 1,000 W"):
        Estimate()
    with pytest.raises(Unavailable, match="watts_per_core=1e[+]300 is not a plausible power per core"):
        Estimate(1e300)
    monkeypatch.setenv(WATTS_ENV_VAR, "1000")
    assert Estimate().label == "estimated: CPU time x 1000.0 W/core"  # the most a label shows


def test_energy_meter_says_why_an_implausible_estimate_is_not_used(monkeypatch):
    monkeypatch.setenv(WATTS_ENV_VAR, "1e300")
    with pytest.raises(EnergyError, match=f"estimate not available: {WATTS_ENV_VAR}='1e300' is not a plausible"):
        EnergyMeter("estimate")


@pytest.mark.parametrize("value, ok", [(5, True), ("2.5", True), (0, False), (-1, False),
                                       (float("inf"), False), ("x", False), (None, False)])
def test_positive_number(value, ok):
    assert counters.positive_number(value) is ok
