"""Test helpers: data files of every format the loaders read (CIFAR-10 batches, archives,
class-per-folder trees and zips), made in a temporary folder."""
from __future__ import annotations

import dataclasses
import io
import pickle
import tarfile
import zipfile

import numpy as np
from PIL import Image

from effcourse import data, profiles

NAMES = data.CIFAR10_CLASSES
ALL = dataclasses.replace(profiles.get("smoke"), train_images=None, test_images=None)
SMALL = dataclasses.replace(profiles.get("smoke"), train_images=200, test_images=50)
COLOURS = [(25 * c, 255 - 25 * c, (80 * c) % 256) for c in range(10)]


def cifar_files(n_batch=20, n_test=30, seed=0):
    """The pickled CIFAR-10 batch files ({name: bytes}) of random images, and the images."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (5 * n_batch + n_test, 32, 32, 3), dtype=np.uint8)
    y = np.arange(len(x)) % 10

    def batch(lo, hi):
        rows = x[lo:hi].transpose(0, 3, 1, 2).reshape(hi - lo, 3072)
        return pickle.dumps({b"batch_label": b"fake", b"labels": [int(v) for v in y[lo:hi]],
                             b"data": rows})

    files = {f"data_batch_{i + 1}": batch(i * n_batch, (i + 1) * n_batch) for i in range(5)}
    files["test_batch"] = batch(5 * n_batch, len(x))
    files["batches.meta"] = pickle.dumps({b"label_names": [n.encode() for n in NAMES]})
    return files, x, y


def write_tar(path, files):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def write_batches(folder, files):
    folder.mkdir(parents=True)
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    return folder


def write_tree(root, classes, n_train, n_test=None, *, ext=".png", size=(32, 32), mode="RGB",
               seed=0):
    """`root/train/<class>/` and `root/test/<class>/` (or `root/<class>/` when n_test is None)
    of images: random pixels for PNG, the class colour for JPEG. Returns {pixels: label} of
    the RGB PNGs, which decode exactly."""
    rng = np.random.default_rng(seed)
    expected = {}
    splits = {"": n_train} if n_test is None else {"train": n_train, "test": n_test}
    for split, n in splits.items():
        for label, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                if ext == ".png":
                    pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                else:
                    pixels = np.full((*size, 3), COLOURS[label], dtype=np.uint8)
                Image.fromarray(pixels).convert(mode).save(folder / f"{i:04d}{ext}")
                expected[pixels.tobytes()] = label
    return expected


def write_zip(path, root, wrap=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(root.rglob("*")):
            rel = file.relative_to(root).as_posix()
            zf.write(file, f"{wrap}/{rel}" if wrap else rel)
    return path
