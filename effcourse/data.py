"""The course's data: CIFAR-10 (a local copy, the Keras cache or download, else a synthetic
stand-in), any class-per-folder image dataset, tf.data pipelines and a grid of samples.

Every loader returns an `ImageData`: uint8 images (N, H, W, 3) and int64 labels, split into
train, validation (carved stratified from the training images) and test, at the sizes of the
run profile, and a one-line `source` that says what was loaded. What is loaded is announced
once per process in a banner; synthetic data is announced as what it is: not CIFAR-10.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import socket
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from effcourse import paths, profiles

DATA_ENV_VAR = "EFFCOURSE_DATA"  # the one documented setting: path of a local copy
OFFLINE_ENV_VAR = "EFFCOURSE_OFFLINE"  # "1": never try the Keras download
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

_TAR_NAME = "cifar-10-python.tar.gz"
_BATCHES_DIR = "cifar-10-batches-py"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_META = "batches.meta"
_IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
}
_CHECKOUT_DATA = Path(__file__).resolve().parents[1] / "data"
_DOWNLOAD_TIMEOUT_S = 20
# Decoded image trees are cached when decoding took longer than this; the full CIFAR-10
# (JPEG copy) zip takes about 15 s to decode on one core, its cache well under a second to read.
_CACHE_AFTER_S = 1.0
_SYNTHETIC_SOURCE = "SYNTHETIC stand-in for CIFAR-10 (not real data)"
_announced: set[str] = set()  # sources announced in this process
_failed_download: list[str] = []  # why the download failed in this process: not tried again


class DataError(Exception):
    """Data that cannot be used: the message names the path, what is wrong and what to do."""


@dataclass(frozen=True, eq=False)
class ImageData:
    """Images (uint8, N x H x W x 3) and int64 labels in train/validation/test splits."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str
    synthetic: bool
    batch_size: int = 64  # of the profile it was loaded with

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        """One line: the source, the split sizes and the image shape."""
        h, w, c = self.image_shape
        return (
            f"{self.source} | train {len(self.y_train):,}, validation {len(self.y_val):,}, "
            f"test {len(self.y_test):,} images of {h}x{w}x{c}, {self.num_classes} classes"
        )

    def fingerprint(self) -> str:
        """A short hex key for what was loaded (source, classes, shapes, splits and labels)."""
        digest = hashlib.sha256()
        summary = [self.source, list(self.class_names), list(self.image_shape),
                   [len(self.y_train), len(self.y_val), len(self.y_test)]]
        digest.update(json.dumps(summary).encode())
        for labels in (self.y_train, self.y_val, self.y_test):
            digest.update(np.ascontiguousarray(labels, dtype="<i8").tobytes())
        return digest.hexdigest()[:16]

    def fine_tuning_subset(self, profile: profiles.Profile | None = None, *, seed: int = 0) -> "ImageData":
        """This data with a random share of its training images, for fine-tuning a trained model:
        the profile's share of the full work (`epoch_fraction`: 5% in smoke, 30% in workshop, all in
        full), at least one batch. Validation and test images are unchanged."""
        profile = profile or profiles.current()
        n = len(self.x_train)
        keep = min(n, max(self.batch_size, round(n * profile.epoch_fraction)))
        if keep == n:
            return self
        idx = np.sort(np.random.default_rng(seed).permutation(n)[:keep])
        return dataclasses.replace(self, x_train=self.x_train[idx], y_train=self.y_train[idx])

    def train_dataset(self, augment: bool = False, batch_size: int | None = None):
        """Shuffled (and optionally augmented) training batches of normalised images."""
        return pipeline(self.x_train, self.y_train, batch_size=batch_size or self.batch_size,
                        training=True, augment=augment)

    def val_dataset(self, batch_size: int | None = None):
        """Validation batches of normalised images, in order."""
        return pipeline(self.x_val, self.y_val, batch_size=batch_size or self.batch_size)

    def test_dataset(self, batch_size: int | None = None):
        """Test batches of normalised images, in order."""
        return pipeline(self.x_test, self.y_test, batch_size=batch_size or self.batch_size)


# --------------------------------------------------------------------------- loaders


