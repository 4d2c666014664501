"""The energy measurement method (effcourse.joules): windows, repeats, idle subtracted, labels."""
from __future__ import annotations

import time

import numpy as np
import pytest

from effcourse import energy, joules
from energyfakes import FakeNVML, busy

IDLE_W = 50.0


class SimulatedGPU(FakeNVML):
    """One GPU whose energy counter grows by IDLE_W all the time, plus what the work adds."""

    def __init__(self):
        super().__init__(energy_mj=(0,))
        self.start = time.perf_counter()
        self.extra_mj = 0.0

    def work(self, watts: float, seconds: float):
        """A call that keeps the GPU `watts` above idle for `seconds`."""
        def run():
            time.sleep(seconds)
            self.extra_mj += watts * seconds * 1e3
        return run

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return int(IDLE_W * (time.perf_counter() - self.start) * 1e3 + self.extra_mj)


@pytest.fixture()
def gpu():
    return SimulatedGPU()


def test_net_is_gross_minus_idle_and_ratios_follow_the_work(gpu):
    meter = energy.EnergyMeter("nvml", nvml=gpu)
    result = joules.measure_energy({"small": gpu.work(100, 0.01), "large": gpu.work(200, 0.01)},
                                   items_per_call=1, window_s=0.2, repeats=5, meter=meter)
    result.check()
    assert np.allclose(result.idle_w, IDLE_W, rtol=0.05)
    small, large = result.subjects["small"], result.subjects["large"]
    assert np.allclose(small.net_per_item(), 1.0, rtol=0.15)  # 100 W x 10 ms
    assert np.allclose(large.net_per_item(), 2.0, rtol=0.15)
    assert np.all(small.gross_per_item() > small.net_per_item() + 0.3)  # idle: 50 W x >= 10 ms per call
    ratio = result.net_ratio("large")
    assert 1.7 < ratio.median < 2.3 and ratio.verdict(words=("less", "more")) == "more"
    every = large.net_per_item() / small.net_per_item()  # the verdict's rule: every repeat's ratio
    assert (ratio.low, ratio.high) == (every.min(), every.max()) and ratio.spread == "range"
    table = result.table()
    assert table.loc["large", "energy verdict"] == "more"
    assert set(table["method"]) == {"measured: NVML GPU 0, net of idle"}
    assert "idle 5" in result.conditions() and "5 repeats" in result.conditions()


def test_windows_too_short_for_the_counter_are_reported(gpu):
    result = joules.measure_energy({"work": gpu.work(100, 0.01)}, window_s=0.1, repeats=5,
                                   meter=energy.EnergyMeter("nvml", nvml=gpu))
    assert result.notes and "10 of 10 windows were too short" in result.notes[0]
    assert result.notes[0] in result.conditions()


def test_idle_windows_interleave_with_the_work(gpu):
    """Every repeat has its own idle reading, used for that repeat's net figure."""
    result = joules.measure_energy({"a": gpu.work(100, 0.01), "b": gpu.work(100, 0.01)}, window_s=0.05,
                                   repeats=6, meter=energy.EnergyMeter("nvml", nvml=gpu), seed=3)
    assert result.repeats == 6
    assert result.subjects["a"].idle_w == list(result.idle_w) == result.subjects["b"].idle_w
    assert len(set(result.idle_w)) == 6  # one reading each, not one shared figure


def test_estimate_is_labelled_and_ranks_cpu_work():
    result = joules.measure_energy({"once": lambda: busy(0.01), "twice": lambda: busy(0.02)}, window_s=0.2,
                                   repeats=5, method="estimate")
    result.check()
    assert not result.measured
    assert all(label.startswith("estimated: CPU time x") for label in result.table()["method"])
    assert "An estimate, not a measurement" in result.conditions()
    assert result.net_ratio("twice").verdict(words=("less", "more")) == "more"
    assert np.all(result.idle_w < 1.0)  # a sleeping process uses next to no CPU time


def test_per_epoch_figures_scale_with_items_per_call(gpu):
    """A call that trains 1/50 of an epoch: joules per epoch = 50 x joules per call."""
    result = joules.measure_energy({"train": gpu.work(100, 0.01)}, items_per_call=1 / 50, unit="epoch",
                                   window_s=0.1, repeats=5, meter=energy.EnergyMeter("nvml", nvml=gpu))
    assert np.allclose(result.subjects["train"].net_per_item(), 50.0, rtol=0.15)
    assert "net mJ/epoch" in result.table().columns


