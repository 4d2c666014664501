"""Small helpers for the lesson notebooks: the run header, readable source, checks, counts in words."""
from __future__ import annotations

import inspect

from . import hardware, profiles


def run_header() -> profiles.Profile:
    """Print which profile, hardware and library versions this run uses; return the profile.
    Tables show long names in full from here on (pandas cuts cells at 50 characters by default)."""
    import pandas as pd

    pd.set_option("display.max_colwidth", None)
    profile = profiles.current()
    print(f"Profile : {profile.name} ({profile.description})")
    print(f"Hardware: {hardware.describe()}")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in hardware.versions().items()))
    return profile


def show_source(*objects):
    """Display the source code of package functions, so the notebook shows what it calls.

    As a Markdown code block: JupyterLab and the website highlight it without a style sheet
    stored in every output."""
    from IPython.display import Markdown, display

    for obj in objects:
        display(Markdown(f"```python\n{inspect.getsource(obj)}```"))


def check(condition: bool, claim: str) -> None:
    """A learning-outcome check: print it as passed, or fail the cell saying what did not hold."""
    if not condition:
        raise AssertionError(f"Check failed: {claim}")
    print(f"Check passed: {claim}")


_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")


def in_words(count: int) -> str:
    """A count as a sentence writes it: 'nine' up to twelve, digits beyond ('99', '1,000')."""
    return _WORDS[count] if 0 <= count < len(_WORDS) else f"{count:,}"
