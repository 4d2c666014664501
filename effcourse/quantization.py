"""Quantization helpers for lesson 03: fake quantization of weights, bit-width sweeps, weight
histograms, representative data for the converter, and where a converted model's bytes go
(and the names it can do without).

The converter's options (`tf.lite.TFLiteConverter`, `optimizations`, `representative_dataset`,
...) and the Model Optimization Toolkit's calls stand in the notebook; this module holds what
would distract from them.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping

import numpy as np
import tf_keras as keras
from tf_keras import layers

from . import _silenced_stderr, measure
from .measure import _flat_layers, _unwrap

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from .data import ImageData
    from .litert import LiteRTModel

GRANULARITIES = ("per-tensor", "per-channel")


# --------------------------------------------------------------------------- fake quantization


def _check(bits: int, granularity: str) -> None:
    if isinstance(bits, bool) or int(bits) != bits or bits < 2:
        raise ValueError(f"bits must be an integer of at least 2 (symmetric quantization), got {bits!r}")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")


def levels(bits: int) -> int:
    """The largest integer of symmetric `bits`-bit quantization: 127 for 8 bits, 1 for 2 bits.
    The integers run from -levels to +levels: 2 * levels + 1 = 2**bits - 1 values, zero included."""
    _check(bits, "per-tensor")
    return 2 ** (int(bits) - 1) - 1


def scales(w: np.ndarray, bits: int, granularity: str = "per-tensor") -> np.ndarray:
    """The step between neighbouring quantized values: max |w| / levels(bits), over the whole
    tensor (a scalar) or per output channel, the last axis of a Keras kernel (one per channel).
    An all-zero tensor or channel gets scale 1/levels (its values all quantize to 0 anyway)."""
    _check(bits, granularity)
    w = np.asarray(w, dtype=np.float32)
    if granularity == "per-tensor" or w.ndim == 0:
        peak = np.max(np.abs(w)) if w.size else np.float32(0)
    else:
        peak = np.max(np.abs(w.reshape(-1, w.shape[-1])), axis=0)
    peak = np.where(peak > 0, peak, 1.0)
    return (peak / levels(bits)).astype(np.float32)


def quantize_integers(w: np.ndarray, bits: int, granularity: str = "per-tensor") -> tuple[np.ndarray, np.ndarray]:
    """(integers, scales) of symmetric `bits`-bit quantization, so that w ~ integers * scales."""
    scale = scales(w, bits, granularity)
    q = np.clip(np.round(np.asarray(w, dtype=np.float32) / scale), -levels(bits), levels(bits))
    return q.astype(np.int32), scale


def fake_quantize(w: np.ndarray, bits: int, granularity: str = "per-tensor") -> np.ndarray:
    """`w` rounded to the nearest of its `bits`-bit symmetric levels, back in float32
    ("fake" quantization: the values a quantized model computes with, stored as floats).
    Per channel, each output channel (the last axis) has its own scale."""
    q, scale = quantize_integers(w, bits, granularity)
    return (q * scale).astype(np.float32)


def error_table(w: np.ndarray, bits: Iterable[int] = (8, 4, 2)) -> "pd.DataFrame":
    """How far fake quantization moves the values of `w`: per bit width and granularity, the
    largest scale, the largest |error| and its bound (half the largest scale: rounding moves a value
    by at most half a step), the mean |error| relative to the mean |w|, and the distinct values left."""
    import pandas as pd

    w = np.asarray(w, dtype=np.float32)
    rows = []
    for b in bits:
        for granularity in GRANULARITIES:
            q, scale = fake_quantize(w, b, granularity), scales(w, b, granularity)
            error = np.abs(w - q)
            rows.append({"bits": int(b), "granularity": granularity, "largest scale": float(np.max(scale)),
                         "largest |error|": float(error.max()), "bound (scale / 2)": float(np.max(scale) / 2),
                         "mean |error| / mean |w|": float(error.mean() / np.mean(np.abs(w))),
                         "distinct values": int(len(np.unique(q)))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- Keras models


def _kernel_owners(model: keras.Model) -> list[tuple[layers.Layer, layers.Layer]]:
    """(layer as found in the model, possibly a toolkit wrapper; the Conv2D or Dense inside it)."""
    pairs = [(layer, _unwrap(layer)) for layer in _flat_layers(model)]
    return [(outer, inner) for outer, inner in pairs if isinstance(inner, (layers.Conv2D, layers.Dense))]


def kernel_layers(model: keras.Model) -> list[layers.Layer]:
    """The Conv2D (and subclasses) and Dense layers of a model, unwrapped from toolkit wrappers:
    the layers whose kernels quantization, pruning and clustering act on."""
    return [inner for _, inner in _kernel_owners(model)]


def _kernel_variable(layer: layers.Layer, wrapper: layers.Layer | None = None):
    """The kernel variable of a layer. A quantization-aware training wrapper owns it and replaces
    `layer.kernel` by a computed tensor, so the wrapper's weights are searched too."""
    import tensorflow as tf

    kernel = getattr(layer, "kernel", None)
    if isinstance(kernel, tf.Variable):
        return kernel
    for owner in (layer, wrapper):
        for weight in getattr(owner, "weights", []):
            if weight.name.split("/")[-1].startswith("kernel:"):
                return weight
    raise ValueError(f"Layer {layer.name!r} has no kernel variable.")


