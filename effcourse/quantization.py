"""Quantization helpers for lesson 03: fake quantization of weights, bit-width sweeps and
weight histograms.

The converter's options (`tf.lite.TFLiteConverter`, `optimizations`, `representative_dataset`,
...) and the Model Optimization Toolkit's calls stand in the notebook; conversion itself lives
in `convert`, and what a converted file holds in `litert`.
"""
from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Iterable

import numpy as np
import tf_keras as keras

from . import kerasutil, measure
from .data import model_input

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

GRANULARITIES = ("per-tensor", "per-channel")
MAX_BITS = 24  # float32 holds the integers exactly only up to 2**24; wider ones also overflow int32


# --------------------------------------------------------------------------- fake quantization


def _check(bits: int, granularity: str) -> None:
    if (isinstance(bits, bool) or not isinstance(bits, numbers.Real) or not float(bits).is_integer()
            or not 2 <= bits <= MAX_BITS):
        raise ValueError(f"bits must be an integer of at least 2 (symmetric quantization) and at most {MAX_BITS}, "
                         f"got {bits!r}")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")


def levels(bits: int) -> int:
    """The largest integer of symmetric `bits`-bit quantization: 127 for 8 bits, 1 for 2 bits.
    The integers run from -levels to +levels: 2 * levels + 1 = 2**bits - 1 values, zero included."""
    _check(bits, "per-tensor")
    return 2 ** (int(bits) - 1) - 1


def scales(w: np.ndarray, bits: int, granularity: str = "per-tensor", channel_axes: int = 1) -> np.ndarray:
    """The step between neighbouring quantized values: max |w| / levels(bits), over the whole
    tensor (a scalar) or per output channel, indexed by the last `channel_axes` axes of a Keras
    kernel: 1 for Conv2D and Dense, 2 for a depthwise kernel (kh, kw, channels, multiplier), whose
    output channels are channels x multiplier, as LiteRT quantizes them.
    An all-zero tensor or channel gets scale 1/levels (its values all quantize to 0 anyway)."""
    _check(bits, granularity)
    w = np.asarray(w, dtype=np.float32)
    if not np.isfinite(w).all():
        raise ValueError("The weights hold NaN or infinite values: there is nothing to quantize "
                         "(did the training diverge?).")
    if granularity == "per-tensor" or w.ndim == 0:
        peak = np.max(np.abs(w)) if w.size else np.float32(0)
    else:
        if channel_axes not in range(1, w.ndim + 1):
            raise ValueError(f"channel_axes must be an integer from 1 to the weights' {w.ndim} axes "
                             f"(1 for Conv2D and Dense, 2 for a depthwise kernel), got {channel_axes!r}")
        peak = np.max(np.abs(w), axis=tuple(range(w.ndim - channel_axes)), initial=0)
    peak = np.where(peak > 0, peak, 1.0)
    return (peak / levels(bits)).astype(np.float32)