@pytest.mark.parametrize("kwargs, error, match", [
    ({"repeats": 4}, ValueError, "At least 5 repeats"),
    ({"window_s": 0}, ValueError, "window_s must be positive"),
    ({"window_s": float("inf")}, ValueError, "window_s must be positive and finite"),  # warmed up forever
    ({"window_s": float("nan")}, ValueError, "window_s must be positive and finite"),
    ({"warmup_s": float("inf")}, ValueError, "warmup_s must be 0 or more"),
    ({"reference": "missing"}, KeyError, "missing"),
    ({"items_per_call": 0}, ValueError, "items_per_call must be a positive, finite number of inferences"),
    ({"items_per_call": -32}, ValueError, "got -32 for 'work'"),
    ({"items_per_call": float("inf")}, ValueError, "items_per_call must be a positive"),
    ({"items_per_call": {"work": 0}}, ValueError, "items_per_call must be a positive"),
    ({"items_per_call": {"other": 1}}, ValueError, "items_per_call has no figure for 'work'"),
])
def test_bad_arguments_are_refused(kwargs, error, match):
    ran = []

    def work():
        ran.append(1)
        if len(ran) > 1000:  # without the check, window_s=inf would warm it up forever
            raise RuntimeError("the work ran: the arguments were not refused up front")

    with pytest.raises(error, match=match):
        joules.measure_energy({"work": work}, method="estimate", **kwargs)
    assert not ran


def test_a_dict_of_items_per_call_names_every_work_it_lacks():
    with pytest.raises(ValueError, match=r"no figure for 'b', 'c': give one per work"):
        joules.measure_energy({"a": lambda: None, "b": lambda: None, "c": lambda: None},
                              items_per_call={"a": 32}, method="estimate")


def test_names_must_not_clash_with_idle_and_there_must_be_work():
    with pytest.raises(ValueError, match="idle"):
        joules.measure_energy({"idle": lambda: None}, method="estimate")
    with pytest.raises(ValueError, match="Nothing to measure"):
        joules.measure_energy({}, method="estimate")


def test_check_refuses_figures_that_cannot_be_read(gpu):
    result = joules.measure_energy({"work": gpu.work(100, 0.01)}, window_s=0.05, repeats=5,
                                   meter=energy.EnergyMeter("nvml", nvml=gpu))
    result.check()
    result.subjects["work"].gross_j[:] = [0.1 * j for j in result.subjects["work"].gross_j]  # below idle
    with pytest.raises(AssertionError, match="not above the idle"):
        result.check()
    result.idle_j, result.idle_s = result.idle_j[:4], result.idle_s[:4]
    with pytest.raises(AssertionError, match="4 repeats"):
        result.check()
    result.idle_j, result.idle_s = -np.ones(5), np.ones(5)
    with pytest.raises(AssertionError, match="idle power"):
        result.check()


def test_a_renewable_work_is_renewed_and_warmed_before_each_of_its_windows(gpu):
    log = []

    class Renewable:
        def renew(self):
            log.append("renew")

        def __call__(self):
            log.append("call")
            time.sleep(0.001)

    result = joules.measure_energy({"renewed": Renewable(), "plain": gpu.work(100, 0.001)}, window_s=0.02,
                                   repeats=5, meter=energy.EnergyMeter("nvml", nvml=gpu))
    assert log.count("renew") == result.repeats == 5
    # after each renewal, one call outside the window, then the window's calls
    calls = result.subjects["renewed"].calls
    after = "".join("r" if entry == "renew" else "c" for entry in log).split("r")[1:]
    assert [len(chunk) for chunk in after] == [1 + n for n in calls]


def test_the_windows_plot_leaves_room_above_its_highest_markers(gpu):
    import matplotlib

    matplotlib.use("Agg")
    from effcourse import plots

    meter = energy.EnergyMeter("nvml", nvml=gpu)
    result = joules.measure_energy({"small": gpu.work(100, 0.01), "large": gpu.work(200, 0.01)},
                                   window_s=0.1, repeats=5, meter=meter)
    ax, ax_idle = plots.energy_windows(result).axes
    highest = max(1e3 * s.gross_per_item().max() for s in result.subjects.values())
    assert ax.get_ylim() == pytest.approx((0, 1.1 * highest))
    # the idle windows hardly differ: autoscaling's margin (a share of their spread) would cut the top marker
    assert ax_idle.get_ylim() == pytest.approx((0, 1.1 * result.idle_w.max()))
