"""Tests of effcourse.data: every local format, bad input, the source order, the synthetic
stand-in, pipelines and the sample grid. Everything is made in tmp_path; no network."""
from __future__ import annotations

import dataclasses
import os
import pickle
import socket
import zipfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from effcourse import data, paths, profiles  # noqa: E402
from effcourse.data import cifar10 as data_cifar10  # noqa: E402
from effcourse.data import folders as data_folders  # noqa: E402
from effcourse.data import imagedata as data_imagedata  # noqa: E402
from datafiles import (ALL, COLOURS, NAMES, SMALL, cifar_files, write_batches, write_tar,  # noqa: E402
                       write_tree, write_zip)

pytestmark = pytest.mark.usefixtures("isolated_data")


# --------------------------------------------------------------------------- helpers


def splits(d):
    return {"train": (d.x_train, d.y_train), "val": (d.x_val, d.y_val), "test": (d.x_test, d.y_test)}


def assert_roundtrip(d, expected):
    """Each loaded image is an original with its label, none twice."""
    seen = set()
    for x, y in splits(d).values():
        for image, label in zip(x, y):
            assert expected[image.tobytes()] == label
            seen.add(image.tobytes())
    assert len(seen) == len(d.y_train) + len(d.y_val) + len(d.y_test)


def assert_arrays(d, n_train, n_val, n_test, shape=(32, 32, 3)):
    for (x, y), n in zip(splits(d).values(), (n_train, n_val, n_test)):
        assert x.shape == (n, *shape) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.int64


def snapshot(folder):
    return sorted((p, p.stat().st_mtime_ns) for p in folder.rglob("*"))


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b))
               if isinstance(x, np.ndarray))


# --------------------------------------------------------------------------- CIFAR-10 formats


def test_official_archive_read_in_place(tmp_path):
    files, x, y = cifar_files()
    tar = write_tar(tmp_path / "user" / "cifar-10-python.tar.gz", files)
    before = snapshot(tmp_path / "user")
    d = data.load_cifar10(tar, profile=ALL)
    assert d.source == "CIFAR-10: cifar-10-python.tar.gz" and not d.synthetic and d.real_cifar10
    assert d.class_names == NAMES and d.num_classes == 10 and d.image_shape == (32, 32, 3)
    assert_arrays(d, 90, 10, 30)
    assert_roundtrip(d, {img.tobytes(): lab for img, lab in zip(x, y)})
    train_pool = {img.tobytes() for img in x[:100]}
    assert {img.tobytes() for img in (*d.x_train, *d.x_val)} == train_pool
    assert np.bincount(d.y_val).tolist() == [1] * 10  # stratified validation split
    assert snapshot(tmp_path / "user") == before  # nothing extracted or written there


def test_extracted_folder_via_env_var_and_parent_folder(tmp_path, monkeypatch):
    files, x, y = cifar_files()
    folder = write_batches(tmp_path / "dl" / "cifar-10-batches-py", files)
    from_tar = data.load_cifar10(write_tar(tmp_path / "c.tar.gz", files), profile=ALL)
    monkeypatch.setenv(data.DATA_ENV_VAR, str(folder))
    d = data.load_cifar10(profile=ALL)
    assert d.source == "CIFAR-10: batches folder cifar-10-batches-py"
    assert same(d, from_tar)  # same data and split, whichever format
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "dl"))  # the folder that holds it
    assert data.load_cifar10(profile=ALL).source == d.source


def test_tree_with_train_and_test_folders(tmp_path):
    expected = write_tree(tmp_path / "cifar-png", NAMES, 6, 2)
    d = data.load_cifar10(tmp_path / "cifar-png", profile=ALL)
    assert d.source == "CIFAR-10 (PNG copy): class-per-folder tree cifar-png"
    assert d.class_names == NAMES  # CIFAR-10's order, not the sorted one
    assert_arrays(d, 54, 6, 20)
    assert_roundtrip(d, expected)
    assert np.bincount(d.y_test).tolist() == [2] * 10


