"""Counting what a model costs and what it gets right: parameters, non-zero parameters, MACs,
bytes, accuracy, and how often two models agree."""
from __future__ import annotations

import gzip
import math
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tf_keras as keras
from tf_keras import layers

from .data import model_input
from .kerasutil import flat_layers, kernel_sparsity, unwrap


class MeasureError(ValueError):
    """A model the measurements cannot handle, with what to do about it."""


# Normalisation layers: their weights are not counted as multiply-accumulates (batch norm folds
# into the convolution before it when the model is converted; layer norm's per-element work is left out).
ZERO_MAC_WEIGHTED = (layers.BatchNormalization, layers.LayerNormalization)


@dataclass(frozen=True)
class LayerMacs:
    """Multiply-accumulates of one layer for one input image."""

    layer: str
    kind: str
    macs: int
    nonzero_macs: int


def _positions(layer, shape) -> int:
    """Positions a layer's kernel is applied at, for one image: the product of `shape` without its
    batch and channel axes (height x width of a conv layer's output; the rows of a Dense layer's
    3-D input, or 1)."""
    if None in shape[1:-1]:
        raise MeasureError(
            f"Cannot count the MACs of layer {layer.name!r}: its data has no fixed size (shape {tuple(shape)}), "
            "and MACs grow with the image size. MACs need a fixed input size: build the model with one, "
            "e.g. keras.Input(shape=(32, 32, 3)) or input_shape=(32, 32, 3)."
        )
    return int(np.prod(shape[1:-1]))


def _layer_macs(wrapper) -> LayerMacs | None:
    layer = unwrap(wrapper)
    if isinstance(layer, layers.DepthwiseConv2D):
        kernel = layer.depthwise_kernel.numpy()
        positions = _positions(layer, wrapper.output_shape)
    elif isinstance(layer, layers.SeparableConv2D):
        depthwise, pointwise = layer.depthwise_kernel.numpy(), layer.pointwise_kernel.numpy()
        positions = _positions(layer, wrapper.output_shape)
        dense_macs = positions * (depthwise.size + pointwise.size)
        nonzero = positions * (np.count_nonzero(depthwise) + np.count_nonzero(pointwise))
        return LayerMacs(layer.name, "SeparableConv2D", dense_macs, int(nonzero))
    elif isinstance(layer, layers.Conv2D) and not isinstance(layer, layers.Conv2DTranspose):
        # kernel (kh, kw, in/groups, out): one MAC per weight per output position (a transposed
        # convolution, a Conv2D subclass, works per input position: refused below, MeasureError)
        kernel = layer.kernel.numpy()
        positions = _positions(layer, wrapper.output_shape)
    elif isinstance(layer, layers.Dense):
        kernel = layer.kernel.numpy()
        positions = _positions(layer, wrapper.input_shape)
    elif not layer.weights or isinstance(layer, ZERO_MAC_WEIGHTED):
        return None
    else:
        raise MeasureError(
            f"Cannot count the MACs of layer {layer.name!r} ({type(layer).__name__}): the course counts "
            "Conv2D, DepthwiseConv2D, SeparableConv2D and Dense layers. Use those layers, or leave MACs "
            "out of the comparison for this model."
        )
    return LayerMacs(layer.name, type(layer).__name__, positions * kernel.size, positions * int(np.count_nonzero(kernel)))


def _check_countable(model: keras.Model) -> None:
    """Refuse a model in the toolkit's quantization or clustering wrappers: they keep kernels in
    variables of their own, which a count would miss (the pruning wrapper keeps its layer's)."""
    for layer in flat_layers(model):
        module = type(layer).__module__
        if module.startswith("tensorflow_model_optimization.") and ".sparsity." not in module:
            raise MeasureError(
                f"Layer {layer.name!r} is a Model Optimization Toolkit {type(layer).__name__}, which keeps "
                "weights in variables of its own: its parameters and MACs would be miscounted. Measure the model "
                "as deployed: strip clustering first (tfmot.clustering.keras.strip_clustering), and convert a "
                "quantization-aware model (convert.to_litert(model, 'int8')) and measure that."
            )


