"""Training under Keras dtype policies (float32, mixed_float16, mixed_bfloat16), measured together,
and the gradients that loss scaling protects.

Every policy trains its own copy of one model (same initial weights, same batches, same number
of steps) in interleaved rounds: after a warm-up round (untimed: it traces each training step),
each round every policy in turn (the order rotating) trains a short block of steps, so a slow
spell of the machine hits every policy alike. Per round and policy: images per second over the
timed steps (the first steps of each block, which refill caches after the switch, are
excluded), the energy of the block by `energy.EnergyMeter`, and the training loss. Afterwards: throughput and energy as
ratios to the reference policy with their 95% confidence intervals and verdicts, and test
accuracy with its interval and a paired verdict against the reference.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import sys
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np
import tf_keras as keras

from . import energy, hardware, measure, profiles, recipes, results, stats
from .tabular import TableDisplay
from .data import ImageData
from .data.pipelines import normalise

if TYPE_CHECKING:
    import pandas as pd

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class Plan:
    """How much training the policies' comparison does: the model's widths and batch size, and the
    steps per policy: a warm-up round of `warmup + steps` untimed steps, then `rounds` blocks of
    `warmup` untimed and `steps` timed steps."""

    widths: tuple[int, ...]
    batch_size: int
    rounds: int
    steps: int  # timed steps per policy and round
    warmup: int = 1  # untimed steps at the start of each block

    def __post_init__(self):
        for name, least in (("batch_size", 1), ("rounds", 1), ("steps", 1), ("warmup", 0)):
            if getattr(self, name) < least:
                raise ValueError(f"A plan's {name} must be at least {least}, got {getattr(self, name)}.")

    @property
    def steps_per_policy(self) -> int:
        return (self.rounds + 1) * (self.warmup + self.steps)

    def epochs(self, train_images: int) -> float:
        """Epochs over `train_images` images that each policy trains."""
        return self.steps_per_policy * self.batch_size / train_images

    def describe(self, train_images: int) -> str:
        return (f"widths {self.widths}, batches of {self.batch_size}; per policy {self.steps_per_policy} steps "
                f"({self.epochs(train_images):.2f} epochs of {train_images:,} images): a warm-up round, then "
                f"{self.rounds} rounds of {self.warmup} untimed + {self.steps} timed steps")


# Widths and batch sizes are whole multiples of 8 (tensor cores) and of 16 (XNNPACK's tiles). The
# budgets fit each profile on a 2-core CPU, where an emulated 16-bit format trains several times
# slower than float32 (lesson 04's `full` runs: float16 at 0.16x on the AVX-512 EPYC; float16 at
# 0.34x and bfloat16 at 0.11x on the AVX2 EPYC; over 100x through oneDNN on CPUs with AVX-512 FP16,
# where lesson 04 trains it with XLA, hardware.ReducedPrecision.float16_needs_xla): the slowest
# policy sets the cost, since every policy trains the same steps. Per policy: smoke 0.6 epoch of its
# 4,500 images, workshop 2 epochs of 9,000, full 3 of 45,000 (accuracy parity, not full training,
# is the point: lesson 01's recipe trains the CNN fully). On a CPU without bfloat16 instructions
# both 16-bit policies are emulated: there the workshop trains one epoch per policy, to stay within
# its 10 minutes (EMULATED_PLANS; with two, lesson 04's workshop run took 625 s on the AVX2 EPYC).
PLANS = {
    "smoke": Plan(widths=(16, 32, 64), batch_size=64, rounds=6, steps=5),
    "workshop": Plan(widths=(32, 64, 128), batch_size=64, rounds=10, steps=25),
    "full": Plan(widths=(32, 64, 128), batch_size=128, rounds=10, steps=96, warmup=2),
}
EMULATED_PLANS = {"workshop": dataclasses.replace(PLANS["workshop"], steps=12)}


def plan_for(profile: profiles.Profile | None = None, *, gpu: bool | None = None,
             emulated: bool | None = None) -> Plan:
    """The plan for `profile` (default: the current one). On a GPU (`gpu`, default: whether
    TensorFlow sees one) the model is twice as wide and the batches four times as large: a small
    model leaves a GPU waiting for kernel launches, and mixed precision can only speed up the
    arithmetic. On a CPU that emulates bfloat16 (`emulated`, default: whether this one lacks
    bfloat16 instructions) a profile in EMULATED_PLANS trains fewer steps, to keep its budget."""
    name = (profile or profiles.current()).name
    if gpu is None:
        import tensorflow as tf

        gpu = bool(tf.config.list_physical_devices("GPU"))
    if gpu:
        chosen = PLANS[name]
        return dataclasses.replace(chosen, widths=tuple(2 * w for w in chosen.widths), batch_size=4 * chosen.batch_size)
    if emulated is None:
        emulated = hardware.reduced_precision([]).expect("mixed_bfloat16")[0] in ("slower", "likely slower")
    return EMULATED_PLANS.get(name, PLANS[name]) if emulated else PLANS[name]


def float32_copy(model: keras.Model) -> keras.Model:
    """`model` rebuilt with every layer in float32, with the same weights: how a model trained
    under a mixed policy is deployed (its variables are float32 already; the TFLite converter
    does not take a graph that computes in float16 or bfloat16)."""
    def plain(config):
        if isinstance(config, dict):
            if config.get("class_name") == "Policy":
                return "float32"
            return {key: plain(value) for key, value in config.items()}
        if isinstance(config, list):
            return [plain(value) for value in config]
        return config

    copy = type(model).from_config(plain(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def activation_gradients(model: keras.Model, x, y) -> dict[str, np.ndarray]:
    """{layer name: gradient of the loss with respect to the layer's output} for the Conv2D layers of
    a Sequential `model` on one batch (images `x`, labels `y`), in the model's precision (float32 for
    a float32 model): what backpropagation carries back through the network, layer by layer. The
    model is left as it was (batch norm's moving statistics included)."""
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    outputs = {}
    saved = model.get_weights()  # batch norm in training mode updates its moving statistics: put them back
    with tf.GradientTape() as tape:
        h = tf.convert_to_tensor(x)
        for layer in model.layers:
            h = layer(h, training=True)
            if isinstance(layer, keras.layers.Conv2D):
                tape.watch(h)
                outputs[layer.name] = h
        loss = loss_fn(y, h)
    gradients = tape.gradient(loss, list(outputs.values()))
    model.set_weights(saved)
    return {name: g.numpy() for name, g in zip(outputs, gradients)}


CONVOLUTION_PARTS = ("forward", "input gradient", "weight gradient")


def _convolution_inputs(channels: int, batch_size: int, size: int):
    """The float32 tensors one 3x3 convolution's training step starts from: input maps, kernel and
    the gradient arriving from the layer above (random normal, seeded)."""
    import tensorflow as tf

    if min(channels, batch_size, size) < 1:
        raise ValueError(f"channels, batch_size and size must be at least 1, got {channels}, {batch_size} and {size}.")
    generator = tf.random.Generator.from_seed(0)
    maps, kernel = (batch_size, size, size, channels), (3, 3, channels, channels)
    return generator.normal(maps), generator.normal(kernel), generator.normal(maps)


def _convolution_part(part: str, x, w, dy):
    """One part of a 3x3 convolution's training step, in the inputs' dtype: the forward pass, or
    backpropagation's gradient towards its input or its weights, from a gradient tape as Keras
    computes it (a graph leaves out the forward pass the gradient does not need)."""
    import tensorflow as tf

    if part == "forward":
        return tf.nn.conv2d(x, w, 1, "SAME")
    with tf.GradientTape() as tape:
        tape.watch([x, w])
        y = tf.nn.conv2d(x, w, 1, "SAME")
    return tape.gradient(y, x if part == "input gradient" else w, output_gradients=dy)


def convolution_parts(channels: int, *, batch_size: int, size: int) -> dict[tuple[str, str], Callable]:
    """{(part, format): a compiled function computing that part of one 3x3 convolution's training
    step in that format}; see `convolution_speed`."""
    import tensorflow as tf

    inputs = _convolution_inputs(channels, batch_size, size)
    parts = {}
    for dtype in ("float32", "float16", "bfloat16"):
        cast = tuple(tf.cast(t, dtype) for t in inputs)
        for part in CONVOLUTION_PARTS:
            # a graph, as Keras trains: TensorFlow picks its kernels there (a partial, not a lambda:
            # TensorFlow would count the nine graphs of one lambda as one function retracing)
            parts[(part, dtype)] = tf.function(functools.partial(_convolution_part, part, *cast))
    return parts


def convolution_error(channels: int, *, batch_size: int = 16, size: int = 32, jit_compile: bool = False) -> "pd.DataFrame":
    """How exactly this machine's kernels compute a 16-bit convolution's training step: the parts
    of `convolution_speed`, in float32, float16 and bfloat16 (compiled by XLA if `jit_compile`),
    against the same parts computed in float64 from the same inputs rounded to that format. Per
    part and format: the relative error (root mean square error over root mean square value), and
    that error as a multiple of the least any kernel giving its result in that format can have, the
    float64 result rounded once (1.0: as exact as the format allows; more: the kernel rounded on
    the way, such as partial sums kept in 16 bits)."""
    import pandas as pd
    import tensorflow as tf

    inputs = _convolution_inputs(channels, batch_size, size)

    def relative(value, exact):
        return float(np.sqrt(np.mean((value - exact) ** 2)) / np.sqrt(np.mean(exact ** 2)))

    rows = []
    for dtype in ("float32", "float16", "bfloat16"):
        cast = tuple(tf.cast(t, dtype) for t in inputs)
        wide = tuple(tf.cast(t, "float64") for t in cast)  # the same numbers the kernel gets, in float64
        for part in CONVOLUTION_PARTS:
            kernel = tf.function(functools.partial(_convolution_part, part, *cast), jit_compile=jit_compile)
            exact = _convolution_part(part, *wide)
            error = relative(tf.cast(kernel(), "float64").numpy(), exact.numpy())
            rounding = relative(tf.cast(tf.cast(exact, dtype), "float64").numpy(), exact.numpy())
            rows.append({"part": part, "format": dtype, "relative error": float(f"{error:.3g}"),
                         "x rounding once": round(error / rounding, 1) if rounding else float("nan")})
    table = pd.DataFrame(rows).set_index(["part", "format"])
    table.attrs.update(channels=channels, batch_size=batch_size, size=size, jit_compile=jit_compile)
    return table


def convolution_speed(channels: int, *, batch_size: int = 16, size: int = 32, runs: int = 20) -> "pd.DataFrame":
    """Where 16-bit floats cost time on this machine, before any training: one 3x3 convolution of
    `channels` channels on `batch_size` maps of `size` x `size`, its three parts of a training
    step (the forward pass; backpropagation's gradient towards its input, passed to the layer
    below; and towards its weights, for the update; each from a gradient tape, as Keras computes
    them), in float32, float16 and bfloat16, timed interleaved (`latency.interleaved`, `runs` calls
    each). Per part and format: the median milliseconds and the ratio to float32's, with its 95%
    CI and verdict; the rows "training step" add the three parts up per round, as a step of this
    convolution costs."""
    import pandas as pd

    from . import latency

    parts = convolution_parts(channels, batch_size=batch_size, size=size)
    runners = {key: (lambda graph=graph: graph().numpy()) for key, graph in parts.items()}
    timing = latency.interleaved(runners, runs=runs, warmup=2, threads=hardware.cpu_threads())
    per_round = {key: np.median(t, axis=1) for key, t in timing.times_ms.items()}
    rows = []
    for part in (*CONVOLUTION_PARTS, "training step"):
        for dtype in ("float32", "float16", "bfloat16"):
            if part == "training step":
                ms = sum(per_round[(p, dtype)] for p in CONVOLUTION_PARTS)
                ref = sum(per_round[(p, "float32")] for p in CONVOLUTION_PARTS)
            else:
                ms, ref = per_round[(part, dtype)], per_round[(part, "float32")]
            ratio = stats.median_interval(ms / ref)
            rows.append({"part": part, "format": dtype, "ms": round(float(np.median(ms)), 2),
                         "x float32": round(ratio.median, 2), "CI": f"{ratio.low:.2f}-{ratio.high:.2f}",
                         "verdict": "reference" if dtype == "float32" else ratio.verdict(words=("faster", "slower"))})
    table = pd.DataFrame(rows).set_index(["part", "format"])
    table.attrs.update(rounds=timing.rounds, channels=channels, batch_size=batch_size, size=size)
    return table


@dataclass(frozen=True)
class Setting:
    """One way to train in a comparison: a dtype policy, with XLA or not, and a seed (None: the
    comparison's) for the initial weights and the batch order."""

    policy: str
    jit_compile: bool = False
    seed: int | None = None


def _settings(policies) -> dict[str, Setting]:
    """{label: Setting} from policy names, or from {label: policy name or Setting}."""
    if isinstance(policies, str):
        raise ValueError(f"policies takes several policy names, e.g. training.POLICIES or [{policies!r}], not one: "
                         f"got {policies!r}.")
    if not isinstance(policies, Mapping):
        policies = {name: name for name in policies}
    found = {}
    for label, setting in policies.items():
        setting = Setting(setting) if isinstance(setting, str) else setting
        keras.mixed_precision.Policy(setting.policy)  # an unknown policy name raises here
        found[str(label)] = setting
    if not found:
        raise ValueError("No policies to train: pass policy names, e.g. training.POLICIES.")
    return found


def _memory(device: str | None) -> float | None:
    """Peak bytes TensorFlow allocated on `device` since the last reset (a GPU), else None."""
    if device is None:
        return None
    import tensorflow as tf

    return float(tf.config.experimental.get_memory_info(device)["peak"])


def _peak_rss() -> float | None:
    """The process's peak resident memory in bytes (Linux reports KiB, macOS bytes); None where the
    OS has no `resource` module (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak if sys.platform == "darwin" else peak * 1024)


@dataclass
class _Run:
    """One setting's model in training."""

    label: str
    setting: Setting
    model: keras.Model
    step: Callable
    batches: object  # iterator of training batches


def _prepare(label: str, setting: Setting, build, images, plan: Plan, seed: int, learning_rate: float) -> _Run:
    """`build()` under the setting's policy, compiled with Adam (learning rate falling to zero along a
    cosine over the plan's steps), and an iterator over the training batches (the same for every
    setting of the same seed)."""
    seed = setting.seed if setting.seed is not None else seed
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(setting.policy)
    generators = keras.backend.experimental.is_tf_random_generator_enabled()
    # Random layers (dropout) with a generator of their own, seeded here: the default, stateful
    # random ops, would share their state with the other settings' models trained in between.
    keras.backend.experimental.enable_tf_random_generator()
    try:
        keras.utils.set_random_seed(seed)
        model = build()
    finally:
        keras.mixed_precision.set_global_policy(previous)
        if not generators:
            keras.backend.experimental.disable_tf_random_generator()
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=plan.steps_per_policy)
    # Under mixed_float16, compile wraps Adam in a LossScaleOptimizer.
    model.compile(optimizer=keras.optimizers.Adam(schedule), jit_compile=setting.jit_compile,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return _Run(label, setting, model, model.make_train_function(), _batches(images, plan.batch_size, seed))


def _batches(images, batch_size: int, seed: int):
    """An endless iterator of shuffled batches of normalised images from `images` (a tf.data.Dataset
    of single (image, label) pairs), all of `batch_size`: epochs run into each other, so no short
    last batch makes TensorFlow trace the step again."""
    import tensorflow as tf

    ds = images.shuffle(images.cardinality(), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(batch_size, drop_remainder=True).map(lambda x, y: (normalise(x), y))
    return iter(ds.prefetch(tf.data.AUTOTUNE))


def _block(run: _Run, steps: int, warmup: int, meter: energy.EnergyMeter, device: str | None):
    """Train `warmup` untimed then `steps` timed steps; (timed seconds, energy reading of the whole
    block, mean loss of the block, peak device bytes or None)."""
    import tensorflow as tf

    run.model.reset_metrics()
    if device is not None:
        tf.config.experimental.reset_memory_stats(device)
    with meter:
        for _ in range(warmup):
            logs = run.step(run.batches)
        if warmup:
            float(logs["loss"])  # wait for the device
        start = time.perf_counter()
        for _ in range(steps):
            logs = run.step(run.batches)
        loss = float(logs["loss"])
        seconds = time.perf_counter() - start
    return seconds, meter.reading, loss, _memory(device)


@dataclass(repr=False)
class PolicyComparison(TableDisplay):
    """Policies trained together: per round and policy the throughput, energy and loss, the
    trained models, and a table of ratios and verdicts against the reference policy."""

    id: str
    title: str
    lesson: str
    reference: str
    plan: Plan
    table: "pd.DataFrame"  # one row per policy, every figure
    throughput: dict[str, np.ndarray]  # label -> images/s of each round
    joules: dict[str, np.ndarray]  # label -> joules per image of each round
    losses: dict[str, np.ndarray]  # label -> mean training loss of each round
    correct: dict[str, np.ndarray]  # label -> per test image, right or not
    models: dict[str, keras.Model]
    memory: str  # what the memory figures are
    energy_method: str
    energy_measured: bool
    profile: str
    data: str
    hardware: str
    timestamp: str

    def speed_table(self) -> "pd.DataFrame":
        """Does it train faster? Throughput, time per epoch, memory and energy, as ratios to the reference."""
        memory = [c for c in self.table.columns if c.startswith("peak")]
        energy_column = next(c for c in self.table.columns if c.startswith("mJ/image"))
        return self.table[["compute", "images/s", "x ref", "CI", "speed verdict", "s/epoch", *memory,
                           energy_column, "training J", "energy x ref", "energy verdict"]]

    def accuracy_table(self) -> "pd.DataFrame":
        """Is it as accurate? Test accuracy, its 95% interval and the paired verdict against the reference."""
        return self.table[["accuracy %", "95% interval", "vs ref (points)", "accuracy verdict", "McNemar p"]]

    def conditions(self) -> str:
        """What the figures were measured on, and how (one paragraph)."""
        method = f"energy {self.energy_method}"
        if not self.energy_measured:
            method += f" (an estimate, {energy.ESTIMATE_LIMIT})"
        train_images = self.table.attrs["train_images"]
        return (f"Trained together: {self.profile} profile, {self.data}; {self.hardware}; "
                f"{self.plan.describe(train_images)}, the policies in turn each round; throughput over the "
                f"timed steps; {method}, over each whole block; memory: {self.memory}; ratios are to "
                f"'{self.reference}' (median over rounds, 95% CI); accuracy on {self.table.attrs['test_images']:,} "
                f"test images, verdicts from an exact McNemar test on the same images.")

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "lesson": self.lesson, "reference": self.reference,
                "timestamp": self.timestamp, "conditions": self.conditions(),
                "rows": self.table.reset_index().to_dict(orient="records")}

    def plot_losses(self):
        """A figure: each policy's mean training loss per round, against the images trained."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2))
        images = np.arange(2, self.plan.rounds + 2) * (self.plan.warmup + self.plan.steps) * self.plan.batch_size
        for label, losses in self.losses.items():
            ax.plot(images, losses, marker="o", label=label)
        ax.set_xlabel("training images seen")
        ax.set_ylabel("training loss (mean of the round)")
        ax.set_title(self.title, fontsize=10)
        ax.legend()
        fig.tight_layout()
        return fig

    def _shown(self) -> "pd.DataFrame":
        return self.table


def compare_policies(build: Callable[[], keras.Model], data: ImageData, *, policies=POLICIES,
                     plan: Plan | None = None, lesson: str, title: str = "", learning_rate: float = 2e-3,
                     seed: int = 0, profile: profiles.Profile | None = None, record: bool = True,
                     energy_method: str = "auto", device: str | None = "auto") -> PolicyComparison:
    """Train a model of `build()` (called under each policy) once per policy, together in
    interleaved rounds, and measure each: training throughput (warm-up steps excluded), time per
    epoch, peak memory, energy, and test accuracy with a paired verdict against the first policy.

    policies: policy names, or {label: policy name or Setting} (XLA, another seed).
    device: where peak memory is read ("auto": the first GPU if there is one; None: process RSS).
    Records the comparison (`results.record_training`) unless `record=False`."""
    import pandas as pd
    import tensorflow as tf

    settings = _settings(policies)
    learning_rate = recipes.check_learning_rate(learning_rate)
    profile = profile or profiles.current()
    plan = plan or plan_for(profile)
    if device == "auto":
        device = "GPU:0" if tf.config.list_physical_devices("GPU") else None
    images = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))  # one copy for every run
    runs = [_prepare(label, setting, build, images, plan, seed, learning_rate) for label, setting in settings.items()]
    recipes.check_classes(runs[0].model, data, "build()'s model")
    meter = energy.EnergyMeter(energy_method)
    measured = _train(runs, plan, meter, device)
    x_test = np.asarray(data.x_test)
    correct = {r.label: measure.correct(r.model, x_test, data.y_test) for r in runs}
    reference = runs[0].label
    rows = [_row(run, measured, correct, reference, len(data.x_train), device, meter.reading.measured) for run in runs]
    table = pd.DataFrame(rows).set_index("policy")
    table.attrs.update(rounds=plan.rounds, train_images=len(data.x_train), test_images=len(x_test), reference=reference)
    rss = _peak_rss()
    memory = (f"peak {device} memory TensorFlow allocated during each policy's blocks "
              "(tf.config.experimental.get_memory_info; every model resident)" if device else
              f"this CPU reports no memory per model; the process's peak RSS was {rss / 2**30:.2f} GiB, "
              "all policies' models together" if rss is not None else
              "this CPU reports no memory per model, and this OS no peak memory of the process")
    comparison = PolicyComparison(
        id=uuid.uuid4().hex[:12], title=title or f"Lesson {lesson}: {len(runs)} dtype policies trained together",
        lesson=str(lesson), reference=reference, plan=plan, table=table, throughput=measured["throughput"],
        joules=measured["joules"], losses=measured["losses"], correct=correct, models={r.label: r.model for r in runs},
        memory=memory, energy_method=meter.method_label, energy_measured=meter.reading.measured,
        profile=profile.name, data=data.source, hardware=hardware.describe(),
        timestamp=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    if record:
        results.record_training(comparison.to_dict())
    return comparison


def _train(runs: list[_Run], plan: Plan, meter: energy.EnergyMeter, device: str | None) -> dict:
    """Train every run: a warm-up round, then the plan's rounds, the order rotating. Per label: images
    per second, joules per image and mean loss of every timed round; joules of all its training;
    peak device bytes."""
    found = {key: {r.label: np.empty(plan.rounds) for r in runs} for key in ("throughput", "joules", "losses")}
    found["total joules"], found["peak bytes"] = {}, {r.label: 0.0 for r in runs}
    block_images = (plan.warmup + plan.steps) * plan.batch_size
    for run in runs:  # the warm-up round, untimed: traces each training step and fills the caches
        with meter:
            for _ in range(plan.warmup + plan.steps):
                logs = run.step(run.batches)
            float(logs["loss"])
        found["total joules"][run.label] = meter.reading.joules
    for round_ in range(plan.rounds):
        for run in runs[round_ % len(runs):] + runs[:round_ % len(runs)]:  # no policy is always first
            seconds, reading, loss, peak = _block(run, plan.steps, plan.warmup, meter, device)
            found["throughput"][run.label][round_] = plan.steps * plan.batch_size / seconds
            found["joules"][run.label][round_] = reading.per(block_images)
            found["losses"][run.label][round_] = loss
            found["total joules"][run.label] += reading.joules
            found["peak bytes"][run.label] = max(found["peak bytes"][run.label], peak or 0.0)
    return found


def _row(run: _Run, measured: dict, correct: dict, reference: str, train_images: int, device: str | None,
         energy_measured: bool) -> dict:
    """One row of the comparison's table: the run's figures, and its ratios and verdicts against the reference."""
    label, is_ref = run.label, run.label == reference
    speed = stats.median_interval(measured["throughput"][label] / measured["throughput"][reference])
    energy_ratio = stats.median_interval(measured["joules"][label] / measured["joules"][reference])
    paired = stats.paired_accuracy(correct[reference], correct[label])
    low, high = stats.accuracy_interval(int(correct[label].sum()), len(correct[label]))
    policy = keras.mixed_precision.Policy(run.setting.policy)
    optimizer = run.model.optimizer
    scaled = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)
    ips = float(np.median(measured["throughput"][label]))
    row = {
        "policy": label,
        "compute": policy.compute_dtype + (" + XLA" if run.setting.jit_compile else ""),
        "variables": policy.variable_dtype,
        "loss scale": f"{float(optimizer.loss_scale):g}" if scaled else "none",
        "images/s": round(ips),
        "x ref": round(speed.median, 3),
        "CI": f"{speed.low:.2f}-{speed.high:.2f}",
        "CI low": round(speed.low, 3),
        "CI high": round(speed.high, 3),
        "speed verdict": "reference" if is_ref else speed.verdict(words=("slower", "faster")),
        "s/epoch": round(train_images / ips, 1),
    }
    if device:
        row["peak MiB"] = round(measured["peak bytes"][label] / 2**20, 1)
    row.update({
        f"mJ/image ({'measured' if energy_measured else 'estimated'})": round(1e3 * float(np.mean(measured["joules"][label])), 3),
        "training J": round(measured["total joules"][label], 1),
        "energy x ref": round(energy_ratio.median, 3),
        "energy CI": f"{energy_ratio.low:.2f}-{energy_ratio.high:.2f}",
        "energy verdict": "reference" if is_ref else energy_ratio.verdict(words=("less", "more")),
        "final loss": round(float(measured["losses"][label][-1]), 4),
        "accuracy %": round(100 * float(correct[label].mean()), 2),
        "95% interval": f"{100 * low:.1f}-{100 * high:.1f}",
        "vs ref (points)": round(100 * paired.difference, 2),
        "accuracy verdict": "reference" if is_ref else paired.verdict,
        "McNemar p": paired.p_for_table,
    })
    return row
