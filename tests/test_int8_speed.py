"""benchmarks/int8_speed.py: a model's three LiteRT formats timed together, each row its own
format's size and latency, the ratios to float32's."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from effcourse import profiles
from effcourse.data import ImageData

from tiny import SHAPE, small_model

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "int8_speed.py"
_spec = importlib.util.spec_from_file_location("int8_speed", SCRIPT)
int8_speed = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = int8_speed
_spec.loader.exec_module(int8_speed)


def test_each_format_is_timed_against_float32_and_int8_files_are_smaller():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (48, *SHAPE), dtype=np.uint8), rng.integers(0, 4, 48)
    data = ImageData(x[:32], y[:32], x[32:40], y[32:40], x[40:], y[40:], ("a", "b", "c", "d"), "tiny", True, 8)
    rows = int8_speed.speeds(small_model(), data, profiles.get("smoke"))
    assert [r["format"] for r in rows] == ["float32", "dynamic-range int8", "full-integer int8"]
    assert rows[0]["x float32"] == 1.0 and rows[0]["verdict"] == "reference"
    for row in rows:
        low, high = row["95% interval"]
        assert low <= row["x float32"] <= high and row["latency ms"] > 0 and row["KiB"] > 0
    assert {r["verdict"] for r in rows[1:]} <= {"faster", "slower", "no measurable difference"}
