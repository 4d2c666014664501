"""The results store: every recorded report card, and tables and plots that put them side by side."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from . import paths

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from .report import ReportCard

STORE_NAME = "results.jsonl"
# Cards for the same model, measured the same way on the same data and machine, replace each other.
IDENTITY = ("model", "lesson", "kind", "profile", "data", "hardware")


def store_path() -> Path:
    """The JSON-lines file holding every recorded card (in the git-ignored working folder)."""
    return paths.workdir() / STORE_NAME


def record(card: "ReportCard") -> None:
    """Append a card to the store."""
    with store_path().open("a", encoding="utf-8") as f:
        f.write(json.dumps(card.to_dict(), sort_keys=True) + "\n")


def load(*, latest: bool = True, since: str | None = None, **filters) -> list["ReportCard"]:
    """Recorded cards matching every filter (e.g. lesson="01", profile="workshop"),
    oldest first; with `latest`, only the newest card of each model measured the same way.
    `since` keeps cards whose ISO timestamp is at or after it."""
    from .report import ReportCard

    path = store_path()
    if not path.exists():
        return []
    cards = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cards.append(ReportCard.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError) as err:
            warnings.warn(f"Skipping unreadable line {number} of {path} ({err}).", stacklevel=2)
    cards = [c for c in cards if all(str(getattr(c, k)) == str(v) for k, v in filters.items())]
    if since is not None:
        cards = [c for c in cards if c.timestamp >= since]
    return _latest(cards) if latest else cards


def _latest(cards: Iterable["ReportCard"]) -> list["ReportCard"]:
    newest = {}
    for card in sorted(cards, key=lambda c: c.timestamp):
        newest[tuple(getattr(card, k) for k in IDENTITY)] = card
    return sorted(newest.values(), key=lambda c: c.timestamp)


def compare(cards: Iterable["ReportCard"] | None = None, **filters) -> "pd.DataFrame":
    """Cards side by side, one row per model (given cards, or those `load(**filters)` finds)."""
    import pandas as pd

    cards = list(cards) if cards is not None else load(**filters)
    rows = [
        {
            "model": c.model,
            "lesson": c.lesson,
            "kind": c.kind,
            "accuracy %": round(100 * c.accuracy, 2),
            "params": c.params,
            "non-zero params": c.nonzero_params,
            "sparsity %": round(100 * c.sparsity, 1),
            "MACs (M)": round(c.macs / 1e6, 3),
            "non-zero MACs (M)": round(c.nonzero_macs / 1e6, 3),
            "KiB": round(c.bytes / 1024, 1),
            "gzip KiB": round(c.gzip_bytes / 1024, 1),
            "latency ms": round(c.latency_ms, 3),
            "p95 ms": round(c.latency_p95_ms, 3),
            "images/s": round(c.throughput_ips),
            "mJ/inference": round(c.energy_mj, 3),
            "energy method": c.energy_method,
        }
        for c in cards
    ]
    table = pd.DataFrame(rows)
    if cards:
        table.attrs["measured on"] = sorted({f"{c.profile} profile, {c.data}, {c.hardware}" for c in cards})
    return table


def describe_conditions(table: "pd.DataFrame") -> str:
    """One line per distinct measuring condition behind a comparison table."""
    return "\n".join(f"measured on: {line}" for line in table.attrs.get("measured on", []))


def plot_tradeoffs(cards: Iterable["ReportCard"] | None = None, **filters) -> "Figure":
    """Accuracy against gzipped size and against single-image latency, one point per card."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    cards = list(cards) if cards is not None else load(**filters)
    if not cards:
        raise ValueError("No report cards to plot: measure a model with report.report_card first.")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, (ax_size, ax_time) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    palette = sns.color_palette("colorblind", len(cards))
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for ax, x_of, label in (
        (ax_size, lambda c: c.gzip_bytes / 1024, "gzipped size (KiB, log scale)"),
        (ax_time, lambda c: c.latency_ms, "single-image latency (ms, median, log scale)"),
    ):
        for card, colour in zip(cards, palette):
            x, y = x_of(card), 100 * card.accuracy
            ax.scatter(x, y, color=colour, s=60)
            ax.annotate(f"{card.model} ({card.kind})", (x, y), textcoords="offset points", xytext=(6, 4), fontsize="small")
        ax.set(xscale="log", xlabel=label)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.25, y=0.15)
    ax_size.set_ylabel("test accuracy (%)")
    conditions = sorted({f"{c.profile} profile · {c.data} · {c.hardware}" for c in cards})
    fig.suptitle("Accuracy against cost\n" + "\n".join(conditions), fontsize="small")
    fig.tight_layout()
    return fig
