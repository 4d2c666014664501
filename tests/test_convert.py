"""Keras to LiteRT: the converters lesson 03 teaches, as the package builds them for every other lesson."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from effcourse import convert
from effcourse.data import ImageData
from effcourse.litert import LiteRTModel
from tiny import SHAPE


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

    odd = keras.Sequential([keras.Input(SHAPE), Unconvertible()])
    with pytest.raises(convert.ConversionError, match="could not be converted"):
        convert.to_litert(odd)
