"""Converting Keras models to LiteRT: float32, float16, dynamic-range int8 and full-integer int8
(calibrated on representative images, per channel or per tensor).

Lesson 03 spells out the converter calls it teaches; every other lesson, the report card and
the tests use `to_litert`, which makes the same calls.
"""
from __future__ import annotations

import warnings

from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from . import _silenced_stderr, internals

if TYPE_CHECKING:
    import tf_keras as keras

    from .data import ImageData
    from .litert import LiteRTModel

KINDS = ("float32", "float16", "dynamic-range int8", "int8")


class ConversionError(ValueError):
    """A model the converter could not convert, with what to do about it."""


def representative_dataset(data: "ImageData | np.ndarray", n: int = 200, seed: int = 0
                           ) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A `converter.representative_dataset` for full-integer quantization: a function returning a
    generator of `n` random training images (of an ImageData, or from an array of uint8 images or
    of floats already in [0, 1]), one at a time, each as [float32 array (1, H, W, C)] normalised
    like the model's inputs. The converter runs them through the model to choose the scale and
    zero point of every activation."""
    from .data import normalise

    pool = data.x_train if hasattr(data, "x_train") else np.asarray(data)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))
    images = pool[pick]
    images = np.asarray(normalise(images) if images.dtype == np.uint8 else images, dtype=np.float32)

    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None]]

    return generate


def inference_converter(model: "keras.Model"):
    """A `tf.lite.TFLiteConverter` for `model`'s inference graph (training=False), set the same
    way as `TFLiteConverter.from_keras_model` gives, but without exporting a SavedModel first.
    That export traces every layer's training graph too, which takes a minute for the toolkit's
    cluster-preserving wrappers; the converted model is the same."""
    import tensorflow as tf

    shape = [None, *model.input_shape[1:]]
    function = tf.function(lambda x: model(x, training=False), autograph=False)
    concrete = function.get_concrete_function(tf.TensorSpec(shape, tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.experimental_lower_to_saved_model = False
    return converter


def convert(converter) -> bytes:
    """`converter.convert()`, without the log line the integer quantizer writes from C++ straight
    to stderr ("fully_quantize: 0, inference_type: 6, ..."), and without TensorFlow's warning that
    float inputs of an int8 model have no quantization statistics (they need none: the model
    quantizes its inputs itself). A failed conversion still raises TensorFlow's ConverterError,
    which carries the converter's messages."""
    with _silenced_stderr(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        return converter.convert()


def converter_for(model: "keras.Model", kind: str = "float32", *, data=None, per_tensor: bool = False):
    """The converter lesson 03 builds for `kind`: "float32" (as it is), "float16" (weights stored
    as float16), "dynamic-range int8" (int8 weights, float activations) or "int8" (full integer:
    int8 weights, activations, input and output, calibrated on 200 images of `data`).
    `per_tensor`: one scale per weight tensor instead of one per output channel."""
    import tensorflow as tf

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    converter = inference_converter(model)
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if kind == "int8":
        if data is None:
            raise ValueError("Full-integer int8 needs representative images: pass data= (an ImageData or images).")
        converter.representative_dataset = representative_dataset(data)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if per_tensor:
        internals.disable_per_channel(converter)
    return converter


def to_litert(model: "keras.Model", kind: str = "float32", *, data=None, per_tensor: bool = False,
              name: str | None = None, num_threads: int | None = None) -> "LiteRTModel":
    """`model` converted to LiteRT as `kind` (see `converter_for`), ready to run and measure on
    `num_threads` threads (default: this machine's)."""
    from .litert import LiteRTModel

    converter = converter_for(model, kind, data=data, per_tensor=per_tensor)
    try:
        content = convert(converter)
    except Exception as err:  # the converter raises ConverterError, ValueError or RuntimeError
        raise ConversionError(
            f"{getattr(model, 'name', 'the model')} could not be converted to {kind} LiteRT "
            f"({type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}). "
            "Strip the toolkit's training wrappers first (strip_pruning, strip_clustering), or "
            "measure a model made of the layers LiteRT supports."
        ) from err
    return LiteRTModel(content, name=name or f"{getattr(model, 'name', 'model')} ({kind})", num_threads=num_threads)