def test_the_data_knows_how_many_images_the_full_profile_trains_on(tmp_path):
    """Lesson 07 scaled an epoch's energy to 45,000 images, CIFAR-10's, whatever the data."""
    files, _, _ = cifar_files()
    tar = write_tar(tmp_path / "cifar-10-python.tar.gz", files)
    assert data.load_cifar10(tar, profile=ALL).full_train_images == 90  # 100 training images less 10 for validation
    small = dataclasses.replace(ALL, name="small", train_images=50)
    few = data.load_cifar10(tar, profile=small)
    assert len(few.y_train) == 45 and few.full_train_images == 90
    write_tree(tmp_path / "tree", ("cat", "dog", "owl"), 20, 4)
    assert data.load_cifar10(tmp_path / "tree", profile=small).full_train_images == 54  # 60 less 6


@pytest.mark.parametrize("wrap", [None, "cifar10-jpeg"])
def test_zip_of_a_tree(tmp_path, wrap):
    write_tree(tmp_path / "tree", NAMES, 3, 1, ext=".jpg")
    before = snapshot(tmp_path / "tree")
    archive = write_zip(tmp_path / "images.zip", tmp_path / "tree", wrap)
    d = data.load_cifar10(archive, profile=ALL)
    assert d.source == "CIFAR-10 (JPEG copy): class-per-folder zip images.zip"
    assert d.real_cifar10
    assert_arrays(d, 27, 3, 10)
    for x, y in splits(d).values():  # every image has its class's colour
        assert np.abs(x.mean(axis=(1, 2)) - np.array(COLOURS)[y]).max() < 4
    assert snapshot(tmp_path / "tree") == before


def test_single_tree_is_split_stratified_and_deterministic(tmp_path):
    expected = write_tree(tmp_path / "abc", ["a", "b", "c"], 10)
    d = data.load_image_folder(tmp_path / "abc", profile=ALL, test_fraction=0.2)
    assert d.class_names == ("a", "b", "c")
    assert_arrays(d, 22, 2, 6)
    assert np.bincount(d.y_test).tolist() == [2, 2, 2]
    assert_roundtrip(d, expected)  # also: train, validation and test are disjoint
    assert same(d, data.load_image_folder(tmp_path / "abc", profile=ALL))
    other = data.load_image_folder(tmp_path / "abc", profile=ALL, seed=1)
    assert not np.array_equal(d.x_test, other.x_test)


def test_any_dataset_converted_and_resized(tmp_path):
    root = tmp_path / "shapes"
    write_tree(root, ["square", "triangle"], 5, size=(40, 48))
    write_tree(root, ["circle"], 5, size=(40, 48), mode="L", seed=1)  # grayscale PNGs
    Image.new("RGBA", (48, 40), (10, 20, 30, 128)).save(root / "square" / "rgba.png")
    d = data.load_image_folder(root, profile=ALL)
    assert d.class_names == ("circle", "square", "triangle")
    assert not d.real_cifar10
    assert d.source == "3-class image dataset: class-per-folder tree shapes"
    assert d.image_shape == (32, 32, 3)
    x = np.concatenate([d.x_train, d.x_val, d.x_test])
    y = np.concatenate([d.y_train, d.y_val, d.y_test])
    assert len(y) == 16 and np.bincount(y).tolist() == [5, 6, 5]
    grey = x[y == 0].astype(int)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    small = data.load_image_folder(root, image_size=(24, 16), profile=ALL, name="Shapes")
    assert small.image_shape == (24, 16, 3) and small.source.startswith("Shapes: ")


