import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from effcourse import quantization as quant
from effcourse.data import ImageData
from effcourse.litert import LiteRTModel
from converting import convert, converter_for

SHAPE = (8, 8, 3)


def small_model(seed: int = 0) -> keras.Model:
    """Conv-BN-ReLU, global pooling and logits, with trained-looking (non-default) weights."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=SHAPE),
        layers.Conv2D(6, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(4),
    ])
    rng = np.random.default_rng(seed)
    bn = model.layers[1]
    bn.set_weights([rng.uniform(0.5, 1.5, 6), rng.normal(0, 0.1, 6), rng.normal(0, 0.1, 6), rng.uniform(0.5, 1.5, 6)])
    model.layers[-1].bias.assign(rng.normal(0, 0.1, 4).astype(np.float32))
    return model


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).random((64, *SHAPE), dtype=np.float32)

def channels_of_different_sizes(seed=0) -> np.ndarray:
    """A conv-like kernel (3, 3, 4, 5) whose output channels span two orders of magnitude."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(3, 3, 4, 5)) * np.array([0.01, 0.05, 0.1, 0.5, 1.0])).astype(np.float32)


# --------------------------------------------------------------------------- fake quantization


def test_levels_and_bad_arguments():
    assert [quant.levels(b) for b in (8, 4, 3, 2)] == [127, 7, 3, 1]
    with pytest.raises(ValueError, match="at least 2"):
        quant.levels(1)
    with pytest.raises(ValueError, match="at least 2"):
        quant.fake_quantize(np.ones(3), 2.5)
    with pytest.raises(ValueError, match="granularity"):
        quant.fake_quantize(np.ones(3), 8, "per-row")


def test_scales_per_tensor_and_per_channel():
    w = channels_of_different_sizes()
    assert quant.scales(w, 8).shape == ()
    per_channel = quant.scales(w, 8, "per-channel")
    assert per_channel.shape == (5,)
    np.testing.assert_allclose(per_channel, np.abs(w).reshape(-1, 5).max(axis=0) / 127, rtol=1e-6)
    np.testing.assert_allclose(quant.scales(w, 8), np.abs(w).max() / 127, rtol=1e-6)


@pytest.mark.parametrize("granularity", quant.GRANULARITIES)
@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_error_is_at_most_half_a_step(bits, granularity):
    w = channels_of_different_sizes(bits)
    q = quant.fake_quantize(w, bits, granularity)
    scale = quant.scales(w, bits, granularity)
    assert q.dtype == np.float32 and q.shape == w.shape
    assert np.all(np.abs(w - q) <= scale / 2 * (1 + 1e-5))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_distinct_values_at_most_two_to_the_bits_minus_one(bits):
    w = np.random.default_rng(bits).normal(size=(3, 3, 16, 32)).astype(np.float32)
    assert len(np.unique(quant.fake_quantize(w, bits))) <= 2**bits - 1
    per_channel = quant.fake_quantize(w, bits, "per-channel").reshape(-1, 32)
    assert max(len(np.unique(per_channel[:, c])) for c in range(32)) <= 2**bits - 1
    integers, _ = quant.quantize_integers(w, bits)
    assert integers.min() >= -quant.levels(bits) and integers.max() <= quant.levels(bits)


