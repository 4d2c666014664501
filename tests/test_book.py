"""The website builds offline from the notebooks' stored outputs, with warnings as errors,
and draws the lessons' widgets and formulas with JavaScript it serves itself."""
import contextlib
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDGET_LESSONS = ["02_pruning", "03_quantization"]
LESSONS = sorted(path.stem for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """The website, built once for this module's tests."""
    out = tmp_path_factory.mktemp("book")
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT), "--config", str(ROOT / "book/_config.yml"),
               "--toc", str(ROOT / "book/_toc.yml"), "--path-output", str(out), "-W", "-n", "--keep-going"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "_build" / "html"


def test_book_builds_with_warnings_as_errors(html):
    lesson = (html / "notebooks" / "01_baseline.html").read_text(encoding="utf-8")
    assert "Lesson 01" in lesson
    # The stored outputs are rendered: the run header and a report card from the real run.
    assert "Profile :" in lesson and "Report card: reference CNN" in lesson
    assert re.search(r"<img[^>]+src=", lesson), "the notebook's plots are rendered"
    assert "Lesson 01" in (html / "book" / "intro.html").read_text(encoding="utf-8")
    runs = (html / "book" / "runs.html").read_text(encoding="utf-8")
    assert "How the stored outputs were made" in runs and runs.count("<table") >= 2, "the runs page and its tables"


@pytest.mark.parametrize("lesson", LESSONS)
def test_quizzes_and_collapsed_solutions_are_on_every_lesson_page(html, lesson):
    page = (html / "notebooks" / f"{lesson}.html").read_text(encoding="utf-8")
    assert '<div class="effcourse-quiz">' in page and '<details class="effcourse-answer">' in page
    assert "tag_hide-cell" in page, "the exercise solutions are collapsed (hide-cell)"
    assert "not answered yet" in page, "the exercises are left for the reader"


def test_markdown_a_cell_displays_renders_its_tables(html):
    lesson = (html / "notebooks" / "01_baseline.html").read_text(encoding="utf-8")
    ablation = re.search(r"<table[^>]*>((?:(?!</table>).)*Seed noise: the same recipe trained twice.*?)</table>", lesson, re.S)
    assert ablation and "<td>" in ablation.group(1), "lesson 01's ablation table is a table, not a paragraph of pipes"


@pytest.mark.parametrize("lesson", LESSONS)
def test_formulas_and_styles_come_from_the_site_itself(html, lesson):
    page = (html / "notebooks" / f"{lesson}.html").read_text(encoding="utf-8")
    scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page)
    remote = [src for src in scripts if src.startswith(("http:", "https:", "//"))]
    assert not remote, f"{lesson} loads scripts from the internet: {remote}"
    if r"\(" in page or r"\[" in page:  # a formula
        assert "../_static/mathjax/tex-svg.js" in [src.split("?")[0] for src in scripts]
        assert (html / "_static" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000
    assert re.search(r'<link[^>]+href="../_static/effcourse.css', page), "long printed lines wrap"


@pytest.mark.parametrize("lesson", WIDGET_LESSONS)
def test_widget_pages_load_the_sites_own_widget_scripts(html, lesson):
    page = (html / "notebooks" / f"{lesson}.html").read_text(encoding="utf-8")
    assert 'type="application/vnd.jupyter.widget-state+json"' in page, "the notebook's widget state is on the page"
    scripts = re.findall(r'<script[^>]*\ssrc="([^"]+)"', page)
    for name in ("require.js", "embed-amd.js"):
        local = [src for src in scripts if src.split("?")[0] == f"../_static/widgets/{name}"]
        assert local, f"{lesson} does not load _static/widgets/{name}: {scripts}"
        assert (html / "_static" / "widgets" / name).stat().st_size > 10_000
    remote = [src for src in scripts if src.startswith(("http:", "https:", "//")) and ("widgets" in src or "require" in src)]
    assert not remote, f"widget scripts must not come from a CDN: {remote}"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without logging; the paths it could not serve are kept in `missing`."""

    missing: list[str]

    def log_message(self, *args):
        pass

    def send_error(self, code, message=None, explain=None):
        self.missing.append(self.path)
        super().send_error(code, message, explain)


@contextlib.contextmanager
def _served(folder: Path, missing: list[str]):
    """`folder` over HTTP on a free local port, for as long as the block runs; paths not found go to `missing`."""
    handler = type("Handler", (_QuietHandler,), {"missing": missing})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _rendered_dom(url: str) -> str:
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
               "--dump-dom", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(_chromium() is None, reason="no Chromium on this machine (Debian: apt-get install chromium)")
def test_widgets_are_drawn_in_a_browser_without_a_kernel(html):
    missing = []
    with _served(html, missing) as site:
        pruning = _rendered_dom(f"{site}/notebooks/02_pruning.html")
        quantization = _rendered_dom(f"{site}/notebooks/03_quantization.html")
    # Everything the pages ask for is on the site, the widget manager's icon font and the site's icon included.
    assert missing == [], missing
    # Lesson 02: the sparsity slider and the table of the level it shows, with the run's numbers.
    assert re.search(r'<div class="[^"]*widget-hslider[^"]*widget-slider', pruning)
    table = re.search(r'class="widget-html-content"><table>(.*?)</table>', pruning)
    assert table and "sparsity %" in table.group(1) and "test accuracy %" in table.group(1)
    # Lesson 03: the bit-width and granularity buttons, and the histogram drawn in the output widget.
    assert quantization.count('class="lm-Widget p-Widget jupyter-widgets-disconnected widget-toggle-buttons"') == 2
    output = re.search(r'<div class="[^"]*widget-output">(.*)', quantization, re.S)
    assert output and re.search(r'<img src="data:image/png;base64,', output.group(1)[:5000])
    # Lesson 03's formulas, drawn by the site's own MathJax as SVG.
    assert re.search(r'<mjx-container[^>]*>\s*<svg', quantization), "MathJax drew the formulas"
