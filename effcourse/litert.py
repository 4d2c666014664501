"""Running converted models with LiteRT (`ai-edge-litert`), the successor of tf.lite.Interpreter,
and comparing several of them side by side."""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Mapping

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from . import _silenced_stderr, hardware, latency, measure, profiles
from .measure import LayerMacs, MeasureError


class LiteRTModel:
    """A converted (.tflite) model with Keras-like `predict`, handling quantized inputs and outputs.

    `predict` takes float images in [0, 1] and returns float logits whatever the model's
    input and output types are (float32, or int8/uint8 with their scale and zero point).
    `xnnpack=False` runs LiteRT's built-in kernels instead of its default XNNPACK delegate.
    """

    def __init__(self, model_content: bytes | str | Path, name: str = "litert_model", num_threads: int | None = None,
                 xnnpack: bool = True):
        if isinstance(model_content, (str, Path)):
            path = Path(model_content)
            if not path.is_file():
                raise FileNotFoundError(f"No LiteRT model at {path}: convert a Keras model first (see lesson 03).")
            model_content = path.read_bytes()
        self.content = bytes(model_content)
        self.name = name
        self.num_threads = num_threads or hardware.cpu_threads()
        self.xnnpack = xnnpack
        try:
            self._single = self._interpreter(batch=1)
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"{name}: these bytes are not a model LiteRT can load ({err}).") from err
        self._batch: tuple[int, Interpreter] | None = None

    def _interpreter(self, batch: int) -> Interpreter:
        resolver = OpResolverType.AUTO if self.xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        with _silenced_stderr():  # the XNNPACK delegate announces itself on stderr when applied
            interpreter = Interpreter(model_content=self.content, num_threads=self.num_threads,
                                      experimental_op_resolver_type=resolver)
            if batch != 1:
                detail = interpreter.get_input_details()[0]
                interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
            interpreter.allocate_tensors()
        return interpreter

    @property
    def input_details(self) -> dict:
        return self._single.get_input_details()[0]

    @property
    def output_details(self) -> dict:
        return self._single.get_output_details()[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.input_details["shape"][1:])

    def _quantize_input(self, x: np.ndarray) -> np.ndarray:
        detail = self.input_details
        if detail["dtype"] == np.float32:
            return x.astype(np.float32)
        scale, zero_point = detail["quantization"]
        info = np.iinfo(detail["dtype"])
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])

    def _dequantize_output(self, y: np.ndarray) -> np.ndarray:
        detail = self.output_details
        if detail["dtype"] == np.float32:
            return y
        scale, zero_point = detail["quantization"]
        return (y.astype(np.float32) - zero_point) * scale

    def single_image_runner(self, image: np.ndarray):
        """A no-argument callable running one inference on `image` (for latency measurements)."""
        interpreter = self._single
        in_index, out_index = self.input_details["index"], self.output_details["index"]
        x = self._quantize_input(np.asarray(image)[None])

        def run():
            interpreter.set_tensor(in_index, x)
            interpreter.invoke()
            return interpreter.get_tensor(out_index)

        return run

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float logits for float images in [0, 1], `batch_size` images per invocation."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"{self.name} expects images of shape {self.input_shape}, got {x.shape[1:]}.")
        if self._batch is None or self._batch[0] != batch_size:
            self._batch = (batch_size, self._interpreter(batch_size))
        interpreter = self._batch[1]
        in_index = interpreter.get_input_details()[0]["index"]
        out_index = interpreter.get_output_details()[0]["index"]
        outputs = []
        for start in range(0, len(x), batch_size):
            chunk = x[start : start + batch_size]
            padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), np.float32)])
            interpreter.set_tensor(in_index, self._quantize_input(padded))
            interpreter.invoke()
            outputs.append(self._dequantize_output(interpreter.get_tensor(out_index))[: len(chunk)])
        return np.concatenate(outputs)

    def ops(self) -> collections.Counter:
        """How many times each op occurs in the graph (DENSIFY ops mean sparse-format weights)."""
        return collections.Counter(op["op_name"] for op in self._single._get_ops_details())

    def _weighted_ops(self):
        """(op kind, output name, weight values, output positions per image) of each MAC-heavy op."""
        interpreter = self._single
        ops = interpreter._get_ops_details()  # the only API that lists a graph's ops
        producer = {out: op for op in ops for out in op["outputs"]}
        tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
        for op in ops:
            kind = op["op_name"]
            if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
                continue
            out = tensors[op["outputs"][0]]
            shape = out["shape"]
            positions = int(np.prod(shape[1:-1])) if kind != "FULLY_CONNECTED" else int(np.prod(shape[:-1]))
            yield kind, out["name"], self._constant(op["inputs"][1], producer), positions

    def layer_macs(self) -> list[LayerMacs]:
        """Per-op MACs for one image (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED), dense and non-zero.
        Every weight is used once per output position (depthwise weights are (1, kh, kw, channels))."""
        return [
            LayerMacs(name, kind, positions * w.size, positions * int(np.count_nonzero(w)))
            for kind, name, w, positions in self._weighted_ops()
        ]

    def sparsity(self) -> float:
        """Share of the conv/fully-connected weights that are exactly zero."""
        weights = [w for _, _, w, _ in self._weighted_ops()]
        size = sum(w.size for w in weights)
        return 0.0 if size == 0 else 1.0 - sum(int(np.count_nonzero(w)) for w in weights) / size

    def _constant(self, index: int, producer: dict) -> np.ndarray:
        """Values of a constant weight tensor, looking through a float16 DEQUANTIZE op and through
        a DENSIFY op (weights stored in the sparse format, decoded back to their dense shape)."""
        op = producer.get(index)
        if op is not None and op["op_name"] == "DEQUANTIZE":
            index = op["inputs"][0]
            op = producer.get(index)
        tensors = {t["index"]: t for t in self._single.get_tensor_details()}
        dense_shape = None
        if op is not None and op["op_name"] == "DENSIFY":
            dense_shape = tensors[index]["shape"]
            index = op["inputs"][0]
        try:
            values = self._single.get_tensor(index)
        except ValueError as err:
            raise MeasureError(f"{self.name}: cannot read the weights of tensor {index} to count MACs ({err}).") from err
        if dense_shape is None:
            return values
        return _densify(values, tensors[index]["sparsity_parameters"], tuple(dense_shape), where=f"{self.name}, tensor {index}")

    def macs(self) -> tuple[int, int]:
        """(dense MACs, MACs of the non-zero weights) for one image."""
        per_op = self.layer_macs()
        return sum(m.macs for m in per_op), sum(m.nonzero_macs for m in per_op)

    def parameters(self) -> tuple[int, int]:
        """(parameters, non-zero parameters): the weights and biases the conv and fully-connected
        ops read, each stored tensor counted once (the converter shares identical constants
        and drops all-zero biases, so an untrained model can count fewer than its Keras source)."""
        interpreter = self._single
        ops = [op for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
        producer = {out: op for op in interpreter._get_ops_details() for out in op["outputs"]}
        stored = {i for op in ops for i in op["inputs"][1:] if i >= 0}
        constants = [self._constant(i, producer) for i in sorted(stored)]
        return sum(c.size for c in constants), sum(int(np.count_nonzero(c)) for c in constants)


def _densify(values: np.ndarray, sparsity: dict, shape: tuple[int, ...], where: str) -> np.ndarray:
    """The dense array of a constant stored in LiteRT's sparse format: the dimensions are traversed
    in `traversal_order`, each either dense (every index) or compressed (per parent position, a
    segment of `array_indices`), and the values hold the stored entries in that order."""
    if len(sparsity.get("block_map", [])):
        raise MeasureError(f"{where}: block-sparse weights are not supported; convert without block sparsity.")
    order = list(sparsity["traversal_order"])
    coords = np.zeros((1, 0), dtype=np.int64)  # one row per stored entry reached so far
    position = np.zeros(1, dtype=np.int64)  # its position in the current level's storage
    for level in sparsity["dim_metadata"]:
        if level["format"] == 0:  # dense: every index of this dimension
            size = int(level["dense_size"])
            coords = np.column_stack([np.repeat(coords, size, axis=0), np.tile(np.arange(size), len(coords))])
            position = (position[:, None] * size + np.arange(size)[None]).ravel()
        else:  # compressed: the indices between this parent's segment bounds
            segments, indices = np.asarray(level["array_segments"]), np.asarray(level["array_indices"])
            counts = segments[position + 1] - segments[position]
            position = np.repeat(segments[position] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            coords = np.column_stack([np.repeat(coords, counts, axis=0), indices[position]])
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(coords[:, order.index(dim)] for dim in range(len(shape)))] = values[position]
    return dense


def compare(models: Mapping[str, "bytes | LiteRTModel"], image: np.ndarray, *,
            profile: profiles.Profile | None = None, rounds: int = 5, threads: int | None = None,
            xnnpack: bool = True):
    """Size, gzipped size, DENSIFY ops and single-image latency of converted models, measured in one
    run on the same number of threads (`threads`, default: this machine's), timed in interleaved
    rounds with the profile's runs (see `latency.interleaved`; `vs first` is the ratio to the first
    model; `xnnpack=False`: LiteRT's built-in kernels). A DataFrame indexed by name."""
    import pandas as pd

    profile = profile or profiles.current()
    threads = threads or hardware.cpu_threads()
    loaded = {name: LiteRTModel(m.content if isinstance(m, LiteRTModel) else m, name=name, num_threads=threads,
                                xnnpack=xnnpack) for name, m in models.items()}
    timing = latency.interleaved({name: m.single_image_runner(image) for name, m in loaded.items()},
                                 runs=profile.latency_runs, warmup=profile.warmup_runs, threads=threads, rounds=rounds)
    rows = []
    for name, m in loaded.items():
        size, gzipped = measure.sizes(m.content)
        rows.append({"model": name, "KiB": round(size / 1024, 1), "gzip KiB": round(gzipped / 1024, 1),
                     "DENSIFY ops": m.ops().get("DENSIFY", 0)})
    table = pd.DataFrame(rows).set_index("model").join(timing)
    table.attrs.update(timing.attrs)
    return table
