"""Converted models: running them with LiteRT (`ai-edge-litert`, the successor of
tf.lite.Interpreter), counting their weights and MACs, seeing where their bytes go, and timing
several of them side by side."""
from __future__ import annotations

import collections
from pathlib import Path
from typing import Mapping

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from . import _silenced_stderr, hardware, internals, latency, measure, paths, profiles
from .data import model_input
from .measure import LayerMacs, MeasureError


class LiteRTModel:
    """A converted (.tflite) model with Keras-like `predict`, handling quantized inputs and outputs.

    `predict` takes uint8 images or float images in [0, 1] (see `data.model_input`) and returns float
    logits whatever the model's input and output types are (float32, or int8/uint8 with their
    scale and zero point).
    `xnnpack=False` runs LiteRT's built-in kernels instead of its default XNNPACK delegate.
    """

    def __init__(self, model_content: bytes | str | Path, name: str = "litert_model", num_threads: int | None = None,
                 xnnpack: bool = True):
        if isinstance(model_content, (str, Path)):
            path = Path(model_content)
            if not path.is_file():
                raise FileNotFoundError(f"No LiteRT model at {paths.display(path)}: convert a Keras model first (see lesson 03).")
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

    def single_image_runner(self, image: np.ndarray) -> "SingleImageRunner":
        """A no-argument callable running one inference on `image` in an interpreter of its own,
        which `renew()` replaces (for latency measurements: see `SingleImageRunner`)."""
        return SingleImageRunner(self, image)

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Float logits for uint8 images or float images in [0, 1], `batch_size` images per invocation."""
        x = model_input(x, self.name)
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
        return collections.Counter(op["op_name"] for op in internals.ops_details(self._single))

    def _weighted_ops(self):
        """(op kind, output name, weight values, output positions per image) of each MAC-heavy op."""
        interpreter = self._single
        ops = internals.ops_details(interpreter)
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

    def kernels(self) -> dict[str, np.ndarray]:
        """{op output name: weights} of the conv and fully-connected ops, as stored (int8 in a
        full-integer model), output channel first (a depthwise kernel, stored (1, kh, kw, channels),
        is turned so)."""
        return {name: np.moveaxis(np.asarray(w), -1, 0) if kind == "DEPTHWISE_CONV_2D" else np.asarray(w)
                for kind, name, w, _ in self._weighted_ops()}

    def distinct_per_channel(self) -> int:
        """The most distinct values any output channel of any conv/fully-connected kernel holds
        (the integers of an int8 model): at most the clusters (and zero) after clustering."""
        return max((len(np.unique(row)) for w in self.kernels().values() for row in w.reshape(w.shape[0], -1)),
                   default=0)

    def macs(self) -> tuple[int, int]:
        """(dense MACs, MACs of the non-zero weights) for one image."""
        per_op = self.layer_macs()
        return sum(m.macs for m in per_op), sum(m.nonzero_macs for m in per_op)

    def parameters(self) -> tuple[int, int]:
        """(parameters, non-zero parameters): the weights and biases the conv and fully-connected
        ops read, each stored tensor counted once (the converter shares identical constants
        and drops all-zero biases, so an untrained model can count fewer than its Keras source)."""
        interpreter = self._single
        every_op = internals.ops_details(interpreter)
        ops = [op for op in every_op if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
        producer = {out: op for op in every_op for out in op["outputs"]}
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


# --------------------------------------------------------------------------- where the bytes go


def _flatbuffer(content: bytes) -> bytes:
    """`content` as bytes, if it is a .tflite flatbuffer (file identifier "TFL3"); else a clear error."""
    content = bytes(content)
    if content[4:8] != b"TFL3":
        raise ValueError("These bytes are not a .tflite model (no TFL3 identifier): pass the bytes a "
                         "TFLiteConverter returned, or a LiteRTModel's .content.")
    return content


def strip_names(content: bytes) -> bytes:
    """The same .tflite model without the strings it does not need to run: tensor and subgraph
    names, its description and its signatures (what deployment tools do to save bytes). The ops
    and weights are untouched; without signatures the model is run by its input and output
    tensors, as `LiteRTModel` does."""
    return internals.strip_strings(_flatbuffer(content))


def size_table(contents: Mapping[str, bytes]):
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


def size_breakdown(content: bytes):
    """Where the bytes of a .tflite flatbuffer go: its constant tensors by type (float32 weights;
    int8 weights and int32 biases in an integer model), the quantization parameters (a float32
    scale and an int64 zero point per tensor, or per channel), and the rest (the graph, names,
    metadata). One row per part, with bytes and share of the file."""
    import pandas as pd

    content = _flatbuffer(content)
    model = internals.flatbuffer_model(content)
    type_names = internals.tensor_type_names()
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


class SingleImageRunner:
    """One inference on one image per call, in an interpreter of its own. Two interpreters of the
    same model can differ in latency by a few percent up to a third for as long as they live (on
    2 threads; measured on an Intel Xeon with `benchmarks/verdict_false_alarms.py`), so a
    comparison that timed one interpreter per model would read that luck as the model's cost.
    `renew()` replaces the interpreter with a fresh one; `latency.interleaved` renews every runner
    at the start of each round, so the rounds sample interpreters as well as time."""

    def __init__(self, model: LiteRTModel, image: np.ndarray):
        self.model = model
        image = np.asarray(image)
        if image.shape != model.input_shape:
            hint = ": pass one of its images, e.g. images[0]" if image.shape[1:] == model.input_shape else ""
            raise ValueError(f"{model.name} runs one image of shape {model.input_shape} at a time (not a batch), "
                             f"got shape {image.shape}{hint}.")
        self._x = model._quantize_input(model_input(image, model.name)[None])
        self.renew()

    def renew(self) -> None:
        """Run the next inferences in a new interpreter (the first one is slower: warm it up)."""
        self._interpreter = self.model._interpreter(batch=1)
        self._in_index = self._interpreter.get_input_details()[0]["index"]
        self._out_index = self._interpreter.get_output_details()[0]["index"]

    def __call__(self) -> np.ndarray:
        self._interpreter.set_tensor(self._in_index, self._x)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._out_index)


# --------------------------------------------------------------------------- timing side by side


def compare(models: Mapping[str, "bytes | LiteRTModel"], image: np.ndarray, *,
            profile: profiles.Profile | None = None, threads: int | None = None, xnnpack: bool = True):
    """Size, gzipped size, DENSIFY ops and single-image latency of converted models, timed
    together in finely interleaved rounds on the same number of threads (`threads`, default:
    this machine's) with the profile's runs (see `latency.interleaved`; `xnnpack=False`: LiteRT's
    built-in kernels). Each model's latency is also a ratio to the first model's ("x ref"),
    with its 95% confidence interval over rounds and a verdict. A DataFrame indexed by name.
    For models whose accuracy matters too, use `compare.measure_together`."""
    import pandas as pd

    profile = profile or profiles.current()
    threads = threads or hardware.cpu_threads()
    loaded = {name: LiteRTModel(m.content if isinstance(m, LiteRTModel) else m, name=name, num_threads=threads,
                                xnnpack=xnnpack) for name, m in models.items()}
    timing = latency.interleaved({name: m.single_image_runner(image) for name, m in loaded.items()},
                                 runs=profile.latency_runs, warmup=profile.warmup_runs, threads=threads)
    reference = next(iter(loaded))
    rows = []
    for name, m in loaded.items():
        size, gzipped = measure.sizes(m.content)
        ratio = timing.latency_ratio(name, reference)
        stats = timing.stats(name)
        rows.append({"model": name, "KiB": round(size / 1024, 1), "gzip KiB": round(gzipped / 1024, 1),
                     "DENSIFY ops": m.ops().get("DENSIFY", 0), "latency ms": round(stats.median_ms, 4),
                     "p95 ms": round(stats.p95_ms, 4), "x ref": round(ratio.median, 3),
                     "CI low": round(ratio.low, 3), "CI high": round(ratio.high, 3),
                     "verdict": "reference" if name == reference else ratio.verdict()})
    table = pd.DataFrame(rows).set_index("model")
    table.attrs.update(threads=threads, rounds=timing.rounds, runs=timing.runs, reference=reference)
    return table
