"""Keras-model plumbing every technique needs: copying a model, walking its layers through the
Model Optimization Toolkit's wrappers, and finding the kernels that pruning, quantization and
clustering act on. One home, so every lesson finds layers and kernels the same way."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import tf_keras as keras
from tf_keras import layers

# Layers whose kernels hold the model's multiply-accumulates.
WEIGHTED = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D, layers.Dense)


def clone(model: keras.Model) -> keras.Model:
    """An independent copy of `model` with the same weights (not compiled). The toolkit's
    wrappers wrap (and `cluster_weights` rewires) the very layers they are given, so hand
    them a copy whenever the original is still needed."""
    copy = keras.models.clone_model(model)
    copy.build(model.input_shape)
    copy.set_weights(model.get_weights())
    return copy


def _is_toolkit_wrapper(layer: layers.Layer) -> bool:
    """Whether `layer` is one of the Model Optimization Toolkit's training wrappers (pruning,
    quantization, clustering): a Keras `Wrapper` whose class the toolkit defines. Keras's own
    wrappers (Bidirectional, TimeDistributed) are layers in their own right and are not looked
    through: the layer they hold can be an unbuilt template (Bidirectional runs copies of it),
    so only the wrapper's own weights tell what it holds."""
    return isinstance(layer, layers.Wrapper) and any(
        cls.__module__.startswith("tensorflow_model_optimization.") for cls in type(layer).__mro__)


def unwrap(layer: layers.Layer) -> layers.Layer:
    """The layer inside Model Optimization Toolkit wrappers (pruning, quantization, clustering);
    any other layer, Keras's own wrappers included, as it is."""
    while _is_toolkit_wrapper(layer):
        layer = layer.layer
    return layer


def flat_layers(model: keras.Model) -> Iterator[layers.Layer]:
    """Every leaf layer of a (possibly nested) Keras model, wrappers as found."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from flat_layers(layer)
        else:
            yield layer


def weighted_layers(model: keras.Model) -> list[tuple[layers.Layer, layers.Layer]]:
    """(layer as found, possibly a toolkit wrapper; the Conv2D/Dense-family layer inside it), in order."""
    pairs = [(layer, unwrap(layer)) for layer in flat_layers(model)]
    return [(outer, inner) for outer, inner in pairs if isinstance(inner, WEIGHTED)]


def kernel_variables(inner: layers.Layer, outer: layers.Layer | None = None) -> list:
    """The kernel variables of a Conv2D/Dense-family layer (two for a separable convolution).
    A quantization-aware training wrapper (`outer`) owns the kernel and replaces the layer's
    attribute by a computed tensor, so its weights are searched too."""
    import tensorflow as tf

    names = ("depthwise_kernel", "pointwise_kernel") if isinstance(inner, layers.SeparableConv2D) else (
        ("depthwise_kernel",) if isinstance(inner, layers.DepthwiseConv2D) else ("kernel",))
    found = []
    for name in names:
        variable = getattr(inner, name, None)
        if not isinstance(variable, tf.Variable):
            owned = [w for owner in (inner, outer) for w in getattr(owner, "weights", [])
                     if w.name.split("/")[-1].startswith(f"{name}:")]
            if not owned:
                raise ValueError(f"Layer {inner.name!r} has no {name} variable.")
            variable = owned[0]
        found.append(variable)
    return found


def kernel_items(model: keras.Model) -> list[tuple[str, object]]:
    """(name, kernel variable) of the Conv2D/Dense-family layers, in model order: the layer's name,
    or "name/depthwise" and "name/pointwise" for a separable convolution."""
    items = []
    for outer, inner in weighted_layers(model):
        variables = kernel_variables(inner, outer)
        names = [inner.name] if len(variables) == 1 else [f"{inner.name}/depthwise", f"{inner.name}/pointwise"]
        items += zip(names, variables)
    return items


def kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """{name: kernel values} of the Conv2D/Dense-family layers, named as `kernel_items` names them."""
    return {name: variable.numpy() for name, variable in kernel_items(model)}


def kernel_sparsity(model: keras.Model) -> float:
    """Share of the Conv/Dense kernel weights that are exactly zero (what pruning targets)."""
    values = list(kernels(model).values())
    size = sum(v.size for v in values)
    return 0.0 if size == 0 else 1.0 - sum(int(np.count_nonzero(v)) for v in values) / size
