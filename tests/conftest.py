"""Fixtures several test modules share: the small CNN of `tiny.py` and images for it, and a
data loader isolated from this machine's copies, caches and settings."""
import pytest

from tiny import small_images, small_model

from effcourse import data, profiles
from effcourse.data import cifar10 as data_cifar10
from effcourse.data import imagedata as data_imagedata


@pytest.fixture(scope="module")
def model():
    """A small conv-BN-ReLU CNN with trained-looking weights (a module may define its own)."""
    return small_model()


@pytest.fixture(scope="module")
def images():
    """64 random images the small CNN takes (a module may define its own)."""
    return small_images()


@pytest.fixture
def isolated_data(monkeypatch, tmp_path):
    """No real copy, Keras cache, download, working folder or earlier banner leaks in."""
    monkeypatch.setenv("EFFCOURSE_WORKDIR", str(tmp_path / "work"))
    monkeypatch.delenv(data.DATA_ENV_VAR, raising=False)
    monkeypatch.setenv(data.OFFLINE_ENV_VAR, "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv(profiles.ENV_VAR, "smoke")
    monkeypatch.setattr(data_cifar10, "_CHECKOUT_DATA", tmp_path / "checkout-data")
    monkeypatch.setattr(data_imagedata, "_announced", set())
    monkeypatch.setattr(data_cifar10, "_failed_download", [])
