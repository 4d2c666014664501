import numpy as np
import pytest
import tf_keras as keras
from tf_keras import layers

from effcourse import internals, kerasutil, litert, measure, models
from effcourse.litert import LiteRTModel
from tiny import SHAPE, lite_bytes, pruned_copy, small_images


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
    lite = LiteRTModel(lite_bytes(keras_model), num_threads=1)
    np.testing.assert_allclose(lite.predict(images, batch_size=8), keras_model.predict(images, verbose=0), atol=1e-4)
    assert lite.macs() == measure.macs(keras_model)
    assert lite.parameters()[0] == keras_model.count_params()
    assert lite.sparsity() == 0.0
    runner = lite.single_image_runner(images[0])
    first = runner()
    np.testing.assert_allclose(first, lite.predict(images[:1]), atol=1e-5)
    interpreter = runner._interpreter
    runner.renew()  # a fresh interpreter, the same answer
    assert runner._interpreter is not interpreter and runner._interpreter is not lite._single
    np.testing.assert_array_equal(runner(), first)
    builtin = LiteRTModel(lite.content, num_threads=1, xnnpack=False)  # LiteRT's own kernels, no XNNPACK
    np.testing.assert_allclose(builtin.predict(images), lite.predict(images), atol=1e-4)


def test_int8_model_dequantizes_and_shrinks(keras_model, images):
    float_bytes = lite_bytes(keras_model)
    int8 = LiteRTModel(lite_bytes(keras_model, int8_images=images))
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
    lite = LiteRTModel(lite_bytes(keras_model))
    with pytest.raises(ValueError, match="expects images of shape"):
        lite.predict(images[:, :16, :16])


def test_predict_normalises_uint8_pixels_and_refuses_unnormalised_floats(model):
    lite = LiteRTModel(lite_bytes(model), num_threads=1)
    pixels = np.random.default_rng(3).integers(0, 256, (6, *SHAPE), dtype=np.uint8)
    np.testing.assert_allclose(lite.predict(pixels), model.predict(pixels / 255.0, verbose=0), atol=1e-4)
    with pytest.raises(ValueError, match=r"uint8 pixels or floats in \[0, 1\], got float32 values up to .*x / 255"):
        lite.predict(pixels.astype(np.float32))


def test_single_image_runner_checks_the_image_shape(model):
    from effcourse import profiles

    lite = LiteRTModel(lite_bytes(model), num_threads=1)
    images = small_images(2)
    with pytest.raises(ValueError, match=r"one image of shape \(8, 8, 3\) at a time \(not a batch\), got shape "
                                         r"\(1, 8, 8, 3\): pass one of its images, e.g. images\[0\]"):
        lite.single_image_runner(images[:1])
    with pytest.raises(ValueError, match=r"^a runs one image of shape \(8, 8, 3\) at a time .* \(8, 8, 2\)\.$"):
        litert.compare({"a": lite}, images[0, ..., :2], profile=profiles.get("smoke"), threads=1)
    pixels = (images[0] * 255).astype(np.uint8)  # uint8 pixels normalised, as predict does
    np.testing.assert_allclose(lite.single_image_runner(pixels)(), lite.predict(pixels[None]), atol=1e-5)


def test_ops_and_side_by_side_comparison(keras_model, images):
    import tensorflow as tf

    from effcourse import profiles

    sparse = pruned_copy(keras_model, 0.8)
    converter = tf.lite.TFLiteConverter.from_keras_model(sparse)
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    blobs = {"dense": lite_bytes(keras_model), "sparse": converter.convert()}
    dense = LiteRTModel(blobs["dense"])
    assert dense.ops()["CONV_2D"] == 3 and dense.ops()["FULLY_CONNECTED"] == 2 and "DENSIFY" not in dense.ops()
    sparse_format = LiteRTModel(blobs["sparse"])
    assert sparse_format.ops()["DENSIFY"] > 0
    # weights stored in the sparse format are read back in their dense shape
    same_weights = LiteRTModel(lite_bytes(sparse))
    assert [(m.macs, m.nonzero_macs) for m in sparse_format.layer_macs()] == \
        [(m.macs, m.nonzero_macs) for m in same_weights.layer_macs()]
    assert sparse_format.parameters() == same_weights.parameters() and sparse_format.sparsity() > 0.75
    for decoded, stored in zip(sparse_format.kernels().values(), same_weights.kernels().values()):
        np.testing.assert_array_equal(decoded, stored)
    np.testing.assert_allclose(sparse_format.predict(images), same_weights.predict(images), atol=1e-4)
    table = litert.compare({"dense": dense, "sparse": blobs["sparse"]}, images[0],
                           profile=profiles.get("smoke"), threads=1)
    assert list(table.index) == ["dense", "sparse"]
    runs = profiles.get("smoke").latency_runs
    assert table.attrs == {"threads": 1, "rounds": 10, "runs": runs, "reference": "dense"}
    assert table.loc["dense", "x ref"] == 1.0 and (table["latency ms"] > 0).all()
    assert table.loc["dense", "verdict"] == "reference"
    assert table.loc["dense", "KiB"] == round(len(blobs["dense"]) / 1024, 1)
    assert table.loc["dense", "DENSIFY ops"] == 0 and table.loc["sparse", "DENSIFY ops"] > 0
    builtin = litert.compare({"dense": dense}, images[0], profile=profiles.get("smoke"), threads=1, xnnpack=False)
    assert builtin.loc["dense", "latency ms"] > 0


