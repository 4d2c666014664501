"""MACs, parameters and sizes against values computed by hand."""
import gzip

import numpy as np
import pytest
import tf_keras as keras
from tf_keras import layers

from effcourse import measure, models

# Reference CNN on 32x32x3, by hand:
# conv 3x3x3->32 on 30x30 outputs, conv 3x3x32->64 on 13x13, conv 3x3x64->64 on 4x4, dense 1024->64, dense 64->10
REFERENCE_MACS = 30 * 30 * 32 * 27 + 13 * 13 * 64 * 288 + 4 * 4 * 64 * 576 + 1024 * 64 + 64 * 10


def test_reference_cnn_macs_and_params():
    model = models.reference_cnn()
    dense, nonzero = measure.macs(model)
    assert dense == REFERENCE_MACS == 4_548_608
    assert nonzero <= dense
    params, _ = measure.parameters(model)
    assert params == model.count_params() == 122_570


def test_depthwise_strided_and_3d_dense_macs():
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        layers.Conv2D(8, 3, strides=2, padding="same"),  # 8x8 outputs x 27 x 8
        layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),  # 8x8 outputs x 9 x 8 channels x 2
        layers.Reshape((64, 16)),
        layers.Dense(4),  # 64 rows x 16 x 4
    ])
    per_layer = {m.kind: m.macs for m in measure.layer_macs(model)}
    assert per_layer == {"Conv2D": 64 * 27 * 8, "DepthwiseConv2D": 64 * 9 * 16, "Dense": 64 * 16 * 4}


def test_separable_conv_macs():
    model = keras.Sequential([keras.Input((8, 8, 4)), layers.SeparableConv2D(6, 3, padding="same")])
    assert measure.macs(model)[0] == 64 * (9 * 4 + 4 * 6)


def test_nonzero_macs_count_only_nonzero_weights():
    model = models.reference_cnn()
    _, nonzero_before = measure.parameters(model)
    first = model.layers[0]
    kernel = first.kernel.numpy()
    kernel[..., :16] = 0  # silence half of the first convolution's filters
    first.kernel.assign(kernel)
    dense, nonzero = measure.macs(model)
    assert dense - nonzero == 30 * 30 * 16 * 27
    assert nonzero_before - measure.parameters(model)[1] == 16 * 27
    kernels = sum(w.numpy().size for w in model.weights if "kernel" in w.name)
    assert measure.sparsity(model) == pytest.approx(16 * 27 / kernels)


def test_batch_norm_costs_no_macs_but_counts_parameters():
    model = models.improved_cnn()
    per_layer = measure.layer_macs(model)
    assert [m.kind for m in per_layer] == ["Conv2D"] * 6 + ["Dense"]
    assert measure.parameters(model)[0] == model.count_params()


def test_unsupported_layer_is_a_clear_error():
    model = keras.Sequential([keras.Input((10, 3)), layers.Conv1D(4, 3)])
    with pytest.raises(measure.MeasureError, match="Conv1D"):
        measure.macs(model)


def test_a_transposed_convolution_is_not_counted_as_a_convolution():
    """Conv2DTranspose subclasses Conv2D, but its MACs follow its input positions, not its output's."""
    model = keras.Sequential([keras.Input((8, 8, 4)), layers.Conv2DTranspose(8, 3, strides=2, padding="same")])
    with pytest.raises(measure.MeasureError, match="Conv2DTranspose"):
        measure.macs(model)


def test_unbuilt_model_is_a_clear_error():
    with pytest.raises(measure.MeasureError, match="not built"):
        measure.macs(keras.Sequential([layers.Dense(3)]))


def test_keras_bytes_and_sizes():
    model = models.reference_cnn()
    blob = measure.keras_bytes(model)
    size, gzipped = measure.sizes(blob)
    assert size == len(blob)
    assert 4 * model.count_params() < size < 4 * model.count_params() + 64 * 1024
    assert gzipped == len(gzip.compress(blob, compresslevel=9, mtime=0))


def test_sparse_model_gzips_smaller():
    model = models.reference_cnn()
    dense_gz = measure.sizes(measure.keras_bytes(model))[1]
    for layer in model.layers:
        if getattr(layer, "kernel", None) is not None:
            k = layer.kernel.numpy()
            k[np.abs(k) < np.quantile(np.abs(k), 0.8)] = 0
            layer.kernel.assign(k)
    assert measure.sizes(measure.keras_bytes(model))[1] < 0.6 * dense_gz


def test_human_bytes():
    assert measure.human_bytes(512) == "512 B"
    assert measure.human_bytes(2048) == "2.00 KiB"
    assert measure.human_bytes(3 * 2**20) == "3.00 MiB"


def test_accuracy_and_agreement_for_keras_litert_and_logits():
    import tensorflow as tf

    from effcourse.litert import LiteRTModel

    model = models.reference_cnn()
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    logits = model.predict(images.astype(np.float32) / 255, verbose=0)
    labels = measure.predicted_labels(model, images)
    np.testing.assert_array_equal(labels, np.argmax(logits, axis=-1))
    np.testing.assert_array_equal(measure.predicted_labels(logits, images), labels)
    assert measure.accuracy(model, images, labels) == 1.0
    assert measure.accuracy(model, images, (labels + 1) % 10) == 0.0
    assert measure.accuracy(logits, images, labels) == 1.0
    lite = LiteRTModel(tf.lite.TFLiteConverter.from_keras_model(model).convert(), num_threads=1)
    assert measure.agreement(lite, model, images) >= 0.95
    assert measure.agreement(lite, logits, images.astype(np.float32) / 255) >= 0.95
    assert measure.agreement(model, -logits, images) < 0.5
    with pytest.raises(ValueError, match="rows of logits for 40 images"):
        measure.agreement(model, logits[:10], images)
