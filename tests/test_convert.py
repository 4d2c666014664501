"""Keras to LiteRT: the converters lesson 03 teaches, as the package builds them for every other lesson."""
import warnings

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from effcourse import convert, paths
from effcourse.data import ImageData
from effcourse.litert import LiteRTModel
from tiny import SHAPE, small_model


def tiny_data(n=30) -> ImageData:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8)
    y = rng.integers(0, 4, n)
    return ImageData(x, y, x[:5], y[:5], x[:10], y[:10], ("a", "b", "c", "d"), "test images", True)


def test_representative_dataset():
    generate = convert.representative_dataset(tiny_data(), n=12)
    items = list(generate())
    assert len(items) == 12 and len(list(generate())) == 12  # callable again, as the converter does
    assert all(len(item) == 1 and item[0].shape == (1, *SHAPE) and item[0].dtype == np.float32 for item in items)
    assert all(0.0 <= item[0].min() and item[0].max() <= 1.0 for item in items)
    assert len(list(convert.representative_dataset(tiny_data(), n=500)())) == 30


def test_inference_converter_gives_what_from_keras_model_gives(model, images):
    lite = LiteRTModel(convert.inference_converter(model).convert(), num_threads=1)
    reference = LiteRTModel(tf.lite.TFLiteConverter.from_keras_model(model).convert(), num_threads=1)
    np.testing.assert_allclose(lite.predict(images), reference.predict(images), atol=1e-5)


def test_convert_keeps_the_quantizers_native_log_line_out_of_stderr(model, images, capfd):
    convert.converter_for(model, "int8", data=images).convert()
    assert "fully_quantize" in capfd.readouterr().err  # what the plain call writes from C++
    int8 = LiteRTModel(convert.convert(convert.converter_for(model, "int8", data=images)), num_threads=1)
    assert capfd.readouterr().err == ""
    assert int8.input_details["dtype"] == np.int8


def test_every_kind_converts_with_the_sizes_it_promises():
    from effcourse import models

    model = models.reference_cnn()
    images = np.random.default_rng(2).random((32, 32, 32, 3), dtype=np.float32)
    lite = {kind: convert.to_litert(model, kind, data=images) for kind in convert.KINDS}
    sizes = {kind: len(m.content) for kind, m in lite.items()}
    assert 1.8 < sizes["float32"] / sizes["float16"] < 2.05
    assert 3.5 < sizes["float32"] / sizes["dynamic-range int8"] < 4.1 and 3.5 < sizes["float32"] / sizes["int8"] < 4.1
    assert lite["int8"].input_details["dtype"] == np.int8 and lite["float32"].input_details["dtype"] == np.float32
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(lite["float32"].predict(images), expected, atol=1e-4)
    np.testing.assert_allclose(lite["float16"].predict(images), expected, atol=0.01)
    per_tensor = convert.to_litert(model, "int8", data=images, per_tensor=True)
    scales = [t["quantization_parameters"]["scales"] for t in per_tensor._single.get_tensor_details()
              if t["dtype"] == np.int8 and len(t["shape"]) == 4]
    assert scales and all(len(s) == 1 for s in scales)  # one scale per weight tensor
    per_channel = [t["quantization_parameters"]["scales"] for t in lite["int8"]._single.get_tensor_details()
                   if t["dtype"] == np.int8 and len(t["shape"]) == 4]
    assert any(len(s) > 1 for s in per_channel)


def test_bad_requests_are_clear_errors(model):
    with pytest.raises(ValueError, match="kind must be one of"):
        convert.converter_for(model, "int4")
    with pytest.raises(ValueError, match="representative images"):
        convert.converter_for(model, "int8")

    class Unconvertible(keras.layers.Layer):
        def call(self, x):
            return tf.py_function(lambda t: t, [x], tf.float32)

    odd = keras.Sequential([keras.Input(SHAPE), Unconvertible(name="odd_layer")])
    with pytest.raises(convert.ConversionError, match=r"could not be converted.*EagerPyFunc, from layer 'odd_layer' "
                                                      r"\(Unconvertible\)"):
        convert.to_litert(odd)


def test_the_calibration_set_is_refused_when_empty_or_unnormalised_and_warned_about_when_small(model):
    with pytest.raises(ValueError, match="No calibration images"):
        convert.to_litert(model, "int8", data=np.zeros((0, *SHAPE), np.uint8))
    with pytest.raises(ValueError, match=r"Calibration takes uint8 pixels or floats in \[0, 1\].*x / 255"):
        convert.representative_dataset(np.full((4, *SHAPE), 200.0))
    with pytest.warns(UserWarning, match="Calibrating int8 on 1 images: .* fewer than 100 may be poor"):
        convert.representative_dataset(np.zeros((1, *SHAPE), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert.representative_dataset(tiny_data(convert.MIN_CALIBRATION_IMAGES))


def test_calibration_images_must_have_the_models_input_shape(model):
    with pytest.raises(ValueError, match=r"Calibration images of shape \(4, 4, 3\) for a model that takes \(8, 8, 3\)"):
        convert.to_litert(model, "int8", data=np.zeros((120, 4, 4, 3), np.uint8))


def test_only_a_keras_model_that_knows_its_input_shape_converts():
    with pytest.raises(TypeError, match=r"not the path 'model.h5': load it first .*keras.models.load_model"):
        convert.to_litert("model.h5")

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.logits = keras.layers.Dense(2)

        def call(self, x):
            return self.logits(x)

    subclassed = Subclassed()
    with pytest.raises(convert.ConversionError, match=r"never been called.*call it on a batch of images first"):
        convert.to_litert(subclassed)
    x = np.full((2, 4), 0.5, np.float32)
    expected = subclassed(x).numpy()  # its first call tells its input shape
    np.testing.assert_allclose(convert.to_litert(subclassed).predict(x), expected, atol=1e-5)


def test_conversion_errors_advise_what_fits_the_cause():
    import tensorflow_model_optimization as tfmot

    recurrent = keras.Sequential([keras.Input((4, 2)), keras.layers.LSTM(2, name="recurrent")])
    with pytest.raises(convert.ConversionError) as lstm:
        convert.to_litert(recurrent)
    message = str(lstm.value)
    assert "TensorListReserve, from layer 'recurrent' (LSTM)" in message
    assert "strip" not in message.lower() and str(paths.CHECKOUT) not in message and ".venv" not in message
    with pytest.raises(convert.ConversionError, match=r"training wrappers; strip them first \(tfmot.sparsity.keras.strip_pr"):
        convert.to_litert(tfmot.sparsity.keras.prune_low_magnitude(small_model()))
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = small_model()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(convert.ConversionError, match=r"computes in float16 \(mixed precision\); convert its training.float32"):
        convert.to_litert(mixed)
    elsewhere = RuntimeError(f"{paths.CHECKOUT / '.venv/lib/ops.py'}:3:1: error: something else\nmore")
    assert convert._advice(small_model(), elsewhere) == ("RuntimeError: .venv/lib/ops.py:3:1: error: something else. "
                                                         "Measure a model made of the layers LiteRT supports.")