def test_kernels_put_the_output_channel_first_for_depthwise_ops_too():
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(16, 3, name="conv"),
                              layers.DepthwiseConv2D(3, name="depthwise"), layers.GlobalAveragePooling2D(),
                              layers.Dense(4, name="logits")])
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()])
    kernels = LiteRTModel(lite_bytes(model)).kernels()
    assert sorted(w.shape[0] for w in kernels.values()) == [4, 16, 16]  # logits, conv, depthwise: channels first
    assert any(w.shape == (16, 1, 3, 3) for w in kernels.values())


# --------------------------------------------------------------------------- where the bytes go


def test_int8_model_size_breakdown_and_distinct_integers(model):
    images = small_images()
    clustered = kerasutil.clone(model)
    for _, layer in kerasutil.weighted_layers(clustered):  # four shared values per kernel, like clustering leaves
        w = layer.kernel.numpy()
        centroids = np.quantile(w, [0.1, 0.4, 0.6, 0.9])
        layer.kernel.assign(centroids[np.argmin(np.abs(w[..., None] - centroids), axis=-1)].astype(np.float32))
    float_bytes, int8_bytes = lite_bytes(clustered), lite_bytes(clustered, int8_images=images)
    int8 = LiteRTModel(int8_bytes)
    kernels = int8.kernels()
    assert len(kernels) == 2 and all(w.dtype == np.int8 for w in kernels.values())
    assert int8.distinct_per_channel() <= 4
    assert LiteRTModel(lite_bytes(model, int8_images=images)).distinct_per_channel() > 4
    for blob, main in ((float_bytes, "float32 constants"), (int8_bytes, "int8 constants")):
        table = litert.size_breakdown(blob)
        assert table["bytes"].sum() == len(blob)
        assert table.iloc[0]["part"] == main
        assert (table["bytes"] >= 0).all()
    assert litert.size_breakdown(int8_bytes).set_index("part").loc["quantization parameters", "bytes"] > 0
    assert litert.size_breakdown(float_bytes).set_index("part").loc["quantization parameters", "bytes"] == 0


def tensor_names(content: bytes) -> list:
    model = internals.flatbuffer_model(content)
    return [tensor.name for subgraph in model.subgraphs for tensor in subgraph.tensors if tensor.name]


def test_strip_names_drops_the_names_and_keeps_the_model(model):
    images = small_images()
    content = lite_bytes(model, int8_images=images)
    stripped = litert.strip_names(content)
    assert tensor_names(content) and not tensor_names(stripped)
    assert len(stripped) < len(content)
    np.testing.assert_array_equal(LiteRTModel(stripped, num_threads=1).predict(images),
                                  LiteRTModel(content, num_threads=1).predict(images))
    before, after = (litert.size_breakdown(blob).set_index("part")["bytes"] for blob in (content, stripped))
    rest = "graph, names, metadata"
    assert before.drop(rest).equals(after.drop(rest))  # weights and quantization parameters untouched
    assert before[rest] - after[rest] == len(content) - len(stripped)


def test_size_table_compares_like_with_like(model):
    images = small_images()
    float_bytes, int8_bytes = lite_bytes(model), lite_bytes(model, int8_images=images)
    table = litert.size_table({"float32": float_bytes, "int8": int8_bytes})
    assert list(table.index) == ["float32", "int8"]
    assert table.loc["int8", "bytes"] == len(int8_bytes)
    assert table.loc["int8", "names stripped"] == len(litert.strip_names(int8_bytes))
    assert (table["names stripped"] < table["bytes"]).all()
    assert table.loc["float32", "x smaller"] == table.loc["float32", "x smaller, names stripped"] == 1
    assert table.loc["int8", "x smaller"] == pytest.approx(len(float_bytes) / len(int8_bytes))
    assert table.loc["int8", "x smaller, names stripped"] == pytest.approx(
        len(litert.strip_names(float_bytes)) / len(litert.strip_names(int8_bytes)))
    with pytest.raises(ValueError, match="at least one model"):
        litert.size_table({})


@pytest.mark.parametrize("helper", [litert.strip_names, litert.size_breakdown, lambda b: litert.size_table({"zip": b})])
def test_bytes_that_are_not_a_tflite_model_get_a_clear_error(helper):
    with pytest.raises(ValueError, match="not a .tflite model"):
        helper(b"PK\x03\x04 a zip archive, not a model")


