"""benchmarks/int8_speed.py: a model's three LiteRT formats timed together, each row its own
format's size and latency, the ratios to float32's."""
import numpy as np

from effcourse import profiles
from effcourse.data import ImageData

import benchmark_scripts
from tiny import SHAPE, small_model

int8_speed = benchmark_scripts.load("int8_speed")


def test_each_format_is_timed_together_against_float32():
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
