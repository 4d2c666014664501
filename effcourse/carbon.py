"""CO2 from energy: a grid carbon intensity you set, example regions with the source and year of
each figure, the one everyday equivalent we can source, and CodeCarbon beside the course's meter.

The example intensities are yearly averages of each grid's electricity generation, in grams of
CO2-equivalent per kWh over the life cycle of the power plants (Ember's method); a grid's hourly
intensity swings far around its yearly average, and imports are not counted. The default is the
world average; set EFFCOURSE_GRID_G_PER_KWH (or pass `intensity=`) for your own grid.
"""
from __future__ import annotations

import inspect
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from . import counters, energy

GRID_ENV_VAR = "EFFCOURSE_GRID_G_PER_KWH"
EMBER = ("Ember and Energy Institute Statistical Review of World Energy, 2025 releases, "
         "via Our World in Data")
JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Intensity:
    """A grid carbon intensity and where the figure comes from."""

    g_per_kwh: float
    region: str
    source: str
    year: int | None = None  # the year the figure describes; None for a figure you set

    def __str__(self) -> str:
        year = f", {self.year}" if self.year is not None else ""
        return f"{self.g_per_kwh:g} g CO2e/kWh ({self.region}{year}; {self.source})"


# 2024 yearly averages, rounded to 1 g/kWh.
REGIONS = {
    "world": Intensity(473, "world average", EMBER, 2024),
    "eu": Intensity(213, "EU-27", EMBER, 2024),
    "usa": Intensity(384, "United States", EMBER, 2024),
    "china": Intensity(560, "China", EMBER, 2024),
    "india": Intensity(708, "India", EMBER, 2024),
    "uk": Intensity(211, "United Kingdom", EMBER, 2024),
    "france": Intensity(44, "France", EMBER, 2024),
    "germany": Intensity(344, "Germany", EMBER, 2024),
    "poland": Intensity(615, "Poland", EMBER, 2024),
    "norway": Intensity(31, "Norway", EMBER, 2024),
    "sweden": Intensity(36, "Sweden", EMBER, 2024),
}
DEFAULT_REGION = "world"

# Average CO2 of new cars registered in the EU, Iceland and Norway in 2023, as measured for type
# approval (WLTP): tailpipe only, and below real-world driving. EEA provisional data, 2024.
CAR_G_PER_KM = 106.6
CAR_SOURCE = ("EEA provisional data for new cars registered in the EU, Iceland and Norway in 2023, "
              "tailpipe CO2 at type approval (WLTP)")


def grid_intensity(intensity: str | float | Intensity | None = None) -> Intensity:
    """The intensity to use: a region of REGIONS ("france"), a number of g CO2e/kWh you set, an
    Intensity, or None: EFFCOURSE_GRID_G_PER_KWH if set, else the world average."""
    if isinstance(intensity, Intensity):
        return intensity
    if isinstance(intensity, str):
        try:
            return REGIONS[intensity.lower()]
        except KeyError:
            raise ValueError(f"no example region {intensity!r}: choose one of "
                             f"{', '.join(REGIONS)}, or give g CO2e/kWh as a number") from None
    if intensity is not None:
        if not counters.positive_number(intensity):
            raise ValueError(f"intensity must be a positive number of g CO2e/kWh, got {intensity!r}")
        return Intensity(float(intensity), "your grid", "the figure you set")
    if GRID_ENV_VAR in os.environ:
        value = os.environ[GRID_ENV_VAR]
        if not counters.positive_number(value):
            raise ValueError(f"{GRID_ENV_VAR}={value!r} is not a positive number of g CO2e/kWh; "
                             "set it to e.g. 250, or unset it")
        return Intensity(float(value), "your grid", GRID_ENV_VAR)
    return REGIONS[DEFAULT_REGION]


def _amount(value: Any, name: str) -> float:
    """`value` as a float, if it is a finite number, zero or more."""
    try:
        amount = float(value)
    except (TypeError, ValueError):
        amount = math.nan
    if not (math.isfinite(amount) and amount >= 0):
        raise ValueError(f"{name} must be a number, zero or more, got {value!r}")
    return amount


@dataclass(frozen=True)
class CO2:
    """The CO2 of some energy at a grid intensity."""

    grams: float
    joules: float
    intensity: Intensity

    def __str__(self) -> str:
        return f"{self.grams:.3g} g CO2e: {self.joules:.3g} J at {self.intensity}"


