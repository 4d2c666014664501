"""The measuring stick: the report card of one model, and a set of models measured together.

Every model is measured as deployed: a Keras model is converted to float32 LiteRT for its size,
latency, throughput and energy (its accuracy, parameters and MACs come from the Keras model).
Models compared with each other are measured together: accuracy on the same test images with a
paired verdict, latency and energy in finely interleaved rounds, each as a ratio to a reference
with its 95% confidence interval and a verdict.
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

from . import convert, energy, hardware, latency, measure, profiles, results, stats
from .litert import LiteRTModel
from .results import ReportCard
from .tabular import TableDisplay

if TYPE_CHECKING:
    import pandas as pd

THROUGHPUT_BATCH = 256


@dataclass
class _Subject:
    """One model, ready to measure: its deployed LiteRT form and what the Keras source counts."""

    name: str
    kind: str
    deployed: LiteRTModel
    deployed_as: str
    correct: np.ndarray  # per test image
    params: tuple[int, int]
    macs: tuple[int, int]
    sparsity: float


def _check_fits(input_shape, classes, data) -> None:
    """Refuse a model that does not fit `data`: other images, or another number of classes (the
    labels would be compared with the wrong classes' scores, and the accuracy be wrong, silently)."""
    if tuple(input_shape) != tuple(data.image_shape):
        raise ValueError(f"The model takes images of shape {tuple(input_shape)}, but the data has {tuple(data.image_shape)}.")
    if classes != data.num_classes:
        raise ValueError(f"The model scores {classes} classes, but the data has {data.num_classes}: measure it on "
                         f"data of {classes} classes, or give it a last layer of {data.num_classes} outputs.")


def _subject(name: str, model, data, x_test: np.ndarray, threads: int) -> _Subject:
    import tf_keras as keras

    if isinstance(model, (bytes, bytearray)):
        model = LiteRTModel(model, name=name)
    if isinstance(model, LiteRTModel):
        _check_fits(model.input_shape, int(model.output_details["shape"][-1]), data)
        lite = LiteRTModel(model.content, name=name, num_threads=threads, xnnpack=model.xnnpack)
        kernels = "LiteRT's built-in kernels" if not model.xnnpack else "XNNPACK"
        return _Subject(name, "litert", lite, f"LiteRT as given ({kernels})",
                        measure.correct(lite.predict(x_test), x_test, data.y_test),
                        lite.parameters(), lite.macs(), lite.sparsity())
    if isinstance(model, keras.Model):
        _check_fits(model.input_shape[1:], model.output_shape[-1], data)
        logits = model.predict(x_test, batch_size=THROUGHPUT_BATCH, verbose=0)
        lite = convert.to_litert(model, "float32", name=name, num_threads=threads)
        return _Subject(name, "keras", lite, "float32 LiteRT, converted from Keras (XNNPACK)",
                        measure.correct(logits, x_test, data.y_test), measure.parameters(model),
                        measure.macs(model), measure.sparsity(model))
    raise TypeError(
        f"The report card measures a tf_keras model or a LiteRT model (LiteRTModel or .tflite bytes), "
        f"not {type(model).__name__}. A Keras 3 model? Import effcourse before TensorFlow so tf.keras is Keras 2."
    )


@dataclass(repr=False)
class Comparison(TableDisplay):
    """Models measured together: their cards, and a table of ratios and verdicts against a reference."""

    id: str
    title: str
    lesson: str
    reference: str
    cards: dict[str, ReportCard]
    table: "pd.DataFrame"  # one row per model, every figure
    files: dict[str, str] = field(default_factory=dict)  # name -> key of its LiteRT file in the store (if recorded)

    SUMMARY = ["accuracy %", "vs ref (points)", "accuracy verdict", "gzip KiB", "latency x ref",
               "latency CI", "speed verdict", "energy x ref"]

    def summary(self) -> "pd.DataFrame":
        """The columns a reader needs to answer the question: accuracy and its verdict, gzipped
        size, latency and energy as ratios to the reference with the latency verdict."""
        return self.table[self.SUMMARY]

    def accuracy_table(self) -> "pd.DataFrame":
        """Is it as accurate? Accuracy, its 95% interval, and the paired verdict against the reference."""
        return self.table[["accuracy %", "95% interval", "vs ref (points)", "accuracy verdict", "McNemar p"]]

    def size_table(self) -> "pd.DataFrame":
        """Is it smaller? Weights and MACs (of the Keras model, or of the LiteRT file when given one),
        bytes as deployed, with the gzipped size as a ratio."""
        table = self.table[["params", "non-zero params", "sparsity %", "MACs (M)", "non-zero MACs (M)",
                            "KiB", "gzip KiB"]].copy()
        table["gzip x smaller"] = (table.loc[self.reference, "gzip KiB"] / table["gzip KiB"]).round(2)
        return table

    def speed_table(self) -> "pd.DataFrame":
        """Is it faster? Latency and energy as ratios to the reference, with their intervals and verdicts."""
        energy = next(c for c in self.table.columns if c.startswith("mJ/inference"))
        return self.table[["latency ms", "latency x ref", "latency CI", "speed verdict", "images/s",
                           energy, "energy x ref", "energy verdict"]]

    def conditions(self) -> str:
        """What the figures were measured on, and how (one paragraph)."""
        card = self.cards[self.reference]
        method = f"energy {card.energy_method}"
        if card.energy_estimated:
            method += f" (an estimate, {energy.ESTIMATE_LIMIT})"
        return (f"Measured together: {card.profile} profile, {card.data}, {card.test_images:,} test images; "
                f"{card.hardware}; latency timed and {method}, in {self.table.attrs['rounds']} interleaved rounds "
                f"of {self.table.attrs['block']} runs per model on {card.threads} threads; ratios are to "
                f"'{self.reference}' (median over rounds, 95% CI); accuracy verdicts from an exact "
                f"McNemar test on the same images.")

    def to_dict(self) -> dict:
        card = self.cards[self.reference]
        return {"id": self.id, "title": self.title, "lesson": self.lesson, "reference": self.reference,
                "timestamp": card.timestamp, "profile": card.profile, "data": card.data,
                "conditions": self.conditions(), "files": self.files,
                "rows": self.table.reset_index().to_dict(orient="records")}

    def _shown(self) -> "pd.DataFrame":
        return self.summary()


def measure_together(models: Mapping[str, object], data, *, lesson: str, title: str = "",
                     reference: str | None = None, profile: profiles.Profile | None = None,
                     record: bool = True, energy_method: str = "cpu") -> Comparison:
    """Measure a set of models (name -> Keras model, LiteRTModel or .tflite bytes) together on
    `data`'s test images: accuracy with its 95% interval and a paired verdict against the
    `reference` (default: the first model); size of each as deployed; latency and energy per
    inference in finely interleaved rounds, each a ratio to the reference with its 95% confidence
    interval and a verdict (energy by `energy_method`, "cpu": RAPL if readable, else the estimate;
    see `latency.interleaved`); throughput in interleaved batches. Records every card and the
    comparison (unless `record=False`) and returns them."""
    from .data import normalise

    if not models:
        raise ValueError("No models to measure: pass {name: model}.")
    reference = reference or next(iter(models))
    if reference not in models:
        raise KeyError(f"The reference {reference!r} is not one of the models: {', '.join(models)}.")
    if len(data.x_test) == 0:
        raise ValueError(f"The data ({data.source}) has no test images to measure the models on: "
                         "load data with a test split.")
    profile = profile or profiles.current()
    threads = hardware.cpu_threads()
    x_test = np.asarray(normalise(data.x_test))
    subjects = {name: _subject(name, model, data, x_test, threads) for name, model in models.items()}
    timing = latency.interleaved({n: s.deployed.single_image_runner(x_test[0]) for n, s in subjects.items()},
                                 runs=profile.latency_runs, warmup=profile.warmup_runs, threads=threads,
                                 energy_method=energy_method)
    batch = x_test[:THROUGHPUT_BATCH]
    speed = latency.interleaved_throughput(
        {n: (lambda m=s.deployed: m.predict(batch, batch_size=len(batch))) for n, s in subjects.items()}, len(batch))
    identity = uuid.uuid4().hex[:12] if len(models) > 1 else ""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    cards, rows = {}, []
    for name, s in subjects.items():
        low, high = stats.accuracy_interval(int(s.correct.sum()), len(s.correct))
        size, gzipped = measure.sizes(s.deployed.content)
        timed = timing.stats(name)
        cards[name] = ReportCard(
            model=name, lesson=str(lesson), kind=s.kind, deployed_as=s.deployed_as,
            accuracy=float(s.correct.mean()), accuracy_low=low, accuracy_high=high, test_images=len(s.correct),
            params=s.params[0], nonzero_params=s.params[1], sparsity=s.sparsity,
            macs=s.macs[0], nonzero_macs=s.macs[1], bytes=size, gzip_bytes=gzipped,
            latency_ms=timed.median_ms, latency_p95_ms=timed.p95_ms, latency_runs=timed.runs, threads=threads,
            throughput_ips=float(speed[name]), throughput_batch=len(batch),
            energy_mj=timing.joules_per_inference(name) * 1e3, energy_method=timing.energy_method,
            profile=profile.name, data=data.source, hardware=hardware.describe(), versions=hardware.versions(),
            timestamp=now, comparison=identity)
        rows.append(_row(name, s, cards[name], subjects[reference], timing, reference))
    import pandas as pd

    table = pd.DataFrame(rows).set_index("model")
    table.attrs.update(rounds=timing.rounds, block=timing.block, runs=timing.runs, threads=threads, reference=reference,
                       energy_method=timing.energy_method)
    comparison = Comparison(identity, title or f"Lesson {lesson}: {len(models)} models measured together",
                            str(lesson), reference, cards, table)
    if record:
        for card in cards.values():
            results.record(card)
        if identity:
            comparison.files = {name: results.save_deployed(s.deployed.content) for name, s in subjects.items()}
            results.record_comparison(comparison.to_dict())
    return comparison


def _row(name: str, s: _Subject, card: ReportCard, ref: _Subject, timing, reference: str) -> dict:
    """One row of a comparison table: every figure of the card, and the ratios and verdicts."""
    is_ref = name == reference
    paired = stats.paired_accuracy(ref.correct, s.correct)
    speed = timing.latency_ratio(name, reference)
    joules = timing.energy_ratio(name, reference)
    energy_label = "estimated" if card.energy_estimated else "measured"
    row = results.card_row(card)
    row.update({
        "vs ref (points)": round(100 * paired.difference, 2),
        "accuracy verdict": "reference" if is_ref else paired.verdict,
        "McNemar p": paired.p_for_table,
        "latency ms": round(card.latency_ms, 4),
        "p95 ms": round(card.latency_p95_ms, 4),
        "latency x ref": round(speed.median, 3),
        "latency CI": f"{speed.low:.2f}-{speed.high:.2f}",
        "latency CI low": round(speed.low, 3),
        "latency CI high": round(speed.high, 3),
        "speed verdict": "reference" if is_ref else speed.verdict(),
        "images/s": round(card.throughput_ips),
        f"mJ/inference ({energy_label})": round(card.energy_mj, 5),
        "energy x ref": round(joules.median, 3),
        "energy CI": "" if np.isnan(joules.median) else f"{joules.low:.2f}-{joules.high:.2f}",
        "energy verdict": "reference" if is_ref else joules.verdict(words=("less", "more")),
    })
    return row


def report_card(model, data, *, name: str, lesson: str, profile: profiles.Profile | None = None,
                record: bool = True, energy_method: str = "cpu") -> ReportCard:
    """Measure one model (Keras or LiteRT) on `data`'s test images, as deployed, and by default
    record its card. To compare models, measure them together with `measure_together`."""
    comparison = measure_together({name: model}, data, lesson=lesson, profile=profile, record=record,
                                  energy_method=energy_method)
    return comparison.cards[name]
