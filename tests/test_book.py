"""The website builds offline from the notebooks' stored outputs, with warnings as errors."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_with_warnings_as_errors(tmp_path):
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--config", str(ROOT / "book/_config.yml"),
               "--toc", str(ROOT / "book/_toc.yml"), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    lesson = (html / "notebooks" / "01_baseline.html").read_text(encoding="utf-8")
    assert "Lesson 01" in lesson
    # The stored outputs are rendered: the run header and a report card from the real run.
    assert "Profile :" in lesson and "Report card: reference CNN" in lesson
    assert re.search(r"<img[^>]+src=", lesson), "the notebook's plots are rendered"
    assert "Lesson 01" in (html / "book" / "intro.html").read_text(encoding="utf-8")
