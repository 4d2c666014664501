"""Trained models shared between lessons, cached outside git by recipe, profile and data.

A lesson asks for a model by recipe name; it is loaded if an earlier lesson (or run)
trained it the same way, and trained now with that recipe otherwise. A cached model is data,
never code: a file whose layers would run Python code from it is refused before Keras reads it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tf_keras as keras

from . import measure, paths, profiles, recipes
from .data import ImageData


# Keras layers whose saved configuration names code to run: a Lambda's is Python bytecode,
# the TF-op layers' any TensorFlow function by name, ClassMethod's any class method of TensorFlow,
# InstanceMethod's and InstanceProperty's any method or attribute of their input, by name. The
# course's recipes make none of them.
CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda", "ClassMethod", "InstanceMethod", "InstanceProperty")
# What reading a damaged cache raises: h5py a KeyError for a missing group (the weights), Keras a
# TypeError or AttributeError for a configuration of the wrong shape, json a ValueError.
_DAMAGED = (OSError, ValueError, KeyError, TypeError, AttributeError)


class UnsafeModelFile(Exception):
    """A cached model file whose layers would run code from the file (not retrained over: a person decides)."""


@dataclass
class TrainedModel:
    """A trained model with its training history and where it came from."""

    model: keras.Model
    history: dict
    recipe: str
    from_cache: bool
    path: Path
    seconds: float | None = None  # wall time of the training, as recorded when it ran (None: not recorded)


def cache_path(recipe: str, data: ImageData, profile: profiles.Profile) -> Path:
    """The folder that holds `recipe` trained on `data` in `profile`."""
    return paths.subdir("models") / f"{recipe}-{profile.name}-{data.fingerprint()}"


def trained(recipe: str, data: ImageData, profile: profiles.Profile | None = None, *, retrain: bool = False) -> TrainedModel:
    """The model `recipe` trains on `data` in `profile`: from the cache, or trained now and cached."""
    if recipe not in recipes.RECIPES:
        raise KeyError(f"No recipe {recipe!r}. Known recipes: {', '.join(recipes.RECIPES)}.")
    profile = profile or profiles.current()
    folder = cache_path(recipe, data, profile)
    if folder.exists() and not retrain:
        try:
            check_no_code(folder / "model.h5")
            model = recipes.compile_model(keras.models.load_model(folder / "model.h5", compile=False))
            history = _json_object(folder / "history.json")
            meta = folder / "meta.json"  # older caches hold no training time: seconds is None
            seconds = _json_object(meta).get("seconds") if meta.exists() else None
            print(f"Loaded '{recipe}' from the model cache ({paths.display(folder)}).")
            return TrainedModel(model, history, recipe, True, folder, seconds)
        except _DAMAGED as err:
            print(f"The cached '{recipe}' model in {paths.display(folder)} is unreadable ({_reason(err, folder)}); "
                  "training it again.")
    start = time.perf_counter()
    model, history = recipes.RECIPES[recipe](data, profile)
    seconds = time.perf_counter() - start
    history = {k: [float(v) for v in values] for k, values in history.items()}
    _save(folder, model, history, recipe, data, profile, seconds)
    return TrainedModel(model, history, recipe, False, folder, seconds)


def _json_object(path: Path) -> dict:
    """The JSON object a cache file holds (ValueError if it holds anything else)."""
    value = json.loads(path.read_text())
    if not isinstance(value, dict):
        raise ValueError(f"{path.name} holds no JSON object")
    return value


def _reason(err: Exception, folder: Path) -> str:
    """`Type: message` of `err`, with `folder` as the course prints it (h5py names absolute paths)."""
    text = " ".join(str(err).split())
    for form in (os.path.abspath(folder), str(folder)):  # the absolute form first: it may hold the other
        text = text.replace(form, paths.display(folder))
    return f"{type(err).__name__}: {text}"


def check_no_code(path: Path) -> None:
    """Refuse (UnsafeModelFile) a saved Keras model whose configuration holds layers that run code
    from the file (`CODE_LAYERS`), reading only its JSON; an unreadable file raises OSError or ValueError."""
    import h5py

    with h5py.File(path, "r") as file:
        config = file.attrs.get("model_config")
    if config is None:
        raise ValueError("the file holds no model configuration")
    layers = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") in CODE_LAYERS:
                layers.append(f"{node['class_name']} {(node.get('config') or {}).get('name', '')}".strip())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(config))
    if layers:
        raise UnsafeModelFile(
            f"The model file {paths.display(path)} holds layers that would run code from the file when "
            f"loaded or called ({', '.join(layers)}). The course's recipes never save such layers, so this "
            "file did not come from them: delete its folder to train the model again, and copy model "
            "caches only from people you trust.")


def _save(folder: Path, model, history: dict, recipe: str, data: ImageData, profile: profiles.Profile,
          seconds: float) -> None:
    """Write the model, history and provenance to a temporary folder, then move it into place."""
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".staging-"))
    measure.save_h5(model, staging / "model.h5")
    (staging / "history.json").write_text(json.dumps(history))
    meta = {"recipe": recipe, "profile": profile.name, "data": data.source,
            "trained": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "seconds": round(seconds, 1)}
    (staging / "meta.json").write_text(json.dumps(meta, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