def test_profile_subsets_are_stratified_and_only_they_are_decoded(tmp_path, monkeypatch):
    write_tree(tmp_path / "tree", NAMES, 20, 6)
    profile = dataclasses.replace(profiles.get("smoke"), train_images=50, test_images=20)
    decoded = []
    real_decode = data_folders._decode
    monkeypatch.setattr(data_folders, "_decode", lambda raw, where, size: decoded.append(where)
                        or real_decode(raw, where, size))
    d = data.load_cifar10(tmp_path / "tree", profile=profile)
    assert len(decoded) == 70
    assert_arrays(d, 45, 5, 20)
    assert np.bincount(np.concatenate([d.y_train, d.y_val])).tolist() == [5] * 10
    assert np.bincount(d.y_test).tolist() == [2] * 10
    assert d.batch_size == profile.batch_size
    assert same(d, data.load_cifar10(tmp_path / "tree", profile=profile))
    other = data.load_cifar10(tmp_path / "tree", profile=profile, seed=1)
    assert not np.array_equal(d.x_train, other.x_train)


def test_decoded_images_cached_and_corrupt_cache_rewritten(tmp_path, monkeypatch, capsys):
    write_tree(tmp_path / "tree", NAMES, 3, 1)
    archive = write_zip(tmp_path / "user" / "c.zip", tmp_path / "tree")
    before = snapshot(tmp_path / "user")
    monkeypatch.setattr(data_folders, "_CACHE_AFTER_S", -1.0)  # cache even this tiny tree
    first = data.load_image_folder(archive, profile=ALL)
    (cache,) = (tmp_path / "work" / "data-cache").glob("*.npz")

    def no_decoding(*args):
        raise AssertionError("decoded although cached")

    with monkeypatch.context() as m:
        m.setattr(data_folders, "_decode", no_decoding)
        assert same(first, data.load_image_folder(archive, profile=ALL))
    cache.write_bytes(b"not an npz file")
    assert same(first, data.load_image_folder(archive, profile=ALL))
    assert "Ignoring the unusable cache file" in capsys.readouterr().out
    with np.load(cache) as npz:
        assert npz["train"].shape == first.x_train.shape
    data.load_image_folder(archive, profile=dataclasses.replace(ALL, train_images=10))
    assert len(list(cache.parent.glob("*.npz"))) == 2  # another subset, another entry
    assert snapshot(tmp_path / "user") == before
    subset = set(cache.parent.glob("*.npz")) - {cache}
    capsys.readouterr()
    monkeypatch.setattr(data_imagedata, "_announced", set())  # show this load's banner too
    os.utime(archive, ns=(1, 1))  # the same archive copied again: its cache still serves
    with monkeypatch.context() as m:
        m.setattr(data_folders, "_decode", no_decoding)
        assert same(first, data.load_image_folder(archive, profile=ALL))
    monkeypatch.setattr(data_imagedata, "_announced", set())
    with zipfile.ZipFile(archive, "a") as z:  # the archive changed: its cache is rebuilt, the old one goes
        z.writestr("README.txt", "not an image")
    assert same(first, data.load_image_folder(archive, profile=ALL))
    assert "replacing 1 cache(s) of an earlier copy" in capsys.readouterr().out
    assert not cache.exists() and len(list(cache.parent.glob("*.npz"))) == 2
    assert all(p.exists() for p in subset)  # another selection's cache stays


# --------------------------------------------------------------------------- bad input


