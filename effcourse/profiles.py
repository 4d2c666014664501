"""Run profiles: one environment variable decides how much work a run does.

Notebooks never branch on the profile; they ask it how many epochs or images
to use, and the package's helpers scale data and measurements with it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

ENV_VAR = "EFFCOURSE_PROFILE"
DEFAULT = "workshop"


class ProfileError(ValueError):
    """An unknown profile name."""


@dataclass(frozen=True)
class Profile:
    """How much work one run does: data, epochs and measurement repeats."""

    name: str
    description: str
    train_images: int | None  # None: every training image
    test_images: int | None  # None: every test image
    epoch_fraction: float  # share of the full-profile epochs this profile trains
    max_epochs: int | None
    latency_runs: int  # timed single-image inferences per latency measurement
    warmup_runs: int
    energy_window_s: float = 10.0  # seconds of repeated work per energy window (effcourse.joules)
    batch_size: int = 64

    def epochs(self, full: int) -> int:
        """Epochs to train in this profile for a recipe that trains `full` epochs in `full`."""
        if full < 1:
            raise ValueError(f"full must be at least 1 epoch, got {full}")
        n = max(1, round(full * self.epoch_fraction))
        return min(n, self.max_epochs) if self.max_epochs else n


PROFILES = {
    "smoke": Profile(
        name="smoke",
        description="tests: a few thousand images, one or two epochs, seconds to minutes per notebook",
        train_images=5_000,
        test_images=1_000,
        epoch_fraction=0.05,
        max_epochs=2,
        latency_runs=50,
        warmup_runs=5,
        energy_window_s=0.25,
    ),
    "workshop": Profile(
        name="workshop",
        description="a laptop CPU in class: a subset of the data, a few epochs (at most 10), minutes per notebook",
        train_images=10_000,
        test_images=2_000,
        epoch_fraction=0.3,
        max_epochs=10,
        latency_runs=200,
        warmup_runs=20,
        energy_window_s=2.0,
    ),
    "full": Profile(
        name="full",
        description="the real numbers: all of the data and every epoch of the recipe (a GPU helps)",
        train_images=None,
        test_images=None,
        epoch_fraction=1.0,
        max_epochs=None,
        latency_runs=500,
        warmup_runs=50,
    ),
}


def get(name: str) -> Profile:
    """The profile called `name`, or a ProfileError that lists the valid names."""
    key = name.strip().lower()
    if key not in PROFILES:
        raise ProfileError(
            f"Unknown run profile {name!r}. Valid profiles: {', '.join(PROFILES)}. "
            f"Set {ENV_VAR} to one of them (default: {DEFAULT})."
        )
    return PROFILES[key]


def current() -> Profile:
    """The profile named by the EFFCOURSE_PROFILE environment variable (default: workshop)."""
    return get(os.environ.get(ENV_VAR) or DEFAULT)
