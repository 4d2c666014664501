"""The main job's runner and the command line, on tiny notebooks."""
import json
import os

import nbformat
import pytest

from effcourse import cli, course, paths, profiles


def write_notebook(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_lesson_notebooks_are_ordered_and_filtered(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "notes.ipynb"):
        write_notebook(tmp_path / name, "1")
    assert [p.name for p in course.lesson_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb"]
    assert [p.name for p in course.lesson_notebooks(tmp_path, only=["02"])] == ["02_b.ipynb"]
    with pytest.raises(course.CourseError, match="No lesson"):
        course.lesson_notebooks(tmp_path, only=["09"])
    with pytest.raises(course.CourseError, match="No notebooks folder"):
        course.lesson_notebooks(tmp_path / "missing")


def test_run_notebook_saves_outputs_and_measures_peak_memory(tmp_path, monkeypatch):
    monkeypatch.setenv(profiles.ENV_VAR, "workshop")
    source = write_notebook(tmp_path / "01_a.ipynb", "import os\nprint(os.environ['EFFCOURSE_PROFILE'])", "x = bytearray(50 * 2**20)")
    run = course.run_notebook(source, tmp_path / "out" / "01_a.ipynb")
    executed = nbformat.read(tmp_path / "out" / "01_a.ipynb", as_version=4)
    assert len(executed.cells) == 2  # the measuring cell is not saved
    assert executed.cells[0].outputs[0]["text"].strip() == "workshop"
    assert run.seconds > 0 and run.peak_mib > 50


def test_failing_notebook_names_itself(tmp_path):
    source = write_notebook(tmp_path / "01_bad.ipynb", "raise RuntimeError('boom')")
    with pytest.raises(course.CourseError, match="01_bad.ipynb failed") as err:
        course.run_notebook(source, tmp_path / "out.ipynb")
    assert "boom" in str(err.value)


def test_a_failed_run_shows_no_stored_output_in_the_cells_it_did_not_reach(tmp_path):
    """They kept the committed run's outputs (CIFAR-10, the full profile) after a failure on other data."""
    source = write_notebook(tmp_path / "01_bad.ipynb", "print('ran')", "raise RuntimeError('boom')", "print('never')")
    stored = nbformat.read(source, as_version=4)
    stored.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="full profile, CIFAR-10\n")]
    stored.cells[2].execution_count = 7
    nbformat.write(stored, source)
    with pytest.raises(course.CourseError):
        course.run_notebook(source, tmp_path / "out.ipynb")
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == "ran"
    assert executed.cells[2].outputs == [] and executed.cells[2].execution_count is None


def test_run_notebook_reports_each_code_cell_with_its_section(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Lesson 01 · Tiny\n\n## 1. Setting up\n\nSome words."),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("### A detail, not a section"),
        nbformat.v4.new_code_cell("print(x)"),
    ])
    nbformat.write(nb, tmp_path / "01_tiny.ipynb")
    lines = []
    course.run_notebook(tmp_path / "01_tiny.ipynb", tmp_path / "out.ipynb", progress=lines.append)
    assert len(lines) == 2  # the appended peak-memory cell is neither counted nor shown
    assert all("01_tiny" in line and "1. Setting up" in line and len(line) < 100 for line in lines)
    assert "cell 1/2" in lines[0] and "cell 2/2" in lines[1]
    assert lines[1].split()[-1].count(":") == 1  # elapsed m:ss


def test_a_long_cell_is_reported_again_while_it_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "HEARTBEAT_S", 0.25)  # about 10 beats in the cell: a busy machine still reports 2
    source = write_notebook(tmp_path / "01_slow.ipynb", "import time\ntime.sleep(2.5)", "x = 1")
    lines = []
    course.run_notebook(source, tmp_path / "out.ipynb", progress=lines.append)
    running = [line for line in lines if "cell running" in line]
    assert lines[0].startswith("  01_slow  cell 1/2") and "cell 2/2" in lines[-1]
    assert len(running) >= 2 and all("cell 1/2" in line for line in running)  # only the slow cell


def test_progress_line_fits_in_100_columns():
    line = course._progress_line("02_pruning", 12, 29, "3. A very long section title " * 5, 154.9)
    assert line.startswith("  02_pruning  cell 12/29  3. A very long") and line.endswith("…  2:34")
    assert len(line) < 100
    assert course._progress_line("01_a", 1, 2, "", 3725) == "  01_a  cell 1/2    62:05"
    assert course._progress_line("01_a", 1, 2, "", 75, running=61).endswith("1:15, cell running 1:01")


