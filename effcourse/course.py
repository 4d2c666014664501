"""The course's main job: execute the lesson notebooks headlessly and compare what they recorded."""
from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths, profiles

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
_PEAK_MARK = "EFFCOURSE_PEAK_RSS_KIB"
_PEAK_CELL = (
    "try:\n    import resource\n    _peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "except ImportError:  # Windows\n    _peak = -1\n"
    f"print('{_PEAK_MARK}', _peak)"
)


class CourseError(RuntimeError):
    """A lesson that failed to run, named with its cell and error."""


@dataclass(frozen=True)
class NotebookRun:
    """One executed lesson: how long it took and the peak memory of its kernel."""

    notebook: str
    seconds: float
    peak_mib: float | None


def lesson_notebooks(folder: Path = NOTEBOOKS, only: list[str] | None = None) -> list[Path]:
    """The lesson notebooks in order (names start with their number), optionally only those
    whose names start with one of `only` (e.g. ["01", "03"])."""
    if not folder.is_dir():
        raise CourseError(f"No notebooks folder at {folder}: run from a checkout of the course.")
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
        if not found:
            raise CourseError(f"No lesson in {folder} starts with {', '.join(only)}.")
    return found


def run_notebook(path: Path, output: Path, timeout: int | None = None) -> NotebookRun:
    """Execute one notebook in a fresh kernel (the profile comes from the environment) and save it to `output`."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PEAK_CELL))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", coalesce_streams=True,
                            resources={"metadata": {"path": str(path.parent)}})
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        nb.cells.pop()
        nbformat.write(nb, output)
        raise CourseError(f"{path.name} failed (outputs so far saved in {output}):\n{err}") from None
    seconds = time.perf_counter() - start
    peak_cell = nb.cells.pop()
    text = "".join(o.get("text", "") for o in peak_cell.outputs if o.get("output_type") == "stream")
    kib = float(text.split(_PEAK_MARK)[-1].split()[0]) if _PEAK_MARK in text else -1
    nbformat.write(nb, output)
    return NotebookRun(path.name, seconds, kib / 1024 if kib > 0 else None)


def run(profile: str | None = None, only: list[str] | None = None, inplace: bool = False,
        output_dir: Path | None = None, timeout: int | None = None) -> tuple[list[NotebookRun], str]:
    """Execute the lessons in `profile` (default: the environment's) in order; return the runs
    and the start time (ISO, UTC) from which their report cards were recorded."""
    chosen = profiles.get(profile) if profile else profiles.current()
    os.environ[profiles.ENV_VAR] = chosen.name  # the kernels inherit it
    out = output_dir or paths.subdir("executed") / chosen.name
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    runs = []
    for path in lesson_notebooks(only=only):
        print(f"Running {path.name} in the {chosen.name} profile ...", flush=True)
        runs.append(run_notebook(path, path if inplace else out / path.name, timeout))
        peak = f"{runs[-1].peak_mib:,.0f} MiB" if runs[-1].peak_mib else "unknown"
        print(f"  done in {runs[-1].seconds:,.1f} s, kernel peak memory {peak}", flush=True)
    return runs, started