def test_two_bits_are_minus_zero_plus_one_step():
    w = np.array([-1.0, -0.6, -0.2, 0.0, 0.3, 0.8, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(quant.fake_quantize(w, 2), [-1, -1, 0, 0, 0, 1, 1])


def test_symmetric_zero_preserving_and_idempotent():
    w = channels_of_different_sizes()
    for granularity in quant.GRANULARITIES:
        q = quant.fake_quantize(w, 4, granularity)
        np.testing.assert_array_equal(quant.fake_quantize(-w, 4, granularity), -q)
        np.testing.assert_allclose(quant.fake_quantize(q, 4, granularity), q, atol=1e-7)
    w[0, 0, 0, :] = 0.0
    assert np.all(quant.fake_quantize(w, 3, "per-channel")[0, 0, 0, :] == 0)


def test_all_zero_tensor_and_channel_stay_zero():
    assert np.all(quant.fake_quantize(np.zeros((3, 3, 2, 4), np.float32), 8) == 0)
    w = channels_of_different_sizes()
    w[..., 2] = 0
    q = quant.fake_quantize(w, 8, "per-channel")
    assert np.all(np.isfinite(q)) and np.all(q[..., 2] == 0)


def test_per_channel_error_not_above_per_tensor():
    w = channels_of_different_sizes()
    for bits in (2, 3, 4, 8):
        per_tensor = np.abs(w - quant.fake_quantize(w, bits))
        per_channel = np.abs(w - quant.fake_quantize(w, bits, "per-channel"))
        assert per_channel.mean() <= per_tensor.mean()
        assert per_channel.max() <= quant.scales(w, bits).max() / 2 * (1 + 1e-5)


def test_error_table():
    w = channels_of_different_sizes()
    table = quant.error_table(w, bits=(8, 2))
    assert list(table["bits"]) == [8, 8, 2, 2]
    assert (table["largest |error|"] <= table["bound (scale / 2)"] * (1 + 1e-4)).all()  # float32 rounding of w / scale, as in lesson 03
    assert table.loc[(table["bits"] == 2) & (table["granularity"] == "per-tensor"), "distinct values"].item() <= 3


# --------------------------------------------------------------------------- Keras models


def test_kernels_and_copy_model(model, images):
    found = quant.kernels(model)
    assert list(found) == [model.layers[0].name, model.layers[-1].name]
    assert found[model.layers[0].name].shape == (3, 3, 3, 6)
    clone = quant.copy_model(model)
    np.testing.assert_allclose(clone.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    clone.layers[0].kernel.assign(np.zeros((3, 3, 3, 6), np.float32))
    assert np.any(model.layers[0].kernel.numpy() != 0), "the copy shares no variables with the original"


def test_eight_bit_fake_quantized_model_predicts_like_the_original(model, images):
    before = model.layers[0].kernel.numpy().copy()
    q8 = quant.fake_quantize_model(model, 8, "per-channel")
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), before)  # original untouched
    assert all(n <= 255 for n in quant.distinct_values(quant.fake_quantize_model(model, 8)).values())
    expected, got = model.predict(images, verbose=0), q8.predict(images, verbose=0)
    assert np.abs(expected - got).max() < 0.02 * np.abs(expected).max() + 1e-3
    assert np.mean(np.argmax(expected, -1) == np.argmax(got, -1)) >= 0.95
    two = quant.fake_quantize_model(model, 2)
    assert max(quant.distinct_values(two).values()) <= 3


def test_kernels_of_a_quantization_aware_model(model):
    import tensorflow_model_optimization as tfmot

    qat = tfmot.quantization.keras.quantize_model(quant.copy_model(model))
    found = quant.kernels(qat)
    assert len(found) == 2
    np.testing.assert_allclose(next(iter(found.values())), model.layers[0].kernel.numpy())


def test_bit_width_sweep_table(model, images):
    labels = np.argmax(model.predict(images, verbose=0), axis=-1)  # the float model is 100% right
    before = model.get_weights()
    table = quant.bit_width_sweep(model, images, labels, bits=(8, 2))
    assert list(table.columns) == ["bits", "granularity", "accuracy", "relative error", "distinct values"]
    assert len(table) == 1 + 2 * 2
    assert table.iloc[0]["bits"] == 32 and table.iloc[0]["accuracy"] == 1.0
    eight = table[table["bits"] == 8]
    assert (eight["accuracy"] >= 0.95).all() and (eight["relative error"] < 0.01).all()
    two = table[table["bits"] == 2]
    assert (two["relative error"] > eight["relative error"].max()).all()
    assert two[two["granularity"] == "per-tensor"]["distinct values"].item() <= 3
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- converting


def tiny_data(n=30) -> ImageData:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8)
    y = rng.integers(0, 4, n)
    return ImageData(x, y, x[:5], y[:5], x[:10], y[:10], ("a", "b", "c", "d"), "test images", True)


def test_representative_dataset():
    generate = quant.representative_dataset(tiny_data(), n=12)
    items = list(generate())
    assert len(items) == 12 and len(list(generate())) == 12  # callable again, as the converter does
    assert all(len(item) == 1 and item[0].shape == (1, *SHAPE) and item[0].dtype == np.float32 for item in items)
    assert all(0.0 <= item[0].min() and item[0].max() <= 1.0 for item in items)
    assert len(list(quant.representative_dataset(tiny_data(), n=500)())) == 30


def test_inference_converter_gives_what_from_keras_model_gives(model, images):
    lite = LiteRTModel(quant.inference_converter(model).convert(), num_threads=1)
    reference = LiteRTModel(convert(model), num_threads=1)
    np.testing.assert_allclose(lite.predict(images), reference.predict(images), atol=1e-5)


def test_convert_keeps_the_quantizers_native_log_line_out_of_stderr(model, images, capfd):
    converter_for(model, int8_images=images).convert()
    assert "fully_quantize" in capfd.readouterr().err  # what the plain call writes from C++
    int8 = LiteRTModel(quant.convert(converter_for(model, int8_images=images)), num_threads=1)
    assert capfd.readouterr().err == ""
    assert int8.input_details["dtype"] == np.int8


def test_int8_model_size_breakdown_and_distinct_integers(model, images):
    clustered = quant.copy_model(model)
    for layer in quant.kernel_layers(clustered):  # four shared values per kernel, like clustering leaves
        w = layer.kernel.numpy()
        centroids = np.quantile(w, [0.1, 0.4, 0.6, 0.9])
        layer.kernel.assign(centroids[np.argmin(np.abs(w[..., None] - centroids), axis=-1)].astype(np.float32))
    float_bytes, int8_bytes = convert(clustered), convert(clustered, int8_images=images)
    int8 = LiteRTModel(int8_bytes)
    kernels = quant.litert_kernels(int8)
    assert len(kernels) == 2 and all(w.dtype == np.int8 for w in kernels.values())
    assert quant.distinct_per_channel(int8) <= 4
    assert quant.distinct_per_channel(LiteRTModel(convert(model, int8_images=images))) > 4
    for blob, main in ((float_bytes, "float32 constants"), (int8_bytes, "int8 constants")):
        table = quant.size_breakdown(blob)
        assert table["bytes"].sum() == len(blob)
        assert table.iloc[0]["part"] == main
        assert (table["bytes"] >= 0).all()
    assert quant.size_breakdown(int8_bytes).set_index("part").loc["quantization parameters", "bytes"] > 0
    assert quant.size_breakdown(float_bytes).set_index("part").loc["quantization parameters", "bytes"] == 0