def test_kernel_transport_warning_does_not_reach_the_terminal(tmp_path, capfd):
    source = write_notebook(tmp_path / "01_a.ipynb", "print('hello')")
    course.run_notebook(source, tmp_path / "out.ipynb", progress=lambda line: None)
    out, err = capfd.readouterr()
    assert "without encryption" not in out + err
    assert "hello" not in out + err  # the cell's own output goes to the notebook, not the terminal


def test_cli_rejects_unknown_profile(capsys):
    assert cli.main(["run", "--profile", "bogus"]) == 1
    assert "Valid profiles: smoke, workshop, full" in capsys.readouterr().err


def test_cli_compare_with_empty_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    assert cli.main(["compare"]) == 0
    assert "No comparisons recorded" in capsys.readouterr().out


def test_cli_compare_skips_records_of_the_wrong_shape(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    row = {"model": "small", "accuracy %": 71.5, "speed verdict": "faster"}  # a row lacking figures shows –
    good = {"id": "a", "title": "Pruned against dense", "lesson": "02", "timestamp": "2026-01-01T00:00:00+00:00",
            "conditions": "Measured together.", "rows": [row]}
    (tmp_path / "comparisons.jsonl").write_text("\n".join(json.dumps(r) for r in ([1, 2], {"title": "x"}, good)) + "\n")
    with pytest.warns(UserWarning, match=r"lines 1 .*, 2 .* of \$EFFCOURSE_WORKDIR/comparisons.jsonl"):
        assert cli.main(["compare"]) == 0
    out = capsys.readouterr().out
    assert "Pruned against dense" in out and "small" in out and "faster" in out and "–" in out



def test_cli_prints_its_tables_to_a_stream_that_cannot_encode_them(tmp_path):
    """A Windows pipe or file is cp1252, which has no Δ or ≥: `effcourse compare > out.txt` failed
    with UnicodeEncodeError there."""
    import subprocess
    import sys

    row = {"model": "small", "accuracy %": 71.5, "speed verdict": "faster"}
    stored = {"id": "a", "title": "Pruned against dense", "lesson": "02", "timestamp": "2026-01-01T00:00:00+00:00",
              "conditions": "Measured together.", "rows": [row]}
    (tmp_path / "comparisons.jsonl").write_text(json.dumps(stored) + "\n")
    env = {**os.environ, paths.ENV_VAR: str(tmp_path), "PYTHONIOENCODING": "cp1252"}
    done = subprocess.run([sys.executable, "-m", "effcourse", "compare"], capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode("cp1252", "replace")[-2000:]
    out = done.stdout.decode("cp1252")
    assert "Pruned against dense" in out and "? pts" in out  # Δ, which cp1252 lacks, printed as ?

def test_cli_names_a_working_folder_it_cannot_use_without_a_traceback(tmp_path, monkeypatch, capsys):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "a-file"))
    assert cli.main(["compare"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("effcourse: The course's working folder cannot be used: $EFFCOURSE_WORKDIR is a file")
    assert "point EFFCOURSE_WORKDIR at a folder you may write" in err and str(tmp_path) not in err


@pytest.mark.parametrize("only, asked", [(["1", "03"], ["01", "03"]), (["01_baseline"], ["01_baseline"])])
def test_cli_run_reads_lesson_numbers_in_one_or_two_digits(monkeypatch, only, asked):
    given = []
    monkeypatch.setattr(course, "run", lambda profile, only, inplace: given.append(only) or ([], "2026"))
    monkeypatch.setattr(cli, "_print_comparisons", lambda comparisons: None)
    assert cli.main(["run", "--only", *only]) == 0
    assert given == [asked]


def test_cli_run_refuses_a_lesson_number_that_would_select_every_lesson(monkeypatch, capsys):
    monkeypatch.setattr(course, "run", lambda *args, **kwargs: pytest.fail("ran lessons"))
    assert cli.main(["run", "--only", "0"]) == 1
    assert "--only '0' names no lesson: lessons are numbered from 01" in capsys.readouterr().err


def test_cli_compare_reads_a_lesson_number_in_one_or_two_digits(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    record = {"id": "a", "title": "Pruned against dense", "lesson": "02", "timestamp": "2026-01-01T00:00:00+00:00",
              "conditions": "Measured together.", "rows": [{"model": "small", "accuracy %": 71.5}]}
    (tmp_path / "comparisons.jsonl").write_text(json.dumps(record) + "\n")
    for lesson in ("2", "02"):
        assert cli.main(["compare", "--lesson", lesson]) == 0
        assert "Pruned against dense" in capsys.readouterr().out
