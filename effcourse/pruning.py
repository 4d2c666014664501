"""Pruning helpers: what lesson 02 needs beyond the Model Optimization Toolkit's own calls.

The toolkit (`tfmot.sparsity.keras`) prunes *while training*, and the lesson calls it
directly. This module holds the rest:

* the schedule steps of a fine-tuning run,
* magnitude pruning *without* retraining (the "prune once" baseline), in place for scans,
* the per-layer sensitivity scan and a per-layer sparsity plan drawn from it,
* structured pruning: rank convolution filters by their L1 or L2 norm and rebuild a
  genuinely narrower model with the surviving weights (model surgery), for the course's
  sequential CNNs,
* M-by-N (2:4) pattern checks and the lesson's plots.
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterable, Mapping

import numpy as np
import tf_keras as keras
from tf_keras import layers

from . import measure
from .data import ImageData

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
    ramp_steps = max(1, math.floor(ramp * total_steps))
    frequency = max(1, min(frequency, ramp_steps // 10 or 1))
    return frequency * (ramp_steps // frequency), frequency


# --------------------------------------------------------------------------- prunable weights


def clone(model: keras.Model) -> keras.Model:
    """A copy of `model` with its own weights (uncompiled). The toolkit's wrappers wrap the very
    layers they are given, so fine-tuning a wrapped model would change the original too."""
    copy = keras.models.clone_model(model)
    copy.build(model.input_shape)
    copy.set_weights(model.get_weights())
    return copy


def prunable_layers(model: keras.Model) -> list[layers.Layer]:
    """The Conv2D/Dense-family layers whose kernels pruning thins out, in order
    (looking through toolkit wrappers, like the measurements do)."""
    found = []
    for layer in measure._flat_layers(model):
        inner = measure._unwrap(layer)
        if isinstance(inner, (layers.Conv2D, layers.Dense, layers.DepthwiseConv2D, layers.SeparableConv2D)):
            found.append(inner)
    return found


def _kernels(layer) -> list:
    if isinstance(layer, layers.SeparableConv2D):
        return [layer.depthwise_kernel, layer.pointwise_kernel]
    if isinstance(layer, layers.DepthwiseConv2D):
        return [layer.depthwise_kernel]
    return [layer.kernel]


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Boolean mask keeping all but the round(size x sparsity) smallest-magnitude weights
    (the toolkit's criterion); ties are broken by position, so the count is exact."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    weights = np.asarray(weights)
    n_zero = int(round(weights.size * sparsity))
    mask = np.ones(weights.size, dtype=bool)
    mask[np.argsort(np.abs(weights).ravel(), kind="stable")[:n_zero]] = False
    return mask.reshape(weights.shape)


def _per_layer(model: keras.Model, sparsity: float | Mapping[str, float]) -> dict[str, float]:
    names = [layer.name for layer in prunable_layers(model)]
    if isinstance(sparsity, Mapping):
        unknown = sorted(set(sparsity) - set(names))
        if unknown:
            raise ValueError(f"No prunable layer named {', '.join(unknown)}. Prunable layers: {', '.join(names)}.")
        return {name: float(sparsity.get(name, 0.0)) for name in names}
    return {name: float(sparsity) for name in names}


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


def magnitude_prune(model: keras.Model, sparsity: float | Mapping[str, float]) -> keras.Model:
    """A copy of `model` pruned once by magnitude, with no retraining: in each prunable layer the
    given share of its kernel weights with the smallest magnitudes is set to zero."""
    pruned = clone(model)
    plan = _per_layer(pruned, sparsity)
    for layer in prunable_layers(pruned):
        for var in _kernels(layer):
            value = var.numpy()
            var.assign(value * magnitude_mask(value, plan[layer.name]))
    return pruned


def layer_sparsity(model: keras.Model) -> dict[str, float]:
    """Share of exactly-zero kernel weights in each prunable layer."""
    result = {}
    for layer in prunable_layers(model):
        values = [v.numpy() for v in _kernels(layer)]
        size = sum(v.size for v in values)
        result[layer.name] = 1 - sum(int(np.count_nonzero(v)) for v in values) / size
    return result


# --------------------------------------------------------------------------- sensitivity and plans


def sensitivity_scan(model: keras.Model, data: ImageData, ratios: Iterable[float] = (0.3, 0.5, 0.7, 0.9),
                     layer_names: Iterable[str] | None = None):
    """Prune one layer at a time by magnitude (no retraining) at each ratio and measure the
    validation accuracy. Returns a DataFrame (layer, kind, weights, ratio, accuracy) with a
    ratio-0 row per layer holding the unpruned accuracy."""
    import pandas as pd

    ratios = sorted(float(r) for r in ratios)
    if not ratios or ratios[0] <= 0 or ratios[-1] >= 1:
        raise ValueError(f"ratios must lie in (0, 1), got {ratios}")
    candidates = prunable_layers(model)
    names = [layer.name for layer in candidates] if layer_names is None else list(layer_names)
    by_name = {layer.name: layer for layer in candidates}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f"No prunable layer named {', '.join(missing)}. Prunable layers: {', '.join(by_name)}.")
    dense = measure.accuracy(model, data.x_val, data.y_val)
    rows = []
    for name in names:
        size = sum(int(np.prod(v.shape)) for v in _kernels(by_name[name]))
        kind = type(by_name[name]).__name__
        rows.append({"layer": name, "kind": kind, "weights": size, "ratio": 0.0, "accuracy": dense})
        for ratio in ratios:
            with pruned_in_place(model, {name: ratio}):
                rows.append({"layer": name, "kind": kind, "weights": size, "ratio": ratio,
                             "accuracy": measure.accuracy(model, data.x_val, data.y_val)})
    scan = pd.DataFrame(rows)
    scan.attrs["dense accuracy"] = dense
    return scan


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
    one shared tolerance; the tolerance is chosen (by bisection) so the ratios add up to `target`.
    Sensitive layers keep more weights, robust (often large) layers give up more."""
    if not 0 < target < 1:
        raise ValueError(f"target must be in (0, 1), got {target}")
    curves = {}
    for name, rows in scan.groupby("layer", sort=False):
        rows = rows.sort_values("ratio")
        ratios = np.concatenate([[0.0], rows["ratio"].to_numpy(float)]) if rows["ratio"].iloc[0] > 0 else rows["ratio"].to_numpy(float)
        acc = rows["accuracy"].to_numpy(float)
        dense = scan.attrs.get("dense accuracy", acc[0])
        acc = np.concatenate([[dense], acc]) if len(acc) < len(ratios) else acc
        curves[name] = (ratios, dense - acc, int(rows["weights"].iloc[0]))
    total = sum(w for _, _, w in curves.values())
    highest = min(r[-1] for r, _, _ in curves.values())
    if target > sum(r[-1] * w for r, _, w in curves.values()) / total + 1e-9:
        raise ValueError(f"target {target:.0%} is beyond what the scan covers (largest ratio scanned: {highest:.0%}).")

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


