"""What every loader returns: `ImageData` and `DataError`; the stratified splits; the banner
that announces what was loaded, once per process and source."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from effcourse import paths, profiles

from .pipelines import pipeline

DATA_ENV_VAR = "EFFCOURSE_DATA"  # the one documented setting: path of a local copy
OFFLINE_ENV_VAR = "EFFCOURSE_OFFLINE"  # "1": never try the Keras download
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

_announced: set[str] = set()  # sources announced in this process


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
    full_train_images: int | None = None  # what the full profile trains on from the same source (None: not known)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one image."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def real_cifar10(self) -> bool:
        """Whether these are CIFAR-10's own images (any copy), the data the course's targets are set on."""
        return not self.synthetic and self.source.startswith("CIFAR-10")

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
        if not len(self.y_val):
            raise DataError(f"{self.source} has no validation images (as loaded with "
                            "validation_fraction=0). Load it again with a validation_fraction "
                            "above 0 (the default is 0.1) to validate on it.")
        return pipeline(self.x_val, self.y_val, batch_size=batch_size or self.batch_size)


# --------------------------------------------------------------------------- arguments, messages


def _profile(profile) -> profiles.Profile:
    if profile is None:
        return profiles.current()
    return profiles.get(profile) if isinstance(profile, str) else profile


def _check_fraction(name: str, value: float, *, allow_zero: bool) -> None:
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1
            or (value == 0 and not allow_zero)):
        raise ValueError(f"{name} must be a number in {'[0' if allow_zero else '(0'}, 1), got "
                         f"{value!r}")


def _described(path: Path, origin: str, setting: str | None = None) -> str:
    """Where a copy came from, as printed: `cifar.zip (set by $EFFCOURSE_DATA)`,
    `$EFFCOURSE_DATA/cifar-10-python.tar.gz`, `data/cifar.zip (found in ...)`."""
    shown = paths.display(path, setting)
    if setting and shown == f"${setting}":
        return f"{path.name} (set by ${setting})"
    if setting and shown.startswith(f"${setting}/"):
        return shown
    return f"{shown} ({origin})"


def _unreadable(err: OSError, fallback: Path, setting: str | None = None) -> DataError:
    """A DataError for a file or folder the operating system would not let us read."""
    where = paths.display(err.filename or fallback, setting)
    return DataError(f"{where} cannot be read ({_reason(err)}). Check that it exists and that you "
                     "may read it (permissions), or point to another copy.")


def _reason(err: BaseException) -> str:
    """`Type: message` of an exception, without the absolute file name an OSError carries."""
    text = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return f"{type(err).__name__}: {text}"


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


def _select(y_train, y_test, profile, validation_fraction, rng, where: str):
    """Train, validation and test indices: the profile's stratified subsets, then the
    validation share carved stratified out of the training subset. A split left empty (but
    validation with validation_fraction=0) raises a DataError that names the data `where`."""
    train = _take(y_train, profile.train_images, rng)
    test = _take(y_test, profile.test_images, rng)
    for split, picked in (("training", train), ("test", test)):
        if not len(picked):
            raise DataError(f"{where} has no {split} images. Give it {split} images of every "
                            "class.")
    val = _take(y_train[train], round(len(train) * validation_fraction), rng)
    keep = np.setdiff1d(np.arange(len(train)), val)
    if not len(keep):
        raise DataError(f"{where}: validation_fraction={validation_fraction} sets aside all "
                        f"{len(train)} training images for validation, leaving none to train on. "
                        "Use a smaller validation_fraction (the default is 0.1) or more images.")
    if validation_fraction and not len(val):
        raise DataError(f"{where}: validation_fraction={validation_fraction} of its {len(train)} "
                        "training images is less than one image: the validation split would be "
                        "empty. Give it more images per class or use a larger "
                        "validation_fraction.")
    return train[keep], train[val], test


def full_train_images(y_train, validation_fraction: float) -> int:
    """How many training images the full profile trains on from `y_train`: all of them but the
    validation share `_select` carves out (CIFAR-10: 45,000 of 50,000)."""
    return len(y_train) - round(len(y_train) * validation_fraction)


def _from_arrays(x_train, y_train, x_test, y_test, class_names, source, *, where, profile,
                 validation_fraction, seed, synthetic=False) -> ImageData:
    """The data's splits (see `_select`); `where` names the data in messages."""
    rng = np.random.default_rng(seed)
    tr, va, te = _select(y_train, y_test, profile, validation_fraction, rng, where)
    return ImageData(x_train[tr], y_train[tr], x_train[va], y_train[va], x_test[te], y_test[te],
                     tuple(class_names), source, synthetic, profile.batch_size,
                     full_train_images(y_train, validation_fraction))


# --------------------------------------------------------------------------- announcement


def _announce(data: ImageData, profile, origin: str, note: str = "") -> ImageData:
    """Print a banner about the data once per process and source; return the data. `origin`
    and `note` name paths only as `paths.display` shows them."""
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
