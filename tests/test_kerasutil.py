"""Copying Keras models, walking their layers through the toolkit's wrappers and nested models,
and finding the kernels that pruning, quantization and clustering act on."""
import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tf_keras import layers

from effcourse import kerasutil

SHAPE = (8, 8, 3)


def every_kind(seed: int = 0) -> keras.Model:
    """One layer of each weighted kind, plus a BatchNormalization (weights, but no kernel)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(shape=SHAPE),
        layers.Conv2D(4, 3, name="conv"),
        layers.BatchNormalization(name="bn"),
        layers.DepthwiseConv2D(3, name="dw"),
        layers.SeparableConv2D(5, 3, name="sep"),
        layers.GlobalAveragePooling2D(name="pool"),
        layers.Dense(2, name="dense"),
    ], name="every_kind")


EXPECTED_KERNELS = {"conv": (3, 3, 3, 4), "dw": (3, 3, 4, 1), "sep/depthwise": (3, 3, 4, 1),
                    "sep/pointwise": (1, 1, 4, 5), "dense": (5, 2)}


def qat_friendly(seed: int = 0) -> keras.Model:
    """Layers the toolkit's quantize_model wraps one for one (it rewrites SeparableConv2D)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input(shape=SHAPE),
        layers.Conv2D(4, 3, name="conv"),
        layers.DepthwiseConv2D(3, name="dw"),
        layers.GlobalAveragePooling2D(name="pool"),
        layers.Dense(2, name="dense"),
    ])


@pytest.fixture
def images():
    return np.random.default_rng(1).random((4, *SHAPE), dtype=np.float32)


def test_clone_copies_weights_without_sharing_variables(images):
    model = every_kind()
    copy = kerasutil.clone(model)
    assert copy is not model and copy.input_shape == model.input_shape
    for mine, theirs in zip(model.weights, copy.weights):
        assert mine is not theirs
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    np.testing.assert_allclose(copy.predict(images, verbose=0), model.predict(images, verbose=0), rtol=0, atol=1e-6)
    before = model.get_layer("conv").kernel.numpy().copy()
    copy.get_layer("conv").kernel.assign(np.zeros_like(before))
    np.testing.assert_array_equal(model.get_layer("conv").kernel.numpy(), before)
    assert not np.allclose(copy.predict(images, verbose=0), model.predict(images, verbose=0))


def test_unwrap_and_flat_layers_through_a_pruning_wrapper_and_a_nested_model():
    inner = keras.Sequential([layers.Conv2D(4, 3, name="inner_conv"), layers.ReLU(name="inner_relu")], name="inner")
    inputs = keras.Input(shape=SHAPE)
    x = inner(inputs)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(2, name="dense")(x)
    nested = keras.Model(inputs, outputs)
    leaves = [layer.name for layer in kerasutil.flat_layers(nested)]
    assert "inner" not in leaves
    assert leaves[-4:] == ["inner_conv", "inner_relu", "pool", "dense"]
    assert [inner.name for _, inner in kerasutil.weighted_layers(nested)] == ["inner_conv", "dense"]

    pruned = tfmot.sparsity.keras.prune_low_magnitude(every_kind())
    found = list(kerasutil.flat_layers(pruned))
    wrapped = [layer for layer in found if layer.name.startswith("prune_low_magnitude_")]
    assert wrapped, "prune_low_magnitude wraps the layers"
    assert all(kerasutil.unwrap(layer) is not layer for layer in wrapped)  # wrappers as found
    assert [kerasutil.unwrap(layer).name for layer in found] == ["conv", "bn", "dw", "sep", "pool", "dense"]
    plain = layers.Dense(3)
    assert kerasutil.unwrap(plain) is plain


def test_weighted_layers_finds_each_conv_kind_and_dense_not_batch_norm():
    model = every_kind()
    pairs = kerasutil.weighted_layers(model)
    assert [(outer.name, type(inner).__name__) for outer, inner in pairs] == [
        ("conv", "Conv2D"), ("dw", "DepthwiseConv2D"), ("sep", "SeparableConv2D"), ("dense", "Dense")]
    assert all(outer is inner for outer, inner in pairs)  # no wrappers here


