"""benchmarks/ablation_baseline.py: its variants say truly what they train (the two recipes' rows
match what the recipes do), each contrast changes only what its question names, and the tables
carry the paired verdicts."""
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import tf_keras as keras

from effcourse import measure, models, profiles, recipes
from effcourse.data import ImageData

import benchmark_scripts

ablation = benchmark_scripts.load("ablation_baseline")

FULL = profiles.get("full")


def _data(n: int = 64) -> ImageData:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    return ImageData(x, y, x[:16], y[:16], x[:32], y[:32], tuple("abcdefghij"), "test images", True)


def _settings(train, monkeypatch) -> dict:
    """What `train(data, profile)` really does, read from the model and fit call it makes (fit mocked)."""
    seen = {}

    def fit(self, x=None, validation_data=None, epochs=1, callbacks=None, **kwargs):
        seen.update(model=self, epochs=epochs, callbacks=list(callbacks or []))
        return SimpleNamespace(history={"loss": [1.0] * epochs, "val_accuracy": [0.1] * epochs})

    monkeypatch.setattr(keras.Model, "fit", fit)
    monkeypatch.setattr(ImageData, "train_dataset", lambda self, augment=False, batch_size=None:
                        seen.update(augment=augment))
    monkeypatch.setattr(ImageData, "val_dataset", lambda self, batch_size=None: None)
    train(_data(), FULL)
    model, rate = seen["model"], seen["model"].optimizer._learning_rate
    schedule = isinstance(rate, keras.optimizers.schedules.LearningRateSchedule)
    stopping = [c for c in seen["callbacks"] if isinstance(c, keras.callbacks.EarlyStopping)]
    return {
        "architecture": model.name.removesuffix("_cnn"),
        "batch_norm": any(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers),
        "dropout": any(isinstance(layer, keras.layers.Dropout) for layer in model.layers),
        "augment": seen["augment"],
        "learning_rate": round(float(rate.initial_learning_rate if schedule else rate.numpy()), 8),
        "schedule": type(rate).__name__ if schedule else None,
        "early_stopping": [(c.monitor, c.patience, c.restore_best_weights) for c in stopping],
        "epochs": seen["epochs"],
    }


def _declared(variant) -> dict:
    return {
        "architecture": variant.architecture,
        "batch_norm": variant.batch_norm_dropout,
        "dropout": variant.batch_norm_dropout,
        "augment": variant.augment,
        "learning_rate": variant.learning_rate,
        "schedule": "CosineDecay" if variant.schedule else None,
        "early_stopping": [("val_accuracy", ablation.PATIENCE, True)] if variant.early_stopping else [],
        "epochs": variant.full_epochs,
    }


@pytest.mark.parametrize("key", ["reference", "improved"])
def test_the_recipes_rows_say_what_the_recipes_do(key, monkeypatch):
    variant = ablation.BY_KEY[key]
    by_recipe = _settings(recipes.RECIPES[variant.recipe], monkeypatch)
    assert by_recipe == _declared(variant)
    # The script's own trainer, given the same settings, trains the same way.
    by_script = _settings(lambda d, p: ablation.train(dataclasses.replace(variant, recipe=None), d, p), monkeypatch)
    assert by_script == by_recipe


@pytest.mark.parametrize("variant", [v for v in ablation.VARIANTS if not v.recipe], ids=lambda v: v.key)
def test_every_other_variant_trains_as_declared(variant, monkeypatch):
    assert _settings(lambda d, p: ablation.train(variant, d, p), monkeypatch) == _declared(variant)


TOOLS = {"augment", "learning_rate", "schedule", "early_stopping"}
CHANGES = {  # what each contrast's question says changes
    "Seed noise: the same recipe trained twice": {"seed"},
    "3x the epochs, nothing else": {"full_epochs"},
    "Training tools on the reference architecture (same epochs)": TOOLS,
    "Improved architecture with the reference training (same epochs)": {"architecture", "batch_norm_dropout"},
    "Training tools on the improved architecture": TOOLS,
    "Batch norm and dropout (with the training tools)": {"batch_norm_dropout"},
    "Improved architecture (with the training tools)": {"architecture", "batch_norm_dropout"},
    "Everything at once": TOOLS | {"architecture", "batch_norm_dropout", "full_epochs"},
}


def test_each_contrast_changes_only_what_its_question_names():
    assert [q for q, _, _ in ablation.CONTRASTS] == list(CHANGES)
    for question, a, b in ablation.CONTRASTS:
        va, vb = ablation.BY_KEY[a], ablation.BY_KEY[b]
        differ = {f.name for f in dataclasses.fields(va) if f.name not in ("key", "name", "recipe")
                  and getattr(va, f.name) != getattr(vb, f.name)}
        assert differ == CHANGES[question], question


def test_the_improved_convolutions_without_batch_norm_and_dropout_cost_the_same_macs():
    improved = models.improved_cnn()
    plain = ablation.build(ablation.BY_KEY["improved-no-bn-dropout"], _data())
    kinds = {type(layer).__name__ for layer in plain.layers}
    assert not kinds & {"BatchNormalization", "Dropout"}
    assert measure.macs(plain) == measure.macs(improved)
    assert [m.macs for m in measure.layer_macs(plain)] == [m.macs for m in measure.layer_macs(improved)]


def test_default_improved_cnn_is_unchanged():
    """The ablation's switches leave the recipe's model as it was (the model cache depends on it)."""
    model = models.improved_cnn()
    assert model.count_params() == 235_282
    assert [type(layer).__name__ for layer in model.layers[:5]] == [
        "Conv2D", "BatchNormalization", "ReLU", "MaxPooling2D", "Conv2D"]
    assert sum(isinstance(layer, keras.layers.Dropout) for layer in model.layers) == 3


def _outcome(key: str, correct) -> "ablation.Outcome":
    return ablation.Outcome(ablation.BY_KEY[key], np.asarray(correct, bool), 1000, 2_000_000, 3, None, 1.0)


def test_tables_give_paired_verdicts_and_skip_what_was_not_run():
    n = 400
    ref = _outcome("reference", np.arange(n) < 200)           # 50%
    imp = _outcome("improved", np.arange(n) < 300)            # 75%: better
    seed = _outcome("reference-seed1", (np.arange(n) < 198) | (np.arange(n) == 399))  # within noise
    rows = ablation.variants_table([ref, seed, imp])
    assert rows[1][-2] == "(itself)" and rows[3][-1] == "(itself)"
    assert "better" in rows[3][-2] and "worse" in rows[1][-1]
    assert "within noise" in rows[2][-2]
    contrasts = ablation.contrasts_table([ref, seed, imp])
    assert [r[0] for r in contrasts[1:]] == ["Seed noise: the same recipe trained twice", "Everything at once"]
    assert contrasts[2][3] == "+25.00" and contrasts[2][4].startswith("better")
    text = ablation.markdown_table(rows)
    assert text.count("\n") == len(rows) and "| variant |" in text
