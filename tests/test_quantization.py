import numpy as np
import pytest
import tf_keras as keras

from effcourse import internals, kerasutil
from effcourse import quantization as quant


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


def test_bit_widths_beyond_float32_integers_are_refused():
    """33 bits overflowed the int32 integers: every weight came back as the same wrong value."""
    assert quant.levels(24) == 2**23 - 1
    for bits in (25, 33, None):
        with pytest.raises(ValueError, match="at most 24"):
            quant.fake_quantize(np.array([1.0, -0.5, 0.12]), bits)


def test_weights_that_are_not_numbers_are_refused():
    """A NaN weight made the per-tensor scale 1/levels and came back as -2**31 steps."""
    for granularity in quant.GRANULARITIES:
        for bad in (np.nan, np.inf):
            with pytest.raises(ValueError, match="NaN or infinite"):
                quant.fake_quantize(np.array([[1.0, bad], [-0.5, 0.2]]), 8, granularity)


def test_channel_axes_must_be_axes_of_the_kernel():
    w = channels_of_different_sizes()
    for channel_axes in (0, 5, -1, 1.5):  # 0 and 5 gave every weight its own scale: no quantization at all
        with pytest.raises(ValueError, match="channel_axes must be an integer from 1 to the weights' 4 axes"):
            quant.fake_quantize(w, 4, "per-channel", channel_axes)
    np.testing.assert_allclose(quant.fake_quantize(w, 2, "per-channel", 4), w, rtol=1e-6)  # all 4: one weight a channel


def test_empty_tensors_quantize_per_channel_too():
    for shape in ((0, 4), (3, 0)):
        for granularity in quant.GRANULARITIES:
            assert quant.fake_quantize(np.zeros(shape), 8, granularity).shape == shape


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


# --------------------------------------------------------------------------- Keras models


def test_kernels_and_clone(model, images):
    found = kerasutil.kernels(model)
    assert list(found) == [model.layers[0].name, model.layers[-1].name]
    assert found[model.layers[0].name].shape == (3, 3, 3, 6)
    clone = kerasutil.clone(model)
    np.testing.assert_allclose(clone.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
    clone.layers[0].kernel.assign(np.zeros((3, 3, 3, 6), np.float32))
    assert np.any(model.layers[0].kernel.numpy() != 0), "the copy shares no variables with the original"


def test_kernels_of_a_quantization_aware_model(model):
    import tensorflow_model_optimization as tfmot

    qat = tfmot.quantization.keras.quantize_model(kerasutil.clone(model))
    found = kerasutil.kernels(qat)
    assert len(found) == 2
    np.testing.assert_allclose(next(iter(found.values())), model.layers[0].kernel.numpy())


def test_bit_width_sweep_takes_uint8_pixels_and_refuses_unnormalised_floats(model):
    pixels = np.random.default_rng(1).integers(0, 256, size=(32, 8, 8, 3), dtype=np.uint8)
    labels = np.argmax(model.predict(pixels / np.float32(255), verbose=0), axis=-1)
    table = quant.bit_width_sweep(model, pixels, labels, bits=(8,))
    assert table.iloc[0]["accuracy"] == 1.0, "uint8 pixels are normalised as the model was trained"
    with pytest.raises(ValueError, match="bit_width_sweep takes uint8 pixels or floats in \\[0, 1\\].*x / 255"):
        quant.bit_width_sweep(model, pixels.astype(np.float32), labels, bits=(8,))


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


def test_a_depthwise_kernel_is_quantized_per_channel_over_channels_and_multiplier():
    w = channels_of_different_sizes().transpose(0, 1, 3, 2)[..., :1]  # (3, 3, 5, 1): 5 channels, multiplier 1
    assert quant.scales(w, 8, "per-channel", channel_axes=2).shape == (5, 1)
    assert len(np.unique(quant.scales(w, 8, "per-channel"))) == 1, "the last axis alone is the multiplier"
    per_tensor = np.abs(w - quant.fake_quantize(w, 4))[:, :, 0].mean()
    assert np.abs(w - quant.fake_quantize(w, 4, "per-channel", channel_axes=2))[:, :, 0].mean() < per_tensor / 10


def test_the_sweep_quantizes_a_depthwise_layer_per_channel(images):
    keras.utils.set_random_seed(0)
    layer = keras.layers.DepthwiseConv2D(3, padding="same")
    model = keras.Sequential([keras.Input(images.shape[1:]), layer, keras.layers.GlobalAveragePooling2D()])  # 3 logits
    kernel = layer.depthwise_kernel.numpy()
    layer.depthwise_kernel.assign(kernel * np.array([0.001, 0.1, 1.0])[:, None])  # channels two orders apart
    labels = np.argmax(model.predict(images, verbose=0), axis=-1)
    table = quant.bit_width_sweep(model, images, labels, bits=(4,)).set_index("granularity")
    assert table.loc["per-tensor", "distinct values"] <= 15  # 2**4 - 1 levels for the whole kernel
    assert table.loc["per-channel", "distinct values"] > 15, "each of the 3 channels has levels of its own"


# --------------------------------------------------------------------------- cluster preservation


def test_cluster_preserving_qat_keeps_the_clusters_per_tensor(model, images):
    import tensorflow_model_optimization as tfmot

    clustering = tfmot.clustering.keras
    clustered = clustering.cluster_weights(kerasutil.clone(model), number_of_clusters=4,
                                           cluster_centroids_init=clustering.CentroidInitialization.LINEAR)
    clustered = clustering.strip_clustering(clustered)
    assert max(quant.distinct_values(clustered).values()) <= 4
    quantize = tfmot.quantization.keras
    with internals.per_tensor_cluster_preservation():
        cqat = quantize.quantize_apply(
            quantize.quantize_annotate_model(clustered),
            tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False))
    cqat.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cqat.fit(images, np.zeros(len(images), int), epochs=1, batch_size=32, verbose=0)
    assert max(quant.distinct_values(cqat).values()) <= 4


# --------------------------------------------------------------------------- plots


def test_sweep_plots_need_a_sweep_table():
    import pandas as pd

    table = pd.DataFrame({"bits": [32, 8], "granularity": ["float32", "per-tensor"], "accuracy": [0.8, 0.79]})
    with pytest.raises(ValueError, match="bit_width_sweep table is needed; this one has no column granularity"):
        quant.plot_bit_sweep(table.drop(columns="granularity"))
    with pytest.raises(ValueError, match="Unknown granularity 'tensor'"):
        quant.quantized_rows(table.replace({"per-tensor": "tensor"}))
    with pytest.raises(ValueError, match="no quantized rows"):
        quant.plot_bit_sweep(table.iloc[:1])
    assert quant.quantized_rows(table)["bits"].tolist() == [8]


def test_plots(model, images):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = np.argmax(model.predict(images, verbose=0), axis=-1)
    table = quant.bit_width_sweep(model, images, labels, bits=(8, 4))
    fig2 = quant.plot_bit_sweep(table)
    assert len(fig2.axes[0].lines) == 3  # two granularities and the float32 line
    assert len(quant.plot_bit_sweep(table, images=len(images)).axes[0].collections) == 2  # a band per line
    plt.close("all")
