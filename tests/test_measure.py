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


def test_labels_are_one_per_image_the_keras_column_too():
    labels = np.arange(40) % 10
    logits = 5.0 * np.eye(10)[labels]  # perfect: the logits path counts the images, never runs them
    images = np.zeros((40, 32, 32, 3), np.uint8)
    assert measure.accuracy(logits, images, labels[:, None]) == 1.0  # (N, 1), as cifar10.load_data gives them
    np.testing.assert_array_equal(measure.correct(logits, images, labels[:, None]), np.ones(40, bool))
    with pytest.raises(ValueError, match="1 labels for 40 images"):
        measure.accuracy(logits, images, labels[:1])
    with pytest.raises(ValueError, match="39 labels for 40 images"):
        measure.correct(logits, images, labels[:39])
    with pytest.raises(ValueError, match=r"shape \(40, 10\).*np.argmax"):
        measure.accuracy(logits, images, np.eye(10)[labels])  # one-hot


def test_float_images_of_unnormalised_pixels_are_refused():
    model = models.reference_cnn()
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    images[0, 0, 0, 0] = 255
    with pytest.raises(ValueError, match=r"uint8 pixels or floats in \[0, 1\], got float32 values up to 255.*x / 255"):
        measure.predicted_labels(model, images.astype(np.float32))
    labels = measure.predicted_labels(model, images)
    assert measure.accuracy(model, images.astype(np.float32) / 255, labels) == 1.0
    with pytest.raises(ValueError, match="No images to classify: a split of the data may be empty"):
        measure.accuracy(model, images[:0], labels[:0])  # numpy's "need at least one array to concatenate"


def test_layers_in_keras_own_wrappers_are_counted_or_refused_not_miscounted():
    model = keras.Sequential([keras.Input((5, 3)), layers.Bidirectional(layers.LSTM(4)), layers.Dense(2)])
    assert measure.parameters(model)[0] == model.count_params() == 2 * 4 * (4 * (3 + 4 + 1)) + 8 * 2 + 2
    with pytest.raises(measure.MeasureError, match="Bidirectional"):
        measure.macs(model)


def test_macs_without_a_fixed_input_size_is_a_clear_error():
    model = keras.Sequential([keras.Input((None, None, 3)), layers.Conv2D(4, 3), layers.GlobalAveragePooling2D(),
                              layers.Dense(2)])
    with pytest.raises(measure.MeasureError, match=r"'conv2d.*fixed input size.*input_shape=\(32, 32, 3\)"):
        measure.macs(model)
    assert measure.parameters(model)[0] == model.count_params()


def test_quantization_and_clustering_wrappers_are_refused_pruning_wrappers_counted():
    import tensorflow_model_optimization as tfmot

    from effcourse import kerasutil

    def small():
        return keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3), layers.ReLU(), layers.Flatten(),
                                 layers.Dense(2)])

    plain = small()
    pruned = tfmot.sparsity.keras.prune_low_magnitude(kerasutil.clone(plain))
    assert measure.parameters(pruned) == measure.parameters(plain) and measure.macs(pruned) == measure.macs(plain)
    clustered = tfmot.clustering.keras.cluster_weights(
        small(), number_of_clusters=4, cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.LINEAR)
    for wrapped in (tfmot.quantization.keras.quantize_model(small()), clustered):
        for count in (measure.parameters, measure.macs):  # (117, 109) and (6, 0) parameters uncaught
            with pytest.raises(measure.MeasureError, match="strip_clustering.*to_litert"):
                count(wrapped)