def load_cifar10(path=None, profile=None, *, validation_fraction=0.1, seed=0) -> ImageData:
    """CIFAR-10 at the profile's size, from the first source that has it:

    1. `path`, else $EFFCOURSE_DATA, else a copy in the course's `data/` folder: the official
       cifar-10-python.tar.gz, its extracted cifar-10-batches-py/ folder, or a class-per-folder
       image tree or a zip of one (see `load_image_folder`);
    2. the Keras cache ($KERAS_HOME or ~/.keras), downloading into it unless
       EFFCOURSE_OFFLINE=1;
    3. a synthetic stand-in (announced loudly as not CIFAR-10).

    A path given explicitly (argument or $EFFCOURSE_DATA) that cannot be read raises DataError.
    """
    profile = _profile(profile)
    _check_fraction("validation_fraction", validation_fraction, allow_zero=True)
    split = {"profile": profile, "validation_fraction": validation_fraction, "seed": seed}
    if path is not None:
        return _load_local(Path(path).expanduser(), "the path argument", **split)
    if os.environ.get(DATA_ENV_VAR):
        return _load_local(Path(os.environ[DATA_ENV_VAR]).expanduser(),
                           f"set by ${DATA_ENV_VAR}", **split)
    notes = []
    copy = _copy_in(_CHECKOUT_DATA)
    if copy is None:
        notes.append(f"no copy in {_CHECKOUT_DATA}")
    else:
        try:
            return _load_local(copy, "found in the course's data/ folder", **split)
        except DataError as err:
            print(f"Not using {copy}: {err}")
            notes.append(f"{copy} is unreadable")
    keras = _keras_cifar10(notes)
    if keras is not None:
        *arrays, origin = keras
        loaded = _from_arrays(*arrays, CIFAR10_CLASSES, f"CIFAR-10: Keras cache {_BATCHES_DIR}",
                              **split)
        return _announce(loaded, profile, origin)
    n_train, n_test = profile.train_images or 50_000, profile.test_images or 10_000
    loaded = _from_arrays(*synthetic_cifar10(n_train, n_test, seed=seed), CIFAR10_CLASSES,
                          _SYNTHETIC_SOURCE, synthetic=True, **split)
    return _announce(loaded, profile, "; ".join(notes))


def load_image_folder(path, *, image_size=(32, 32), profile=None, validation_fraction=0.1,
                      test_fraction=0.2, seed=0, name=None) -> ImageData:
    """Any class-per-folder image dataset: a folder, or a zip of one (possibly inside one
    wrapping folder), of `<class>/<image>` files, or of `train/<class>/...` and
    `test/<class>/...`. Without train/ and test/, `test_fraction` of each class is held out
    for testing. Images are converted to RGB and resized to `image_size` (height, width).
    Classes are the sorted folder names (CIFAR-10's own order for its ten classes). The
    profile's `train_images` / `test_images` pick stratified subsets before decoding; `name`
    labels the dataset in `source`.
    """
    profile = _profile(profile)
    _check_fraction("validation_fraction", validation_fraction, allow_zero=True)
    _check_fraction("test_fraction", test_fraction, allow_zero=False)
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist. Give the path of a folder of class folders "
                        "(or a .zip of one).")
    return _load_tree(path, "the path argument", image_size=tuple(image_size), profile=profile,
                      validation_fraction=validation_fraction, test_fraction=test_fraction,
                      seed=seed, name=name)


def _profile(profile) -> profiles.Profile:
    if profile is None:
        return profiles.current()
    return profiles.get(profile) if isinstance(profile, str) else profile


def _check_fraction(name: str, value: float, *, allow_zero: bool) -> None:
    if not (0 <= value < 1) or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be in {'[0' if allow_zero else '(0'}, 1), got {value}")


def _load_local(path: Path, origin: str, **split) -> ImageData:
    """A copy the user pointed at (or put in data/): the CIFAR-10 archive, folder, or a tree."""
    if not path.exists():
        unset = f"; or unset {DATA_ENV_VAR} to use the Keras download"
        raise DataError(
            f"{path} ({origin}) does not exist. Give the path of cifar-10-python.tar.gz, its "
            "extracted cifar-10-batches-py/ folder, or a class-per-folder image tree or zip"
            f"{unset if DATA_ENV_VAR in origin else ''}."
        )
    if path.is_dir():
        path = _official_in(path) or path
    kind = _kind(path)
    if kind == "tree":
        return _load_tree(path, origin, image_size=(32, 32), test_fraction=0.2, name=None, **split)
    if kind == "tar":
        arrays, source = _read_cifar_tar(path), f"CIFAR-10: {path.name}"
    else:
        arrays, source = _read_cifar_folder(path), f"CIFAR-10: batches folder {path.name}"
    return _announce(_from_arrays(*arrays, source, **split), split["profile"], f"{path} ({origin})")


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