def _truncated(path, raw):
    path.write_bytes(raw[: len(raw) // 2])
    return path


def _tar_with_bad_pickle(tmp_path):
    files, _, _ = cifar_files()
    files["data_batch_1"] = b"this is not a pickle"
    return write_tar(tmp_path / "bad.tar.gz", files)


def _folder_missing_batch(tmp_path):
    files, _, _ = cifar_files()
    del files["data_batch_3"]
    return write_batches(tmp_path / "cifar-10-batches-py", files)


def _images_without_classes(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "flat" / "one.png")
    return tmp_path / "flat"


def _empty_class(tmp_path):
    write_tree(tmp_path / "t", ["a", "b"], 2)
    (tmp_path / "t" / "empty").mkdir()
    return tmp_path / "t"


def _broken_image(tmp_path):
    write_tree(tmp_path / "t", ["a", "b"], 3)
    (tmp_path / "t" / "b" / "broken.png").write_bytes(b"not a png")
    return tmp_path / "t"


def _mismatched_splits(tmp_path):
    write_tree(tmp_path / "t" / "train", ["a", "b"], 2)
    write_tree(tmp_path / "t" / "test", ["a", "c"], 2)
    return tmp_path / "t"


def _zipped_batches(tmp_path):
    write_batches(tmp_path / "dl" / "cifar-10-batches-py", cifar_files()[0])
    return write_zip(tmp_path / "batches.zip", tmp_path / "dl")


def _tar_with_two_class_names(tmp_path):
    files, _, _ = cifar_files()
    files["batches.meta"] = pickle.dumps({b"label_names": [b"cat", b"dog"]})
    return write_tar(tmp_path / "two.tar.gz", files)


def _tar_with_huge_label(tmp_path):
    files, _, _ = cifar_files()
    batch = pickle.loads(files["data_batch_2"])
    batch[b"labels"][-1] = 2 ** 70
    files["data_batch_2"] = pickle.dumps(batch)
    return write_tar(tmp_path / "huge.tar.gz", files)


def _tar_with_label(label):
    def make(tmp_path):
        files, _, _ = cifar_files()
        batch = pickle.loads(files["data_batch_2"])
        batch[b"labels"][-1] = label
        files["data_batch_2"] = pickle.dumps(batch)
        return write_tar(tmp_path / "relabelled.tar.gz", files)
    return make


def _images_per_class(n):
    def make(tmp_path):
        write_tree(tmp_path / "t", ["a", "b"], n)
        return tmp_path / "t"
    return make


BAD_INPUT = {
    "missing path": (lambda t: t / "nowhere.tar.gz", "does not exist", None),
    "unsupported file": (lambda t: (t / "notes.txt").write_text("hello") and t / "notes.txt",
                         "not a supported format", None),
    "truncated tar.gz": (lambda t: _truncated(t / "c.tar.gz", write_tar(t / "x.tar.gz", cifar_files()[0]).read_bytes()),
                         "truncated", None),
    "garbage tar.gz": (lambda t: (t / "g.tar.gz").write_bytes(bytes(range(256)) * 8) and t / "g.tar.gz",
                       "cannot be read as a tar.gz", None),
    "bad pickle": (_tar_with_bad_pickle, "not a readable CIFAR-10 batch", "data_batch_1"),
    "truncated zip": (lambda t: _truncated(t / "c.zip", write_zip(t / "x.zip", _empty_class(t)).read_bytes()),
                      "cannot be read as a zip", None),
    "missing batch": (_folder_missing_batch, "lacks the CIFAR-10 batch files data_batch_3", None),
    "no class folders": (_images_without_classes, "has no class folders", None),
    "empty class folder": (_empty_class, "'empty' holds no images", "empty"),
    "undecodable image": (_broken_image, "cannot be decoded as an image", "broken.png"),
    "different classes": (_mismatched_splits, "different class folders", "only in test: ['c']"),
    "zipped batches folder": (_zipped_batches, "looks like CIFAR-10's pickled batches",
                              "or cifar-10-python.tar.gz, with load_cifar10"),
    "too few class names": (_tar_with_two_class_names, "batches.meta names 2 classes",
                            "labels up to 9"),
    "huge label": (_tar_with_huge_label, "data_batch_2 is not a CIFAR-10 batch",
                   "OverflowError"),
    "fractional label": (_tar_with_label(3.7), "data_batch_2 has a label that is not a whole class index (3.7)",
                         "3.0 is read as 3"),  # was truncated to 3
    "no test image": (_images_per_class(1), "test_fraction=0.2 of its 2 images holds out no "
                      "image for testing", "more images per class"),
    "no validation image": (_images_per_class(3), "validation split would be empty",
                            "validation_fraction=0.1"),
    "empty test batch": (lambda t: write_tar(t / "c.tar.gz", cifar_files(n_test=0)[0]),
                         "has no test images", None),
}


@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_raises_a_helpful_data_error(tmp_path, monkeypatch, case):
    make, problem, detail = BAD_INPUT[case]
    path = make(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # so the message names the path as ~/...
    with pytest.raises(data.DataError) as err:
        data.load_cifar10(path, profile=ALL)
    message = str(err.value)
    shown = paths.display(path)
    assert shown.startswith("~/") and shown in message and problem in message
    assert str(tmp_path) not in message  # no absolute path of the machine
    assert detail is None or detail in message
    if case in ("truncated tar.gz", "garbage tar.gz", "bad pickle", "truncated zip"):
        assert err.value.__cause__ is not None


def test_a_whole_float_label_is_read_as_its_class(tmp_path):
    loaded = data.load_cifar10(_tar_with_label(3.0)(tmp_path), profile=ALL)
    _, _, y = cifar_files()
    assert sorted(np.concatenate([loaded.y_train, loaded.y_val])) == sorted(np.r_[y[:39], 3, y[40:100]])


def test_broken_copy_named_by_env_var_raises_instead_of_falling_back(tmp_path, monkeypatch):
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "typo.tar.gz"))
    with pytest.raises(data.DataError, match=r"typo\.tar\.gz \(set by \$EFFCOURSE_DATA\)"):
        data.load_cifar10(profile=ALL)


def test_a_folder_that_holds_a_zip_says_to_load_the_zip(tmp_path, monkeypatch):
    write_tree(tmp_path / "tree", ["a", "b"], 5)
    write_zip(tmp_path / "downloads" / "mine.zip", tmp_path / "tree")
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "downloads"))
    with pytest.raises(data.DataError) as err:
        data.load_cifar10(profile=ALL)
    assert str(err.value).startswith("$EFFCOURSE_DATA has no class folders")
    assert ("It holds $EFFCOURSE_DATA/mine.zip: to load that zip, set $EFFCOURSE_DATA to its "
            "path.") in str(err.value)