def quantize_integers(w: np.ndarray, bits: int, granularity: str = "per-tensor",
                      channel_axes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(integers, scales) of symmetric `bits`-bit quantization, so that w ~ integers * scales."""
    scale = scales(w, bits, granularity, channel_axes)
    q = np.clip(np.round(np.asarray(w, dtype=np.float32) / scale), -levels(bits), levels(bits))
    return q.astype(np.int32), scale


def fake_quantize(w: np.ndarray, bits: int, granularity: str = "per-tensor", channel_axes: int = 1) -> np.ndarray:
    """`w` rounded to the nearest of its `bits`-bit symmetric levels, back in float32
    ("fake" quantization: the values a quantized model computes with, stored as floats).
    Per channel, each output channel (the last `channel_axes` axes, see `scales`) has its own scale."""
    q, scale = quantize_integers(w, bits, granularity, channel_axes)
    return (q * scale).astype(np.float32)


def distinct_values(model: keras.Model) -> dict[str, int]:
    """{layer name: number of distinct values in its kernel}: what clustering reduces."""
    return {name: int(len(np.unique(w))) for name, w in kerasutil.kernels(model).items()}


def bit_width_sweep(model: keras.Model, images: np.ndarray, labels: np.ndarray,
                    bits: Iterable[int] = (8, 6, 4, 3, 2), granularities: Iterable[str] = GRANULARITIES,
                    batch_size: int = 256) -> "pd.DataFrame":
    """Accuracy of `model` on `images` (uint8, or floats in [0, 1]) with its Conv/Dense kernels fake-quantized
    to each bit width and granularity. A tidy table, one row per (bits, granularity) plus a
    float32 row (bits 32), with the mean |error| of the weights relative to their mean |value| and
    the most distinct values any kernel keeps. `model` itself is left untouched."""
    import pandas as pd

    images = model_input(images, "bit_width_sweep")
    original = kerasutil.kernels(model)
    magnitude = float(np.mean(np.abs(np.concatenate([w.ravel() for w in original.values()]))))
    work = kerasutil.clone(model)
    targets = kerasutil.kernel_items(work)

    def evaluate() -> float:
        return measure.accuracy(work.predict(images, batch_size=batch_size, verbose=0), images, labels)

    rows = [{"bits": 32, "granularity": "float32", "accuracy": evaluate(), "relative error": 0.0,
             "distinct values": max(len(np.unique(w)) for w in original.values())}]
    for b in bits:
        for granularity in granularities:
            errors, distinct = [], 0
            for name, variable in targets:
                depthwise = "depthwise_kernel" in variable.name  # (kh, kw, channels, multiplier)
                q = fake_quantize(original[name], b, granularity, channel_axes=2 if depthwise else 1)
                variable.assign(q)
                errors.append(np.abs(original[name] - q).ravel())
                distinct = max(distinct, len(np.unique(q)))
            rows.append({"bits": int(b), "granularity": granularity, "accuracy": evaluate(),
                         "relative error": float(np.mean(np.concatenate(errors)) / magnitude),
                         "distinct values": distinct})
    return pd.DataFrame(rows)


def quantized_rows(sweep: "pd.DataFrame") -> "pd.DataFrame":
    """The rows of a `bit_width_sweep` table other than its float32 row, refusing a table that is not one."""
    missing = [column for column in ("bits", "granularity", "accuracy") if column not in sweep.columns]
    if missing:
        raise ValueError(f"A quantization.bit_width_sweep table is needed; this one has no column {', '.join(missing)}.")
    quantized = sweep[sweep["granularity"] != "float32"]
    if quantized.empty:
        raise ValueError("The sweep table has no quantized rows: run quantization.bit_width_sweep first.")
    unknown = sorted(set(quantized["granularity"]) - set(GRANULARITIES))
    if unknown:
        raise ValueError(f"Unknown granularity {', '.join(map(repr, unknown))} in the sweep table: "
                         f"the granularities are float32, {', '.join(GRANULARITIES)}.")
    return quantized


# --------------------------------------------------------------------------- plots


def draw_histograms(ax, weights: dict[str, np.ndarray], bins: int = 120) -> None:
    """Overlaid histograms of {label: values} on `ax`, the first filled, the others as outlines."""
    arrays = {label: np.asarray(w, dtype=np.float32).ravel() for label, w in weights.items()}
    everything = np.concatenate(list(arrays.values()))
    edges = np.linspace(everything.min(), everything.max(), bins + 1) if everything.size else bins
    for i, (label, values) in enumerate(arrays.items()):
        ax.hist(values, bins=edges, histtype="stepfilled" if i == 0 else "step",
                alpha=0.35 if i == 0 else 1.0, linewidth=1.5, color=f"C{i}", label=label)
    ax.set(xlabel="weight value", ylabel="count (log scale)", yscale="log")
    ax.legend(fontsize="small")


def plot_bit_sweep(table: "pd.DataFrame", *, title: str = "", images: int | None = None) -> "Figure":
    """Accuracy against bits per weight from a `bit_width_sweep` table: one line per granularity,
    the float32 accuracy dashed, fewer bits to the right; with the number of `images` the sweep
    was measured on, each line's 95% interval as a band."""
    import matplotlib.pyplot as plt

    from .plots import accuracy_band

    quantized = quantized_rows(table)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, (granularity, rows) in enumerate(quantized.groupby("granularity", sort=False)):
        rows = rows.sort_values("bits")
        ax.plot(rows["bits"], 100 * rows["accuracy"], "o-", color=f"C{i}", label=granularity)
        if images:
            accuracy_band(ax, rows["bits"].tolist(), rows["accuracy"].tolist(), images, color=f"C{i}")
    baseline = table.loc[table["granularity"] == "float32", "accuracy"]
    if len(baseline):
        ax.axhline(100 * float(baseline.iloc[0]), color="grey", linestyle="--", label="float32")
    ax.set(xlabel="bits per weight", ylabel="accuracy (%)" + (", 95% band" if images else ""), title=title,
           xticks=sorted(int(b) for b in quantized["bits"].unique()))
    ax.invert_xaxis()
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig
