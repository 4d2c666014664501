"""Plots several lessons share: learning curves, and the accuracy-against-cost trade-off of a set
of models measured together (`report.measure_together`), with the noise of every point drawn;
lesson 05's soft labels and accuracy sweeps; lesson 07's energy windows and accuracy against energy."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

if TYPE_CHECKING:
    import numpy as np

    from .report import Comparison


def _check_given(value, what: str, example: str) -> None:
    """Refuse an empty `value` (nothing to draw), saying what to pass instead."""
    if len(value) == 0:
        raise ValueError(f"Nothing to plot: {what} is empty; pass {example}.")


def learning_curves(histories: dict[str, dict]) -> Figure:
    """Training and validation accuracy and loss per epoch, one colour per model."""
    _check_given(histories, "histories", "{name: model.fit(...).history} for at least one model")
    for name, history in histories.items():
        if not isinstance(history, Mapping) or not {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history):
            raise ValueError(f"The history of {name!r} must be a dict (`model.fit(...).history`) with loss, accuracy, "
                             "val_loss and val_accuracy: fit with validation data and metrics=['accuracy'].")
        if len(history["loss"]) == 0:
            raise ValueError(f"Nothing to plot: the history of {name!r} has no epoch; pass the history of a fit that "
                             "trained at least one epoch.")
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, history) in enumerate(histories.items()):
        colour = f"C{i}"
        epochs = range(1, len(history["loss"]) + 1)
        ax_acc.plot(epochs, history["accuracy"], "--", color=colour, label=f"{name} (train)")
        ax_acc.plot(epochs, history["val_accuracy"], "-", color=colour, label=f"{name} (validation)")
        ax_loss.plot(epochs, history["loss"], "--", color=colour)
        ax_loss.plot(epochs, history["val_loss"], "-", color=colour)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.legend(fontsize="small")
    fig.tight_layout()
    return fig


def accuracy_band(ax, xs, accuracies, images: int, **style) -> None:
    """Shade the 95% interval (Wilson) of accuracies measured on `images` test images around a
    curve: differences inside the band are noise."""
    from .stats import accuracy_interval

    _check_given(accuracies, "accuracies", "at least one accuracy, with its x value")
    if not all(0 <= a <= 1 for a in accuracies):
        raise ValueError(f"Accuracies must be fractions in [0, 1] (not percentages, not NaN) to draw their 95% band, "
                         f"got {list(accuracies)}")
    low, high = zip(*(accuracy_interval(round(a * images), images) for a in accuracies))
    ax.fill_between(xs, [100 * v for v in low], [100 * v for v in high], alpha=0.15, linewidth=0, **style)


def tradeoffs(comparison: "Comparison", *, front: bool = False) -> Figure:
    """Accuracy against gzipped size and against latency relative to the reference, one point per
    model of a comparison. Vertical bars: each accuracy's 95% interval; horizontal bars on the
    right: the latency ratio's 95% confidence interval over the interleaved rounds. Labels are
    placed so they do not overlap (adjustText). With `front`, each panel draws its Pareto front:
    the staircase through the models no other is as accurate as and smaller (or faster) than."""
    import numpy as np
    import seaborn as sns
    from adjustText import adjust_text
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from .search import non_dominated

    table = comparison.table
    fig, (ax_size, ax_time) = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    palette = sns.color_palette("colorblind", len(table))
    cards = [comparison.cards[name] for name in table.index]
    accuracy = np.array([100 * c.accuracy for c in cards])
    acc_low, acc_high = np.array([100 * c.accuracy_low for c in cards]), np.array([100 * c.accuracy_high for c in cards])
    lat_low, lat_high = table["latency CI low"].to_numpy(), table["latency CI high"].to_numpy()
    panels = (
        (ax_size, table["gzip KiB"].to_numpy(), None, "gzipped size as deployed (KiB, log scale)"),
        (ax_time, table["latency x ref"].to_numpy(), (lat_low, lat_high),
         f"single-image latency / '{comparison.reference}' (log scale, 95% CI)"),
    )
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    for ax, x, x_interval, label in panels:
        labels: dict[tuple[float, float], list[str]] = {}  # models drawn on the same spot share a label
        for i, name in enumerate(table.index):
            xerr = None if x_interval is None else [[x[i] - x_interval[0][i]], [x_interval[1][i] - x[i]]]
            ax.errorbar(x[i], accuracy[i], yerr=[[accuracy[i] - acc_low[i]], [acc_high[i] - accuracy[i]]],
                        xerr=xerr, fmt="o", color=palette[i], capsize=3, markersize=6)
            labels.setdefault((round(float(np.log(x[i])), 2), round(float(accuracy[i]), 2)), []).append(name)
        if front:
            on = non_dominated(np.column_stack([accuracy, x]), ("maximize", "minimize"))
            order = np.argsort(x[on])
            ax.step(x[on][order], accuracy[on][order], where="post", color="grey", lw=1, zorder=0,
                    label=f"Pareto front: {int(on.sum())} of {len(x)} models")
            ax.legend(fontsize="small", loc="lower right")
        texts = [ax.text(np.exp(lx), y, "\n".join(names), fontsize="small") for (lx, y), names in labels.items()]
        ax.set(xscale="log", xlabel=label)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.margins(x=0.3, y=0.2)
        adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5})
    ax_time.axvline(1, color="grey", ls=":", lw=1)
    ax_size.set_ylabel("test accuracy (%, 95% interval)")
    fig.suptitle(f"{comparison.title}\n{comparison.cards[comparison.reference].hardware}", fontsize="small")
    fig.tight_layout()
    return fig


def soft_labels(images, probabilities: dict[str, np.ndarray], class_names, labels=None) -> Figure:
    """One row per image: the image (titled with its label, if given), then its class
    probabilities as bars, one colour per entry of `probabilities` (e.g. a teacher's softmax at
    two temperatures; each an array of shape (images, classes))."""
    import numpy as np

    _check_given(images, "images", "at least one image")
    _check_given(probabilities, "probabilities", "{name: probabilities of shape (images, classes)}")
    n, k = len(images), len(class_names)
    fig, axes = plt.subplots(n, 2, figsize=(10, 1.7 * n), squeeze=False, gridspec_kw={"width_ratios": [1, 6]})
    width = 0.8 / len(probabilities)
    for row, image in enumerate(images):
        ax_image, ax_bars = axes[row]
        ax_image.imshow(image)
        ax_image.axis("off")
        if labels is not None:
            ax_image.set_title(class_names[int(labels[row])], fontsize="small")
        for i, (name, probs) in enumerate(probabilities.items()):
            ax_bars.bar(np.arange(k) + (i - (len(probabilities) - 1) / 2) * width, probs[row], width,
                        color=f"C{i}", label=name)
        ax_bars.set(ylim=(0, 1), xticks=np.arange(k), ylabel="probability")
        ax_bars.set_xticklabels(class_names if row == n - 1 else [], fontsize="small")
    axes[0, 1].legend(fontsize="small", loc="upper right")
    fig.tight_layout()
    return fig


def accuracy_sweeps(panels: dict[str, tuple[list, list]], *, images: int, reference: tuple[str, float] | None = None,
                    log2_x: tuple[str, ...] = ()) -> Figure:
    """One panel per swept setting: accuracy (measured on `images` images, its 95% interval
    shaded) against the setting's values, given as {x label: (values, accuracies)}. `reference`
    (label, accuracy) draws a dotted line on every panel; panels named in `log2_x` get a base-2
    log scale."""
    _check_given(panels, "panels", "{x label: (values, accuracies)} for at least one setting")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), sharey=True, squeeze=False)
    for ax, (label, (xs, accuracies)) in zip(axes[0], panels.items()):
        ax.plot(xs, [100 * a for a in accuracies], "o-", color="C0", label="distilled")
        accuracy_band(ax, xs, accuracies, images, color="C0")
        if reference is not None:
            ax.axhline(100 * reference[1], color="grey", ls=":", label=reference[0])
        if label in log2_x:
            ax.set_xscale("log", base=2)
        ax.set_xticks(list(xs), [f"{x:g}" for x in xs])
        ax.set_xlabel(label)
    axes[0, 0].set_ylabel(f"accuracy (%, 95% interval, {images:,} images)")
    axes[0, 0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def energy_windows(measurement) -> Figure:
    """Every window of an energy measurement (`joules.measure_energy`): left, each subject's gross
    and net energy per item in each repeat (the gap is the idle energy); right, the idle power of
    each repeat. The method labels the axes."""
    import numpy as np

    fig, (ax, ax_idle) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [3, 1]})
    names = list(measurement.subjects)
    highest = 0.0
    for i, name in enumerate(names):
        s = measurement.subjects[name]
        highest = max(highest, 1e3 * float(np.max(s.gross_per_item())), 1e3 * float(np.max(s.net_per_item())))
        jitter = np.linspace(-0.15, 0.15, len(s.gross_j))
        ax.plot(i + jitter, 1e3 * s.gross_per_item(), "o", mfc="none", color=f"C{i}", label="gross" if i == 0 else None)
        ax.plot(i + jitter, 1e3 * s.net_per_item(), "o", color=f"C{i}", label="net of idle" if i == 0 else None)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize="small")
    # from zero, with room above the highest marker (autoscaling's margin is a share of the spread)
    ax.set(ylabel=f"mJ per {measurement.unit}", ylim=(0, 1.1 * highest or None),
           title=f"{measurement.repeats} repeats each ({measurement.method})")
    ax.legend(fontsize="small")
    ax_idle.plot(range(1, measurement.repeats + 1), measurement.idle_w, "s", color="grey")
    ax_idle.set(xlabel="repeat", ylabel="idle power (W)", ylim=(0, 1.1 * float(np.max(measurement.idle_w)) or None),
                title="idle windows")
    fig.tight_layout()
    return fig


def accuracy_energy(comparison: "Comparison", measurement) -> Figure:
    """Accuracy against net energy per inference, one point per model measured together:
    vertical bars the accuracy's 95% interval, horizontal bars the range of the net energy over the
    interleaved repeats. The energy method names the axis: an estimate says so."""
    import numpy as np
    import seaborn as sns
    from adjustText import adjust_text
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    names = [n for n in comparison.table.index if n in measurement.subjects]
    if not names:
        raise ValueError(f"Nothing to plot: the comparison ({', '.join(comparison.table.index)}) and the energy "
                         f"measurement ({', '.join(measurement.subjects)}) share no model: pass the two of the "
                         "same models.")
    fig, ax = plt.subplots(figsize=(10, 6))
    palette = sns.color_palette("colorblind", len(names))
    texts = []
    for i, name in enumerate(names):
        card, net = comparison.cards[name], 1e3 * measurement.subjects[name].net_per_item()
        x, y = float(np.median(net)), 100 * card.accuracy
        ax.errorbar(x, y, xerr=[[x - net.min()], [net.max() - x]],
                    yerr=[[y - 100 * card.accuracy_low], [100 * card.accuracy_high - y]],
                    fmt="o", color=palette[i], capsize=3)
        texts.append(ax.text(x, y, name, fontsize="small"))
    ax.set(xscale="log", xlabel=f"mJ per {measurement.unit}, batch {measurement.batch} ({measurement.net_label})",
           ylabel="test accuracy (%, 95% interval)")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.2, y=0.15)
    adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5})
    fig.suptitle(f"{comparison.title}\n{comparison.cards[comparison.reference].hardware}", fontsize="small")
    fig.tight_layout()
    return fig


def pareto_fronts(fronts: dict[str, tuple[list, list, list]], marks: dict[str, tuple[float, float]] | None = None,
                  *, title: str = "") -> Figure:
    """Accuracy against MACs (log scale) of the trials of several searches, one colour each:
    `fronts` maps a search's name to (MACs of every trial, accuracies of every trial, whether each
    is on the search's Pareto front). Each front is drawn as the staircase it dominates; `marks`
    (name -> (MACs, accuracy)) adds reference models as stars."""
    import numpy as np

    _check_given(fronts, "fronts", "{search name: (MACs, accuracies, on front)} for at least one search")
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (name, (macs, accuracy, on_front)) in enumerate(fronts.items()):
        macs, accuracy, on_front = np.asarray(macs, float) / 1e6, 100 * np.asarray(accuracy, float), np.asarray(on_front, bool)
        if len(macs) == 0 or not len(macs) == len(accuracy) == len(on_front):
            raise ValueError(f"Nothing to plot for the search {name!r}: pass its trials' MACs, accuracies and whether each "
                             f"is on the front, one of each per trial (got {len(macs)}, {len(accuracy)} and "
                             f"{len(on_front)}); run the search first if it has no trial.")
        ax.plot(macs, accuracy, "o", color=f"C{i}", alpha=0.35, markersize=5)
        order = np.argsort(macs[on_front])
        ax.step(macs[on_front][order], accuracy[on_front][order], where="post", color=f"C{i}", lw=1.5,
                marker="o", label=f"{name}: front of {int(on_front.sum())} of {len(macs)} trials")
    for name, (macs, accuracy) in (marks or {}).items():
        ax.plot(macs / 1e6, 100 * accuracy, "*", color="black", markersize=12)
        ax.annotate(name, (macs / 1e6, 100 * accuracy), textcoords="offset points", xytext=(6, 4), fontsize="small")
    ax.set(xscale="log", xlabel="MACs per image (millions, log scale)", ylabel="proxy accuracy (%)", title=title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
