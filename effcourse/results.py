"""Report cards and the results store: every recorded card, every set of models measured
together (a comparison), and every set of dtype policies trained together (lesson 04), so a
later lesson, the main job and the book can put them side by side."""
from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from . import measure, paths
from .energy import ESTIMATE_LIMIT

if TYPE_CHECKING:
    import pandas as pd

CARDS = "results.jsonl"
COMPARISONS = "comparisons.jsonl"
TRAININGS = "trainings.jsonl"  # dtype policies trained together (training.compare_policies)
DEPLOYED = "deployed"  # the LiteRT files that comparisons measured, one per content (lesson 07 measures them again)
BENCHMARKS = paths.CHECKOUT / "benchmarks" / "results"  # committed results of runs elsewhere (a GPU)
# Cards for the same model, measured the same way on the same data and machine, replace each other.
IDENTITY = ("model", "lesson", "kind", "profile", "data", "hardware")
# What every recorded comparison and training comparison holds (report.Comparison.to_dict,
# training.PolicyComparison.to_dict): a line of their store without it is skipped.
SUMMARY = {"id": str, "title": str, "lesson": str, "timestamp": str, "conditions": str, "rows": list}


@dataclass(repr=False)
class ReportCard:
    """What one model costs and how well it classifies, with where and how that was measured.
    Size, latency, throughput and energy are those of the model as deployed (`deployed_as`):
    a Keras model is converted to float32 LiteRT for them."""

    model: str
    lesson: str
    kind: str  # what was handed in: "keras" or "litert"
    deployed_as: str  # what size, latency and energy were measured on
    accuracy: float
    accuracy_low: float  # 95% interval (Wilson) over the test images
    accuracy_high: float
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
    comparison: str = ""  # id of the set of models it was measured together with ("" if alone)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record: dict) -> "ReportCard":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in names})

    @property
    def energy_estimated(self) -> bool:
        return self.energy_method.startswith("estimated")

    def rows(self) -> list[tuple[str, str]]:
        """The card as (label, formatted value) rows."""
        energy = f"{self.energy_mj:.4f} mJ [{self.energy_method}]"
        if self.energy_estimated:
            energy += f"; an estimate, {ESTIMATE_LIMIT}"
        return [
            ("test accuracy", f"{self.accuracy:.2%} (95% interval {self.accuracy_low:.2%} to "
                              f"{self.accuracy_high:.2%}) on {self.test_images:,} test images"),
            ("parameters", f"{self.params:,} ({self.nonzero_params:,} non-zero, kernel sparsity {self.sparsity:.1%})"),
            ("MACs per image", f"{self.macs:,} dense, {self.nonzero_macs:,} with non-zero weights"),
            ("deployed as", self.deployed_as),
            ("size", f"{measure.human_bytes(self.bytes)} serialized, {measure.human_bytes(self.gzip_bytes)} gzipped"),
            ("latency (1 image)", f"{self.latency_ms:.4f} ms median, {self.latency_p95_ms:.4f} ms p95, "
                                  f"{self.threads} threads, {self.latency_runs} runs"),
            ("throughput", f"{self.throughput_ips:,.0f} images/s in batches of {self.throughput_batch}"),
            ("energy per inference" + (" (estimated)" if self.energy_estimated else ""), energy),
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


# --------------------------------------------------------------------------- the store


def store_path(name: str = CARDS) -> Path:
    """A JSON-lines file of the store (in the git-ignored working folder)."""
    return paths.workdir() / name


def _append(name: str, record: dict) -> None:
    with store_path(name).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def _read(name: str, shape: dict[str, type] | None = None) -> list[dict]:
    """The records of a store file, one JSON object a line, each holding `shape`'s keys with
    values of their types (a "rows" list holds objects). Other lines are skipped, with one warning."""
    path = store_path(name)
    if not path.exists():
        return []
    records, skipped = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            skipped.append(f"{number} ({err})")
            continue
        problem = _misshapen(record, shape or {})
        if problem:
            skipped.append(f"{number} ({problem})")
        else:
            records.append(record)
    if skipped:
        lines = "line " + skipped[0] if len(skipped) == 1 else "lines " + ", ".join(skipped)
        warnings.warn(f"Skipping unreadable {lines} of {paths.display(path)}.", stacklevel=3)
    return records


def _misshapen(record, shape: dict[str, type]) -> str:
    """What keeps `record` from being a record of `shape` ("" if nothing)."""
    if not isinstance(record, dict):
        return "not a JSON object"
    wrong = [key for key, kind in shape.items() if not isinstance(record.get(key), kind)]
    if "rows" in shape and not wrong and not all(isinstance(row, dict) for row in record["rows"]):
        wrong = ["rows"]
    return f"no {', '.join(wrong)} of the right type" if wrong else ""


def record(card: ReportCard) -> None:
    """Append a card to the store."""
    _append(CARDS, card.to_dict())


def load(*, latest: bool = True, since: str | None = None, **filters) -> list[ReportCard]:
    """Recorded cards matching every filter (e.g. lesson="01", profile="workshop"),
    oldest first; with `latest`, only the newest card of each model measured the same way.
    `since` keeps cards whose ISO timestamp is at or after it."""
    cards = []
    for item in _read(CARDS):
        try:
            cards.append(ReportCard.from_dict(item))
        except TypeError as err:
            warnings.warn(f"Skipping a card of {paths.display(store_path())} from an older version ({err}).", stacklevel=2)
    cards = [c for c in cards if all(str(getattr(c, k)) == str(v) for k, v in filters.items())]
    if since is not None:
        cards = [c for c in cards if c.timestamp >= since]
    return _latest(cards) if latest else cards


def _latest(cards: Iterable[ReportCard]) -> list[ReportCard]:
    newest = {}
    for card in sorted(cards, key=lambda c: c.timestamp):
        newest[tuple(getattr(card, k) for k in IDENTITY)] = card
    return sorted(newest.values(), key=lambda c: c.timestamp)


def record_comparison(summary: dict) -> None:
    """Append a comparison (see `report.Comparison.to_dict`) to the store."""
    _append(COMPARISONS, summary)


def load_comparisons(*, since: str | None = None, **filters) -> list[dict]:
    """Recorded comparisons matching every filter (e.g. lesson="02"), oldest first."""
    found = [c for c in _read(COMPARISONS, SUMMARY) if all(str(c.get(k)) == str(v) for k, v in filters.items())]
    return [c for c in found if since is None or c.get("timestamp", "") >= since]


def save_deployed(content: bytes) -> str:
    """Keep a measured model's LiteRT file in the store, once per content; return its key."""
    key = hashlib.sha256(content).hexdigest()[:16]
    path = paths.subdir(DEPLOYED) / f"{key}.tflite"
    if not path.exists():
        staging = path.with_suffix(".partial")
        staging.write_bytes(content)
        staging.replace(path)
    return key


@dataclass(frozen=True)
class DeployedModel:
    """A model as a recorded comparison measured it: its card and its LiteRT file."""

    card: ReportCard
    path: Path

    @property
    def label(self) -> str:
        return f"{self.card.model} ({self.card.lesson})"


def deployed_models(*, profile: str, data: str, lessons: Iterable[str] | None = None) -> list[DeployedModel]:
    """The models of each lesson's latest recorded comparison in `profile` on `data` (a data
    source as cards name it), in lesson order, each LiteRT file once (its first lesson keeps it);
    only those of `lessons` if given."""
    latest = {}
    for comparison in load_comparisons(profile=profile, data=data):
        if comparison.get("files") and (lessons is None or comparison["lesson"] in lessons):
            latest[comparison["lesson"]] = comparison
    found, seen = [], set()
    for lesson in sorted(latest):
        comparison = latest[lesson]
        cards = {c.model: c for c in load(latest=False, comparison=comparison["id"])}
        for name, key in comparison["files"].items():
            path = paths.subdir(DEPLOYED) / f"{key}.tflite"
            if key in seen or name not in cards or not path.exists():
                continue
            seen.add(key)
            found.append(DeployedModel(cards[name], path))
    return found


def record_training(summary: dict) -> None:
    """Append a training comparison (see `training.PolicyComparison.to_dict`) to the store."""
    _append(TRAININGS, summary)


def load_trainings(*, since: str | None = None, **filters) -> list[dict]:
    """Recorded training comparisons matching every filter (e.g. lesson="04"), oldest first."""
    found = [c for c in _read(TRAININGS, SUMMARY) if all(str(c.get(k)) == str(v) for k, v in filters.items())]
    return [c for c in found if since is None or c.get("timestamp", "") >= since]


def benchmark(name: str) -> dict | None:
    """The committed results of one benchmark run, `benchmarks/results/<name>.json` (for example
    the GPU measurements of lesson 04), or None where this checkout does not have them."""
    path = BENCHMARKS / f"{name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        shown = paths.display(path)
        raise ValueError(f"{shown} is not valid JSON ({error}): restore it with `git checkout -- {shown}`.") from None


def benchmarks(prefix: str) -> dict[str, dict]:
    """The committed results of every run of one benchmark, `benchmarks/results/<prefix>*.json`,
    by file name (without `.json`), in name order; empty where this checkout has none."""
    names = sorted(path.stem for path in BENCHMARKS.glob(f"{prefix}*.json"))
    return {name: benchmark(name) for name in names}


# --------------------------------------------------------------------------- tables of cards


def card_row(card: ReportCard) -> dict:
    """What one card says, as a table row: accuracy and its interval, weights, MACs and size."""
    return {
        "model": card.model,
        "accuracy %": round(100 * card.accuracy, 2),
        "95% interval": f"{100 * card.accuracy_low:.1f}-{100 * card.accuracy_high:.1f}",
        "params": card.params,
        "non-zero params": card.nonzero_params,
        "sparsity %": round(100 * card.sparsity, 1),
        "MACs (M)": round(card.macs / 1e6, 3),
        "non-zero MACs (M)": round(card.nonzero_macs / 1e6, 3),
        "KiB": round(card.bytes / 1024, 1),
        "gzip KiB": round(card.gzip_bytes / 1024, 1),
        "deployed as": card.deployed_as,
    }


def table(cards: Iterable[ReportCard]) -> "pd.DataFrame":
    """Cards side by side, one row per model: what each card says, with no ratio or verdict
    between them (those need models measured together: `report.measure_together`)."""
    import pandas as pd

    return pd.DataFrame([card_row(card) for card in cards])
