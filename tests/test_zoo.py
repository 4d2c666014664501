"""The trained-model cache: train once, load after, retrain when unreadable."""
import dataclasses
import json

import h5py
import numpy as np
import pytest
import tf_keras as keras

from effcourse import data, paths, profiles, recipes, zoo

PROFILE = profiles.get("smoke")


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))


@pytest.fixture
def tiny_data():
    x_train, y_train, x_test, y_test = data.synthetic_cifar10(200, 50, seed=1)
    return data.ImageData(x_train, y_train, x_test, y_test, x_test, y_test, tuple("abcdefghij"), "tiny", True)


@pytest.fixture
def counting_recipe(monkeypatch):
    calls = []

    def train_tiny(data, profile):
        calls.append(profile.name)
        model = recipes.compile_model(keras.Sequential([keras.Input(data.image_shape), keras.layers.Flatten(), keras.layers.Dense(10)]))
        history = model.fit(data.train_dataset(), epochs=profile.epochs(3), verbose=0)
        return model, history.history

    monkeypatch.setitem(recipes.RECIPES, "tiny", train_tiny)
    return calls


def test_trained_once_then_loaded(counting_recipe, tiny_data):
    first = zoo.trained("tiny", tiny_data, PROFILE)
    second = zoo.trained("tiny", tiny_data, PROFILE)
    assert counting_recipe == ["smoke"]
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.history == first.history
    x = data.normalise(tiny_data.x_test)
    np.testing.assert_allclose(second.model.predict(x, verbose=0), first.model.predict(x, verbose=0), atol=1e-6)
    assert second.model.optimizer is not None  # compiled, ready to fine-tune


def test_key_separates_profiles_and_data(counting_recipe, tiny_data):
    zoo.trained("tiny", tiny_data, PROFILE)
    zoo.trained("tiny", tiny_data, profiles.get("workshop"))
    other = dataclasses.replace(tiny_data, y_train=np.roll(tiny_data.y_train, 1))
    zoo.trained("tiny", other, PROFILE)
    assert counting_recipe == ["smoke", "workshop", "smoke"]


def test_retrain_and_unreadable_cache(counting_recipe, tiny_data):
    zoo.trained("tiny", tiny_data, PROFILE)
    zoo.trained("tiny", tiny_data, PROFILE, retrain=True)
    (zoo.cache_path("tiny", tiny_data, PROFILE) / "model.h5").write_bytes(b"garbage")
    again = zoo.trained("tiny", tiny_data, PROFILE)
    assert counting_recipe == ["smoke"] * 3 and not again.from_cache


def test_a_cached_model_that_would_run_code_is_refused_before_loading(counting_recipe, tiny_data, tmp_path):
    zoo.trained("tiny", tiny_data, PROFILE)
    marker = tmp_path / "ran"

    def leave_a_mark(x, marker=str(marker)):
        open(marker, "w").close()
        return x

    crafted = keras.Sequential([keras.Input(tiny_data.image_shape), keras.layers.Lambda(leave_a_mark),
                                keras.layers.Flatten(), keras.layers.Dense(10)])
    crafted.save(zoo.cache_path("tiny", tiny_data, PROFILE) / "model.h5")
    marker.unlink()  # building the model called the function once
    with pytest.raises(zoo.UnsafeModelFile, match="Lambda .*delete its folder") as refused:
        zoo.trained("tiny", tiny_data, PROFILE)
    assert not marker.exists() and str(tmp_path) not in str(refused.value)
    assert keras.models.load_model(zoo.cache_path("tiny", tiny_data, PROFILE) / "model.h5") and marker.exists(), \
        "without the check, Keras runs the file's code"


# Layers tf_keras rebuilds from a file's configuration that call what the file names.
NAMED_CALLS = {"ClassMethod": {"cls_symbol": "RaggedTensor", "method_name": "from_row_splits"},
               "InstanceMethod": {"attr_name": "with_values"}, "InstanceProperty": {"attr_name": "flat_values"}}


@pytest.mark.parametrize("name", NAMED_CALLS)
def test_layers_that_call_what_the_file_names_are_refused(counting_recipe, tiny_data, tmp_path, name):
    config = {**NAMED_CALLS[name], "name": "named"}
    assert type(keras.layers.deserialize({"class_name": name, "config": config})).__name__ == name  # Keras builds it
    assert name in zoo.CODE_LAYERS
    zoo.trained("tiny", tiny_data, PROFILE)
    path = zoo.cache_path("tiny", tiny_data, PROFILE) / "model.h5"
    with h5py.File(path, "r+") as file:
        model = json.loads(file.attrs["model_config"])
        model["config"]["layers"].append({"class_name": name, "config": config})
        file.attrs["model_config"] = json.dumps(model)
    with pytest.raises(zoo.UnsafeModelFile, match=f"{name} named.*delete its folder") as refused:
        zoo.trained("tiny", tiny_data, PROFILE)
    assert str(tmp_path) not in str(refused.value) and counting_recipe == ["smoke"]


def test_a_cache_damaged_inside_is_trained_again_naming_no_absolute_path(counting_recipe, tiny_data, tmp_path, capsys):
    def drop_weights(folder):
        with h5py.File(folder / "model.h5", "r+") as file:
            del file["model_weights"]

    def config_a_list(folder):
        with h5py.File(folder / "model.h5", "r+") as file:
            file.attrs["model_config"] = json.dumps([1, 2])

    damages = {"no weights": drop_weights, "a configuration that is a list": config_a_list,
               "meta.json a list": lambda folder: (folder / "meta.json").write_text("[1]"),
               "history.json a string": lambda folder: (folder / "history.json").write_text('"loss"'),
               "no model file": lambda folder: (folder / "model.h5").unlink()}
    zoo.trained("tiny", tiny_data, PROFILE)
    capsys.readouterr()
    for what, damage in damages.items():
        damage(zoo.cache_path("tiny", tiny_data, PROFILE))
        again = zoo.trained("tiny", tiny_data, PROFILE)
        out = capsys.readouterr().out
        assert not again.from_cache, what
        assert "is unreadable (" in out and "training it again" in out and str(tmp_path) not in out, (what, out)
    assert zoo.trained("tiny", tiny_data, PROFILE).from_cache and counting_recipe == ["smoke"] * 6


def test_unknown_recipe_lists_known_ones(tiny_data):
    with pytest.raises(KeyError, match="reference, improved"):
        zoo.trained("resnet", tiny_data, PROFILE)


def test_training_time_is_recorded_and_loaded_with_the_model(counting_recipe, tiny_data):
    import json

    trained = zoo.trained("tiny", tiny_data, PROFILE)
    assert trained.seconds is not None and trained.seconds > 0
    loaded = zoo.trained("tiny", tiny_data, PROFILE)
    assert loaded.from_cache and loaded.seconds == round(trained.seconds, 1)
    meta_path = zoo.cache_path("tiny", tiny_data, PROFILE) / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["seconds"]  # a cache written before training times were recorded
    meta_path.write_text(json.dumps(meta))
    older = zoo.trained("tiny", tiny_data, PROFILE)
    assert older.from_cache and older.seconds is None and counting_recipe == ["smoke"]
