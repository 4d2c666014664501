"""The course's main job: execute the lesson notebooks headlessly and compare what they recorded."""
from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import paths, profiles

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
_PEAK_MARK = "EFFCOURSE_PEAK_RSS_KIB"
_PEAK_CELL = (
    "try:\n    import resource, sys\n    _peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
    "    _peak = _peak / 1024 if sys.platform == 'darwin' else _peak  # KiB (macOS reports bytes)\n"
    "except ImportError:  # Windows\n    _peak = -1\n"
    f"print('{_PEAK_MARK}', _peak)"
)


HEARTBEAT_S = 60  # a cell that runs longer is reported again this often


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
        raise CourseError(f"No notebooks folder at {paths.display(folder)}: run from a checkout of the course.")
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
        if not found:
            raise CourseError(f"No lesson in {paths.display(folder)} starts with {', '.join(only)}.")
    return found


def _code_cell_sections(cells: list) -> dict[int, tuple[int, str]]:
    """For each code cell that will run, keyed by its index: its number among them and the
    section it is in (the text of the last `#` or `##` heading above it)."""
    section, numbered = "", {}
    for index, cell in enumerate(cells):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith(("# ", "## ")):
                    section = line.lstrip("#").strip()
        elif cell.cell_type == "code" and cell.source.strip():
            numbered[index] = (len(numbered) + 1, section)
    return numbered


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def _progress_line(lesson: str, number: int, total: int, section: str, seconds: float,
                   running: float | None = None) -> str:
    """`  01_baseline  cell 12/29  3. A better baseline  2:34` (time since the lesson started,
    and with `running`, how long this cell has run), shortened to under 100 columns."""
    still = f", cell running {_clock(running)}" if running is not None else ""
    head, tail = f"  {lesson}  cell {number}/{total}  ", f"  {_clock(seconds)}{still}"
    room = 99 - len(head) - len(tail)
    if len(section) > room:
        section = section[: max(room - 1, 0)] + "…"
    return head + section + tail


def _print_progress(line: str) -> None:
    print(line, flush=True)


class _Progress:
    """Reports each code cell of a lesson as it starts, and again every `every` seconds while it
    runs, so a long training cell is not minutes of silence."""

    def __init__(self, lesson: str, cells: dict[int, tuple[int, str]], report: Callable[[str], None],
                 every: float | None = None):
        self.lesson, self.cells, self.report = lesson, cells, report
        self.every = every or HEARTBEAT_S
        self.start = time.perf_counter()
        self.current: tuple[int, str, float] | None = None  # number, section, when it started
        self.last = self.start  # when the last line was reported
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> "_Progress":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def cell_started(self, cell, cell_index: int) -> None:
        """nbclient's `on_cell_execute` hook. A cell the lesson does not count (the appended
        peak-memory cell) ends the heartbeat of the cell before it."""
        if cell_index not in self.cells:
            with self._lock:
                self.current = None
        else:
            now = time.perf_counter()
            number, section = self.cells[cell_index]
            with self._lock:
                self.current, self.last = (number, section, now), now
                self.report(_progress_line(self.lesson, number, len(self.cells), section, now - self.start))

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.every / 4)):
            with self._lock:
                now = time.perf_counter()
                if self.current is not None and now - self.last >= self.every:
                    number, section, began = self.current
                    self.last = now
                    self.report(_progress_line(self.lesson, number, len(self.cells), section,
                                               now - self.start, running=now - began))


def _kernel_config():
    """Encrypt the kernel's connection with CurveZMQ keys where jupyter_client and pyzmq can:
    otherwise recent ipykernel (7.4 here) logs "Kernel is running over TCP without encryption ..." to the
    terminal for every lesson. Kernels whose kernelspec does not declare Curve support run as before."""
    import zmq
    from jupyter_client import KernelManager
    from traitlets.config import Config

    config = Config()
    if zmq.has("curve") and "transport_encryption" in KernelManager.class_trait_names():
        config.KernelManager.transport_encryption = "auto"
    return config


def run_notebook(path: Path, output: Path, timeout: int | None = None,
                 progress: Callable[[str], None] | None = None) -> NotebookRun:
    """Execute one notebook in a fresh kernel (the profile comes from the environment) and save it
    to `output`. Before each code cell runs, and every HEARTBEAT_S while it runs, `progress`
    (default: print) gets a line naming the lesson, the cell, its section and the time so far."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # a cell the run does not reach (after a failure) shows nothing, not the stored run's outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    cells = _code_cell_sections(nb.cells)  # before the measuring cell is appended: it is not shown
    nb.cells.append(nbformat.v4.new_code_cell(_PEAK_CELL))
    tracker = _Progress(path.stem, cells, progress or _print_progress)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", coalesce_streams=True,
                            resources={"metadata": {"path": str(path.parent)}},
                            on_cell_execute=tracker.cell_started, config=_kernel_config())
    output.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        with tracker:
            client.execute()
    except CellExecutionError as err:
        nb.cells.pop()
        nbformat.write(nb, output)
        raise CourseError(f"{path.name} failed (outputs so far saved in {paths.display(output)}):\n{err}") from None
    seconds = time.perf_counter() - start
    peak_cell = nb.cells.pop()
    text = "".join(o.get("text", "") for o in peak_cell.outputs if o.get("output_type") == "stream")
    kib = float(text.split(_PEAK_MARK)[-1].split()[0]) if _PEAK_MARK in text else -1
    nbformat.write(nb, output)
    return NotebookRun(path.name, seconds, kib / 1024 if kib > 0 else None)


def run(profile: str | None = None, only: list[str] | None = None, inplace: bool = False,
        output_dir: Path | None = None, timeout: int | None = None,
        progress: Callable[[str], None] | None = None) -> tuple[list[NotebookRun], str]:
    """Execute the lessons in `profile` (default: the environment's) in order, reporting each code
    cell to `progress` (default: print); return the runs and the start time (ISO, UTC) from which
    their report cards were recorded."""
    chosen = profiles.get(profile) if profile else profiles.current()
    os.environ[profiles.ENV_VAR] = chosen.name  # the kernels inherit it
    out = output_dir or paths.subdir("executed") / chosen.name
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    runs = []
    for path in lesson_notebooks(only=only):
        print(f"Running {path.name} in the {chosen.name} profile ...", flush=True)
        runs.append(run_notebook(path, path if inplace else out / path.name, timeout, progress))
        peak = f"{runs[-1].peak_mib:,.0f} MiB" if runs[-1].peak_mib else "unknown"
        print(f"  done in {runs[-1].seconds:,.1f} s, kernel peak memory {peak}", flush=True)
    return runs, started
