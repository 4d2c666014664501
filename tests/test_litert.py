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
    builtin = LiteRTModel(lite.content, num_threads=1, xnnpack=False)  # LiteRT's own kernels, no XNNPACK
    np.testing.assert_allclose(builtin.predict(images), lite.predict(images), atol=1e-4)


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


def test_ops_and_side_by_side_comparison(keras_model, images):
    import tensorflow as tf

    from effcourse import litert, profiles, pruning
    from effcourse.quantization import litert_kernels

    sparse = pruning.magnitude_prune(keras_model, 0.8)
    converter = tf.lite.TFLiteConverter.from_keras_model(sparse)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    blobs = {"dense": convert(keras_model), "sparse": converter.convert()}
    dense = LiteRTModel(blobs["dense"])
    assert dense.ops()["CONV_2D"] == 3 and dense.ops()["FULLY_CONNECTED"] == 2 and "DENSIFY" not in dense.ops()
    sparse_format = LiteRTModel(blobs["sparse"])
    assert sparse_format.ops()["DENSIFY"] > 0
    # weights stored in the sparse format are read back in their dense shape
    same_weights = LiteRTModel(convert(sparse))
    assert [(m.macs, m.nonzero_macs) for m in sparse_format.layer_macs()] == \
        [(m.macs, m.nonzero_macs) for m in same_weights.layer_macs()]
    assert sparse_format.parameters() == same_weights.parameters() and sparse_format.sparsity() > 0.75
    for decoded, stored in zip(litert_kernels(sparse_format).values(), litert_kernels(same_weights).values()):
        np.testing.assert_array_equal(decoded, stored)
    np.testing.assert_allclose(sparse_format.predict(images), same_weights.predict(images), atol=1e-4)
    table = litert.compare({"dense": dense, "sparse": blobs["sparse"]}, images[0],
                           profile=profiles.get("smoke"), rounds=2, threads=1)
    assert list(table.index) == ["dense", "sparse"]
    assert table.attrs == {"threads": 1, "rounds": 2, "runs": profiles.get("smoke").latency_runs}
    assert table.loc["dense", "vs first"] == 1.0 and (table["latency ms"] > 0).all()
    assert table.loc["dense", "KiB"] == round(len(blobs["dense"]) / 1024, 1)
    assert table.loc["dense", "DENSIFY ops"] == 0 and table.loc["sparse", "DENSIFY ops"] > 0
    builtin = litert.compare({"dense": dense}, images[0], profile=profiles.get("smoke"), rounds=1, threads=1, xnnpack=False)
    assert builtin.loc["dense", "latency ms"] > 0