def layer_macs(model: keras.Model) -> list[LayerMacs]:
    """Per-layer MACs for one image, dense and counting only non-zero weights."""
    if not model.built:
        raise MeasureError("The model is not built: call it on an input or give it an Input layer first.")
    _check_countable(model)
    return [m for m in (_layer_macs(layer) for layer in flat_layers(model)) if m is not None]


def macs(model: keras.Model) -> tuple[int, int]:
    """(dense MACs, MACs of the non-zero weights) for one image."""
    per_layer = layer_macs(model)
    return sum(m.macs for m in per_layer), sum(m.nonzero_macs for m in per_layer)


def parameters(model: keras.Model) -> tuple[int, int]:
    """(all parameters, non-zero parameters)."""
    _check_countable(model)
    values = [w.numpy() for layer in flat_layers(model) for w in unwrap(layer).weights]
    return sum(v.size for v in values), sum(int(np.count_nonzero(v)) for v in values)


def sparsity(model: keras.Model) -> float:
    """Share of the Conv/Dense kernel weights that are exactly zero (what pruning targets)."""
    return kernel_sparsity(model)


def keras_bytes(model: keras.Model) -> bytes:
    """The model serialized as HDF5 without optimizer state: what you would ship."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.h5"
        save_h5(model, path)
        return path.read_bytes()


def save_h5(model: keras.Model, path: Path) -> None:
    """Save as HDF5 without optimizer state. HDF5 is uncompressed, so gzip shows what sparsity and
    clustering save (as in the Model Optimization Toolkit's guides); Keras calls the format legacy."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy", category=UserWarning)
        keras.models.save_model(model, path, include_optimizer=False)


def sizes(blob: bytes) -> tuple[int, int]:
    """(serialized bytes, gzipped bytes) of a serialized model."""
    return len(blob), len(gzip.compress(blob, compresslevel=9, mtime=0))


def human_bytes(n: float) -> str:
    """1234567 -> '1.18 MiB'."""
    if n < 1024:
        return f"{int(n)} B"
    exp = min(int(math.log(n, 1024)), 3)
    return f"{n / 1024**exp:.2f} {('B', 'KiB', 'MiB', 'GiB')[exp]}"


def predicted_labels(source, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Classes predicted for `images` (uint8 pixels, or floats already normalised to [0, 1]) by
    `source`: a Keras model, a LiteRT model, or the logits one of them already gave for these images.
    Keras models run eagerly batch by batch: no graph to trace for each new model."""
    if isinstance(source, np.ndarray):
        if len(source) != len(images):
            raise ValueError(f"{len(source)} rows of logits for {len(images)} images: pass the logits of these images.")
        return np.argmax(source, axis=-1)
    x = model_input(images)
    if len(x) == 0:
        raise ValueError("No images to classify: a split of the data may be empty (loaded with validation_fraction=0, "
                         "or too few images per class); pass at least one image.")
    if isinstance(source, keras.Model):
        logits = np.concatenate([source(x[i:i + batch_size], training=False).numpy() for i in range(0, len(x), batch_size)])
    else:
        logits = source.predict(x, batch_size=batch_size)
    return np.argmax(logits, axis=-1)


def correct(source, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per image, whether `source` (a Keras or LiteRT model, or its logits) classifies it as `labels`
    says: what a paired comparison of two models on the same images needs (`stats.paired_accuracy`).
    `labels`: one class index per image, shape (N,) or the (N, 1) column Keras's cifar10.load_data gives."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]  # else (N,) == (N, 1) would broadcast to an N x N table of comparisons
    if labels.ndim != 1:
        raise ValueError(f"Labels of shape {labels.shape}: pass one class index per image, shape (N,) "
                         "(one-hot labels: np.argmax(labels, axis=-1)).")
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images: pass one label per image.")
    return predicted_labels(source, images) == labels


def accuracy(source, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of `images` that `source` (a Keras or LiteRT model, or its logits) classifies as `labels`."""
    return float(np.mean(correct(source, images, labels)))


def agreement(source_a, source_b, images: np.ndarray) -> float:
    """Share of `images` on which two sources (Keras or LiteRT models, or their logits) predict the same class."""
    return float(np.mean(predicted_labels(source_a, images) == predicted_labels(source_b, images)))
