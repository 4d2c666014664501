"""Lesson 06's search space: small image CNNs described by a `Spec`, what each costs as deployed
(MACs, parameters, int8 bytes, peak activation memory, latency), the microcontroller `Budget`,
the accuracy proxy (a short training) with Kendall's tau to judge it, and MLPerf Tiny's
reference ResNet-8.

A candidate has 1 to 4 stages, each two convolution-BN-ReLU layers of one width (a multiple of 16,
lesson 02's staircase), pooled between stages, then global average pooling, an optional dense
layer and the logits. `search.py` runs the search over this space.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np
import tf_keras as keras
from tf_keras import layers

from . import convert, internals, latency, measure, models, profiles, recipes
from .data import pipeline

if TYPE_CHECKING:
    import optuna

    from .data import ImageData

MAX_STAGES = 4
WIDTHS = tuple(range(16, 129, 16))  # filters per stage: whole multiples of 16
KERNEL_SIZES = (3, 5)
CONVS = ("regular", "separable")
POOLINGS = ("max", "average")
HEADS = (0, 32, 64, 128)  # 0: global average pooling straight to the logits
# Candidates with more MACs per image are not trained (their trials are pruned): a CPU trains one
# in minutes, not seconds. 40 M is 2.5x lesson 01's improved CNN; wide first stages with 5x5
# kernels reach 300 M.
MAX_MACS = 40_000_000


@dataclass(frozen=True)
class Spec:
    """One candidate CNN: the filters of each stage (1 to 4 stages), the kernel size, regular or
    depthwise-separable convolutions (the first convolution, on the image's 3 channels, is always
    regular), max or average pooling between stages, and the width of a dense layer before the
    logits (0: none)."""

    filters: tuple[int, ...]
    kernel_size: int = 3
    conv: str = "regular"
    pooling: str = "max"
    head: int = 0

    def __post_init__(self):
        if isinstance(self.filters, (str, bytes)) or not isinstance(self.filters, Iterable):
            raise TypeError(f"A spec's filters are one width per stage, e.g. Spec((16, 32)), or Spec((16,)) for one "
                            f"stage; got {self.filters!r}.")
        filters = tuple(self.filters)
        whole = {"filters": filters, "kernel_size": (self.kernel_size,), "head": (self.head,)}
        wrong = [f"{name} {getattr(self, name)!r}" for name, values in whole.items()
                 if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values)]
        if wrong:
            raise TypeError(f"A spec's filters, kernel_size and head are whole numbers (int), got {'; '.join(wrong)}: "
                            "write e.g. Spec((16, 32), kernel_size=3, head=0).")
        filters = tuple(map(int, filters))  # numpy integers too, so that to_json writes them
        object.__setattr__(self, "filters", filters)
        object.__setattr__(self, "kernel_size", int(self.kernel_size))
        object.__setattr__(self, "head", int(self.head))
        problems = []
        if not 1 <= len(filters) <= MAX_STAGES or any(f not in WIDTHS for f in filters):
            problems.append(f"filters {filters}: 1 to {MAX_STAGES} stages, each one of {WIDTHS}")
        for name, allowed in (("kernel_size", KERNEL_SIZES), ("conv", CONVS), ("pooling", POOLINGS), ("head", HEADS)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} {getattr(self, name)!r}: one of {allowed}")
        if problems:
            raise ValueError("Not a candidate of the search space: " + "; ".join(problems) + ".")

    @property
    def name(self) -> str:
        """A short name that tells the candidate, e.g. 'cnn_16-32-64_k3_sep_max_h0'."""
        return (f"cnn_{'-'.join(map(str, self.filters))}_k{self.kernel_size}_{self.conv[:3]}_"
                f"{self.pooling[:3]}_h{self.head}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Spec":
        return cls(**json.loads(text))


def suggest(trial: "optuna.trial.BaseTrial") -> Spec:
    """The candidate an Optuna trial proposes. Stage i's width (`filters_i`) is only asked for
    when the candidate has at least i stages, so every parameter a trial holds is one it uses."""
    stages = trial.suggest_int("stages", 1, MAX_STAGES)
    filters = tuple(trial.suggest_int(f"filters_{i}", WIDTHS[0], WIDTHS[-1], step=16) for i in range(1, stages + 1))
    return Spec(filters,
                kernel_size=trial.suggest_categorical("kernel_size", KERNEL_SIZES),
                conv=trial.suggest_categorical("conv", CONVS),
                pooling=trial.suggest_categorical("pooling", POOLINGS),
                head=trial.suggest_categorical("head", HEADS))


def _conv_bn_relu(filters: int, kernel_size: int, separable: bool, prefix: str) -> list[layers.Layer]:
    """A convolution without bias (batch norm has one), batch norm (momentum 0.9, as the course's
    other CNNs: short runs evaluate with settled statistics) and ReLU, named `prefix`_conv/_bn/_relu."""
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    return [conv(filters, kernel_size, padding="same", use_bias=False, name=f"{prefix}_conv"),
            layers.BatchNormalization(momentum=0.9, name=f"{prefix}_bn"),
            layers.ReLU(name=f"{prefix}_relu")]


def build(spec: Spec, input_shape=(32, 32, 3), num_classes: int = 10, *, seed: int | None = None) -> keras.Model:
    """The Keras model of `spec` (uncompiled), its layers named by stage; the logits layer computes
    in float32 whatever the global dtype policy. With a `seed`, the random state is seeded first, so
    the same spec starts from the same weights whatever ran before in this process."""
    if not isinstance(spec, Spec):
        raise TypeError(f"build takes a Spec, e.g. Spec((16, 32)), got {spec!r}.")
    models.check_input(input_shape, num_classes, smallest=2 ** (len(spec.filters) - 1))
    if seed is not None:
        keras.utils.set_random_seed(seed)
    pool = layers.MaxPooling2D if spec.pooling == "max" else layers.AveragePooling2D
    stack: list[layers.Layer] = [keras.Input(shape=input_shape)]
    for stage, filters in enumerate(spec.filters, start=1):
        if stage > 1:
            stack.append(pool(name=f"stage{stage}_pool"))
        for i in (1, 2):
            separable = spec.conv == "separable" and (stage, i) != (1, 1)
            stack += _conv_bn_relu(filters, spec.kernel_size, separable, f"stage{stage}_{i}")
    stack.append(layers.GlobalAveragePooling2D(name="global_pool"))
    if spec.head:
        stack.append(layers.Dense(spec.head, activation="relu", name="head_dense"))
    stack.append(layers.Dense(num_classes, dtype="float32", name="logits"))
    return keras.Sequential(stack, name=spec.name)


def resnet8(input_shape=(32, 32, 3), num_classes: int = 10) -> keras.Model:
    """MLPerf Tiny's image-classification reference (EEMBC's `resnet_v1_eembc`): a 3x3 convolution
    of 16 filters, three residual stacks of 16, 32 and 64 filters (the last two halve the image,
    with a strided 1x1 projection on the shortcut), average pooling and the logits. He-normal
    kernels with an L2 penalty of 1e-4, as in the reference; logits instead of its softmax, in float32.
    About 78.7k parameters and 12.5 M MACs on 32x32 images."""
    models.check_input(input_shape, num_classes)

    def conv(filters, kernel, strides, name):
        return layers.Conv2D(filters, kernel, strides=strides, padding="same", kernel_initializer="he_normal",
                             kernel_regularizer=keras.regularizers.l2(1e-4), name=name)

    inputs = keras.Input(shape=input_shape)
    x = layers.ReLU(name="stem_relu")(layers.BatchNormalization(name="stem_bn")(conv(16, 3, 1, "stem_conv")(inputs)))
    for stack, filters in enumerate((16, 32, 64), start=1):
        strides = 1 if stack == 1 else 2
        y = conv(filters, 3, strides, f"stack{stack}_conv1")(x)
        y = layers.ReLU(name=f"stack{stack}_relu1")(layers.BatchNormalization(name=f"stack{stack}_bn1")(y))
        y = layers.BatchNormalization(name=f"stack{stack}_bn2")(conv(filters, 3, 1, f"stack{stack}_conv2")(y))
        if strides != 1:
            x = conv(filters, 1, strides, f"stack{stack}_shortcut")(x)
        x = layers.ReLU(name=f"stack{stack}_relu2")(layers.Add(name=f"stack{stack}_add")([x, y]))
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    outputs = layers.Dense(num_classes, kernel_initializer="he_normal", dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name="resnet8")


# --------------------------------------------------------------------------- costs


def _type_bytes() -> dict[int, int]:
    """{.tflite tensor type number: bytes per element} for the numeric types."""
    sizes = {}
    for number, name in internals.tensor_type_names().items():
        try:
            sizes[number] = np.dtype(name).itemsize
        except TypeError:  # string, resource, variant: no fixed size
            continue
    return sizes


def peak_activation_bytes(content: bytes) -> int:
    """Peak activation memory of a .tflite model for one image: the most bytes of activation
    tensors (every non-constant tensor, the input and output included) alive at once, over the
    operators in the order the graph runs them. A tensor lives from the operator that writes it
    (the graph's start for an input) to the last operator that reads it (the end for an output).

    This is exact for that schedule with every tensor in its own bytes. What a microcontroller
    runtime allocates differs a little: its arena adds the scratch buffers some kernels ask for
    and any gaps its memory planner leaves (more), and may run reshapes in place (less)."""
    model = internals.flatbuffer_model(bytes(content))
    graph = model.subgraphs[0]
    ops = graph.operators or []
    sizes = _type_bytes()
    constant = {i for i, t in enumerate(graph.tensors)
                if t.buffer < len(model.buffers) and model.buffers[t.buffer].data is not None
                and len(model.buffers[t.buffer].data)}
    first = {int(i): -1 for i in graph.inputs}
    last = {int(i): len(ops) for i in graph.outputs}
    for step, op in enumerate(ops):
        for i in op.outputs:
            first.setdefault(int(i), step)
        for i in op.inputs:
            if i >= 0 and int(i) not in constant:
                last[int(i)] = max(last.get(int(i), step), step)
    live = np.zeros(len(ops) + 2, dtype=np.int64)  # one slot per step, plus before the first and after the last
    for index, start in first.items():
        if index in constant:
            continue
        tensor = graph.tensors[index]
        if tensor.type not in sizes:
            raise measure.MeasureError(f"Tensor {index} of this model has no fixed element size (type {tensor.type}).")
        nbytes = int(np.prod(tensor.shape if tensor.shape is not None else [], dtype=np.int64)) * sizes[tensor.type]
        live[start + 1: last.get(index, start) + 2] += nbytes
    return int(live.max())


@dataclass(frozen=True)
class Costs:
    """What one candidate costs: MACs and parameters of the Keras model, bytes and peak activation
    memory of its full-integer int8 conversion, and that conversion's median single-image latency
    on this machine (`latency_threads` threads)."""

    macs: int
    parameters: int
    int8_bytes: int
    peak_activation_bytes: int
    latency_ms: float
    latency_threads: int


def measure_costs(model: keras.Model, calibration: "ImageData | np.ndarray", *, latency_runs: int = 50,
                  warmup: int = 5, threads: int = 1) -> Costs:
    """The costs of `model`, converted to int8 with `calibration` images (an ImageData, or uint8 or
    [0, 1] float images; an untrained model sized as trained, `_sized_as_trained`) and timed on one
    of them, `latency_runs` times after `warmup` runs, on `threads` threads (one by default: several
    search workers may share the machine's cores)."""
    int8 = convert.to_litert(_sized_as_trained(model), "int8", data=calibration, num_threads=threads)
    images = calibration.x_train if hasattr(calibration, "x_train") else np.asarray(calibration)
    timing = latency.latency(int8.single_image_runner(images[0]), runs=latency_runs, warmup=warmup, threads=threads)
    return Costs(macs=measure.macs(model)[0], parameters=measure.parameters(model)[0], **_int8_costs(int8.content),
                 latency_ms=timing.median_ms, latency_threads=threads)


def _int8_costs(content: bytes) -> dict[str, int]:
    return {"int8_bytes": len(content), "peak_activation_bytes": peak_activation_bytes(content)}


def _sized_as_trained(model: keras.Model, seed: int = 0) -> keras.Model:
    """`model`, or where it has all-zero weight arrays (an untrained model's biases, batch norm
    betas and moving means) a copy with small random values in them. The converter stores identical
    buffers once, so an untrained model's int8 file is 3-5% smaller than the same model's trained;
    the copy's file has the trained model's size to the byte (checked for the course's CNNs)."""
    weights = model.get_weights()
    if all(w.any() for w in weights):
        return model
    rng = np.random.default_rng(seed)
    copy = keras.models.clone_model(model)
    copy.set_weights([w if w.any() else rng.normal(0.0, 0.01, w.shape).astype(w.dtype) for w in weights])
    return copy


def budget_costs(model: keras.Model, calibration: "ImageData | np.ndarray") -> dict[str, int]:
    """The costs a `Budget` limits (MACs, int8 bytes, peak activation bytes) of `model`, so that a
    search checks a candidate before it spends a training on it. None of them depends on the
    weights' values once the untrained model's zero arrays are filled (`_sized_as_trained`)."""
    content = convert.to_litert(_sized_as_trained(model), "int8", data=calibration).content
    return {"macs": measure.macs(model)[0], **_int8_costs(content)}


def _as_mapping(costs: "Costs | Mapping[str, float]", names=()) -> "Mapping[str, float]":
    """`costs` as a mapping: a Costs' fields, or a mapping such as a trial's user attributes as it is;
    refused if it lacks one of the costs `names`."""
    values = dataclasses.asdict(costs) if isinstance(costs, Costs) else costs
    missing = [name for name in names if name not in values]
    if missing:
        raise ValueError(f"The costs have no {', '.join(missing)}: pass a Costs (measure_costs), or a mapping with "
                         f"every cost the budget limits ({', '.join(names)}), such as budget_costs gives.")
    return values


@dataclass(frozen=True)
class Budget:
    """Limits a deployed model must keep: int8 bytes (flash), peak activation bytes (RAM) and MACs."""

    int8_bytes: int
    peak_activation_bytes: int
    macs: int

    def __post_init__(self):
        for name, limit in dataclasses.asdict(self).items():
            if not (isinstance(limit, numbers.Real) and limit > 0):
                raise ValueError(f"A budget's limits are positive numbers, got {name}={limit!r}.")

    def violations(self, costs: "Costs | Mapping[str, float]") -> list[float]:
        """Per limit, how far `costs` (Costs, or a mapping with the same keys such as a trial's user
        attributes) lie beyond it, as a share of the limit: at most 0 within it (Optuna's
        constraints convention)."""
        limits = dataclasses.asdict(self)
        values = _as_mapping(costs, limits)
        return [values[name] / limit - 1 for name, limit in limits.items()]

    def allows(self, costs: "Costs | Mapping[str, float]") -> bool:
        return all(v <= 0 for v in self.violations(costs))

    def within(self, costs: "Costs | Mapping[str, float]", *names: str) -> "Budget":
        """This budget with the limits `names` (all by default) lowered to `costs` where they are
        lower: what a model may spend to dominate, in those costs, a reference that costs `costs`."""
        limits = dataclasses.asdict(self)
        unknown = set(names) - set(limits)
        if unknown:
            raise ValueError(f"A budget has no limit {', '.join(sorted(unknown))}; its limits: {', '.join(limits)}.")
        values = _as_mapping(costs, names or limits)
        return Budget(**{name: min(limit, int(values[name])) if name in (names or limits) else limit
                         for name, limit in limits.items()})

    def exceeded(self, costs: "Costs | Mapping[str, float]") -> list[str]:
        """The limits `costs` exceed, each as 'name value > limit'."""
        values = _as_mapping(costs)
        return [f"{name} {values[name]:,} > {limit:,}" for (name, limit), violation
                in zip(dataclasses.asdict(self).items(), self.violations(values)) if violation > 0]


# A microcontroller with 100 KiB of flash for the model and 64 KiB of RAM for activations, at
# most 15 M MACs per image (MLPerf Tiny's ResNet-8 needs 12.5 M).
MICROCONTROLLER = Budget(int8_bytes=100 * 1024, peak_activation_bytes=64 * 1024, macs=15_000_000)


# --------------------------------------------------------------------------- accuracy proxy


@dataclass(frozen=True)
class Proxy:
    """A short training that stands in for a candidate's accuracy: `epochs` epochs on the first
    `train_images` training images (None: all), Adam from `learning_rate` down a cosine to zero,
    then the accuracy on the first `val_images` validation images (None: all)."""

    train_images: int | None
    val_images: int | None
    epochs: int
    learning_rate: float = 2e-3


PROXIES = {
    "smoke": Proxy(train_images=1_000, val_images=500, epochs=1),
    "workshop": Proxy(train_images=4_000, val_images=1_000, epochs=2),
    "full": Proxy(train_images=10_000, val_images=5_000, epochs=3),
}


def proxy_for(profile: profiles.Profile | str | None = None) -> Proxy:
    """The accuracy proxy of a run profile (default: the current one)."""
    if profile is None:
        profile = profiles.current()
    return PROXIES[profiles.get(profile).name if isinstance(profile, str) else profile.name]


def proxy_accuracy(model: keras.Model, data: "ImageData", proxy: Proxy, *, seed: int = 0) -> float:
    """Train `model` (in place) as `proxy` says and return its validation accuracy. The seed fixes
    the batches, their augmentation and dropout; the initial weights were drawn when the model was
    built (`build(..., seed=...)` fixes those too)."""
    recipes.check_classes(model, data)
    keras.utils.set_random_seed(seed)
    x, y = data.x_train[: proxy.train_images], data.y_train[: proxy.train_images]
    steps = proxy.epochs * math.ceil(len(x) / data.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(proxy.learning_rate, decay_steps=steps)
    recipes.compile_model(model, schedule)
    model.fit(pipeline(x, y, batch_size=data.batch_size, training=True, seed=seed), epochs=proxy.epochs, verbose=0)
    return measure.accuracy(model, data.x_val[: proxy.val_images], data.y_val[: proxy.val_images])


def kendall_tau(a, b) -> float:
    """Kendall's rank correlation (tau-b, ties counted) between two scores of the same candidates,
    such as proxy and fully trained accuracies: 1 when they rank them alike, -1 when reversed.
    A score equal for every candidate ranks none of them, and tau-b is 0/0 there: this returns 0,
    as for unrelated rankings (scipy would give NaN)."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"kendall_tau needs two sequences of the same length, at least 2: got {a.shape} and {b.shape}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("kendall_tau needs finite scores: a NaN or infinite score (a trial that failed or diverged) "
                         "ranks nothing; leave that candidate out of both sequences.")
    if np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    return float(stats.kendalltau(a, b).statistic)