def tensor_names(content: bytes) -> list:
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    return [tensor.name for subgraph in model.subgraphs for tensor in subgraph.tensors if tensor.name]


def test_strip_names_drops_the_names_and_keeps_the_model(model, images):
    content = convert(model, int8_images=images)
    stripped = quant.strip_names(content)
    assert tensor_names(content) and not tensor_names(stripped)
    assert len(stripped) < len(content)
    np.testing.assert_array_equal(LiteRTModel(stripped, num_threads=1).predict(images),
                                  LiteRTModel(content, num_threads=1).predict(images))
    before, after = (quant.size_breakdown(blob).set_index("part")["bytes"] for blob in (content, stripped))
    rest = "graph, names, metadata"
    assert before.drop(rest).equals(after.drop(rest))  # weights and quantization parameters untouched
    assert before[rest] - after[rest] == len(content) - len(stripped)


def test_size_table_compares_like_with_like(model, images):
    float_bytes, int8_bytes = convert(model), convert(model, int8_images=images)
    table = quant.size_table({"float32": float_bytes, "int8": int8_bytes})
    assert list(table.index) == ["float32", "int8"]
    assert table.loc["int8", "bytes"] == len(int8_bytes)
    assert table.loc["int8", "names stripped"] == len(quant.strip_names(int8_bytes))
    assert (table["names stripped"] < table["bytes"]).all()
    assert table.loc["float32", "x smaller"] == table.loc["float32", "x smaller, names stripped"] == 1
    assert table.loc["int8", "x smaller"] == pytest.approx(len(float_bytes) / len(int8_bytes))
    assert table.loc["int8", "x smaller, names stripped"] == pytest.approx(
        len(quant.strip_names(float_bytes)) / len(quant.strip_names(int8_bytes)))
    with pytest.raises(ValueError, match="at least one model"):
        quant.size_table({})


@pytest.mark.parametrize("helper", [quant.strip_names, quant.size_breakdown, lambda b: quant.size_table({"zip": b})])
def test_bytes_that_are_not_a_tflite_model_get_a_clear_error(helper):
    with pytest.raises(ValueError, match="not a .tflite model"):
        helper(b"PK\x03\x04 a zip archive, not a model")


# --------------------------------------------------------------------------- cluster preservation


def test_per_tensor_cluster_preservation_patches_and_restores():
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        cluster_preserve_quantize_registry as registry,
    )

    original = registry.get_centroids
    conv = layers.Conv2D(3, 3)
    conv.build((None, 5, 5, 2))
    w = tf.constant(np.tile(np.array([-1.0, 0.5, 2.0], np.float32), 18).reshape(3, 3, 2, 3).transpose(0, 1, 3, 2).copy())
    with quant.per_tensor_cluster_preservation():
        assert registry.get_centroids is not original
        centroids, count, index, per_channel = registry.get_centroids(type("W", (), {"layer": conv})(), w, "channels_last")
        assert not per_channel and int(count) == 3
        assert index.shape == w.shape
    assert registry.get_centroids is original
    with pytest.raises(RuntimeError):
        with quant.per_tensor_cluster_preservation():
            raise RuntimeError("boom")
    assert registry.get_centroids is original


def test_cluster_preserving_qat_keeps_the_clusters_per_tensor(model, images):
    import tensorflow_model_optimization as tfmot

    clustering = tfmot.clustering.keras
    clustered = clustering.cluster_weights(quant.copy_model(model), number_of_clusters=4,
                                           cluster_centroids_init=clustering.CentroidInitialization.LINEAR)
    clustered = clustering.strip_clustering(clustered)
    assert max(quant.distinct_values(clustered).values()) <= 4
    quantize = tfmot.quantization.keras
    with quant.per_tensor_cluster_preservation():
        cqat = quantize.quantize_apply(
            quantize.quantize_annotate_model(clustered),
            tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False))
    cqat.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cqat.fit(images, np.zeros(len(images), int), epochs=1, batch_size=32, verbose=0)
    assert max(quant.distinct_values(cqat).values()) <= 4


# --------------------------------------------------------------------------- plots


def test_plots(model, images):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    w = channels_of_different_sizes()
    fig = quant.plot_weight_histograms({"float32": w, "2 bits": quant.fake_quantize(w, 2)}, title="t")
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "t"
    labels = np.argmax(model.predict(images, verbose=0), axis=-1)
    table = quant.bit_width_sweep(model, images, labels, bits=(8, 4))
    fig2 = quant.plot_bit_sweep(table)
    assert len(fig2.axes[0].lines) == 3  # two granularities and the float32 line
    plt.close("all")