def test_weighted_layers_look_through_the_pruning_wrapper():
    pruned = tfmot.sparsity.keras.prune_low_magnitude(every_kind())
    pairs = kerasutil.weighted_layers(pruned)
    assert [inner.name for _, inner in pairs] == ["conv", "dw", "sep", "dense"]
    assert all(outer is not inner and outer.layer is inner for outer, inner in pairs)


def test_kernel_items_names_and_shapes():
    model = every_kind()
    items = kerasutil.kernel_items(model)
    assert [(name, tuple(variable.shape)) for name, variable in items] == list(EXPECTED_KERNELS.items())
    sep = model.get_layer("sep")
    assert dict(items)["sep/depthwise"] is sep.depthwise_kernel and dict(items)["sep/pointwise"] is sep.pointwise_kernel
    assert dict(items)["dw"] is model.get_layer("dw").depthwise_kernel
    found = kerasutil.kernels(model)
    assert list(found) == list(EXPECTED_KERNELS)
    np.testing.assert_array_equal(found["conv"], model.get_layer("conv").kernel.numpy())
    assert all(isinstance(v, np.ndarray) for v in found.values())


def test_kernels_of_a_quantization_aware_model_are_the_originals():
    model = qat_friendly()
    qat = tfmot.quantization.keras.quantize_model(kerasutil.clone(model))
    assert any(type(layer).__name__.startswith("QuantizeWrapper") for layer in qat.layers)
    original, wrapped = kerasutil.kernels(model), kerasutil.kernels(qat)
    assert list(wrapped) == list(original) == ["conv", "dw", "dense"]
    for name in original:
        np.testing.assert_array_equal(wrapped[name], original[name])
    # The names point at the wrapper's trainable variables: writing them changes what QAT trains.
    variable = dict(kerasutil.kernel_items(qat))["conv"]
    variable.assign(np.zeros(variable.shape, np.float32))
    assert not kerasutil.kernels(qat)["conv"].any()


def test_kernel_sparsity_counts_zeros_in_kernels_only():
    model = every_kind()
    total = sum(int(np.prod(shape)) for shape in EXPECTED_KERNELS.values())
    assert kerasutil.kernel_sparsity(model) == 0.0
    dense = model.get_layer("dense")
    dense.bias.assign(np.zeros(dense.bias.shape, np.float32))  # biases and BN weights are not kernels
    bn = model.get_layer("bn")
    bn.gamma.assign(np.zeros(bn.gamma.shape, np.float32))
    assert kerasutil.kernel_sparsity(model) == 0.0
    conv = model.get_layer("conv").kernel
    values = conv.numpy().ravel()
    values[: values.size // 2] = 0.0
    conv.assign(values.reshape(conv.shape))
    assert kerasutil.kernel_sparsity(model) == pytest.approx((values.size // 2) / total)
    dw = model.get_layer("dw").depthwise_kernel
    dw.assign(np.zeros(dw.shape, np.float32))
    assert kerasutil.kernel_sparsity(model) == pytest.approx((values.size // 2 + int(np.prod(dw.shape))) / total)


def test_kernel_sparsity_of_a_model_without_kernels_is_zero():
    model = keras.Sequential([keras.Input(shape=SHAPE), layers.BatchNormalization(), layers.ReLU()])
    assert kerasutil.kernel_sparsity(model) == 0.0


def test_unwrap_looks_through_the_toolkit_wrappers_only():
    """Keras's own wrappers are layers in their own right: Bidirectional holds an unbuilt template."""
    recurrent = keras.Sequential([
        keras.Input((5, 3)),
        layers.Bidirectional(layers.LSTM(4, return_sequences=True), name="bi"),
        layers.TimeDistributed(layers.Dense(2), name="td"),
    ])
    assert [kerasutil.unwrap(layer) for layer in recurrent.layers] == recurrent.layers
    assert kerasutil.weighted_layers(recurrent) == []
    clustered = tfmot.clustering.keras.cluster_weights(kerasutil.clone(qat_friendly()), number_of_clusters=4)
    qat = tfmot.quantization.keras.quantize_model(kerasutil.clone(qat_friendly()))
    for wrapped in (clustered, qat):
        assert [inner.name for _, inner in kerasutil.weighted_layers(wrapped)] == ["conv", "dw", "dense"]