def _kernel_variables(model: keras.Model) -> list[tuple[str, object]]:
    return [(inner.name, _kernel_variable(inner, outer)) for outer, inner in _kernel_owners(model)]


def kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """{layer name: kernel values} of the Conv2D and Dense layers, in model order."""
    return {name: variable.numpy() for name, variable in _kernel_variables(model)}


def distinct_values(model: keras.Model) -> dict[str, int]:
    """{layer name: number of distinct values in its kernel}: what clustering reduces."""
    return {name: int(len(np.unique(w))) for name, w in kernels(model).items()}


def copy_model(model: keras.Model) -> keras.Model:
    """An independent copy of a Keras model with the same weights (not compiled).
    The toolkit's `cluster_weights` rewires the layers of the model it is given, so hand it a
    copy whenever the original is still needed."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def fake_quantize_model(model: keras.Model, bits: int, granularity: str = "per-tensor") -> keras.Model:
    """A copy of `model` whose Conv2D and Dense kernels are fake-quantized to `bits` bits
    (biases, batch norm and activations stay float32): what weight quantization alone does."""
    clone = copy_model(model)
    for _, variable in _kernel_variables(clone):
        variable.assign(fake_quantize(variable.numpy(), bits, granularity))
    return clone


def bit_width_sweep(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                    bits: Iterable[int] = (8, 6, 4, 3, 2), granularities: Iterable[str] = GRANULARITIES,
                    batch_size: int = 256) -> "pd.DataFrame":
    """Accuracy of `model` on float `images` (in [0, 1]) with its Conv/Dense kernels fake-quantized
    to each bit width and granularity. A tidy table, one row per (bits, granularity) plus a
    float32 row (bits 32), with the mean |error| of the weights relative to their mean |value| and
    the most distinct values any kernel keeps. `model` itself is left untouched."""
    import pandas as pd

    images = np.asarray(images, dtype=np.float32)
    original = kernels(model)
    magnitude = float(np.mean(np.abs(np.concatenate([w.ravel() for w in original.values()]))))
    work = copy_model(model)
    targets = _kernel_variables(work)

    def evaluate() -> float:
        return measure.accuracy(work.predict(images, batch_size=batch_size, verbose=0), images, labels)

    rows = [{"bits": 32, "granularity": "float32", "accuracy": evaluate(), "relative error": 0.0,
             "distinct values": max(len(np.unique(w)) for w in original.values())}]
    for b in bits:
        for granularity in granularities:
            errors, distinct = [], 0
            for name, variable in targets:
                q = fake_quantize(original[name], b, granularity)
                variable.assign(q)
                errors.append(np.abs(original[name] - q).ravel())
                distinct = max(distinct, len(np.unique(q)))
            rows.append({"bits": int(b), "granularity": granularity, "accuracy": evaluate(),
                         "relative error": float(np.mean(np.concatenate(errors)) / magnitude),
                         "distinct values": distinct})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- converting


def representative_dataset(data: "ImageData", n: int = 200, seed: int = 0) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A `converter.representative_dataset` for full-integer quantization: a function returning a
    generator of `n` random training images, one at a time, each as [float32 array (1, H, W, C)]
    normalised like the model's inputs. The converter runs them through the model to choose the
    scale and zero point of every activation."""
    from .data import normalise

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(data.x_train), size=min(n, len(data.x_train)), replace=False)
    images = np.asarray(normalise(data.x_train[np.sort(pick)]), dtype=np.float32)

    def generate() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None]]

    return generate


