"""A CIFAR-10 batch file is data, never code: a pickle that would run code when loaded with
plain `pickle` is refused in every form the loader reads (the archive, the extracted folder,
the Keras cache and the Keras download), and nothing runs; real batches, written with any
pickle protocol from 2 to 5 or by Python 2, with labels as ints or numpy integers, still load;
other numpy objects are refused as such. Everything is made in tmp_path."""
from __future__ import annotations

import builtins
import io
import os
import pickle
import pickletools
import shlex
import struct
import subprocess
import sys

import numpy as np
import pytest
from datafiles import ALL, NAMES, SMALL, cifar_files, write_batches, write_tar

from effcourse import data, paths


pytestmark = pytest.mark.usefixtures("isolated_data")


# --------------------------------------------------------------------------- crafted batches


class _Payload:
    """Pickles as a call of `func(*args)`: what a crafted batch file would run when loaded."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


PAYLOADS = {
    "writes a file": lambda marker: _Payload(builtins.open, str(marker), "w"),
    "runs a command": lambda marker: _Payload(os.system, f"touch {shlex.quote(str(marker))}"),
}


@pytest.fixture(params=list(PAYLOADS))
def evil(request, tmp_path):
    """(batch files whose test_batch runs the payload when unpickled, the marker file it
    would create, the global it asks for). Plain pickle is first shown to create the marker,
    so a test that finds no marker cannot pass for a payload that does nothing."""
    marker = tmp_path / "PWNED"
    payload = PAYLOADS[request.param](marker)
    files, _, _ = cifar_files()
    batch = pickle.loads(files["test_batch"])
    batch[b"filenames"] = payload  # an otherwise valid batch
    files["test_batch"] = pickle.dumps(batch, protocol=2)
    plain_load = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", plain_load], input=files["test_batch"], check=True)
    assert marker.exists(), "the crafted pickle should run its payload under plain pickle"
    marker.unlink()
    return files, marker, f"{payload.func.__module__}.{payload.func.__name__}"


def assert_refused(message, where, global_name):
    assert f"{where} is refused: loading it would run code" in message
    assert global_name in message and "Nothing was executed" in message


def test_archive_is_refused(tmp_path, evil):
    files, marker, name = evil
    tar = write_tar(tmp_path / "user" / "cifar-10-python.tar.gz", files)
    with pytest.raises(data.DataError) as err:
        data.load_cifar10(tar, profile=ALL)
    where = f"{paths.display(tar)} (member cifar-10-batches-py/test_batch)"
    assert_refused(str(err.value), where, name)
    assert not marker.exists()


def test_extracted_folder_is_refused(tmp_path, evil):
    files, marker, name = evil
    folder = write_batches(tmp_path / "user" / "cifar-10-batches-py", files)
    with pytest.raises(data.DataError) as err:
        data.load_cifar10(folder, profile=ALL)
    assert_refused(str(err.value), paths.display(folder / "test_batch"), name)
    assert not marker.exists()


@pytest.mark.parametrize("parent", [False, True])
def test_extracted_folder_named_by_env_var_is_refused(tmp_path, monkeypatch, evil, parent):
    files, marker, name = evil
    folder = write_batches(tmp_path / "user" / "cifar-10-batches-py", files)
    monkeypatch.setenv(data.DATA_ENV_VAR, str(folder.parent if parent else folder))
    with pytest.raises(data.DataError) as err:
        data.load_cifar10(profile=ALL)
    where = f"$EFFCOURSE_DATA/{'cifar-10-batches-py/' if parent else ''}test_batch"
    assert_refused(str(err.value), where, name)
    assert not marker.exists()


@pytest.mark.parametrize("form", ["folder", "archive"])
def test_keras_cache_is_refused(tmp_path, capsys, evil, form):
    files, marker, name = evil
    datasets = tmp_path / "keras" / "datasets"
    if form == "folder":
        write_batches(datasets / "cifar-10-batches-py", files)
        where = "$KERAS_HOME/datasets/cifar-10-batches-py/test_batch"
    else:  # the archive Keras downloads, next to where it extracts it
        write_tar(datasets / "cifar-10-batches-py.tar.gz", files)
        where = ("$KERAS_HOME/datasets/cifar-10-batches-py.tar.gz "
                 "(member cifar-10-batches-py/test_batch)")
    d = data.load_cifar10(profile=SMALL)
    assert d.synthetic  # not loaded: the loader fell back to the stand-in
    out = capsys.readouterr().out
    assert "Not using the Keras cache: " in out
    assert_refused(out, where, name)
    assert not marker.exists()


def test_keras_download_is_refused(tmp_path, monkeypatch, capsys, evil):
    import tf_keras

    files, marker, name = evil
    downloads = []

    def crafted_download(fname, origin, *, cache_dir, cache_subdir="datasets", **kwargs):
        downloads.append(origin)
        return str(write_tar(tmp_path / "keras" / cache_subdir / fname, files))

    monkeypatch.delenv(data.OFFLINE_ENV_VAR)
    monkeypatch.setattr(tf_keras.utils, "get_file", crafted_download)
    d = data.load_cifar10(profile=SMALL)
    assert d.synthetic and downloads == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    out = capsys.readouterr().out
    assert "the Keras download failed (DataError: " in out
    assert_refused(out, "$KERAS_HOME/datasets/cifar-10-batches-py.tar.gz "
                        "(member cifar-10-batches-py/test_batch)", name)
    assert not marker.exists()


def test_keras_download_of_real_batches_is_loaded(tmp_path, monkeypatch, capsys):
    import tf_keras

    files, x, _ = cifar_files()

    def download(fname, origin, *, cache_dir, cache_subdir="datasets", **kwargs):
        return str(write_tar(tmp_path / "keras" / cache_subdir / fname, files))

    monkeypatch.delenv(data.OFFLINE_ENV_VAR)
    monkeypatch.setattr(tf_keras.utils, "get_file", download)
    d = data.load_cifar10(profile=ALL)
    assert not d.synthetic and d.source == "CIFAR-10: Keras cache cifar-10-batches-py"
    assert {img.tobytes() for img in d.x_test} == {img.tobytes() for img in x[100:]}
    out = capsys.readouterr().out
    assert "Downloading CIFAR-10 (170 MB) into $KERAS_HOME/datasets" in out
    assert "from $KERAS_HOME/datasets/cifar-10-batches-py.tar.gz (Keras download)" in out


# --------------------------------------------------------------------------- real batches


class _Python2Pickler(pickle._Pickler):
    """Writes strings and bytes as Python 2's cPickle wrote its `str`: (SHORT_)BINSTRING."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin-1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def python2_dumps(obj) -> bytes:
    """`obj` pickled as Python 2 and numpy 1.x wrote the official batches (protocol 2)."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    raw = buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    opcodes = {op.name for op, _, _ in pickletools.genops(raw)}
    assert not opcodes & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
    assert b"_codecs" not in raw  # Python 3 writes bytes in protocol 2 as _codecs.encode calls
    return raw


DUMPS = {f"protocol {p}": (lambda p: lambda obj: pickle.dumps(obj, protocol=p))(p)
         for p in (2, 3, 4, 5)}
DUMPS["Python 2"] = python2_dumps


@pytest.mark.parametrize("how", DUMPS)
def test_real_batches_load_whatever_pickle_wrote_them(tmp_path, how):
    dumps = DUMPS[how]
    files, x, y = cifar_files()
    for name, raw in files.items():
        batch = pickle.loads(raw)
        if name != "batches.meta":
            batch[b"data"] = np.ascontiguousarray(batch[b"data"])
            batch[b"filenames"] = [f"image_{i}.png".encode() for i in range(len(batch[b"labels"]))]
        files[name] = dumps(batch)
    assert pickle.loads(files["test_batch"], encoding="bytes")[b"data"].dtype == np.uint8
    if how == "Python 2":  # numpy 1.x's name of the array reconstructor
        assert b"cnumpy.core.multiarray\n_reconstruct\n" in files["test_batch"]
    tar = data.load_cifar10(write_tar(tmp_path / "cifar-10-python.tar.gz", files), profile=ALL)
    folder = data.load_cifar10(write_batches(tmp_path / "cifar-10-batches-py", files), profile=ALL)
    for d in (tar, folder):
        assert d.class_names == NAMES and not d.synthetic
        images = np.concatenate([d.x_train, d.x_val, d.x_test])
        labels = np.concatenate([d.y_train, d.y_val, d.y_test])
        loaded = {img.tobytes(): lab for img, lab in zip(images, labels)}
        assert loaded == {img.tobytes(): lab for img, lab in zip(x, y)}


# --------------------------------------------------------------------------- numpy objects


def _relabelled(labels_of, *, protocol=5, module="numpy._core.multiarray"):
    """CIFAR-10 batch files whose labels are `labels_of(labels)`, pickled with `protocol`
    (numpy 1.x wrote `module` numpy.core.multiarray), and their images and labels."""
    files, x, y = cifar_files()
    for name, raw in files.items():
        if name != "batches.meta":
            batch = pickle.loads(raw)
            batch[b"labels"] = labels_of(batch[b"labels"])
            files[name] = pickle.dumps(batch, protocol=protocol).replace(
                b"cnumpy._core.multiarray\nscalar\n", f"c{module}\nscalar\n".encode())
    return files, x, y


@pytest.mark.parametrize("protocol, module", [(5, "numpy._core.multiarray"),
                                              (2, "numpy.core.multiarray")])
def test_labels_saved_as_numpy_integers_load(tmp_path, protocol, module):
    as_numpy = lambda labels: [np.int64(v) if v % 2 else np.uint8(v) for v in labels]  # noqa: E731
    files, x, y = _relabelled(as_numpy, protocol=protocol, module=module)
    if protocol == 2:  # as numpy 1.x named the scalar reconstructor
        assert f"c{module}\nscalar\n".encode() in files["test_batch"]
    d = data.load_cifar10(write_batches(tmp_path / "cifar-10-batches-py", files), profile=ALL)
    images = np.concatenate([d.x_train, d.x_val, d.x_test])
    labels = np.concatenate([d.y_train, d.y_val, d.y_test])
    assert {img.tobytes(): lab for img, lab in zip(images, labels)} == {
        img.tobytes(): lab for img, lab in zip(x, y)}


OTHER_NUMPY = {
    "float labels": (lambda labels: [np.float64(v) for v in labels], "numpy.float64 scalar"),
    "object scalar": (lambda labels: _Payload(np._core.multiarray.scalar, np.dtype("O"), labels),
                      "numpy.object scalar"),
    "random generator": (lambda labels: [np.random.default_rng(0)], "numpy.random."),
}


@pytest.mark.parametrize("case", OTHER_NUMPY)
def test_other_numpy_objects_are_refused_as_such(tmp_path, case):
    labels_of, qualified = OTHER_NUMPY[case]
    folder = write_batches(tmp_path / "cifar-10-batches-py", _relabelled(labels_of)[0])
    with pytest.raises(data.DataError) as err:
        data.load_cifar10(folder, profile=ALL)
    message = str(err.value)
    assert message.startswith(f"{paths.display(folder / 'data_batch_1')} is refused: it holds "
                              f"numpy objects ({qualified}")
    assert "Nothing was executed" in message
    assert "save the labels as a list of plain Python ints" in message
