"""Lesson helpers, shared plots and the working folder."""
import pytest

from effcourse import notebook, paths, plots, profiles


def test_check_passes_and_fails_with_the_claim(capsys):
    notebook.check(True, "one is one")
    assert capsys.readouterr().out == "Check passed: one is one\n"
    with pytest.raises(AssertionError, match="Check failed: two is one"):
        notebook.check(False, "two is one")


def test_run_header_names_profile_and_hardware(monkeypatch, capsys):
    monkeypatch.setenv(profiles.ENV_VAR, "workshop")
    assert notebook.run_header().name == "workshop"
    out = capsys.readouterr().out
    assert "Profile : workshop" in out and "Hardware:" in out and "tensorflow" in out


def test_show_source_displays_code(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    notebook.show_source(notebook.check)
    assert "def check(" in shown[0].data


def test_learning_curves_draw_each_model():
    history = {"loss": [2.0, 1.5], "val_loss": [2.1, 1.7], "accuracy": [0.2, 0.4], "val_accuracy": [0.2, 0.35]}
    fig = plots.learning_curves({"a": history, "b": history})
    accuracy_axis, loss_axis = fig.axes
    assert len(accuracy_axis.lines) == 4 and len(loss_axis.lines) == 4


def test_workdir_setting_and_subdirs(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "work"))
    assert paths.workdir() == tmp_path / "work"
    assert paths.subdir("models").is_dir()
