"""Unstructured pruning helpers: what lesson 02 needs beyond the Model Optimization Toolkit's
own calls.

The toolkit (`tfmot.sparsity.keras`) prunes *while training*, and the lesson calls it
directly. This module holds the rest:

* the schedule steps of a fine-tuning run,
* magnitude pruning *without* retraining (the "prune once" baseline), in place for scans,
* a per-layer sparsity plan drawn from a sensitivity scan (lesson 02 runs the scan),
* M-by-N (2:4) pattern checks and the lesson's plots.

Structured pruning (removing whole filters) is in `surgery`.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from typing import Mapping

import numpy as np
import tf_keras as keras
from tf_keras import layers

from . import kerasutil, measure

# --------------------------------------------------------------------------- data and schedules


def schedule_steps(total_steps: int, *, ramp: float = 0.75, frequency: int = 100) -> tuple[int, int]:
    """(end_step, frequency) for a toolkit pruning schedule over `total_steps` training steps.

    The toolkit updates the masks only every `frequency` steps, at steps `begin_step + k * frequency`
    up to `end_step`, so the target sparsity is reached only if `end_step` is one of them. This
    reaches it after `ramp` of the steps (leaving the rest to recover at the final sparsity), with
    at most `frequency` steps between mask updates and fewer for short runs."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    if not 0 < ramp <= 1:
        raise ValueError(f"ramp must be in (0, 1], got {ramp}")
    if isinstance(frequency, bool) or not isinstance(frequency, numbers.Integral) or frequency < 1:
        raise ValueError(f"frequency must be a whole number of steps between mask updates, at least 1, "
                         f"got {frequency!r}")
    ramp_steps = max(1, math.floor(ramp * total_steps))
    frequency = min(frequency, ramp_steps // 10 or 1)
    return frequency * (ramp_steps // frequency), frequency


# --------------------------------------------------------------------------- prunable weights


def prunable_layers(model: keras.Model) -> list[layers.Layer]:
    """The Conv2D/Dense-family layers whose kernels pruning thins out, in order
    (looking through toolkit wrappers, like the measurements do)."""
    return [inner for _, inner in kerasutil.weighted_layers(model)]


def _kernels(layer) -> list:
    return kerasutil.kernel_variables(layer)


def _check_sparsity(sparsity: float) -> None:
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Boolean mask keeping all but the round(size x sparsity) smallest-magnitude weights
    (the toolkit's criterion); ties are broken by position, so the count is exact."""
    _check_sparsity(sparsity)
    weights = np.asarray(weights)
    n_zero = int(round(weights.size * sparsity))
    mask = np.ones(weights.size, dtype=bool)
    mask[np.argsort(np.abs(weights).ravel(), kind="stable")[:n_zero]] = False
    return mask.reshape(weights.shape)


def _per_layer(model: keras.Model, sparsity: float | Mapping[str, float]) -> dict[str, float]:
    names = [layer.name for layer in prunable_layers(model)]
    if not names:
        raise ValueError(f"{model.name!r} has no Conv2D/Dense-family layer to prune.")
    if isinstance(sparsity, Mapping):
        unknown = sorted(set(sparsity) - set(names))
        if unknown:
            raise ValueError(f"No prunable layer named {', '.join(unknown)}. Prunable layers: {', '.join(names)}.")
        plan = {name: float(sparsity.get(name, 0.0)) for name in names}
    else:
        plan = {name: float(sparsity) for name in names}
    for ratio in plan.values():
        _check_sparsity(ratio)
    return plan


@contextlib.contextmanager
def pruned_in_place(model: keras.Model, sparsity: float | Mapping[str, float]):
    """Within the block, `model`'s kernels are pruned by magnitude (one ratio for every prunable
    layer, or {layer name: ratio}); afterwards its weights are restored. Cheap for scans:
    no copy of the model and no new graph to trace."""
    plan = _per_layer(model, sparsity)
    saved = []
    try:
        for layer in prunable_layers(model):
            for var in _kernels(layer):
                value = var.numpy()
                saved.append((var, value))
                if plan[layer.name] > 0:
                    var.assign(value * magnitude_mask(value, plan[layer.name]))
        yield model
    finally:
        for var, value in saved:
            var.assign(value)


def layer_sparsity(model: keras.Model) -> dict[str, float]:
    """Share of exactly-zero kernel weights in each prunable layer (0 for a kernel of no weights,
    as `measure.sparsity` counts it)."""
    result = {}
    for layer in prunable_layers(model):
        values = [v.numpy() for v in _kernels(layer)]
        size = sum(v.size for v in values)
        result[layer.name] = 1 - sum(int(np.count_nonzero(v)) for v in values) / size if size else 0.0
    return result


# --------------------------------------------------------------------------- sensitivity and plans


def _check_scan(scan) -> None:
    missing = [column for column in ("layer", "weights", "ratio", "accuracy") if column not in scan.columns]
    if missing or scan.empty:
        found = f"has no column {', '.join(missing)}" if missing else "is empty"
        raise ValueError("A sensitivity scan is needed: one row per layer and ratio, with columns layer, weights, "
                         f"ratio and accuracy (this one {found}).")
    if not scan["ratio"].between(0, 1).all():
        raise ValueError(f"The scan's ratios must be fractions in [0, 1], got {sorted(scan['ratio'].unique().tolist())}.")
    if not np.isfinite(scan["accuracy"].to_numpy(float)).all():
        raise ValueError("The scan holds accuracies that are not numbers (NaN): measure every row.")


def _tolerable_ratio(ratios: np.ndarray, drops: np.ndarray, tolerance: float) -> float:
    """Largest ratio whose (linearly interpolated, made monotone) accuracy drop is <= tolerance."""
    drops = np.maximum.accumulate(drops)
    if drops[-1] <= tolerance:
        return float(ratios[-1])
    i = int(np.argmax(drops > tolerance))  # first grid point beyond tolerance (i >= 1, drops[0] = 0)
    lo, hi = drops[i - 1], drops[i]
    return float(ratios[i - 1] + (ratios[i] - ratios[i - 1]) * (tolerance - lo) / (hi - lo))


def sparsity_plan(scan, target: float) -> dict[str, float]:
    """Per-layer sparsity ratios drawn from a sensitivity scan, weighted by each layer's number of
    weights so that the model's overall kernel sparsity is `target`.

    Every layer is pruned as far as it can go while its own accuracy drop in the scan stays within
    one shared tolerance; the tolerance is chosen (by bisection) so that the ratios, weighted by the
    layers' weights, average to `target` (a last blend of the two plans around it closes the gap).
    Sensitive layers keep more weights, robust (often large) layers give up more."""
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1), got {target}")
    _check_scan(scan)
    curves = {}
    for name, rows in scan.groupby("layer", sort=False):
        rows = rows.sort_values("ratio")
        ratios = np.concatenate([[0.0], rows["ratio"].to_numpy(float)]) if rows["ratio"].iloc[0] > 0 else rows["ratio"].to_numpy(float)
        if len(ratios) > len(rows) and "dense accuracy" not in scan.attrs:
            raise ValueError(f"The scan has no row at ratio 0 for {name!r}: add one with the unpruned model's "
                             "accuracy, or set scan.attrs['dense accuracy'].")
        acc = rows["accuracy"].to_numpy(float)
        dense = scan.attrs.get("dense accuracy", acc[0])
        acc = np.concatenate([[dense], acc]) if len(acc) < len(ratios) else acc
        curves[name] = (ratios, dense - acc, int(rows["weights"].iloc[0]))
    total = sum(w for _, _, w in curves.values())
    covered = sum(r[-1] * w for r, _, w in curves.values()) / total
    if target > covered + 1e-9:
        raise ValueError(f"target {target:.0%} is beyond what the scan covers (each layer at its largest "
                         f"ratio scanned: {covered:.0%} overall).")

    def plan_at(tolerance):
        return {name: _tolerable_ratio(r, d, tolerance) for name, (r, d, _) in curves.items()}

    def overall(plan):
        return sum(plan[name] * w for name, (_, _, w) in curves.items()) / total

    free = plan_at(0.0)  # what layers whose accuracy does not drop at all can give
    if overall(free) >= target:  # already enough: scale those ratios down
        plan_low, plan_high = {name: 0.0 for name in curves}, free
    else:
        low, high = 0.0, max(float(np.max(d)) for _, d, _ in curves.values()) + 1.0
        for _ in range(60):
            mid = (low + high) / 2
            low, high = (mid, high) if overall(plan_at(mid)) < target else (low, mid)
        plan_low, plan_high = plan_at(low), plan_at(high)
    s_low, s_high = overall(plan_low), overall(plan_high)
    mix = 0.0 if s_high == s_low else (target - s_low) / (s_high - s_low)  # close the last (tiny or jump) gap
    return {name: plan_low[name] + mix * (plan_high[name] - plan_low[name]) for name in curves}


def macs_table(models_by_sparsity: Mapping[float, keras.Model]):
    """Dense MACs against MACs of the non-zero weights, per image, for models pruned to each
    sparsity ratio (the keys), counted from their weights by `measure.macs`."""
    import pandas as pd

    rows = []
    for asked, model in sorted(models_by_sparsity.items()):
        dense, nonzero = measure.macs(model)
        if not dense:
            raise ValueError(f"{model.name!r} (sparsity {asked}) has no MACs to compare: it has no Conv2D/Dense-family "
                             "layer with weights. Pass models with convolution or Dense layers.")
        rows.append({"sparsity asked": asked, "sparsity measured": round(measure.sparsity(model), 4),
                     "MACs (M)": round(dense / 1e6, 3), "non-zero MACs (M)": round(nonzero / 1e6, 3),
                     "non-zero share": round(nonzero / dense, 3)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- M-by-N sparsity and converted models


def m_by_n_share(model: keras.Model, m_by_n: tuple[int, int] = (2, 4)) -> float:
    """Share of the groups of N consecutive input-channel weights (the layout LiteRT stores:
    Conv2D kernels as (out, h, w, in), Dense as (out, in)) holding at least M zeros, over the
    Conv2D and Dense kernels whose input depth is a multiple of N."""
    m, n = m_by_n
    if not 1 <= m <= n or int(m) != m or int(n) != n:
        raise ValueError(f"m_by_n must be (M, N), integers with 1 <= M <= N, e.g. (2, 4); got {m_by_n}")
    good = total = 0
    for layer in prunable_layers(model):
        if type(layer) not in (layers.Conv2D, layers.Dense):
            continue
        kernel = layer.kernel.numpy()
        rows = np.moveaxis(kernel, -1, 0).reshape(-1, kernel.shape[-2])  # (out x h x w, in)
        if rows.shape[1] % n:
            continue
        groups = rows.reshape(-1, n)
        good += int(np.sum((groups == 0).sum(axis=1) >= m))
        total += len(groups)
    if total == 0:
        raise ValueError(f"No Conv2D/Dense kernel of {model.name!r} has an input depth that is a multiple of {n}.")
    return good / total


# --------------------------------------------------------------------------- plots


def plot_sparsity_curves(curves: Mapping[str, Mapping[float, float]], dense_accuracy: float | None = None,
                         title: str = "Accuracy against sparsity", images: int | None = None):
    """Accuracy (%) against sparsity, one line per curve ({label: {sparsity: accuracy}}); with the
    number of test `images`, each curve's 95% interval as a band, so a gap within noise looks it."""
    import matplotlib.pyplot as plt

    from .plots import accuracy_band

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (label, points) in enumerate(curves.items()):
        xs = sorted(points)
        ax.plot([100 * x for x in xs], [100 * points[x] for x in xs], "o-", color=f"C{i}", label=label)
        if images:
            accuracy_band(ax, [100 * x for x in xs], [points[x] for x in xs], images, color=f"C{i}")
    if dense_accuracy is not None:
        ax.axhline(100 * dense_accuracy, color="grey", ls=":", label="unpruned model")
    ax.set(xlabel="sparsity of the conv/dense kernels (%)", ylabel="test accuracy (%)"
           + (", 95% band" if images else ""), title=title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_sensitivity(scan, plan: Mapping[str, float] | None = None, uniform: float | None = None):
    """Left: validation accuracy against each layer's sparsity, one layer pruned at a time.
    Right (with a plan): each layer's ratio in the plan against the uniform ratio."""
    import matplotlib.pyplot as plt

    _check_scan(scan)
    fig, axes = plt.subplots(1, 2 if plan else 1, figsize=(12 if plan else 6.5, 4), squeeze=False)
    ax = axes[0, 0]
    for i, (name, rows) in enumerate(scan.groupby("layer", sort=False)):
        rows = rows.sort_values("ratio")
        ax.plot(100 * rows["ratio"], 100 * rows["accuracy"], "o-", color=f"C{i}", label=f"{name} ({rows['weights'].iloc[0]:,} w)")
    ax.set(xlabel="sparsity of this layer only (%)", ylabel="validation accuracy (%)", title="Sensitivity: one layer pruned at a time")
    ax.legend(fontsize="x-small")
    if plan:
        bar = axes[0, 1]
        names = list(plan)
        bar.bar(range(len(names)), [100 * plan[n] for n in names], color="C0", label="per-layer plan")
        if uniform is not None:
            bar.axhline(100 * uniform, color="C3", ls="--", label=f"uniform {uniform:.0%}")
        bar.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize="small")
        bar.set(ylabel="sparsity (%)", title="Sparsity plan drawn from the scan")
        bar.legend(fontsize="small")
    fig.tight_layout()
    return fig
