"""Nothing the data code prints or raises names an absolute path of the machine: paths are
shown as `paths.display` shows them ($EFFCOURSE_DATA/..., $EFFCOURSE_WORKDIR/..., ~/...,
or .../name). Everything is made in tmp folders; no network."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from datafiles import (ALL, NAMES, SMALL, cifar_files, write_batches, write_tar, write_tree,
                       write_zip)

from effcourse import data
from effcourse.data import folders as data_folders
from effcourse.data import imagedata as data_imagedata


@pytest.fixture(autouse=True)
def isolated(isolated_data, monkeypatch, tmp_path_factory):
    """The data loader isolated (see conftest), its working folder in another tmp folder."""
    monkeypatch.setenv("EFFCOURSE_WORKDIR", str(tmp_path_factory.mktemp("workdir")))
    monkeypatch.setattr(data_folders, "_CACHE_AFTER_S", 0)  # cache even a tiny tree


def assert_no_absolute_path(text: str, *folders: Path):
    """`text` names none of `folders` nor any tail of them (`/pytest-3/test0/...`), and no
    absolute path at all (but the placeholder /path/to/... of the synthetic banner)."""
    for folder in folders:
        for real in {str(folder), os.path.realpath(folder)}:
            parts = Path(real).parts[1:]
            for i in range(len(parts)):
                assert "/" + "/".join(parts[i:]) not in text, f"{real} printed in:\n{text}"
    absolute = re.findall(r"(?:^|[\s(\"'=:])(/[\w.-]+(?:/[\w.-]+)*)", text, flags=re.M)
    assert [p for p in absolute if not p.startswith("/path/to/")] == [], text


def error_of(load, *args, **kwargs) -> str:
    with pytest.raises(data.DataError) as err:
        load(*args, **kwargs)
    return str(err.value)


def test_loading_and_errors_name_no_absolute_path(tmp_path, monkeypatch, capsys):
    workdir = Path(os.environ["EFFCOURSE_WORKDIR"])
    write_tree(tmp_path / "tree", NAMES, 3, 1)
    archive = write_zip(tmp_path / "user" / "mine.zip", tmp_path / "tree")
    monkeypatch.setenv(data.DATA_ENV_VAR, str(archive))
    first = data.load_cifar10(profile=ALL)
    out = capsys.readouterr().out
    assert "from mine.zip (set by $EFFCOURSE_DATA)" in out
    assert "Decoding 40 images from mine.zip" in out
    assert "; cached in $EFFCOURSE_WORKDIR/data-cache/mine.zip-" in out
    monkeypatch.setattr(data_imagedata, "_announced", set())  # announce the second load too
    data.load_cifar10(profile=ALL)
    second = capsys.readouterr().out
    assert "decoded images read from the cache $EFFCOURSE_WORKDIR/data-cache/mine.zip-" in second
    (cache,) = (workdir / "data-cache").glob("*.npz")
    cache.write_bytes(b"not an npz file")
    monkeypatch.setattr(data_imagedata, "_announced", set())
    data.load_cifar10(profile=ALL)
    third = capsys.readouterr().out
    assert "Ignoring the unusable cache file $EFFCOURSE_WORKDIR/data-cache/mine.zip-" in third
    assert first.source == "CIFAR-10 (PNG copy): class-per-folder zip mine.zip"

    errors = []
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "user" / "nowhere.zip"))
    errors.append(error_of(data.load_cifar10, profile=ALL))
    assert "nowhere.zip (set by $EFFCOURSE_DATA) does not exist" in errors[-1]
    (tmp_path / "user" / "corrupt.zip").write_bytes(archive.read_bytes()[:200])
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "user" / "corrupt.zip"))
    errors.append(error_of(data.load_cifar10, profile=ALL))
    assert errors[-1].startswith("$EFFCOURSE_DATA cannot be read as a zip")
    (tmp_path / "tree" / "train" / "cat" / "x.png").write_bytes(b"not a png")
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "tree"))
    errors.append(error_of(data.load_cifar10, profile=ALL))
    assert errors[-1].startswith("$EFFCOURSE_DATA/train/cat/x.png cannot be decoded")
    monkeypatch.delenv(data.DATA_ENV_VAR)
    errors.append(error_of(data.load_cifar10, tmp_path / "nowhere.tar.gz", profile=ALL))
    assert ".../nowhere.tar.gz (the path argument) does not exist" in errors[-1]
    errors.append(error_of(data.load_image_folder, tmp_path / "nowhere", profile=ALL))
    assert errors[-1].startswith(".../nowhere does not exist")
    for text in (out, second, third, *errors):
        assert_no_absolute_path(text, tmp_path, workdir)


def test_cifar10_sources_and_fallbacks_name_no_absolute_path(tmp_path, monkeypatch, capsys):
    files, _, _ = cifar_files()
    batches = write_batches(tmp_path / "user" / "cifar-10-batches-py", files)
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "user"))
    data.load_cifar10(profile=ALL)
    assert "  from $EFFCOURSE_DATA/cifar-10-batches-py\n" in capsys.readouterr().out
    (batches / "test_batch").write_bytes(b"garbage")
    message = error_of(data.load_cifar10, profile=ALL)
    assert message.startswith("$EFFCOURSE_DATA/cifar-10-batches-py/test_batch is not a readable")
    monkeypatch.delenv(data.DATA_ENV_VAR)
    # a broken copy in data/, a broken Keras cache: both reported, then the stand-in
    (tmp_path / "checkout-data").mkdir()
    (tmp_path / "checkout-data" / "cifar-10-python.tar.gz").write_bytes(b"broken")
    write_tar(tmp_path / "keras" / "datasets" / "cifar-10-batches-py.tar.gz",
              {n: raw for n, raw in files.items() if n != "data_batch_2"})
    assert data.load_cifar10(profile=SMALL).synthetic
    out = capsys.readouterr().out
    assert "Not using .../cifar-10-python.tar.gz: .../cifar-10-python.tar.gz cannot be read" in out
    assert "Not using the Keras cache: $KERAS_HOME/datasets/cifar-10-batches-py.tar.gz lacks" in out
    assert "no Keras cache in $KERAS_HOME/datasets; download skipped" in out
    # a working Keras cache, named from $KERAS_HOME or the home folder
    write_batches(tmp_path / "keras" / "datasets" / "cifar-10-batches-py", files)
    data.load_cifar10(profile=SMALL)
    keras_out = capsys.readouterr().out
    assert "from $KERAS_HOME/datasets/cifar-10-batches-py (Keras cache)" in keras_out
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write_batches(tmp_path / "home" / ".keras" / "datasets" / "cifar-10-batches-py", files)
    monkeypatch.setattr(data_imagedata, "_announced", set())
    data.load_cifar10(profile=SMALL)
    home_out = capsys.readouterr().out
    assert "from ~/.keras/datasets/cifar-10-batches-py (Keras cache)" in home_out
    for text in (message, out, keras_out, home_out):
        assert_no_absolute_path(text, tmp_path)


def test_a_copy_the_system_will_not_let_us_read_is_a_data_error(tmp_path, monkeypatch):
    """Permission denied (simulated: root reads everything) becomes a DataError naming the file
    as the setting chose it, not an OSError with this machine's absolute path."""
    folder = write_batches(tmp_path / "cifar-10-batches-py", cifar_files()[0])
    real_open = open

    def denied(file, *args, **kwargs):
        if str(file).endswith("data_batch_3"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", denied)
    monkeypatch.setenv(data.DATA_ENV_VAR, str(folder))
    with pytest.raises(data.DataError) as err:
        data.load_cifar10(profile=ALL)
    message = str(err.value)
    assert "$EFFCOURSE_DATA/data_batch_3 cannot be read" in message and "Permission denied" in message
    assert str(tmp_path) not in message
