"""Converting Keras models to LiteRT: float32, float16, dynamic-range int8 and full-integer int8
(calibrated on representative images, per channel or per tensor).

Lesson 03 spells out the converter calls it teaches; every other lesson, the report card and
the tests use `to_litert`, which makes the same calls.
"""
from __future__ import annotations

import os
import re
import warnings

from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np

from . import _silenced_stderr, internals, paths
from .data import model_input

if TYPE_CHECKING:
    import tf_keras as keras

    from .data import ImageData
    from .litert import LiteRTModel

KINDS = ("float32", "float16", "dynamic-range int8", "int8")

# Fewer calibration images than this may set poor int8 ranges (the lessons calibrate on 200).
MIN_CALIBRATION_IMAGES = 100

# The toolkit's training wrappers the converter cannot convert, and what strips each.
_STRIP = {"PruneLowMagnitude": "tfmot.sparsity.keras.strip_pruning",
          "ClusterWeights": "tfmot.clustering.keras.strip_clustering"}

# An absolute path of two parts or more (converter messages name this machine's source files).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:])(?:/[\w.+-]+){2,}")


class ConversionError(ValueError):
    """A model the converter could not convert, with what to do about it."""


def representative_dataset(data: "ImageData | np.ndarray", n: int = 200, seed: int = 0, *,
                           shape: tuple[int, ...] | None = None) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A `converter.representative_dataset` for full-integer quantization: a function returning a
    generator of `n` random training images (of an ImageData, or from an array of uint8 images or
    of floats already in [0, 1]), one at a time, each as [float32 array (1, H, W, C)] normalised
    like the model's inputs. The converter runs them through the model to choose the scale and
    zero point of every activation. No images, or images of another `shape` than the model's
    (without the batch dimension), are refused; fewer than MIN_CALIBRATION_IMAGES get a warning."""
    pool = data.x_train if hasattr(data, "x_train") else np.asarray(data)
    if len(pool) == 0 or n < 1:
        raise ValueError("No calibration images: full-integer int8 sets its ranges from representative images; "
                         f"pass data= with at least {MIN_CALIBRATION_IMAGES} (the lessons use 200).")
    if shape is not None and tuple(pool.shape[1:]) != tuple(shape):
        raise ValueError(f"Calibration images of shape {tuple(pool.shape[1:])} for a model that takes {tuple(shape)}: "
                         "calibrate on images like the model's inputs (those it was trained on).")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(pool), size=min(n, len(pool)), replace=False))
    images = model_input(pool[pick], "Calibration")
    if len(images) < MIN_CALIBRATION_IMAGES:
        warnings.warn(f"Calibrating int8 on {len(images)} images: activation ranges from fewer than "
                      f"{MIN_CALIBRATION_IMAGES} may be poor (the lessons use 200).", stacklevel=2)

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

    shape = [None, *_input_shape(model)[1:]]
    function = tf.function(lambda x: model(x, training=False), autograph=False)
    concrete = function.get_concrete_function(tf.TensorSpec(shape, tf.float32))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.experimental_lower_to_saved_model = False
    return converter


def _input_shape(model: "keras.Model") -> tuple:
    """`model`'s input shape, batch dimension first (a subclassed model's from its first call);
    a clear error for anything else than a Keras model that knows it."""
    import tensorflow as tf
    import tf_keras as keras

    if isinstance(model, (str, os.PathLike)):
        raise TypeError(f"Convert a Keras model, not the path {paths.display(model)!r}: load it first "
                        "(zoo.trained(...).model for the course's models, keras.models.load_model(path) otherwise).")
    if not isinstance(model, keras.Model):
        raise TypeError(f"Convert a Keras model of the course's Keras (tf_keras), not a "
                        f"{type(model).__module__}.{type(model).__qualname__}.")
    try:
        return tuple(model.input_shape)
    except AttributeError:  # a subclassed model, or a model without an Input layer
        spec = model.save_spec(dynamic_batch=True)
    if spec is None:
        raise ConversionError(f"{model.name} has never been called, so its input shape is unknown: call it on a "
                              "batch of images first (model(images[:1])), or give it a keras.Input.")
    return tuple(tf.nest.flatten(spec)[0].shape)


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
        converter.representative_dataset = representative_dataset(data, shape=_input_shape(model)[1:])
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
        raise ConversionError(f"{model.name} could not be converted to {kind} LiteRT: {_advice(model, err)}") from err
    return LiteRTModel(content, name=name or f"{model.name} ({kind})", num_threads=num_threads)


def _advice(model: "keras.Model", err: Exception) -> str:
    """Why the converter failed on `model` and what to do: strip the toolkit's training wrappers
    if it has any; convert a float32 copy if it computes in mixed precision; else replace the
    layers whose ops the converter's errors locate (a ConverterError's `errors` name each failing
    op and the scopes it came from); else what the converter said. Never a path of this machine."""
    from .kerasutil import flat_layers

    leaves = list(flat_layers(model))
    strip = sorted({_STRIP[c.__name__] for layer in leaves for c in type(layer).__mro__ if c.__name__ in _STRIP})
    if strip:
        return f"it holds the toolkit's training wrappers; strip them first ({', '.join(strip)})."
    mixed = sorted({layer.compute_dtype for layer in leaves} & {"float16", "bfloat16"})
    if mixed:
        return f"it computes in {', '.join(mixed)} (mixed precision); convert its training.float32_copy(model)."
    culprits, ops = {}, set()
    for error in getattr(err, "errors", []):
        scopes = {part for call in error.location.call for part in re.split("[/@]", call.name)}
        found = {layer.name: type(layer).__name__ for layer in leaves if layer.name in scopes}
        if found:
            culprits.update(found)
            ops.add(error.operator.name)
    if culprits:
        named = ", ".join(f"{name!r} ({kind})" for name, kind in culprits.items())
        return (f"LiteRT's built-in ops do not support {', '.join(sorted(ops))}, from layer{'s' * (len(culprits) > 1)} "
                f"{named}. Replace such layers, or measure a model made of the layers LiteRT supports.")
    said = next((e.error_message for e in getattr(err, "errors", []) if e.error_message.strip()), str(err))
    first = said.strip().splitlines()[0].rstrip(".") if said.strip() else "no message"
    return (f"{type(err).__name__}: {_ABSOLUTE_PATH.sub(lambda path: paths.display(path.group()), first)}. "
            "Measure a model made of the layers LiteRT supports.")
