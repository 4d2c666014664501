"""CO2 from energy: intensities with their source, the env override, equivalents, CodeCarbon beside."""
from __future__ import annotations

import socket
import sys

import pytest

from effcourse import carbon
from effcourse.carbon import (GRID_ENV_VAR, REGIONS, Intensity, co2_grams, codecarbon_beside,
                              equivalents, grid_intensity)

from effcourse.energy import DEFAULT_WATTS_PER_CORE, WATTS_ENV_VAR

from energyfakes import busy

KWH = 3.6e6  # joules


@pytest.fixture(autouse=True)
def no_grid_env(monkeypatch):
    monkeypatch.delenv(GRID_ENV_VAR, raising=False)


def test_default_is_the_world_average_with_source_and_year():
    world = REGIONS[carbon.DEFAULT_REGION]
    result = co2_grams(KWH)
    assert result.intensity is world
    assert result.grams == pytest.approx(world.g_per_kwh)
    text = str(result)
    assert text.startswith(f"{world.g_per_kwh:g} g CO2e: 3.6e+06 J at {world.g_per_kwh:g} g CO2e/kWh")
    assert "world average" in text and "Ember" in text and str(world.year) in text


def test_region_arithmetic():
    france, poland = co2_grams(7.2e6, "france"), co2_grams(1_800.0, "Poland")
    assert france.grams == pytest.approx(2 * REGIONS["france"].g_per_kwh)
    assert poland.grams == pytest.approx(REGIONS["poland"].g_per_kwh / 2000)
    assert "France" in str(france) and "Poland" in str(poland)
    assert co2_grams(0.0).grams == 0


def test_every_example_region_names_its_source_and_year():
    for key, intensity in REGIONS.items():
        assert intensity.g_per_kwh > 0, key
        assert intensity.source and intensity.year, key
        assert f"{intensity.region}, {intensity.year}; {intensity.source})" in str(intensity)


def test_your_own_figure_by_argument_or_environment(monkeypatch):
    mine = co2_grams(KWH, 120)
    assert mine.grams == pytest.approx(120)
    assert str(mine.intensity) == "120 g CO2e/kWh (your grid; the figure you set)"
    monkeypatch.setenv(GRID_ENV_VAR, "250.5")
    from_env = co2_grams(KWH)
    assert from_env.grams == pytest.approx(250.5)
    assert GRID_ENV_VAR in str(from_env)
    assert co2_grams(KWH, "norway").intensity is REGIONS["norway"]  # an explicit choice wins
    custom = Intensity(10, "my datacentre", "its supplier", 2025)
    assert co2_grams(KWH, custom).grams == pytest.approx(10)


@pytest.mark.parametrize("value", ["", "abc", "-3", "0", "nan"])
def test_bad_environment_value_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(GRID_ENV_VAR, value)
    with pytest.raises(ValueError, match=f"{GRID_ENV_VAR}={value!r} is not a positive number"):
        co2_grams(1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="no example region 'mars': choose one of world, eu"):
        grid_intensity("mars")
    with pytest.raises(ValueError, match="intensity must be a positive number"):
        co2_grams(1.0, -5)
    for joules in (-1.0, float("nan"), "lots"):
        with pytest.raises(ValueError, match="joules must be a number, zero or more"):
            co2_grams(joules)


def test_car_equivalent_with_its_source():
    [car] = equivalents(carbon.CAR_G_PER_KM)
    assert car.amount == pytest.approx(1000)
    assert car.unit == "m driven by an average new car"
    assert "EEA" in str(car) and "tailpipe" in str(car)
    assert equivalents(carbon.CAR_G_PER_KM / 4)[0].amount == pytest.approx(250)
    with pytest.raises(ValueError, match="grams must be"):
        equivalents(-1)


# --- CodeCarbon -----------------------------------------------------------------------------


def test_codecarbon_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)
    with pytest.raises(ImportError, match=r"pip install effcourse\[codecarbon\]"):
        codecarbon_beside(lambda: None)


def test_codecarbon_beside_the_meter_offline(tmp_path, monkeypatch):
    pytest.importorskip("codecarbon")
    monkeypatch.chdir(tmp_path)  # CodeCarbon must leave no file behind
    monkeypatch.delenv(WATTS_ENV_VAR, raising=False)
    connections = []

    def no_network(sock, address, *args):
        connections.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    calls = []
    side = codecarbon_beside(lambda: calls.append(busy(0.1)), "estimate", seconds=0.3, country_iso_code="FRA",
                             measure_power_secs=0.2)
    assert len(calls) >= 3 and side.ours.seconds >= 0.3
    assert connections == []
    assert list(tmp_path.iterdir()) == []
    assert side.ours.method.startswith("estimated: CPU time x")
    assert side.ours.joules >= 0.3 * DEFAULT_WATTS_PER_CORE
    assert side.codecarbon_joules > 0
    assert side.codecarbon_seconds >= side.ours.seconds
    assert sum(side.codecarbon_parts.values()) == pytest.approx(side.codecarbon_joules, rel=0.01)
    assert "every 0.2 s (15 s by default)" in side.why and "subtracts no idle power" in side.why
    assert side.ours.method in side.why
    text = str(side)
    assert text.startswith(f"course meter: {side.ours}\nCodeCarbon: ")
    assert "CPU " in text and "RAM " in text
