"""Every use of a private API of TensorFlow, the Model Optimization Toolkit or LiteRT, in one place.

Each one is what the public APIs do not offer yet. An upgrade may remove any of them without
notice, so `tests/test_internals.py` checks each by name: when one disappears, a test says which.

* `ops_details`: the list of a LiteRT graph's ops (`Interpreter._get_ops_details`).
* `flatbuffer_model`, `tensor_type_names`: the .tflite flatbuffer schema (TensorFlow's generated
  `schema_py_generated` module), to see where a model's bytes go.
* `strip_strings`: LiteRT's `flatbuffer_utils` tool that drops names from a .tflite model.
* `disable_per_channel`: the converter's per-tensor flag (`_experimental_disable_per_channel`).
* `per_tensor_cluster_preservation`: a patch of the toolkit's cluster-preserving quantization.
"""
from __future__ import annotations

import contextlib
import warnings

PER_CHANNEL_FLAG = "_experimental_disable_per_channel"


def ops_details(interpreter) -> list[dict]:
    """Every op of a LiteRT interpreter's graph: name, input and output tensor indices."""
    return interpreter._get_ops_details()


def flatbuffer_model(content: bytes):
    """The .tflite flatbuffer `content` as the schema's object tree (`ModelT`)."""
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))


def tensor_type_names() -> dict[int, str]:
    """{tensor type number: lower-case name} of the .tflite schema (0: 'float32', 9: 'int8', ...)."""
    from tensorflow.lite.python import schema_py_generated as schema

    return {value: name.lower() for name, value in vars(schema.TensorType).items() if not name.startswith("_")}


def strip_strings(content: bytes) -> bytes:
    """`content` without tensor and subgraph names, description and signatures."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def disable_per_channel(converter):
    """Make a `TFLiteConverter` quantize each weight tensor with one scale (per tensor) instead of
    one per output channel; return the converter."""
    if not hasattr(converter, PER_CHANNEL_FLAG):
        raise AttributeError(f"This TensorFlow's TFLiteConverter has no {PER_CHANNEL_FLAG}: per-tensor "
                             "weight quantization cannot be chosen.")
    setattr(converter, PER_CHANNEL_FLAG, True)
    return converter


@contextlib.contextmanager
def per_tensor_cluster_preservation():
    """Within this block, the toolkit's cluster-preserving quantization (CQAT and PCQAT) keeps
    the clusters of each kernel as a whole, as `cluster_weights` made them.

    Model Optimization Toolkit 0.8 guesses that a Conv2D kernel was clustered per output channel
    whenever its channels hold (almost) the same number of distinct values, which is what a kernel
    clustered as a whole usually looks like; it then builds its graph with a loop over every
    channel: tens of thousands of operations, a minute before the first training step on a laptop
    and seconds per step. This makes the guess "per tensor" while `quantize_apply` builds the model.
    """
    try:
        from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
            cluster_preserve_quantize_registry as registry,
        )
    except ImportError:  # another toolkit version: leave its behaviour alone
        registry = None
    original = getattr(registry, "get_centroids", None)
    if original is None or not hasattr(registry, "get_unique"):
        warnings.warn("per_tensor_cluster_preservation: this Model Optimization Toolkit lacks the "
                      "internals it patches; its own behaviour applies.", stacklevel=3)
        yield
        return

    def per_tensor(layer, weight, data_format):
        import tensorflow as tf

        centroids, index = registry.get_unique(weight)
        return centroids, tf.size(centroids), index, False

    registry.get_centroids = per_tensor
    try:
        yield
    finally:
        registry.get_centroids = original
