"""The report card on a tiny model and tiny synthetic data, Keras and LiteRT."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from effcourse import data, measure, paths, profiles, results
from effcourse.litert import LiteRTModel
from effcourse.report import ReportCard, report_card

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
    assert card.params == tiny_model.count_params()
    assert card.macs == 15 * 15 * 27 * 8 + 8 * 10  # by hand: strided conv on 15x15 outputs, dense 8->10
    assert (card.bytes, card.gzip_bytes) == measure.sizes(measure.keras_bytes(tiny_model))
    assert 0 < card.latency_ms <= card.latency_p95_ms and card.latency_runs == 20
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
