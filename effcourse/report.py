"""The report card: every model of the course measured the same way."""
from __future__ import annotations

import dataclasses
import datetime as dt
import html
from dataclasses import dataclass, field

import numpy as np

from . import energy, hardware, latency, measure, profiles, results
from .litert import LiteRTModel

THROUGHPUT_BATCH = 256


@dataclass(repr=False)
class ReportCard:
    """What one model costs and how well it classifies, with where and how that was measured."""

    model: str
    lesson: str
    kind: str  # "keras" or "litert"
    accuracy: float
    test_images: int
    params: int
    nonzero_params: int
    sparsity: float  # of the Conv/Dense kernels
    macs: int  # per image, dense
    nonzero_macs: int  # per image, counting only non-zero weights
    bytes: int
    gzip_bytes: int
    latency_ms: float  # single image, median
    latency_p95_ms: float
    latency_runs: int
    threads: int
    throughput_ips: float  # images per second in batches of throughput_batch
    throughput_batch: int
    energy_mj: float  # per single-image inference, millijoules
    energy_method: str  # "measured: ..." or "estimated: ..."
    profile: str
    data: str
    hardware: str
    versions: dict = field(default_factory=dict)
    timestamp: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> "ReportCard":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    def rows(self) -> list[tuple[str, str]]:
        """The card as (label, formatted value) rows."""
        return [
            ("test accuracy", f"{self.accuracy:.2%} on {self.test_images:,} test images"),
            ("parameters", f"{self.params:,} ({self.nonzero_params:,} non-zero, kernel sparsity {self.sparsity:.1%})"),
            ("MACs per image", f"{self.macs:,} dense, {self.nonzero_macs:,} with non-zero weights"),
            ("size", f"{measure.human_bytes(self.bytes)} serialized, {measure.human_bytes(self.gzip_bytes)} gzipped"),
            ("latency (1 image)", f"{self.latency_ms:.3f} ms median, {self.latency_p95_ms:.3f} ms p95, {self.threads} threads, {self.latency_runs} runs"),
            ("throughput", f"{self.throughput_ips:,.0f} images/s in batches of {self.throughput_batch}"),
            ("energy per inference", f"{self.energy_mj:.3f} mJ [{self.energy_method}]"),
            ("measured on", f"{self.profile} profile, {self.data}; {self.hardware}"),
        ]

    def __repr__(self) -> str:
        return str(self)

    def __str__(self) -> str:
        width = max(len(label) for label, _ in self.rows())
        lines = [f"Report card: {self.model} ({self.kind}, lesson {self.lesson})"]
        lines += [f"  {label:<{width}}  {value}" for label, value in self.rows()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th><td style='text-align:left'>{html.escape(value)}</td></tr>"
            for label, value in self.rows()
        )
        title = html.escape(f"Report card: {self.model} ({self.kind}, lesson {self.lesson})")
        return f"<table><caption style='text-align:left'><b>{title}</b></caption>{body}</table>"


def _as_measurable(model):
    """A Keras model or a LiteRTModel; raw .tflite bytes become a LiteRTModel."""
    import tf_keras as keras

    if isinstance(model, (bytes, bytearray)):
        return LiteRTModel(model)
    if isinstance(model, (keras.Model, LiteRTModel)):
        return model
    raise TypeError(
        f"report_card measures a tf_keras model or a LiteRT model (LiteRTModel or .tflite bytes), "
        f"not {type(model).__name__}. A Keras 3 model? Import effcourse before TensorFlow so tf.keras is Keras 2."
    )


def _check_input_shape(shape, data) -> None:
    if tuple(shape) != tuple(data.image_shape):
        raise ValueError(f"The model takes images of shape {tuple(shape)}, but the data has {tuple(data.image_shape)}.")


def report_card(model, data, *, name: str, lesson: str, profile: profiles.Profile | None = None,
                record: bool = True, energy_method: str = "auto") -> ReportCard:
    """Measure `model` (Keras or LiteRT) on `data`'s test images and, by default, record the card."""
    from .data import normalise

    profile = profile or profiles.current()
    model = _as_measurable(model)
    x_test = np.asarray(normalise(data.x_test))
    threads = hardware.cpu_threads()
    batch = x_test[:THROUGHPUT_BATCH]
    if isinstance(model, LiteRTModel):
        _check_input_shape(model.input_shape, data)
        kind, logits = "litert", model.predict(x_test)
        params, nonzero_params = model.parameters()
        dense_macs, nonzero_macs = model.macs()
        blob = model.content
        sparsity = model.sparsity()
        run_one = model.single_image_runner(x_test[0])
        run_batch = lambda: model.predict(batch, batch_size=len(batch))  # noqa: E731
    else:
        _check_input_shape(model.input_shape[1:], data)
        kind, logits = "keras", model.predict(x_test, batch_size=THROUGHPUT_BATCH, verbose=0)
        params, nonzero_params = measure.parameters(model)
        dense_macs, nonzero_macs = measure.macs(model)
        blob = measure.keras_bytes(model)
        sparsity = measure.sparsity(model)
        run_one = latency.keras_runner(model, x_test[:1])
        run_batch = latency.keras_runner(model, batch)
    accuracy = measure.accuracy(logits, x_test, data.y_test)
    size, gzipped = measure.sizes(blob)
    with energy.EnergyMeter(energy_method) as meter:
        timing = latency.latency(run_one, runs=profile.latency_runs, warmup=profile.warmup_runs, threads=threads)
    reading = meter.reading
    # The meter also saw the warm-up runs: divide by every inference it spanned.
    joules_per_inference = reading.per(profile.latency_runs + profile.warmup_runs)
    card = ReportCard(
        model=name, lesson=str(lesson), kind=kind, accuracy=accuracy, test_images=len(x_test),
        params=params, nonzero_params=nonzero_params, sparsity=sparsity,
        macs=dense_macs, nonzero_macs=nonzero_macs, bytes=size, gzip_bytes=gzipped,
        latency_ms=timing.median_ms, latency_p95_ms=timing.p95_ms, latency_runs=timing.runs, threads=threads,
        throughput_ips=float(latency.throughput(run_batch, len(batch))), throughput_batch=len(batch),
        energy_mj=joules_per_inference * 1e3, energy_method=reading.method,
        profile=profile.name, data=data.source, hardware=hardware.describe(), versions=hardware.versions(),
        timestamp=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    if record:
        results.record(card)
    return card