def inference_converter(model: keras.Model):
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
    to stderr ("fully_quantize: 0, inference_type: 6, ..."). A failed conversion still raises
    TensorFlow's ConverterError, which carries the converter's messages."""
    with _silenced_stderr():
        return converter.convert()


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
        warnings.warn("per_tensor_cluster_preservation: this Model Optimization Toolkit has no "
                      "cluster_preserve_quantize_registry; its own behaviour applies.", stacklevel=3)
        yield
        return
    original = getattr(registry, "get_centroids", None)
    if original is None or not hasattr(registry, "get_unique"):
        warnings.warn("per_tensor_cluster_preservation: unknown toolkit internals; its own "
                      "behaviour applies.", stacklevel=3)
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


# --------------------------------------------------------------------------- checking converted models


def litert_kernels(lite: "LiteRTModel") -> dict[str, np.ndarray]:
    """{op output name: weights} of the conv and fully-connected ops of a LiteRT model, as stored
    (int8 in a full-integer model), output channel first."""
    return {name: np.asarray(w) for _, name, w, _ in lite._weighted_ops()}


def distinct_per_channel(lite: "LiteRTModel") -> int:
    """The most distinct values any output channel of any conv/fully-connected kernel of a LiteRT
    model holds (the integers of an int8 model): at most the clusters (and zero) after clustering."""
    most = 0
    for w in litert_kernels(lite).values():
        rows = w.reshape(w.shape[0], -1)
        most = max(most, max(len(np.unique(row)) for row in rows))
    return most


def _flatbuffer(content: bytes) -> bytes:
    """`content` as bytes, if it is a .tflite flatbuffer (file identifier "TFL3"); else a clear error."""
    content = bytes(content)
    if content[4:8] != b"TFL3":
        raise ValueError("These bytes are not a .tflite model (no TFL3 identifier): pass the bytes a "
                         "TFLiteConverter returned, or a LiteRTModel's .content.")
    return content


def strip_names(content: bytes) -> bytes:
    """The same .tflite model without the strings it does not need to run: tensor and subgraph
    names, its description and its signatures (LiteRT's `flatbuffer_utils.strip_strings`, what
    deployment tools do to save bytes). The ops and weights are untouched; without signatures
    the model is run by its input and output tensors, as `LiteRTModel` does."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(_flatbuffer(content)))
    flatbuffer_utils.strip_strings(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def size_table(contents: Mapping[str, bytes]) -> "pd.DataFrame":
    """Bytes of each .tflite model and of its copy with the names stripped (`strip_names`), and how
    many times smaller each is than the first model: stripped models against the first one
    stripped the same way, so both ratios compare like with like. One row per model, in order."""
    import pandas as pd

    if not contents:
        raise ValueError("size_table needs at least one model: {name: .tflite bytes}, the baseline first.")
    table = pd.DataFrame({"bytes": {name: len(_flatbuffer(content)) for name, content in contents.items()},
                          "names stripped": {name: len(strip_names(content)) for name, content in contents.items()}})
    table["x smaller"] = table["bytes"].iloc[0] / table["bytes"]
    table["x smaller, names stripped"] = table["names stripped"].iloc[0] / table["names stripped"]
    return table


def size_breakdown(content: bytes) -> "pd.DataFrame":
    """Where the bytes of a .tflite flatbuffer go: its constant tensors by type (float32 weights;
    int8 weights and int32 biases in an integer model), the quantization parameters (a float32
    scale and an int64 zero point per tensor, or per channel), and the rest (the graph, names,
    metadata). One row per part, with bytes and share of the file."""
    import pandas as pd
    from tensorflow.lite.python import schema_py_generated as schema

    content = _flatbuffer(content)
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    type_names = {value: name.lower() for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    parts: dict[str, int] = {}
    seen: set[int] = set()
    quant_bytes = 0
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
            if data is not None and len(data) and tensor.buffer not in seen:
                seen.add(tensor.buffer)
                key = f"{type_names.get(tensor.type, tensor.type)} constants"
                parts[key] = parts.get(key, 0) + len(data)
            q = tensor.quantization
            if q is not None:
                quant_bytes += sum(4 * len(v) for v in (q.scale, q.min, q.max) if v is not None)
                quant_bytes += 8 * len(q.zeroPoint) if q.zeroPoint is not None else 0
    parts = dict(sorted(parts.items(), key=lambda kv: -kv[1]))
    parts["quantization parameters"] = quant_bytes
    parts["graph, names, metadata"] = len(content) - sum(parts.values())
    return pd.DataFrame([{"part": k, "bytes": v, "share %": round(100 * v / len(content), 1)} for k, v in parts.items()])


# --------------------------------------------------------------------------- plots


def draw_histograms(ax, weights: dict[str, np.ndarray], bins: int = 120) -> None:
    """Overlaid histograms of {label: values} on `ax`, the first filled, the others as outlines."""
    arrays = {label: np.asarray(w, dtype=np.float32).ravel() for label, w in weights.items()}
    everything = np.concatenate(list(arrays.values()))
    edges = np.linspace(everything.min(), everything.max(), bins + 1) if everything.size else bins
    for i, (label, values) in enumerate(arrays.items()):
        ax.hist(values, bins=edges, histtype="stepfilled" if i == 0 else "step",
                alpha=0.35 if i == 0 else 1.0, linewidth=1.5, color=f"C{i}", label=label)
    ax.set(xlabel="weight value", ylabel="count (log scale)", yscale="log")
    ax.legend(fontsize="small")


def plot_weight_histograms(weights: dict[str, np.ndarray], *, bins: int = 120, title: str = "") -> "Figure":
    """Overlaid histograms of weight arrays ({label: values}) on a log-count axis, e.g. one
    kernel before and after quantization: a quantized kernel shows as a comb of spikes."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.5))
    draw_histograms(ax, weights, bins)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_bit_sweep(table: "pd.DataFrame", *, title: str = "") -> "Figure":
    """Accuracy against bits per weight from a `bit_width_sweep` table: one line per granularity,
    the float32 accuracy dashed, fewer bits to the right."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    quantized = table[table["granularity"] != "float32"]
    for i, (granularity, rows) in enumerate(quantized.groupby("granularity", sort=False)):
        rows = rows.sort_values("bits")
        ax.plot(rows["bits"], 100 * rows["accuracy"], "o-", color=f"C{i}", label=granularity)
    baseline = table.loc[table["granularity"] == "float32", "accuracy"]
    if len(baseline):
        ax.axhline(100 * float(baseline.iloc[0]), color="grey", linestyle="--", label="float32")
    ax.set(xlabel="bits per weight", ylabel="accuracy (%)", title=title,
           xticks=sorted(int(b) for b in quantized["bits"].unique()))
    ax.invert_xaxis()
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