def test_extracted_batches_are_not_taken_for_a_tree(tmp_path):
    folder = write_batches(tmp_path / "cifar-10-batches-py", cifar_files()[0])
    with pytest.raises(data.DataError) as err:
        data.load_image_folder(folder, profile=ALL)
    assert str(err.value) == (f"{paths.display(folder)} holds CIFAR-10's pickled batches, not "
                              "class folders of images. Load that folder itself with "
                              "load_cifar10 (pass its path).")


def test_too_large_a_validation_fraction_leaves_no_training_image(tmp_path):
    tar = write_tar(tmp_path / "c.tar.gz", cifar_files(n_batch=2)[0])
    with pytest.raises(data.DataError, match="validation_fraction=0.99 sets aside all 10 training "
                                             "images for validation, leaving none to train on"):
        data.load_cifar10(tar, profile=ALL, validation_fraction=0.99)
    write_tree(tmp_path / "t", ["a", "b"], 5)
    with pytest.raises(data.DataError, match="leaving none to train on"):
        data.load_image_folder(tmp_path / "t", profile=ALL, validation_fraction=0.99)


def test_no_validation_split_on_request_and_its_datasets_refused(tmp_path):
    write_tree(tmp_path / "t", ["a", "b"], 5)
    d = data.load_image_folder(tmp_path / "t", profile=ALL, validation_fraction=0)
    assert_arrays(d, 8, 0, 2)
    with pytest.raises(data.DataError, match="has no validation images .*validation_fraction=0"):
        d.val_dataset()