def co2_grams(joules: float, intensity: str | float | Intensity | None = None) -> CO2:
    """CO2 of `joules` of electricity at `intensity` (see grid_intensity; default world average)."""
    joules = _amount(joules, "joules")
    used = grid_intensity(intensity)
    return CO2(joules / JOULES_PER_KWH * used.g_per_kwh, joules, used)


@dataclass(frozen=True)
class Equivalent:
    """An everyday amount with the same CO2, and the figure behind it."""

    amount: float
    unit: str
    basis: str

    def __str__(self) -> str:
        return f"{self.amount:.3g} {self.unit} ({self.basis})"


def equivalents(grams: float) -> list[Equivalent]:
    """Everyday amounts with the same CO2: only the one we can source, distance driven."""
    grams = _amount(grams, "grams")
    return [Equivalent(grams / CAR_G_PER_KM * 1e3, "m driven by an average new car",
                       f"{CAR_G_PER_KM:g} g CO2/km: {CAR_SOURCE}")]


# --- CodeCarbon beside the course's meter ---------------------------------------------------


@dataclass(frozen=True)
class SideBySide:
    """One window measured by the course's meter and by CodeCarbon's offline tracker."""

    ours: energy.EnergyReading
    codecarbon_joules: float
    codecarbon_seconds: float
    codecarbon_parts: dict[str, float]  # joules of "cpu", "ram" and "gpu"
    why: str

    def __str__(self) -> str:
        parts = ", ".join(f"{name.upper()} {j:.3g} J" for name, j in self.codecarbon_parts.items())
        return (f"course meter: {self.ours}\nCodeCarbon: {self.codecarbon_joules:.3g} J over "
                f"{self.codecarbon_seconds:.2f} s ({parts})\n{self.why}")


def codecarbon_beside(fn: Callable[[], Any], meter_method: str = "auto", *, seconds: float = 10.0,
                      country_iso_code: str = "USA", measure_power_secs: float = 1.0) -> SideBySide:
    """Call `fn()` again and again for `seconds` (at least once) inside both CodeCarbon's
    OfflineEmissionsTracker (no files, no network, power sampled every `measure_power_secs`: the
    window holds many samples) and an EnergyMeter(`meter_method`), and return both energies with
    why they differ. country_iso_code (3 letters) is only for CodeCarbon's own CO2
    figure, which is not used here. Needs the optional extra: `pip install effcourse[codecarbon]`."""
    try:
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.emissions_tracker import BaseEmissionsTracker
    except ImportError:
        raise ImportError("CodeCarbon is not installed: `pip install effcourse[codecarbon]` "
                          "(or `pip install codecarbon`)") from None
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    # No file written: `output_methods=[]` since CodeCarbon 3, `save_to_file=False` before.
    quiet = ({"output_methods": []}
             if "output_methods" in inspect.signature(BaseEmissionsTracker.__init__).parameters
             else {"save_to_file": False})
    meter = energy.EnergyMeter(meter_method)
    tracker = OfflineEmissionsTracker(country_iso_code=country_iso_code, log_level="error",
                                      measure_power_secs=measure_power_secs,
                                      allow_multiple_runs=True, **quiet)
    tracker.start()
    try:
        with meter:
            end = time.perf_counter() + seconds
            fn()
            while time.perf_counter() < end:
                fn()
    finally:
        tracker.stop()
    data = getattr(tracker, "final_emissions_data", None)
    if data is None:  # CodeCarbon logs its own errors and carries on without data
        raise RuntimeError("CodeCarbon recorded nothing (see its log above); check that "
                           f"country_iso_code={country_iso_code!r} is a 3-letter ISO code")
    parts = {name: getattr(data, f"{name}_energy") * JOULES_PER_KWH for name in ("cpu", "ram", "gpu")}
    why = (
        "They differ by design. CodeCarbon counts the machine from its start to its stop: the CPU "
        "by RAPL where it can read it, else from the CPU's TDP (half of it, or a curve of the CPU "
        "load); RAM at a few watts per memory module it guesses from the memory size; GPUs by "
        f"NVML; it integrates power sampled every {measure_power_secs:g} s (15 s by default) and "
        "subtracts no idle power. The course's meter reads its source at the two ends of the "
        f"window only. {meter.explain()}"
    )
    return SideBySide(meter.reading, data.energy_consumed * JOULES_PER_KWH, data.duration, parts, why)
