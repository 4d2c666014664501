"""The official CIFAR-10 format: cifar-10-python.tar.gz (read in place) or its extracted
cifar-10-batches-py/ folder of pickled batches. A batch file is data, never code: it is read
with an unpickler that admits only what a numpy array or integer needs and refuses anything
else."""
from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

from effcourse import paths

from .imagedata import CIFAR10_CLASSES, CIFAR10_URL, DATA_ENV_VAR, DataError, _reason

_TAR_NAME = "cifar-10-python.tar.gz"
_BATCHES_DIR = "cifar-10-batches-py"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_META = "batches.meta"
_BATCH_FILES = (*_TRAIN_BATCHES, _TEST_BATCH, _META)

# The only globals a CIFAR-10 batch asks for: numpy arrays (written by numpy 1.x or 2.x, with
# pickle protocols 2 to 5) and, in protocol-2 pickles written by Python 3, bytes. Containers,
# strings and numbers need none.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
})
# numpy's reconstructor of a scalar (an integer label saved as a numpy int): replaced by
# `_integer_scalar`, which builds integers only and calls nothing of numpy's.
_SCALAR_GLOBALS = frozenset({("numpy.core.multiarray", "scalar"),
                             ("numpy._core.multiarray", "scalar")})


class _ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle asked for a global that a CIFAR-10 batch never needs."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.qualified = f"{module}.{name}"


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that can build only containers, strings, numbers, numpy arrays and numpy
    integers: it refuses every other global before anything is called, so loading a file runs
    no code."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if (module, name) in _SCALAR_GLOBALS:
            return _integer_scalar
        raise _ForbiddenGlobal(module, name)

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent IDs are not supported")


def _integer_scalar(dtype, raw=None):
    """A numpy integer from its pickled dtype and bytes; anything else is refused."""
    if not (isinstance(dtype, np.dtype) and dtype.kind in "iu" and isinstance(raw, bytes)
            and len(raw) == dtype.itemsize):
        raise _ForbiddenGlobal("numpy", f"{dtype} scalar")
    return np.frombuffer(raw, dtype=dtype)[0]


def _unpickle(file, where: str) -> dict:
    """One batch file (a binary file object); `where` names it in messages."""
    try:
        return _BatchUnpickler(file, encoding="bytes").load()
    except _ForbiddenGlobal as err:
        if err.qualified.partition(".")[0] == "numpy":
            raise DataError(
                f"{where} is refused: it holds numpy objects ({err.qualified}) that the course's "
                "restricted reader does not load (it loads numpy arrays, integers and plain "
                "Python values only, as loading other objects could run code). Nothing was "
                "executed. If you wrote this file, save the labels as a list of plain Python "
                f"ints and the images as a uint8 array; else download cifar-10-python.tar.gz "
                f"from {CIFAR10_URL}."
            ) from err
        raise DataError(
            f"{where} is refused: loading it would run code (it asks for {err.qualified}, which a "
            "CIFAR-10 batch never needs). Nothing was executed. Delete the file and download "
            f"cifar-10-python.tar.gz from {CIFAR10_URL}."
        ) from err
    except (pickle.UnpicklingError, EOFError, OSError, zlib.error, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError) as err:
        raise DataError(
            f"{where} is not a readable CIFAR-10 batch ({_reason(err)}). The file is truncated "
            f"or corrupt: download cifar-10-python.tar.gz again from {CIFAR10_URL}."
        ) from err


def _read_cifar_tar(path: Path, setting: str | None = None):
    """Arrays of the official archive, read without extracting it; `setting` is the
    environment variable that chose `path`, if one did (for messages)."""
    shown = paths.display(path, setting)
    found = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in _BATCH_FILES:
                    found[base] = _unpickle(tar.extractfile(member),
                                            f"{shown} (member {member.name})")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(
            f"{shown} cannot be read as a tar.gz archive ({_reason(err)}). It may be truncated "
            f"or not the CIFAR-10 archive: download cifar-10-python.tar.gz again from "
            f"{CIFAR10_URL}."
        ) from err
    return _cifar_arrays(found, shown)


def _read_cifar_folder(path: Path, setting: str | None = None):
    """Arrays of an extracted cifar-10-batches-py/ folder."""
    found = {}
    for name in _BATCH_FILES:
        if (path / name).is_file():
            with open(path / name, "rb") as f:
                found[name] = _unpickle(f, paths.display(path / name, setting))
    return _cifar_arrays(found, paths.display(path, setting))


def _cifar_arrays(found: dict, where: str):
    """(x_train, y_train, x_test, y_test, class names) from unpickled CIFAR-10 batches."""
    missing = [n for n in (*_TRAIN_BATCHES, _TEST_BATCH) if n not in found]
    if missing:
        raise DataError(
            f"{where} lacks the CIFAR-10 batch files {', '.join(missing)} (it needs data_batch_1 "
            "to data_batch_5 and test_batch). Extract cifar-10-python.tar.gz again, or point "
            f"{DATA_ENV_VAR} at the .tar.gz itself."
        )
    train = [_batch_arrays(found[n], n, where) for n in _TRAIN_BATCHES]
    x_test, y_test = _batch_arrays(found[_TEST_BATCH], _TEST_BATCH, where)
    x_train, y_train = (np.concatenate(parts) for parts in zip(*train))
    top = max(y_train.max(initial=-1), y_test.max(initial=-1))
    return x_train, y_train, x_test, y_test, _class_names(found, where, top)


def _class_names(found: dict, where: str, top: int) -> tuple[str, ...]:
    """The class names of batches.meta (else CIFAR-10's), one for each label up to `top`."""
    names = CIFAR10_CLASSES
    if _META in found:
        try:
            names = tuple(n.decode() if isinstance(n, bytes) else str(n)
                          for n in found[_META][b"label_names"])
        except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
            raise DataError(f"{where}: {_META} has no list of b'label_names' ({err}). Extract "
                            "cifar-10-python.tar.gz again.") from err
    if top >= len(names):
        named = (f"{_META} names {len(names)} classes in b'label_names'" if _META in found
                 else f"CIFAR-10 has {len(names)} classes (and there is no {_META} naming more)")
        raise DataError(f"{where}: {named}, but the batches have labels up to {top} "
                        f"({top + 1} classes). Extract cifar-10-python.tar.gz again.")
    return names


def _batch_arrays(batch, name: str, where: str):
    try:
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(batch[b"labels"], dtype=np.int64).reshape(-1)
        given = np.asarray(batch[b"labels"]).reshape(-1)
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as err:
        raise DataError(
            f"{where}: {name} is not a CIFAR-10 batch (expected b'data' rows of 3,072 bytes and "
            f"b'labels'; {type(err).__name__}: {err}). Extract cifar-10-python.tar.gz again."
        ) from err
    if given.dtype.kind == "f" and (given != y).any():
        raise DataError(f"{where}: {name} has a label that is not a whole class index ({float(given[given != y][0])}): "
                        "labels are whole numbers (3.0 is read as 3). Save them as ints, or extract "
                        "cifar-10-python.tar.gz again.")
    if len(x) != len(y) or (len(y) and y.min() < 0):
        raise DataError(f"{where}: {name} has {len(x)} images but {len(y)} labels, or negative "
                        "labels. Extract cifar-10-python.tar.gz again.")
    return np.ascontiguousarray(x), y
