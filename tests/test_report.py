"""The measuring stick on tiny models and tiny synthetic data: one card, and models measured together."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from effcourse import cli, convert, data, measure, paths, plots, profiles, results, stats
from effcourse.litert import LiteRTModel
from effcourse.report import measure_together, report_card
from effcourse.results import ReportCard

PROFILE = dataclasses.replace(profiles.get("smoke"), latency_runs=20, warmup_runs=2)


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))


@pytest.fixture(scope="module")
def tiny_data():
    x_train, y_train, x_test, y_test = data.synthetic_cifar10(300, 300, seed=3)
    return data.ImageData(x_train, y_train, x_train[:10], y_train[:10], x_test, y_test,
                          class_names=tuple("abcdefghij"), source="tiny synthetic test set", synthetic=True)


@pytest.fixture(scope="module")
def tiny_model(tiny_data):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(tiny_data.train_dataset(), epochs=1, verbose=0)
    return model


def test_keras_card_measures_everything_and_is_recorded(tiny_model, tiny_data):
    card = report_card(tiny_model, tiny_data, name="tiny", lesson="00", profile=PROFILE)
    predictions = np.argmax(tiny_model.predict(data.normalise(tiny_data.x_test), verbose=0), axis=-1)
    assert card.accuracy == pytest.approx(np.mean(predictions == tiny_data.y_test))
    assert card.test_images == 300 and card.kind == "keras"
    assert card.accuracy_low < card.accuracy < card.accuracy_high
    assert card.params == tiny_model.count_params()
    assert card.macs == 15 * 15 * 27 * 8 + 8 * 10  # by hand: strided conv on 15x15 outputs, dense 8->10
    # size, latency and energy are those of the model as deployed: its float32 LiteRT conversion
    assert card.deployed_as.startswith("float32 LiteRT")
    assert (card.bytes, card.gzip_bytes) == measure.sizes(convert.to_litert(tiny_model).content)
    assert 0 < card.latency_ms <= card.latency_p95_ms and card.latency_runs == 20
    assert card.comparison == ""  # measured alone
    assert card.throughput_ips > 0 and card.energy_mj > 0
    assert card.energy_method.startswith(("measured:", "estimated:"))
    assert (card.profile, card.data) == ("smoke", "tiny synthetic test set")
    assert card.versions["tensorflow"] == tf.__version__
    assert results.load() == [card]
    assert "tiny" in str(card) and "<table>" in card._repr_html_()
    assert ReportCard.from_dict(card.to_dict()) == card


def test_litert_card_agrees_with_its_keras_source(tiny_model, tiny_data):
    keras_card = report_card(tiny_model, tiny_data, name="tiny", lesson="00", profile=PROFILE, record=False)
    tflite = tf.lite.TFLiteConverter.from_keras_model(tiny_model).convert()
    lite_card = report_card(tflite, tiny_data, name="tiny", lesson="00", profile=PROFILE, record=False)
    assert lite_card.kind == "litert"
    assert lite_card.accuracy == pytest.approx(keras_card.accuracy, abs=0.01)
    assert lite_card.macs == keras_card.macs
    assert lite_card.bytes == len(tflite)
    assert results.load() == []  # record=False


def test_wrong_inputs_are_clear_errors(tiny_model, tiny_data):
    with pytest.raises(TypeError, match="tf_keras model or a LiteRT model"):
        report_card("model.h5", tiny_data, name="x", lesson="00", profile=PROFILE)
    small = dataclasses.replace(tiny_data, x_test=tiny_data.x_test[:, :16, :16])
    with pytest.raises(ValueError, match="shape"):
        report_card(tiny_model, dataclasses.replace(small, x_train=small.x_test), name="x", lesson="00", profile=PROFILE)
    lite = LiteRTModel(tf.lite.TFLiteConverter.from_keras_model(tiny_model).convert())
    with pytest.raises(ValueError, match="shape"):
        report_card(lite, dataclasses.replace(small, x_train=small.x_test), name="x", lesson="00", profile=PROFILE)


def conv_stack(depth: int) -> keras.Model:
    """`depth` same-shaped 3x3 convolutions: twice the depth is twice the work."""
    keras.utils.set_random_seed(1)
    stack = [keras.Input((32, 32, 3)), keras.layers.Conv2D(16, 3, padding="same", activation="relu")]
    stack += [keras.layers.Conv2D(16, 3, padding="same", activation="relu") for _ in range(depth - 1)]
    stack += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    return keras.Sequential(stack)


def test_models_measured_together_get_ratios_and_verdicts(tiny_data):
    profile = dataclasses.replace(profiles.get("smoke"), latency_runs=200, warmup_runs=10)
    single, double = conv_stack(4), conv_stack(8)
    lite = convert.to_litert(single)
    together = measure_together({"model": single, "same model": lite, "twice the work": double}, tiny_data,
                                lesson="00", title="Does depth cost time?", profile=profile)
    table = together.table
    assert list(table.index) == ["model", "same model", "twice the work"]
    assert table.loc["model", "speed verdict"] == "reference"
    assert table.loc["same model", "speed verdict"] == "no measurable difference"
    assert table.loc["twice the work", "speed verdict"] == "slower"
    assert table.loc["twice the work", "latency x ref"] > 1.2  # about 2 on a quiet machine
    assert table.loc["same model", "accuracy verdict"] == "within noise"  # the very same predictions
    assert table.loc["same model", "vs ref (points)"] == 0
    correct = {name: measure.correct(m, data.normalise(tiny_data.x_test), tiny_data.y_test)
               for name, m in (("model", single), ("twice the work", double))}
    paired = stats.paired_accuracy(correct["model"], correct["twice the work"])
    assert table.loc["twice the work", "accuracy verdict"] == paired.verdict
    assert table.attrs["rounds"] == 20 and table.attrs["energy_method"] == together.cards["model"].energy_method
    energy_column = [c for c in table.columns if c.startswith("mJ/inference")]
    assert energy_column == ["mJ/inference (estimated)" if together.cards["model"].energy_estimated
                             else "mJ/inference (measured)"]
    # the cards it recorded, and which cards were measured together
    ids = {card.comparison for card in together.cards.values()}
    assert len(ids) == 1 and ids != {""}
    assert {(c.model, c.comparison) for c in results.load()} == {(name, together.id) for name in table.index}
    (stored,) = results.load_comparisons()
    assert stored["id"] == together.id and stored["title"] == "Does depth cost time?"
    assert [row["model"] for row in stored["rows"]] == list(table.index)
    assert "interleaved rounds" in together.conditions() and "McNemar" in together.conditions()
    # the deployed files are kept for lesson 07: the same bytes once, the first name keeps them
    deployed = results.deployed_models(profile="smoke", data="tiny synthetic test set")
    assert [d.label for d in deployed] == ["model (00)", "twice the work (00)"]
    assert deployed[0].path.read_bytes() == lite.content
    assert results.deployed_models(profile="workshop", data="tiny synthetic test set") == []
    assert results.deployed_models(profile="smoke", data="tiny synthetic test set", lessons=("01",)) == []
    assert repr(together).startswith("Does depth cost time?\n") and "Report card" not in repr(together)
    # one table per question
    assert together.accuracy_table().loc["same model", "accuracy verdict"] == "within noise"
    assert together.size_table().loc["model", "gzip x smaller"] == 1.0
    assert together.speed_table().loc["twice the work", "speed verdict"] == "slower"
    assert energy_column[0] in together.speed_table().columns and "McNemar p" not in together.speed_table()
    # readable in a 100-column terminal
    text = cli.format_comparison(stored)
    assert all(len(line) <= 100 for line in text.splitlines()) and "twice the work" in text
    # and plotted with the noise of every point
    fig = plots.tradeoffs(together)
    assert len(fig.axes) == 2
    labels = [t.get_text() for t in fig.axes[1].texts]
    assert any("twice the work" in label for label in labels)
    # with its Pareto fronts: no model is as accurate and smaller (or faster) and better in one
    fig = plots.tradeoffs(together, front=True)
    accuracy = np.array([100 * together.cards[name].accuracy for name in table.index])
    for ax, column in zip(fig.axes, ("gzip KiB", "latency x ref")):
        (line,) = [line for line in ax.get_lines() if line.get_label().startswith("Pareto front:")]
        x = table[column].to_numpy()
        assert 1 <= len(line.get_xdata()) <= len(x)
        for fx, fy in zip(line.get_xdata(), line.get_ydata()):
            assert not np.any((accuracy >= fy) & (x <= fx) & ((accuracy > fy) | (x < fx)))


def test_measure_together_refuses_what_it_cannot_measure(tiny_model, tiny_data):
    with pytest.raises(ValueError, match="No models"):
        measure_together({}, tiny_data, lesson="00", profile=PROFILE)
    with pytest.raises(KeyError, match="reference"):
        measure_together({"a": tiny_model}, tiny_data, lesson="00", reference="b", profile=PROFILE)


def test_a_model_of_other_classes_is_a_clear_error(tiny_data):
    two = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="scores 2 classes, but the data has 10"):
        report_card(two, tiny_data, name="two", lesson="00", profile=PROFILE, record=False)
    lite = LiteRTModel(tf.lite.TFLiteConverter.from_keras_model(two).convert())
    with pytest.raises(ValueError, match="scores 2 classes, but the data has 10"):
        report_card(lite, tiny_data, name="two", lesson="00", profile=PROFILE, record=False)


def test_data_without_test_images_is_a_clear_error(tiny_model, tiny_data):
    empty = dataclasses.replace(tiny_data, x_test=tiny_data.x_test[:0], y_test=tiny_data.y_test[:0])
    with pytest.raises(ValueError, match="no test images"):
        measure_together({"tiny": tiny_model}, empty, lesson="00", profile=PROFILE, record=False)
    with pytest.raises(ValueError, match="no test images"):
        report_card(tiny_model, empty, name="tiny", lesson="00", profile=PROFILE, record=False)