def _kind(path: Path) -> str:
    """'batches' (extracted CIFAR-10 folder), 'tar' (the archive) or 'tree' (folder or zip)."""
    if path.is_dir():
        batch_files = (*_TRAIN_BATCHES, _TEST_BATCH, _META)
        is_batches = path.name == _BATCHES_DIR or any((path / n).exists() for n in batch_files)
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
        f"{path} is not a supported format. Expected cifar-10-python.tar.gz, its extracted "
        "cifar-10-batches-py/ folder, a folder of class folders of images, or a .zip of one."
    )


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


# --------------------------------------------------------------------------- CIFAR-10 batches


def _read_cifar_tar(path: Path):
    """Arrays of the official archive, read without extracting it."""
    wanted = {*_TRAIN_BATCHES, _TEST_BATCH, _META}
    found = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in wanted:
                    where = f"{path} (member {member.name})"
                    found[base] = _unpickle(tar.extractfile(member), where)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(
            f"{path} cannot be read as a tar.gz archive ({type(err).__name__}: {err}). It may be "
            f"truncated or not the CIFAR-10 archive: download cifar-10-python.tar.gz again from "
            f"{CIFAR10_URL}."
        ) from err
    return _cifar_arrays(found, path)


def _read_cifar_folder(path: Path):
    """Arrays of an extracted cifar-10-batches-py/ folder."""
    found = {}
    for name in (*_TRAIN_BATCHES, _TEST_BATCH, _META):
        if (path / name).is_file():
            with open(path / name, "rb") as f:
                found[name] = _unpickle(f, path / name)
    return _cifar_arrays(found, path)


def _unpickle(file, where) -> dict:
    try:
        return pickle.load(file, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, OSError, zlib.error, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError) as err:
        raise DataError(
            f"{where} is not a readable CIFAR-10 batch ({type(err).__name__}: {err}). The file is "
            f"truncated or corrupt: download cifar-10-python.tar.gz again from {CIFAR10_URL}."
        ) from err


def _cifar_arrays(found: dict, where: Path):
    """(x_train, y_train, x_test, y_test, class names) from unpickled CIFAR-10 batches."""
    missing = [n for n in (*_TRAIN_BATCHES, _TEST_BATCH) if n not in found]
    if missing:
        raise DataError(
            f"{where} lacks the CIFAR-10 batch files {', '.join(missing)} (it needs data_batch_1 "
            "to data_batch_5 and test_batch). Extract cifar-10-python.tar.gz again, or point "
            f"{DATA_ENV_VAR} at the .tar.gz itself."
        )
    names = CIFAR10_CLASSES
    if _META in found:
        try:
            names = tuple(n.decode() if isinstance(n, bytes) else str(n)
                          for n in found[_META][b"label_names"])
        except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as err:
            raise DataError(f"{where}: {_META} has no list of b'label_names' ({err}). Extract "
                            "cifar-10-python.tar.gz again.") from err
    train = [_batch_arrays(found[n], n, where, len(names)) for n in _TRAIN_BATCHES]
    x_test, y_test = _batch_arrays(found[_TEST_BATCH], _TEST_BATCH, where, len(names))
    return (np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
            x_test, y_test, names)


def _batch_arrays(batch, name: str, where: Path, num_classes: int):
    try:
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(batch[b"labels"], dtype=np.int64).reshape(-1)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise DataError(
            f"{where}: {name} is not a CIFAR-10 batch (expected b'data' rows of 3,072 bytes and "
            f"b'labels'; {type(err).__name__}: {err}). Extract cifar-10-python.tar.gz again."
        ) from err
    if len(x) != len(y) or (len(y) and not 0 <= y.min() <= y.max() < num_classes):
        raise DataError(f"{where}: {name} has {len(x)} images but {len(y)} labels, or labels "
                        f"outside 0..{num_classes - 1}. Extract cifar-10-python.tar.gz again.")
    return np.ascontiguousarray(x), y


# --------------------------------------------------------------------------- Keras cache