def overall_sparsity(plan: Mapping[str, float], model: keras.Model) -> float:
    """The model-wide kernel sparsity that per-layer ratios `plan` give `model`."""
    sizes = {layer.name: sum(int(np.prod(v.shape)) for v in _kernels(layer)) for layer in prunable_layers(model)}
    return sum(plan.get(name, 0.0) * size for name, size in sizes.items()) / sum(sizes.values())


def macs_table(models_by_sparsity: Mapping[float, keras.Model]):
    """Dense MACs against MACs of the non-zero weights, per image, for models pruned to each
    sparsity ratio (the keys), counted from their weights by `measure.macs`."""
    import pandas as pd

    rows = []
    for asked, model in sorted(models_by_sparsity.items()):
        dense, nonzero = measure.macs(model)
        rows.append({"sparsity asked": asked, "sparsity measured": round(measure.sparsity(model), 4),
                     "MACs (M)": round(dense / 1e6, 3), "non-zero MACs (M)": round(nonzero / 1e6, 3),
                     "non-zero share": round(nonzero / dense, 3)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- structured pruning


class SurgeryError(ValueError):
    """A model the structured-pruning surgery cannot rewrite, saying what it supports."""


SUPPORTED = (
    "a keras.Sequential model of Conv2D layers (groups=1, channels_last), each optionally followed by "
    "BatchNormalization, ReLU/Activation/LeakyReLU, MaxPooling2D/AveragePooling2D and Dropout, the last "
    "one feeding GlobalAveragePooling2D/GlobalMaxPooling2D or Flatten, then Dense layers"
)
# Layers that act on each channel separately: they pass the kept channels through unchanged.
_CHANNELWISE = (layers.ReLU, layers.Activation, layers.LeakyReLU, layers.MaxPooling2D,
                layers.AveragePooling2D, layers.Dropout, layers.SpatialDropout2D)
_GLOBAL_POOL = (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)


def filter_norms(kernel: np.ndarray, norm: str = "l1") -> np.ndarray:
    """The L1 or L2 norm of each output filter of a Conv2D kernel (kh, kw, in, out): one value per filter."""
    kernel = np.asarray(kernel)
    flat = kernel.reshape(-1, kernel.shape[-1])
    if norm == "l1":
        return np.abs(flat).sum(axis=0)
    if norm == "l2":
        return np.sqrt((flat.astype(np.float64) ** 2).sum(axis=0))
    raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")


def rank_filters(kernel: np.ndarray, norm: str = "l1") -> np.ndarray:
    """Filter indices from least to most important (smallest norm first; ties by index)."""
    return np.argsort(filter_norms(kernel, norm), kind="stable")


def _surgery_convs(model: keras.Model) -> list[layers.Conv2D]:
    _check_rewritable(model)
    return [layer for layer in model.layers if type(layer) is layers.Conv2D]


def filters_to_keep(model: keras.Model, ratio: float | Mapping[str, float], norm: str = "l1",
                    *, multiple_of: int = 1) -> dict[str, np.ndarray]:
    """For each Conv2D layer, the indices (ascending) of the filters with the largest norms, removing
    `ratio` of them (one ratio for all, or {layer name: ratio}); the number kept is rounded up to a
    multiple of `multiple_of` (vector units like multiples of 4 or 8) and is at least one."""
    convs = _surgery_convs(model)
    ratios = ratio if isinstance(ratio, Mapping) else {layer.name: ratio for layer in convs}
    unknown = sorted(set(ratios) - {layer.name for layer in convs})
    if unknown:
        raise ValueError(f"No Conv2D layer named {', '.join(unknown)}. Conv2D layers: {', '.join(l.name for l in convs)}.")
    keep = {}
    for layer in convs:
        r = float(ratios.get(layer.name, 0.0))
        if not 0 <= r < 1:
            raise ValueError(f"ratio for {layer.name} must be in [0, 1), got {r}")
        n = layer.filters
        kept = max(1, n - int(round(n * r)))
        kept = min(n, multiple_of * math.ceil(kept / multiple_of))
        keep[layer.name] = np.sort(rank_filters(layer.kernel.numpy(), norm)[n - kept:])
    return keep


def _check_rewritable(model: keras.Model) -> None:
    if not isinstance(model, keras.Sequential):
        raise SurgeryError(f"Cannot rewrite {model.name!r} ({type(model).__name__}): the surgery supports {SUPPORTED}.")
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise SurgeryError(f"Cannot rewrite nested model {layer.name!r}: the surgery supports {SUPPORTED}.")
        if measure._unwrap(layer) is not layer:
            raise SurgeryError(f"Layer {layer.name!r} is wrapped by the Model Optimization Toolkit: "
                               "call tfmot.sparsity.keras.strip_pruning (or strip the wrapper) first.")


def _unsupported(layer, why: str) -> SurgeryError:
    return SurgeryError(f"Cannot rewrite layer {layer.name!r} ({type(layer).__name__}): {why}. The surgery supports {SUPPORTED}.")


def narrow(model: keras.Model, keep: Mapping[str, Iterable[int]], name: str | None = None) -> keras.Model:
    """Rebuild `model` with only the filters `keep` names for each Conv2D layer ({layer name: filter
    indices}; layers not named keep every filter): a genuinely narrower dense model holding the
    surviving weights. The next layers lose the matching input channels: batch norm its statistics,
    the next convolution its input slices, the first Dense layer its rows (after Flatten: every
    flattened position of a removed channel)."""
    _check_rewritable(model)
    keep = {k: np.sort(np.asarray(list(v), dtype=int)) for k, v in keep.items()}
    names = {layer.name for layer in model.layers}
    unknown = sorted(set(keep) - names)
    if unknown:
        raise ValueError(f"No layer named {', '.join(unknown)} in {model.name!r}.")
    channels = None  # kept channel indices of the current feature map (None: all of them)
    rows = None  # kept rows of the next Dense layer's kernel (after GAP or Flatten)
    new_layers, new_weights = [], []
    for layer in model.layers:
        config = layer.get_config()
        weights = layer.get_weights()
        if type(layer) is layers.Conv2D:
            if layer.groups != 1 or layer.data_format != "channels_last":
                raise _unsupported(layer, "grouped or channels_first convolutions are not supported")
            if rows is not None:
                raise _unsupported(layer, "a convolution after Flatten/global pooling is not supported")
            kernel = weights[0] if channels is None else weights[0][:, :, channels, :]
            out = keep.get(layer.name, np.arange(layer.filters))
            if len(out) == 0 or out.min() < 0 or out.max() >= layer.filters or len(set(out)) != len(out):
                raise ValueError(f"Filters to keep for {layer.name} must be distinct indices in [0, {layer.filters}), at least one.")
            weights = [kernel[..., out]] + ([weights[1][out]] if layer.use_bias else [])
            config["filters"] = len(out)
            channels = out if len(out) < layer.filters else None
        elif layer.name in keep:
            raise ValueError(f"{layer.name!r} is a {type(layer).__name__}, not a Conv2D: only convolution filters can be removed.")
        elif isinstance(layer, layers.BatchNormalization):
            if rows is not None:
                raise _unsupported(layer, "batch norm after Flatten/global pooling is not supported")
            axis = config["axis"][0] if isinstance(config["axis"], (list, tuple)) else config["axis"]
            if axis not in (-1, 3):
                raise _unsupported(layer, "only batch norm over the channel (last) axis is supported")
            if channels is not None:
                weights = [w[channels] for w in weights]
        elif isinstance(layer, _CHANNELWISE):
            if isinstance(layer, layers.Dropout) and config.get("noise_shape") is not None:
                raise _unsupported(layer, "dropout with a noise_shape is not supported")
        elif isinstance(layer, _GLOBAL_POOL):
            if rows is not None:
                raise _unsupported(layer, "global pooling after Flatten is not supported")
            rows, channels = channels, None
        elif isinstance(layer, layers.Flatten):
            if channels is not None:
                h, w, c = layer.input_shape[1:]
                positions = np.arange(h * w)[:, None] * c
                rows = (positions + channels[None, :]).ravel()  # channels-last flattening: (y, x, channel)
            channels = None
        elif isinstance(layer, layers.Dense):
            if channels is not None:
                raise _unsupported(layer, "a Dense layer must follow Flatten or global pooling")
            if rows is not None:
                weights = [weights[0][rows]] + weights[1:]
                rows = None
        elif channels is not None or rows is not None:
            raise _unsupported(layer, "it sits between a pruned convolution and the classifier")
        new_layers.append(type(layer).from_config(config))
        new_weights.append(weights)
    narrow_model = keras.Sequential([keras.Input(shape=model.input_shape[1:])] + new_layers,
                                    name=name or f"{model.name}_narrow")
    for layer, weights in zip(new_layers, new_weights):
        layer.set_weights(weights)
    return narrow_model


def prune_filters(model: keras.Model, ratio: float | Mapping[str, float], norm: str = "l1",
                  *, multiple_of: int = 1) -> keras.Model:
    """Structured pruning: remove `ratio` of each Conv2D layer's filters, those with the smallest
    L1 or L2 norm, and return the rebuilt narrower model (see `filters_to_keep` and `narrow`)."""
    keep = filters_to_keep(model, ratio, norm, multiple_of=multiple_of)
    return narrow(model, keep, name=f"{model.name}_{norm}_narrow")


def widths(model: keras.Model) -> list[int]:
    """The number of filters of each Conv2D layer."""
    return [layer.filters for layer in measure._flat_layers(model) if isinstance(measure._unwrap(layer), layers.Conv2D)]


# --------------------------------------------------------------------------- M-by-N sparsity and converted models


def m_by_n_share(model: keras.Model, m_by_n: tuple[int, int] = (2, 4)) -> float:
    """Share of the groups of N consecutive input-channel weights (the layout LiteRT stores:
    Conv2D kernels as (out, h, w, in), Dense as (out, in)) holding at least M zeros, over the
    Conv2D and Dense kernels whose input depth is a multiple of N."""
    m, n = m_by_n
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
                         title: str = "Accuracy against sparsity"):
    """Accuracy (%) against sparsity, one line per curve ({label: {sparsity: accuracy}})."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (label, points) in enumerate(curves.items()):
        xs = sorted(points)
        ax.plot([100 * x for x in xs], [100 * points[x] for x in xs], "o-", color=f"C{i}", label=label)
    if dense_accuracy is not None:
        ax.axhline(100 * dense_accuracy, color="grey", ls=":", label="unpruned model")
    ax.set(xlabel="sparsity of the conv/dense kernels (%)", ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_sensitivity(scan, plan: Mapping[str, float] | None = None, uniform: float | None = None):
    """Left: validation accuracy against each layer's sparsity, one layer pruned at a time.
    Right (with a plan): each layer's ratio in the plan against the uniform ratio."""
    import matplotlib.pyplot as plt

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
