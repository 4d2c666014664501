"""`load_cifar10`: CIFAR-10 from the first source that has it, a local copy (the official
archive or folder, or a class-per-folder tree or zip), the Keras cache or download, else a
synthetic stand-in."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from effcourse import paths

from .batches import (_BATCH_FILES, _BATCHES_DIR, _TAR_NAME, _read_cifar_folder,
                      _read_cifar_tar)
from .folders import _load_tree
from .imagedata import (CIFAR10_CLASSES, DATA_ENV_VAR, OFFLINE_ENV_VAR, DataError, ImageData,
                        _announce, _check_fraction, _described, _from_arrays, _profile, _reason,
                        _unreadable)
from .synthetic import synthetic_cifar10
from .trees import _hidden

_CHECKOUT_DATA = paths.CHECKOUT / "data"
_SYNTHETIC_SOURCE = "SYNTHETIC stand-in for CIFAR-10 (not real data)"
# The Keras download: the origin and hash `tf_keras.datasets.cifar10` uses, and the name it
# gives the archive in the Keras cache (it extracts it next to it as cifar-10-batches-py/).
_KERAS_ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_KERAS_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
_KERAS_ARCHIVE = f"{_BATCHES_DIR}.tar.gz"
_KERAS_HOME = "KERAS_HOME"
_DOWNLOAD_TIMEOUT_S = 20
_failed_download: list[str] = []  # why the download failed in this process: not tried again


def load_cifar10(path=None, profile=None, *, validation_fraction=0.1, seed=0) -> ImageData:
    """CIFAR-10 at the profile's size, from the first source that has it:

    1. `path`, else $EFFCOURSE_DATA, else a copy in the course's `data/` folder: the official
       cifar-10-python.tar.gz, its extracted cifar-10-batches-py/ folder, or a class-per-folder
       image tree or a zip of one (see `load_image_folder`);
    2. the Keras cache ($KERAS_HOME or ~/.keras), downloading into it unless
       EFFCOURSE_OFFLINE=1;
    3. a synthetic stand-in (announced loudly as not CIFAR-10).

    `validation_fraction` of the training images, stratified, is the validation split (0: none,
    and `val_dataset` refuses). A path given explicitly (argument or $EFFCOURSE_DATA) that
    cannot be read raises DataError.
    """
    profile = _profile(profile)
    _check_fraction("validation_fraction", validation_fraction, allow_zero=True)
    split = {"profile": profile, "validation_fraction": validation_fraction, "seed": seed}
    if path is not None:
        return _load_local(Path(path).expanduser(), "the path argument", **split)
    if os.environ.get(DATA_ENV_VAR):
        return _load_local(Path(os.environ[DATA_ENV_VAR]).expanduser(),
                           f"set by ${DATA_ENV_VAR}", setting=DATA_ENV_VAR, **split)
    notes = []
    copy = _copy_in(_CHECKOUT_DATA)
    if copy is None:
        notes.append(f"no copy in {paths.display(_CHECKOUT_DATA)}")
    else:
        try:
            return _load_local(copy, "found in the course's data/ folder", **split)
        except DataError as err:
            print(f"Not using {paths.display(copy)}: {err}")
            notes.append(f"{paths.display(copy)} is unreadable")
    keras = _keras_cifar10(notes)
    if keras is not None:
        *arrays, origin = keras
        loaded = _from_arrays(*arrays, CIFAR10_CLASSES, f"CIFAR-10: Keras cache {_BATCHES_DIR}",
                              where=origin, **split)
        return _announce(loaded, profile, origin)
    n_train, n_test = profile.train_images or 50_000, profile.test_images or 10_000
    loaded = _from_arrays(*synthetic_cifar10(n_train, n_test, seed=seed), CIFAR10_CLASSES,
                          _SYNTHETIC_SOURCE, where=_SYNTHETIC_SOURCE, synthetic=True, **split)
    return _announce(loaded, profile, "; ".join(notes))


def _load_local(path: Path, origin: str, setting: str | None = None, **split) -> ImageData:
    """A copy the user pointed at (or put in data/): the CIFAR-10 archive, folder, or a tree.
    `setting` is the environment variable that named `path`, if one did."""
    if not path.exists():
        unset = f"; or unset {DATA_ENV_VAR} to use the Keras download"
        raise DataError(
            f"{_described(path, origin, setting)} does not exist. Give the path of "
            "cifar-10-python.tar.gz, its extracted cifar-10-batches-py/ folder, or a "
            f"class-per-folder image tree or zip{unset if setting == DATA_ENV_VAR else ''}."
        )
    try:
        if path.is_dir():
            path = _official_in(path) or path
        kind = _kind(path, setting)
        if kind == "tree":
            return _load_tree(path, origin, image_size=(32, 32), test_fraction=0.2, name=None,
                              setting=setting, **split)
        if kind == "tar":
            arrays, source = _read_cifar_tar(path, setting), f"CIFAR-10: {path.name}"
        else:
            arrays, source = _read_cifar_folder(path, setting), f"CIFAR-10: batches folder {path.name}"
    except OSError as err:  # permission denied and the like, wherever in the copy it happens
        raise _unreadable(err, path, setting) from err
    where = _described(path, origin, setting)
    return _announce(_from_arrays(*arrays, source, where=where, **split), split["profile"], where)


def _official_in(folder: Path) -> Path | None:
    """The official archive or its extracted folder directly inside `folder`, if there."""
    for name in (_TAR_NAME, _BATCHES_DIR):
        if (folder / name).exists():
            return folder / name
    return None


def _copy_in(folder: Path) -> Path | None:
    """The copy a learner put in `folder`: the official archive or folder, else the first zip
    or folder (a class-per-folder tree) in it by name."""
    if not folder.is_dir():
        return None
    others = sorted(p for p in folder.iterdir() if not _hidden(p.name)
                    and (p.is_dir() or p.suffix.lower() == ".zip"))
    return _official_in(folder) or (others[0] if others else None)


def _kind(path: Path, setting: str | None = None) -> str:
    """'batches' (extracted CIFAR-10 folder), 'tar' (the archive) or 'tree' (folder or zip)."""
    if path.is_dir():
        is_batches = path.name == _BATCHES_DIR or any((path / n).exists() for n in _BATCH_FILES)
        return "batches" if is_batches else "tree"
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return "tar"
    if name.endswith(".zip"):
        return "tree"
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic.startswith(b"\x1f\x8b"):
        return "tar"
    if magic == b"PK\x03\x04":
        return "tree"
    raise DataError(
        f"{paths.display(path, setting)} is not a supported format. Expected "
        "cifar-10-python.tar.gz, its extracted cifar-10-batches-py/ folder, a folder of class "
        "folders of images, or a .zip of one."
    )


# --------------------------------------------------------------------------- Keras cache


def _keras_cifar10(notes: list[str]):
    """(x_train, y_train, x_test, y_test, where) from the Keras cache, downloading it unless
    offline; None (with the reason added to `notes`) when neither works. Whatever Keras put
    there or downloads is read by the project's own reader, which runs no code from it."""
    base = Path(os.environ.get(_KERAS_HOME) or Path.home() / ".keras").expanduser()
    datasets = base / "datasets"
    for cached in (datasets / _BATCHES_DIR, datasets / _KERAS_ARCHIVE):
        if cached.exists():
            shown = paths.display(cached, _KERAS_HOME)
            try:
                *arrays, _ = _read_keras(cached)
                return (*arrays, f"{shown} (Keras cache)")
            except DataError as err:
                print(f"Not using the Keras cache: {err}")
                notes.append(f"the Keras cache {shown} is unreadable")
    if os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() in ("1", "true", "yes"):
        notes.append(f"no Keras cache in {paths.display(datasets, _KERAS_HOME)}; download "
                     f"skipped ({OFFLINE_ENV_VAR}=1)")
        return None
    if _failed_download:
        notes.append(f"the Keras download failed earlier in this process ({_failed_download[0]})")
        return None
    print(f"Downloading CIFAR-10 (170 MB) into {paths.display(datasets, _KERAS_HOME)} ...",
          flush=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        import tf_keras

        base.mkdir(parents=True, exist_ok=True)  # else get_file falls back to /tmp/.keras
        archive = Path(tf_keras.utils.get_file(
            _KERAS_ARCHIVE, origin=_KERAS_ORIGIN, file_hash=_KERAS_SHA256,
            cache_subdir="datasets", cache_dir=str(base)))
        *arrays, _ = _read_keras(archive)
    except Exception as err:  # get_file raises bare Exceptions; any failure means: fall back
        _failed_download.append(_reason(err))
        notes.append(f"the Keras download failed ({_failed_download[0]})")
        return None
    finally:
        socket.setdefaulttimeout(previous)
    return (*arrays, f"{paths.display(archive, _KERAS_HOME)} (Keras download)")


def _read_keras(path: Path):
    """The arrays of the Keras cache's extracted folder or archive."""
    read = _read_cifar_folder if path.is_dir() else _read_cifar_tar
    return read(path, _KERAS_HOME)
