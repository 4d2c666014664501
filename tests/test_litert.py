import numpy as np
import pytest

from effcourse import measure, models
from effcourse.litert import LiteRTModel
from converting import convert


@pytest.fixture(scope="module")
def keras_model():
    """The reference CNN with non-zero biases, as after training (converters drop all-zero biases)."""
    model = models.reference_cnn()
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.05, layer.bias.shape).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).random((20, 32, 32, 3), dtype=np.float32)

def test_float_model_matches_keras(keras_model, images):
    lite = LiteRTModel(convert(keras_model), num_threads=1)
    np.testing.assert_allclose(lite.predict(images, batch_size=8), keras_model.predict(images, verbose=0), atol=1e-4)
    assert lite.macs() == measure.macs(keras_model)
    assert lite.parameters()[0] == keras_model.count_params()
    assert lite.sparsity() == 0.0
    assert lite.single_image_runner(images[0])().shape == (1, 10)


def test_int8_model_dequantizes_and_shrinks(keras_model, images):
    float_bytes = convert(keras_model)
    int8 = LiteRTModel(convert(keras_model, int8_images=images))
    assert int8.input_details["dtype"] == np.int8
    assert len(int8.content) < 0.35 * len(float_bytes)
    logits = int8.predict(images)
    assert logits.dtype == np.float32
    expected = keras_model.predict(images, verbose=0)
    assert np.abs(logits - expected).max() < 0.1 * np.abs(expected).max() + 0.05
    dense, nonzero = int8.macs()
    assert dense == measure.macs(keras_model)[0]
    assert nonzero <= dense  # weights smaller than half a quantization step become zero


def test_bad_inputs_are_clear_errors(tmp_path, keras_model, images):
    with pytest.raises(FileNotFoundError, match="No LiteRT model"):
        LiteRTModel(tmp_path / "missing.tflite")
    with pytest.raises(ValueError, match="not a model LiteRT can load"):
        LiteRTModel(b"definitely not a flatbuffer")
    lite = LiteRTModel(convert(keras_model))
    with pytest.raises(ValueError, match="expects images of shape"):
        lite.predict(images[:, :16, :16])
