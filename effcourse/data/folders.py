"""Any class-per-folder image dataset, a folder or a zip of one: `load_image_folder`, the
decoding of its images and the cache of decoded images in the working folder."""
from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import json
import numbers
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from effcourse import paths

from .imagedata import (CIFAR10_CLASSES, DataError, ImageData, _announce, _check_fraction,
                        _described, _profile, _select, _take, _unreadable, full_train_images)
from .trees import _Tree

# Decoded image trees are cached when decoding took longer than this; the full CIFAR-10
# (JPEG copy) zip takes about 15 s to decode on one core, its cache well under a second to read.
_CACHE_AFTER_S = 1.0
# The version of `_decode`, part of a cache's name: a change of what decoding gives replaces
# the caches of earlier versions. 2: 16-bit grayscale rescaled, no longer clipped.
_DECODER = 2
_16BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")  # Pillow's unsigned 16-bit grayscale


def load_image_folder(path, *, image_size=(32, 32), profile=None, validation_fraction=0.1,
                      test_fraction=0.2, seed=0, name=None) -> ImageData:
    """Any class-per-folder image dataset: a folder, or a zip of one (possibly inside one
    wrapping folder), of `<class>/<image>` files, or of `train/<class>/...` and
    `test/<class>/...`. Without train/ and test/, `test_fraction` of each class is held out
    for testing. Images are converted to RGB and resized to `image_size` (height, width; one
    int for a square). Classes are the sorted folder names (CIFAR-10's own order for its ten
    classes). The profile's `train_images` / `test_images` pick stratified subsets before
    decoding; `validation_fraction` of those training images, stratified, is the validation
    split (0: none, and `val_dataset` refuses); `name` labels the dataset in `source`.
    """
    profile = _profile(profile)
    image_size = _image_size(image_size)
    _check_fraction("validation_fraction", validation_fraction, allow_zero=True)
    _check_fraction("test_fraction", test_fraction, allow_zero=False)
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{paths.display(path)} does not exist. Give the path of a folder of "
                        "class folders (or a .zip of one).")
    try:
        return _load_tree(path, "the path argument", image_size=image_size, profile=profile,
                          validation_fraction=validation_fraction, test_fraction=test_fraction,
                          seed=seed, name=name)
    except OSError as err:  # permission denied and the like
        raise _unreadable(err, path) from err


def _image_size(image_size) -> tuple[int, int]:
    """(height, width) from a pair of positive ints, or from one for a square."""
    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else image_size
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0
                    for n in size)):
        raise ValueError("image_size must be (height, width) in pixels, two positive integers, "
                         f"or one for a square: got {image_size!r}")
    return int(size[0]), int(size[1])


def _load_tree(path: Path, origin: str, *, image_size, profile, validation_fraction,
               test_fraction, seed, name, setting=None) -> ImageData:
    """`path` came from `origin` (for the banner), chosen by the environment variable
    `setting` if one did."""
    rng = np.random.default_rng(seed)
    where = _described(path, origin, setting)
    with _Tree(path, setting) as tree:
        splits = tree.splits()
        class_names = tuple(sorted(next(iter(splits.values()))))
        if set(class_names) == set(CIFAR10_CLASSES):
            class_names = CIFAR10_CLASSES
        files, labels = {}, {}
        for split, classes in splits.items():
            files[split] = np.array([f for c in class_names for f in classes[c]], dtype=object)
            labels[split] = np.array([i for i, c in enumerate(class_names) for _ in classes[c]])
        if "all" in splits:  # hold out a stratified test split
            n = len(labels["all"])
            test = _take(labels["all"], round(n * test_fraction), rng)
            if not 0 < len(test) < n:
                raise DataError(
                    f"{where}: test_fraction={test_fraction} of its {n} images holds out "
                    f"{'every' if len(test) else 'no'} image for testing. Give it more images "
                    "per class, or train/ and test/ folders of class folders (with "
                    "load_image_folder, another test_fraction also does)."
                )
            rest = np.setdiff1d(np.arange(n), test)
            for split, idx in (("train", rest), ("test", test)):
                files[split], labels[split] = files["all"][idx], labels["all"][idx]
        tr, va, te = _select(labels["train"], labels["test"], profile, validation_fraction, rng,
                             where)
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
                       y["test"], class_names, source, False, profile.batch_size,
                       full_train_images(labels["train"], validation_fraction))
    return _announce(loaded, profile, where, note)


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
            rgb = _eight_bit(image, where).convert("RGB")
        if rgb.size != (width, height):
            rgb = rgb.resize((width, height), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        why = ("not an image format Pillow knows" if isinstance(err, UnidentifiedImageError)
               else f"{type(err).__name__}: {err}")
        raise DataError(f"{where} cannot be decoded as an image ({why}). Replace or delete the "
                        "file.") from err


def _eight_bit(image, where: str):
    """`image` in a mode Pillow converts to RGB faithfully: 16-bit grayscale rescaled to 8 bits
    (Pillow would clip it at 255); 32-bit integer and float pixels, of no known range, refused."""
    from PIL import Image

    if image.mode in _16BIT_MODES:
        return Image.fromarray(np.rint(np.asarray(image) / 257).astype(np.uint8))
    if image.mode in ("I", "F"):
        kind = "32-bit integer" if image.mode == "I" else "floating-point"
        raise DataError(f"{where} has {kind} pixels (Pillow mode {image.mode}), which have no "
                        "standard range to convert to 8 bits. Convert the images to 8-bit RGB or "
                        "grayscale.")
    return image


def _decode_cached(tree: _Tree, chosen: dict[str, list[str]], image_size):
    """The chosen files decoded ({split: uint8 array}) and a note for the banner; read from,
    or written to, a cache in the working folder when decoding is slow. A cache is named by
    the selection (path, size, files) and by the contents' stamp and the decoder's version: a
    new stamp's cache replaces the selection's older ones, so a changed archive (or decoder)
    leaves no stale copies."""
    selection = _digest([str(tree.path.resolve()), list(image_size), chosen])
    contents = _digest([_DECODER, tree.stamp([f for files in chosen.values() for f in files])])
    cache = paths.subdir("data-cache") / f"{tree.path.name}-{selection}-{contents}.npz"
    images = _read_cache(cache, {k: (len(v), *image_size, 3) for k, v in chosen.items()})
    if images is not None:
        return images, f"decoded images read from the cache {paths.display(cache)}"
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
            note += f"; cached in {paths.display(cache)}"
            stale = [p for p in cache.parent.glob(f"{glob.escape(tree.path.name)}-{selection}-*.npz")
                     if p != cache]
            for old in stale:
                with contextlib.suppress(OSError):  # another process may hold it open
                    old.unlink()
            if stale:
                note += f", replacing {len(stale)} cache(s) of an earlier copy"
        except OSError as err:
            tmp.unlink(missing_ok=True)
            print(f"Could not cache the decoded images in {paths.display(cache)}: "
                  f"{err.strerror or err}")
    return images, note


def _digest(key) -> str:
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


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
    print(f"Ignoring the unusable cache file {paths.display(cache)}; decoding again.")
    cache.unlink(missing_ok=True)
    return None