def _keras_cifar10(notes: list[str]):
    """(x_train, y_train, x_test, y_test, where) from the Keras cache, downloading it unless
    offline; None (with the reason added to `notes`) when neither works."""
    base = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    cached = base / "datasets" / _BATCHES_DIR
    if cached.is_dir():
        try:
            *arrays, _ = _read_cifar_folder(cached)
            return (*arrays, f"{cached} (Keras cache)")
        except DataError as err:
            print(f"Not using the Keras cache: {err}")
            notes.append(f"the Keras cache {cached} is unreadable")
    if os.environ.get(OFFLINE_ENV_VAR, "").strip().lower() in ("1", "true", "yes"):
        notes.append(f"no Keras cache in {base / 'datasets'}; download skipped "
                     f"({OFFLINE_ENV_VAR}=1)")
        return None
    if _failed_download:
        notes.append(f"the Keras download failed earlier in this process ({_failed_download[0]})")
        return None
    print(f"Downloading CIFAR-10 (170 MB) into {base / 'datasets'} ...", flush=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        from tf_keras.datasets import cifar10

        (x_train, y_train), (x_test, y_test) = cifar10.load_data(cache_dir=str(base))
    except Exception as err:  # get_file raises bare Exceptions; any failure means: fall back
        _failed_download.append(f"{type(err).__name__}: {err}")
        notes.append(f"the Keras download failed ({_failed_download[0]})")
        return None
    finally:
        socket.setdefaulttimeout(previous)
    return (x_train, y_train.reshape(-1).astype(np.int64), x_test,
            y_test.reshape(-1).astype(np.int64), f"{cached} (Keras download)")


# --------------------------------------------------------------------------- splits


def _take(labels: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of a stratified random subset of `n` (None: all) labels, in random order."""
    n = len(labels) if n is None else min(n, len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * (n / max(len(labels), 1))
    quota = np.floor(share).astype(int)
    extra = np.argsort(-(share - quota), kind="stable")[: n - quota.sum()]
    quota[extra] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    return rng.permutation(np.concatenate(picked)) if picked else np.zeros(0, dtype=int)


def _select(y_train, y_test, profile, validation_fraction, rng):
    """Train, validation and test indices: the profile's stratified subsets, then the
    validation share carved stratified out of the training subset."""
    train = _take(y_train, profile.train_images, rng)
    test = _take(y_test, profile.test_images, rng)
    val = _take(y_train[train], round(len(train) * validation_fraction), rng)
    keep = np.setdiff1d(np.arange(len(train)), val)
    return train[keep], train[val], test


def _from_arrays(x_train, y_train, x_test, y_test, class_names, source, *, profile,
                 validation_fraction, seed, synthetic=False) -> ImageData:
    rng = np.random.default_rng(seed)
    tr, va, te = _select(y_train, y_test, profile, validation_fraction, rng)
    return ImageData(x_train[tr], y_train[tr], x_train[va], y_train[va], x_test[te], y_test[te],
                     tuple(class_names), source, synthetic, profile.batch_size)


# --------------------------------------------------------------------------- image trees


@dataclass
class _Folder:
    path: str  # relative to the tree's root, "" for the root
    dirs: dict
    files: list

    def rel(self, name: str) -> str:
        return f"{self.path}/{name}" if self.path else name


class _Tree:
    """A class-per-folder tree in a folder or a zip: its layout and the bytes of its files."""

    def __init__(self, path: Path):
        self.path = path
        self.zip = None
        if path.is_dir():
            self.root = _scan(path, "", depth=4)
            return
        try:
            self.zip = zipfile.ZipFile(path)
            names = self.zip.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise DataError(f"{path} cannot be read as a zip ({type(err).__name__}: {err}). It "
                            "may be truncated or corrupt: create or download it again.") from err
        self.root = _Folder("", {}, [])
        self.members = {}  # relative path -> the zip's own name for it
        for name in names:
            parts = [p for p in name.replace("\\", "/").split("/") if p]
            if not parts or any(_hidden(p) for p in parts):
                continue
            is_dir = name.endswith(("/", "\\"))
            folder = self.root
            for part in parts if is_dir else parts[:-1]:
                folder = folder.dirs.setdefault(part, _Folder(folder.rel(part), {}, []))
            if not is_dir:
                folder.files.append(parts[-1])
                self.members[folder.rel(parts[-1])] = name

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.zip is not None:
            self.zip.close()

    def where(self, rel: str) -> str:
        """How to name a file or folder of the tree in a message."""
        return f"{self.path} (entry {rel})" if self.zip and rel else str(self.path / rel)

    def read(self, rel: str) -> bytes:
        if self.zip is None:
            return (self.path / rel).read_bytes()
        try:
            return self.zip.read(self.members[rel])
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, KeyError) as err:
            raise DataError(f"{self.where(rel)} cannot be read from the zip ({err}). The zip may "
                            "be truncated or corrupt: create or download it again.") from err

    def stamp(self, files: list[str]) -> list:
        """What identifies these files' contents for the cache: the zip's or each file's
        size and modification time."""
        if self.zip is not None:
            st = self.path.stat()
            return [st.st_size, st.st_mtime_ns]
        return [[(s := (self.path / rel).stat()).st_size, s.st_mtime_ns] for rel in files]

    def splits(self) -> dict[str, dict[str, list[str]]]:
        """{"train": ..., "test": ...} or {"all": ...}, each {class: [relative image paths]}."""
        node = self.root
        if len(node.dirs) == 1 and not any(_is_image(f) for f in node.files):
            (only,) = node.dirs.values()
            if only.dirs and only.path.lower() not in ("train", "test"):
                node = only  # one wrapping folder
        lower = {name.lower(): sub for name, sub in node.dirs.items() if sub.dirs}
        if "train" in lower and "test" in lower:
            train, test = self._classes(lower["train"]), self._classes(lower["test"])
            if set(train) != set(test):
                raise DataError(
                    f"{self.where(lower['train'].path)} and {self.where(lower['test'].path)} hold "
                    f"different class folders (only in train: {sorted(set(train) - set(test))}, "
                    f"only in test: {sorted(set(test) - set(train))}). Give both splits the same "
                    "class folders."
                )
            return {"train": train, "test": test}
        if "train" in lower or "test" in lower:
            raise DataError(f"{self.where(node.path)} has a train/ or a test/ folder of "
                            "class folders but not both. Add the other, or make it one tree of "
                            "class folders (a test split is then held out).")
        return {"all": self._classes(node)}

    def _classes(self, node: _Folder) -> dict[str, list[str]]:
        where = self.where(node.path)
        if not node.dirs:
            raise DataError(
                f"{where} has no class folders. Expected one folder per class holding its images "
                "(<class>/<image>), or train/ and test/ folders that each hold the class folders."
            )
        if len(node.dirs) < 2:
            raise DataError(f"{where} has a single class folder {next(iter(node.dirs))!r}; a "
                            "classification dataset needs a folder for each of at least 2 classes.")
        classes = {}
        for name, sub in sorted(node.dirs.items()):
            images = sorted(sub.rel(f) for f in sub.files if _is_image(f))
            if not images:
                raise DataError(f"{self.where(sub.path)}: the class folder {name!r} holds no "
                                f"images ({', '.join(sorted(_IMAGE_SUFFIXES))}). Add its images "
                                "or delete the folder.")
            classes[name] = images
        return classes


def _scan(root: Path, rel: str, depth: int) -> _Folder:
    """The folders and files under `root`, `depth` levels deep, sorted, hidden ones left out."""
    folder = _Folder(rel, {}, [])
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if _hidden(entry.name):
                continue
            if entry.is_dir():
                if depth > 1:
                    sub = _scan(Path(entry.path), folder.rel(entry.name), depth - 1)
                    folder.dirs[entry.name] = sub
            else:
                folder.files.append(entry.name)
    return folder


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in _IMAGE_SUFFIXES


def _load_tree(path: Path, origin: str, *, image_size, profile, validation_fraction,
               test_fraction, seed, name) -> ImageData:
    rng = np.random.default_rng(seed)
    with _Tree(path) as tree:
        splits = tree.splits()
        class_names = tuple(sorted(next(iter(splits.values()))))
        if set(class_names) == set(CIFAR10_CLASSES):
            class_names = CIFAR10_CLASSES
        files, labels = {}, {}
        for split, classes in splits.items():
            files[split] = np.array([f for c in class_names for f in classes[c]], dtype=object)
            labels[split] = np.array([i for i, c in enumerate(class_names) for _ in classes[c]])
        if "all" in splits:  # hold out a stratified test split
            test = _take(labels["all"], round(len(labels["all"]) * test_fraction), rng)
            rest = np.setdiff1d(np.arange(len(labels["all"])), test)
            for split, idx in (("train", rest), ("test", test)):
                files[split], labels[split] = files["all"][idx], labels["all"][idx]
        tr, va, te = _select(labels["train"], labels["test"], profile, validation_fraction, rng)
        chosen = {"train": (files["train"][tr], labels["train"][tr]),
                  "val": (files["train"][va], labels["train"][va]),
                  "test": (files["test"][te], labels["test"][te])}
        images, note = _decode_cached(tree, {k: list(f) for k, (f, _) in chosen.items()},
                                      image_size)
    if name:
        label = name
    elif class_names == CIFAR10_CLASSES:
        label = f"CIFAR-10 ({_format_of([*files['train'], *files['test']])} copy)"
    else:
        label = f"{len(class_names)}-class image dataset"
    source = f"{label}: class-per-folder {'zip' if tree.zip else 'tree'} {path.name}"
    y = {split: ys.astype(np.int64) for split, (_, ys) in chosen.items()}
    loaded = ImageData(images["train"], y["train"], images["val"], y["val"], images["test"],
                       y["test"], class_names, source, False, profile.batch_size)
    return _announce(loaded, profile, f"{path} ({origin})", note)


def _format_of(files) -> str:
    """"JPEG", "PNG" or "image": what all these image files are."""
    names = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}
    kinds = {names.get(os.path.splitext(f)[1].lower(), "image") for f in files}
    return kinds.pop() if len(kinds) == 1 else "image"


def _decode(raw: bytes, where: str, image_size) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    height, width = image_size
    try:
        with Image.open(io.BytesIO(raw)) as image:
            rgb = image.convert("RGB")
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        why = ("not an image format Pillow knows" if isinstance(err, UnidentifiedImageError)
               else f"{type(err).__name__}: {err}")
        raise DataError(f"{where} cannot be decoded as an image ({why}). Replace or delete the "
                        "file.") from err


def _decode_cached(tree: _Tree, chosen: dict[str, list[str]], image_size):
    """The chosen files decoded ({split: uint8 array}) and a note for the banner; read from,
    or written to, a cache in the working folder when decoding is slow."""
    key = json.dumps([str(tree.path.resolve()), list(image_size), chosen,
                      tree.stamp([f for files in chosen.values() for f in files])])
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    cache = paths.subdir("data-cache") / f"{tree.path.name}-{digest}.npz"
    images = _read_cache(cache, {k: (len(v), *image_size, 3) for k, v in chosen.items()})
    if images is not None:
        return images, f"decoded images read from the cache {cache}"
    total = sum(len(v) for v in chosen.values())
    print(f"Decoding {total:,} images from {tree.path.name} ...", flush=True)
    start = time.perf_counter()
    images = {}
    for split, files in chosen.items():
        images[split] = np.empty((len(files), *image_size, 3), dtype=np.uint8)
        for i, rel in enumerate(files):
            images[split][i] = _decode(tree.read(rel), tree.where(rel), image_size)
    seconds = time.perf_counter() - start
    note = f"decoded {total:,} images in {seconds:.1f} s"
    if seconds > _CACHE_AFTER_S:
        tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **images)
            os.replace(tmp, cache)
            note += f"; cached in {cache}"
        except OSError as err:
            tmp.unlink(missing_ok=True)
            print(f"Could not cache the decoded images in {cache}: {err}")
    return images, note


def _read_cache(cache: Path, shapes: dict):
    """The cached arrays, or None when missing; a corrupt or mismatched cache is deleted."""
    if not cache.exists():
        return None
    try:
        with np.load(cache, allow_pickle=False) as npz:
            images = {k: npz[k] for k in shapes}
        if all(images[k].shape == s and images[k].dtype == np.uint8 for k, s in shapes.items()):
            return images
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass
    print(f"Ignoring the unusable cache file {cache}; decoding again.")
    cache.unlink(missing_ok=True)
    return None


# --------------------------------------------------------------------------- announcement


def _announce(data: ImageData, profile, origin: str, note: str = "") -> ImageData:
    """Print a banner about the data once per process and source; return the data."""
    if data.source not in _announced:
        _announced.add(data.source)
        h, w, c = data.image_shape
        sizes = (f"train {len(data.y_train):,} | validation {len(data.y_val):,} | test "
                 f"{len(data.y_test):,} | {h}x{w}x{c} | {data.num_classes} classes | "
                 f"profile {profile.name}")
        if data.synthetic:
            lines = [
                "SYNTHETIC DATA: this is NOT CIFAR-10.",
                f"No copy of CIFAR-10 was found: {origin}.",
                "The images are generated patterns standing in for the ten CIFAR-10 classes;",
                "accuracies, losses and timings will NOT match those on real CIFAR-10.",
                f"To use the real data, download cifar-10-python.tar.gz from {CIFAR10_URL}",
                f"and set {DATA_ENV_VAR}=/path/to/cifar-10-python.tar.gz (or put it in data/).",
                sizes,
            ]
            rule, mark = "#" * 78, "## "
        else:
            lines = [f"DATA: {data.source}", f"from {origin}", sizes] + ([note] if note else [])
            rule, mark = "=" * 78, "  "
        print("\n".join([rule, *(mark + line for line in lines), rule]), flush=True)
    return data


# --------------------------------------------------------------------------- synthetic data

# Per class: shape (0 disc, 1 square, 2 ring, 3 diamond, 4 cross), stripe orientation in
# degrees, hue (in fifths of the colour wheel) and stripe frequency (cycles per image). Every
# feature is shared by several classes: a model has to combine them.
_SYNTHETIC_CLASSES = np.array([
    (0, 0, 0, 2.5), (1, 45, 1, 4.0), (2, 90, 2, 2.5), (3, 135, 3, 4.0), (4, 0, 4, 2.5),
    (0, 90, 2, 4.0), (1, 135, 3, 2.5), (2, 0, 4, 4.0), (3, 45, 0, 2.5), (4, 90, 1, 4.0),
], dtype=np.float32)


def synthetic_cifar10(n_train, n_test, *, seed=0, image_size=(32, 32)):
    """(x_train, y_train, x_test, y_test): a deterministic, balanced stand-in for CIFAR-10.

    Ten classes of striped shapes (shape, stripe orientation and frequency, colour) with random
    position, size, rotation and phase, on cluttered backgrounds with noise; each feature is
    swapped for another class's now and then, so classes overlap. A small CNN learns it far
    above chance but not perfectly. uint8 (N, H, W, 3) images, int64 labels.
    """
    train = _synthetic(n_train, np.random.default_rng([seed, 0]), tuple(image_size))
    test = _synthetic(n_test, np.random.default_rng([seed, 1]), tuple(image_size))
    return (*train, *test)


def _synthetic(n: int, rng: np.random.Generator, image_size, chunk: int = 1000):
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
    images = np.empty((n, *image_size, 3), dtype=np.uint8)
    for start in range(0, n, chunk):  # chunks keep the float temporaries small and fast
        images[start:start + chunk] = _render(labels[start:start + chunk], rng, image_size)
    return images, labels


def _render(labels: np.ndarray, rng: np.random.Generator, image_size) -> np.ndarray:
    f32, n = np.float32, len(labels)
    yy, xx = np.meshgrid(np.linspace(-1, 1, image_size[0], dtype=f32),
                         np.linspace(-1, 1, image_size[1], dtype=f32), indexing="ij")

    def uniform(low, high):
        return rng.uniform(low, high, n).astype(f32)

    # class overlap: each feature comes from a random class with probability 0.12
    source = np.where(rng.random((4, n)) < 0.12, rng.integers(0, 10, (4, n)), labels)
    shape, orient, hue, freq = (_SYNTHETIC_CLASSES[source[k], k] for k in range(4))
    # the object: position, size and rotation jitter, as coordinates in the object's frame
    cx, cy, size = uniform(-0.35, 0.35), uniform(-0.35, 0.35), uniform(0.35, 0.85)
    rot = np.deg2rad(uniform(-20, 20))
    cos, sin = _col(np.cos(rot) / size), _col(np.sin(rot) / size)
    dx, dy = xx - _col(cx), yy - _col(cy)
    x, y = dx * cos + dy * sin, dy * cos - dx * sin
    ax, ay = np.abs(x), np.abs(y)
    dist = np.empty_like(x)  # 1 on the shape's outline
    shapes = (
        lambda i: np.hypot(x[i], y[i]),
        lambda i: np.maximum(ax[i], ay[i]) * 1.1,
        lambda i: np.abs(np.hypot(x[i], y[i]) - 0.7) / 0.3,
        lambda i: (ax[i] + ay[i]) * 0.8,
        lambda i: np.minimum(np.maximum(ax[i], ay[i] / 0.35), np.maximum(ax[i] / 0.35, ay[i])),
    )
    for k, distance in enumerate(shapes):
        dist[shape == k] = distance(shape == k)
    mask = np.clip((1 - dist) * 3 + 0.5, 0, 1)
    # stripes inside the object, a weaker grating of any orientation behind it
    theta = np.deg2rad(orient + rng.normal(0, 14, n)).astype(f32)
    k = freq * np.pi * uniform(0.8, 1.25)
    stripes = _grating(xx, yy, theta, k, uniform(0, 2 * np.pi))
    clutter = _grating(xx, yy, uniform(0, np.pi), uniform(1, 6) * np.pi, uniform(0, 2 * np.pi))
    clutter *= _col(uniform(0.05, 0.3))
    # colours: the class hue (any hue for 15% of objects), a random greyish background
    fg_hue = (hue / 5 + rng.normal(0, 0.045, n).astype(f32)) % 1
    recolour = rng.random(n) < 0.15
    fg_hue[recolour] = rng.random(recolour.sum())
    fg = _hsv_to_rgb(fg_hue, uniform(0.45, 1), uniform(0.55, 1))
    bg = _hsv_to_rgb(uniform(0, 1), uniform(0, 0.5), uniform(0.2, 0.8))
    # compose channel-first (numpy broadcasts fast over pixels, slowly over 3 channels)
    image = (1 + clutter)[:, None] * bg[:, :, None, None]
    blend = (0.65 + 0.35 * stripes)[:, None] * fg[:, :, None, None]
    blend -= image
    blend *= mask[:, None]
    image += blend
    image *= 255
    noise = np.frombuffer(rng.bytes(image.size), dtype=np.uint8).reshape(image.shape)
    image += noise * f32(60 / 255)  # uniform noise of +-30 grey levels
    image -= f32(30 - 0.5)  # (and +0.5 to round)
    np.clip(image, 0, 255, out=image)
    return image.transpose(0, 2, 3, 1).astype(np.uint8)


def _col(values: np.ndarray) -> np.ndarray:
    """Per-image values (n,) as float32 (n, 1, 1), to broadcast over pixels."""
    return values.astype(np.float32)[:, None, None]


def _grating(xx, yy, theta, k, phase) -> np.ndarray:
    """Sine gratings (n, H, W): orientation `theta`, angular frequency `k`, `phase` per image."""
    return np.sin(_col(k * np.cos(theta)) * xx + _col(k * np.sin(theta)) * yy + _col(phase))


def _hsv_to_rgb(h, s, v) -> np.ndarray:
    """Colours (n, 3) in [0, 1] from hue, saturation and value arrays of length n."""
    k = (np.array([5, 3, 1], dtype=np.float32) + h[:, None] * 6) % 6
    return v[:, None] - (v * s)[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)


# --------------------------------------------------------------------------- pipelines, plots


def normalise(x):
    """uint8 pixels (0-255) as float32 in [0, 1]: a numpy array stays numpy, else a tf.Tensor."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) / np.float32(255)
    import tensorflow as tf

    return tf.cast(x, tf.float32) / 255.0


def pipeline(x, y, *, batch_size, training=False, augment=False, seed=0):
    """A tf.data pipeline of (normalised images, labels) batches: shuffled when `training`,
    with random horizontal flips and shifts of up to 1/8 of the image when `augment`,
    prefetched. After `keras.utils.set_random_seed`, the same seed gives the same batches."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment:
        import tf_keras

        augmenter = tf_keras.Sequential([
            tf_keras.layers.RandomFlip("horizontal", seed=seed),
            tf_keras.layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", seed=seed + 1),
        ])
        # One batch at a time: the random layers draw from one generator, so parallel calls would
        # take its numbers in a varying order and a seeded run would not repeat itself.
        ds = ds.map(lambda xb, yb: (augmenter(normalise(xb), training=True), yb))
    else:
        ds = ds.map(lambda xb, yb: (normalise(xb), yb), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def show_samples(data: ImageData, *, per_class=1, split="train", seed=0):
    """A matplotlib figure: `per_class` rows of random images, one column per class, each
    titled with its class name; the figure is titled with the data's source."""
    import matplotlib.pyplot as plt

    arrays = {"train": (data.x_train, data.y_train), "val": (data.x_val, data.y_val),
              "test": (data.x_test, data.y_test)}
    if split not in arrays:
        raise ValueError(f"split must be one of {', '.join(arrays)}, got {split!r}")
    x, y = arrays[split]
    rng = np.random.default_rng(seed)
    k = data.num_classes
    fig, axes = plt.subplots(per_class, k, figsize=(1.2 * k, 1.3 * per_class + 0.5), squeeze=False)
    for c, name in enumerate(data.class_names):
        members = np.flatnonzero(y == c)
        picks = rng.choice(members, min(per_class, len(members)), replace=False)
        for row in range(per_class):
            ax = axes[row, c]
            ax.axis("off")
            if row < len(picks):
                ax.imshow(x[picks[row]])
                ax.set_title(name, fontsize=8)
    fig.suptitle(data.source, fontsize=9)
    fig.tight_layout()
    return fig