@pytest.mark.parametrize("size", [(0, 0), (-3, 32), (32.5, 32), "32", (8, 8, 3), True])
def test_a_bad_image_size_is_refused_up_front(tmp_path, size):
    write_tree(tmp_path / "t", ["a", "b"], 5)
    with pytest.raises(ValueError, match="image_size must be .height, width. in pixels"):
        data.load_image_folder(tmp_path / "t", image_size=size, profile=ALL)


def test_one_int_is_a_square_image_size(tmp_path):
    write_tree(tmp_path / "t", ["a", "b"], 5)
    d = data.load_image_folder(tmp_path / "t", image_size=16, profile=ALL)
    assert d.image_shape == (16, 16, 3)


@pytest.mark.parametrize("load", [data.load_cifar10, data.load_image_folder])
def test_a_fraction_that_is_not_a_number_is_refused(tmp_path, load):
    write_tree(tmp_path / "t", ["a", "b"], 5)
    with pytest.raises(ValueError, match=r"validation_fraction must be a number in \[0, 1\), "
                                         r"got '0.1'"):
        load(tmp_path / "t", profile=ALL, validation_fraction="0.1")


def _save_grey(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def test_16_bit_grayscale_is_rescaled_and_an_old_cache_replaced(tmp_path, monkeypatch, capsys):
    for label, value in enumerate((30_000, 514)):  # 116.7 and 2 in 8 bits
        for i in range(5):
            pixels = np.full((8, 8), value, np.uint16)
            _save_grey(tmp_path / "t" / "ab"[label] / f"{i}.png", pixels)
    assert Image.open(tmp_path / "t" / "a" / "0.png").mode == "I;16"
    monkeypatch.setattr(data_folders, "_CACHE_AFTER_S", -1.0)  # cache even this tiny tree
    with monkeypatch.context() as m:  # a cache of the earlier decoder, which clipped at 255
        m.setattr(data_folders, "_DECODER", 1)
        m.setattr(data_folders, "_eight_bit", lambda image, where: image)
        assert data.load_image_folder(tmp_path / "t", profile=ALL).x_train.min() == 255
    monkeypatch.setattr(data_imagedata, "_announced", set())
    d = data.load_image_folder(tmp_path / "t", profile=ALL)
    for x, y in splits(d).values():
        assert (x == np.array([117, 2], dtype=np.uint8)[y][:, None, None, None]).all()
    assert "replacing 1 cache(s) of an earlier copy" in capsys.readouterr().out


@pytest.mark.parametrize("mode, pixels", [("I", np.full((8, 8), 1000, np.int32)),
                                          ("F", np.full((8, 8), 0.5, np.float32))])
def test_32_bit_and_float_images_are_refused(tmp_path, mode, pixels):
    write_tree(tmp_path / "t", ["a", "b"], 5)
    image = _save_grey(tmp_path / "t" / "b" / "wide.tif", pixels)
    assert Image.open(image).mode == mode
    with pytest.raises(data.DataError) as err:
        data.load_image_folder(tmp_path / "t", profile=ALL)
    message = str(err.value)
    assert message.startswith(f"{paths.display(image)} has ")
    assert f"(Pillow mode {mode})" in message
    assert message.endswith("Convert the images to 8-bit RGB or grayscale.")


# --------------------------------------------------------------------------- source order


def test_synthetic_fallback_is_announced_loudly_once(capsys):
    d = data.load_cifar10(profile=SMALL)
    assert d.synthetic and not d.real_cifar10 and "SYNTHETIC" in d.source and d.class_names == NAMES
    assert_arrays(d, 180, 20, 50)
    banner = capsys.readouterr().out
    assert "NOT CIFAR-10" in banner and "EFFCOURSE_DATA=" in banner
    assert "EFFCOURSE_OFFLINE=1" in banner and "will NOT match" in banner
    assert same(d, data.load_cifar10(profile=SMALL))
    assert capsys.readouterr().out == ""


def test_source_order(tmp_path, monkeypatch, capsys):
    files, _, _ = cifar_files()
    write_batches(tmp_path / "keras" / "datasets" / "cifar-10-batches-py", files)
    assert data.load_cifar10(profile=ALL).source == "CIFAR-10: Keras cache cifar-10-batches-py"
    write_tar(tmp_path / "checkout-data" / "cifar-10-python.tar.gz", files)
    assert data.load_cifar10(profile=ALL).source == "CIFAR-10: cifar-10-python.tar.gz"
    write_tree(tmp_path / "mine", NAMES, 2, 1)
    monkeypatch.setenv(data.DATA_ENV_VAR, str(tmp_path / "mine"))
    assert data.load_cifar10(profile=ALL).source.endswith("class-per-folder tree mine")
    assert data.load_cifar10(tmp_path / "checkout-data", profile=ALL).source.endswith(".tar.gz")
    # a broken copy in data/ is reported and skipped: nobody named it explicitly
    monkeypatch.delenv(data.DATA_ENV_VAR)
    (tmp_path / "checkout-data" / "cifar-10-python.tar.gz").write_bytes(b"broken")
    capsys.readouterr()
    assert "Keras cache" in data.load_cifar10(profile=ALL).source
    assert "Not using" in capsys.readouterr().out


def test_failed_download_falls_back_with_a_timeout(tmp_path, monkeypatch, capsys):
    import tf_keras

    timeouts, calls = [], []

    def failing_download(fname, origin, **kwargs):
        timeouts.append(socket.getdefaulttimeout())
        calls.append((fname, origin, kwargs))
        raise Exception("URL fetch failure: no network")

    monkeypatch.delenv(data.OFFLINE_ENV_VAR)
    monkeypatch.setattr(tf_keras.utils, "get_file", failing_download)
    d = data.load_cifar10(profile=SMALL)
    assert d.synthetic and timeouts == [data_cifar10._DOWNLOAD_TIMEOUT_S]
    ((fname, origin, kwargs),) = calls  # Keras's own origin, into the Keras cache folder
    assert origin == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert fname == "cifar-10-batches-py.tar.gz" and kwargs["cache_dir"] == str(tmp_path / "keras")
    assert kwargs.get("cache_subdir", "datasets") == "datasets" and kwargs["file_hash"]
    assert socket.getdefaulttimeout() is None
    out = capsys.readouterr().out
    assert "download failed (Exception: URL fetch failure" in out and "NOT CIFAR-10" in out
    assert data.load_cifar10(profile=SMALL).synthetic and len(timeouts) == 1  # not retried


# --------------------------------------------------------------------------- synthetic data


def test_synthetic_data_is_deterministic_and_balanced():
    x, y, xt, yt = data.synthetic_cifar10(200, 50, seed=3)
    again = data.synthetic_cifar10(200, 50, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((x, y, xt, yt), again))
    assert not np.array_equal(x, data.synthetic_cifar10(200, 50, seed=4)[0])
    assert x.shape == (200, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [20] * 10 and np.bincount(yt).tolist() == [5] * 10
    assert x.std() > 30  # images, not blank frames
    assert data.synthetic_cifar10(3, 0, image_size=(24, 40))[0].shape == (3, 24, 40, 3)


def test_synthetic_data_is_learnable_but_not_trivial():
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    x, y, xt, yt = data.synthetic_cifar10(2000, 500, seed=0)
    model = keras.Sequential([
        keras.layers.Input((32, 32, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    model.compile(keras.optimizers.Adam(3e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True), ["accuracy"])
    model.fit(data.normalise(x), y, batch_size=32, epochs=3, verbose=0)
    _, accuracy = model.evaluate(data.normalise(xt), yt, verbose=0)
    print(f"synthetic test accuracy after 3 epochs: {accuracy:.3f}")
    assert 0.3 < accuracy < 0.99


# --------------------------------------------------------------------------- pipelines, plots


def test_normalise():
    import tensorflow as tf

    x = np.array([[0, 51, 255]], dtype=np.uint8)
    assert data.normalise(x).dtype == np.float32
    np.testing.assert_allclose(data.normalise(x), [[0, 0.2, 1]])
    tensor = data.normalise(tf.constant(x))
    assert tensor.dtype == tf.float32 and float(tf.reduce_max(tensor)) == 1.0


@pytest.mark.parametrize("training, augment", [(False, False), (True, False), (True, True)])
def test_pipeline(training, augment):
    x, y, _, _ = data.synthetic_cifar10(70, 0)
    batches = list(data.pipeline(x, y, batch_size=32, training=training, augment=augment))
    assert [tuple(b[0].shape) for b in batches] == [(32, 32, 32, 3), (32, 32, 32, 3), (6, 32, 32, 3)]
    images = np.concatenate([b[0].numpy() for b in batches])
    labels = np.concatenate([b[1].numpy() for b in batches])
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert images.min() >= 0 and images.max() <= 1
    assert sorted(labels) == sorted(y)
    if not training:
        np.testing.assert_allclose(images, x / 255, atol=1e-6)
        assert np.array_equal(labels, y)
    else:
        assert not np.array_equal(labels, y)  # shuffled


def test_image_data_helpers():
    d = data.load_cifar10(profile=SMALL)
    assert d.describe().startswith(d.source) and "train 180, validation 20, test 50" in d.describe()
    assert "32x32x3" in d.describe()
    key = d.fingerprint()
    assert len(key) == 16 and int(key, 16) >= 0
    assert key == data.load_cifar10(profile=SMALL).fingerprint()
    assert key != data.load_cifar10(profile=dataclasses.replace(SMALL, test_images=40)).fingerprint()
    assert key != data.load_cifar10(profile=SMALL, seed=1).fingerprint()
    first = next(iter(d.train_dataset(augment=True)))
    assert tuple(first[0].shape) == (SMALL.batch_size, 32, 32, 3)
    assert sum(len(b[1]) for b in d.val_dataset()) == 20
    assert sum(len(b[1]) for b in d.val_dataset(batch_size=16)) == 20


def test_show_samples():
    d = data.load_cifar10(profile=SMALL)
    fig = data.show_samples(d, per_class=2, split="test")
    assert len(fig.axes) == 20
    assert {ax.get_title() for ax in fig.axes} == set(NAMES)
    plt.close(fig)
    with pytest.raises(ValueError, match="split"):
        data.show_samples(d, split="everything")


def _split_data(n_train, batch_size=16):
    rng = np.random.default_rng(1)
    make = lambda n: (rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 3, n))  # noqa: E731
    (xt, yt), (xv, yv), (xs, ys) = make(n_train), make(40), make(40)
    return data.ImageData(xt, yt, xv, yv, xs, ys, ("a", "b", "c"), "test data", True, batch_size)


def test_fine_tuning_subset_takes_the_profiles_share():
    data = _split_data(n_train=400)
    smoke = data.fine_tuning_subset(profiles.get("smoke"))
    assert len(smoke.x_train) == 20 and len(smoke.y_train) == 20  # max(batch 16, 5% of 400)
    assert smoke.x_test is data.x_test and smoke.x_val is data.x_val
    assert len(data.fine_tuning_subset(profiles.get("workshop")).x_train) == 120
    assert data.fine_tuning_subset(profiles.get("full")) is data
    tiny = _split_data(n_train=100).fine_tuning_subset(profiles.get("smoke"))
    assert len(tiny.x_train) == 16  # at least one batch
    # the subset is a subset: each kept image comes with its own label
    rows = {img.tobytes(): label for img, label in zip(data.x_train, data.y_train)}
    assert all(rows[img.tobytes()] == label for img, label in zip(smoke.x_train, smoke.y_train))
