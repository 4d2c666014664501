"""The working folder, and how a path is printed: relative to the setting that chose it, the
checkout or the home folder, never as an absolute path of the machine that ran the course."""
from pathlib import Path

import pytest

from effcourse import paths

DATA_VAR = "EFFCOURSE_DATA"


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No course settings, and a home folder of its own (under tmp_path, away from the checkout)."""
    monkeypatch.delenv(DATA_VAR, raising=False)
    monkeypatch.delenv(paths.ENV_VAR, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert Path.home() == home
    return tmp_path


def shown(tmp_path, path, setting=None) -> str:
    text = paths.display(path, setting)
    assert str(tmp_path) not in text, f"{text!r} names an absolute path of this machine"
    return text


def test_workdir_setting_and_subdirs(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "work"))
    assert paths.workdir() == tmp_path / "work"
    assert (tmp_path / "work").is_dir()
    assert paths.subdir("models") == tmp_path / "work" / "models"
    assert paths.subdir("models").is_dir()


def test_a_working_folder_that_cannot_be_used_says_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "a-file"))
    with pytest.raises(paths.WorkdirError, match=r"\$EFFCOURSE_WORKDIR is a file, not a folder\. To fix it, point "
                                                 "EFFCOURSE_WORKDIR at a folder you may write") as error:
        paths.workdir()
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "a-file" / "work"))
    with pytest.raises(paths.WorkdirError, match=r"cannot be created \(Not a directory\)"):
        paths.workdir()
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path / "work"))
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "models").write_text("")
    with pytest.raises(paths.WorkdirError, match=r"\$EFFCOURSE_WORKDIR/models is a file") as in_it:
        paths.subdir("models")
    assert str(tmp_path) not in str(error.value) + str(in_it.value)


def test_an_unwritable_working_folder_says_what_to_do(clean_env, monkeypatch):
    monkeypatch.setattr(paths, "CHECKOUT", fake_checkout(clean_env / "course"))
    monkeypatch.setattr(paths.os, "access", lambda path, mode: False)  # as a user other than root sees it
    with pytest.raises(paths.WorkdirError, match=r"\.effcourse is a folder you may not write in\. To fix it, set "
                                                 "EFFCOURSE_WORKDIR to a folder you may write"):
        paths.workdir()

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    monkeypatch.setenv(paths.ENV_VAR, str(clean_env / "work"))
    with pytest.raises(paths.WorkdirError, match=r"\$EFFCOURSE_WORKDIR cannot be created \(Permission denied\)"):
        paths.workdir()


def fake_checkout(folder: Path, complete: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text("[project]\n")
    if complete:
        (folder / "notebooks").mkdir()
    return folder


def test_workdir_defaults_to_the_checkout_else_the_home_folder(clean_env, monkeypatch):
    checkout = fake_checkout(clean_env / "course")
    monkeypatch.setattr(paths, "CHECKOUT", checkout)
    assert paths.workdir() == checkout / ".effcourse" and (checkout / ".effcourse").is_dir()
    installed = fake_checkout(clean_env / "site-packages", complete=False)  # no notebooks: an installed copy
    monkeypatch.setattr(paths, "CHECKOUT", installed)
    assert paths.workdir() == clean_env / "home" / ".effcourse"
    assert not (installed / ".effcourse").exists()


def test_path_under_the_data_setting(clean_env, monkeypatch):
    data = clean_env / "datasets"
    monkeypatch.setenv(DATA_VAR, str(data))
    assert shown(clean_env, data, DATA_VAR) == "$EFFCOURSE_DATA"
    assert shown(clean_env, data / "sub" / "file", DATA_VAR) == "$EFFCOURSE_DATA/sub/file"
    assert shown(clean_env, str(data / "sub" / "file"), DATA_VAR) == "$EFFCOURSE_DATA/sub/file"
    # Without naming the setting, the folder is just somewhere else.
    assert shown(clean_env, data / "sub" / "file") == ".../file"


def test_setting_named_but_unset_or_elsewhere_falls_through(clean_env, monkeypatch):
    assert shown(clean_env, clean_env / "datasets" / "file", DATA_VAR) == ".../file"  # unset
    monkeypatch.setenv(DATA_VAR, str(clean_env / "datasets"))
    assert shown(clean_env, clean_env / "other" / "file", DATA_VAR) == ".../file"
    assert shown(clean_env, clean_env / "home" / "file", DATA_VAR) == "~/file"


def test_path_under_the_workdir_setting(clean_env, monkeypatch):
    work = clean_env / "work"
    monkeypatch.setenv(paths.ENV_VAR, str(work))
    assert shown(clean_env, work / "models" / "x") == "$EFFCOURSE_WORKDIR/models/x"
    assert shown(clean_env, paths.subdir("models") / "x", DATA_VAR) == "$EFFCOURSE_WORKDIR/models/x"


def test_path_under_the_checkout(clean_env, monkeypatch):
    checkout = fake_checkout(clean_env / "course")
    monkeypatch.setattr(paths, "CHECKOUT", checkout)
    assert shown(clean_env, checkout / "data" / "x.zip") == "data/x.zip"
    assert shown(clean_env, checkout) == "."
    monkeypatch.setattr(paths, "CHECKOUT", fake_checkout(clean_env / "installed", complete=False))
    assert shown(clean_env, clean_env / "installed" / "data" / "x.zip") == ".../x.zip"  # not a checkout


@pytest.mark.skipif(not paths._is_checkout(), reason="effcourse is installed, not run from its checkout")
def test_path_under_this_checkout(clean_env):
    assert shown(clean_env, paths.CHECKOUT / "data" / "x.zip") == "data/x.zip"


def test_path_under_home(clean_env):
    home = clean_env / "home"
    assert shown(clean_env, home / ".effcourse" / "models" / "a.keras") == "~/.effcourse/models/a.keras"
    assert shown(clean_env, "~/x.zip") == "~/x.zip"
    assert shown(clean_env, home) == "~"


def test_any_other_absolute_path_shows_only_its_name(clean_env):
    assert shown(clean_env, clean_env / "elsewhere" / "model.tflite") == ".../model.tflite"
    assert shown(clean_env, "/opt/some/where/weights.h5") == ".../weights.h5"


def test_a_setting_wins_over_the_home_folder(clean_env, monkeypatch):
    """A setting inside the home folder is still named by the setting."""
    data = clean_env / "home" / "datasets"
    monkeypatch.setenv(DATA_VAR, "~/datasets")  # expanded like the course expands it
    assert shown(clean_env, data / "cifar10.npz", DATA_VAR) == "$EFFCOURSE_DATA/cifar10.npz"
    assert shown(clean_env, data / "cifar10.npz") == "~/datasets/cifar10.npz"
