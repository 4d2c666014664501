"""Structured pruning: rank convolution filters by their L1 or L2 norm and rebuild a genuinely
narrower model with the surviving weights (model surgery), for the course's sequential CNNs."""
from __future__ import annotations

import math
import numbers
from typing import Iterable, Mapping

import numpy as np
import tf_keras as keras
from tf_keras import layers

from .kerasutil import flat_layers, unwrap

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
    convs = [layer for layer in model.layers if type(layer) is layers.Conv2D]
    if not convs:
        raise SurgeryError(f"{model.name!r} has no Conv2D layer whose filters could be removed: "
                           f"the surgery supports {SUPPORTED}.")
    return convs


def filters_to_keep(model: keras.Model, ratio: float | Mapping[str, float], norm: str = "l1",
                    *, multiple_of: int = 1) -> dict[str, np.ndarray]:
    """For each Conv2D layer, the indices (ascending) of the filters with the largest norms, removing
    `ratio` of them (one ratio for all, or {layer name: ratio}); the number kept is rounded up to a
    multiple of `multiple_of` (vector units like multiples of 4 or 8) and is at least one."""
    if isinstance(multiple_of, bool) or not isinstance(multiple_of, numbers.Integral) or multiple_of < 1:
        raise ValueError(f"multiple_of must be a whole number of filters, at least 1, got {multiple_of!r}")
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
        if unwrap(layer) is not layer:
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
    if not isinstance(keep, Mapping):
        raise TypeError(f"keep maps Conv2D layer names to the indices of the filters to keep, e.g. "
                        f"{{'conv': [0, 2, 3]}} (filters_to_keep gives one), got {keep!r}.")
    unknown = sorted(set(keep) - {layer.name for layer in model.layers})
    if unknown:
        convs = ", ".join(layer.name for layer in _surgery_convs(model))
        raise ValueError(f"No layer named {', '.join(map(str, unknown))} in {model.name!r}; its Conv2D layers: {convs}.")
    counts = [f"{name}: {v!r}" for name, v in keep.items() if isinstance(v, numbers.Number)]
    if counts:
        raise TypeError(f"keep gives each layer the indices of the filters to keep, not a count "
                        f"({'; '.join(counts)}): write e.g. {{'conv': [0, 1]}}, or remove a share of the filters "
                        "with prune_filters.")
    keep = {k: np.sort(np.asarray(list(v))) for k, v in keep.items()}
    channels = None  # kept channel indices of the current feature map (None: all of them)
    rows = None  # kept rows of the next Dense layer's kernel (after GAP or Flatten)
    new_layers, new_weights = [], []
    for layer in model.layers:
        config = layer.get_config()
        weights = layer.get_weights()
        if config.get("data_format", "channels_last") != "channels_last":
            raise _unsupported(layer, "channels_first layers are not supported")
        if type(layer) is layers.Conv2D:
            if layer.groups != 1:
                raise _unsupported(layer, "grouped convolutions are not supported")
            if rows is not None:
                raise _unsupported(layer, "a convolution after Flatten/global pooling is not supported")
            kernel = weights[0] if channels is None else weights[0][:, :, channels, :]
            out = keep.get(layer.name, np.arange(layer.filters))
            if (len(out) == 0 or not np.issubdtype(out.dtype, np.integer) or out.min() < 0
                    or out.max() >= layer.filters or len(set(out)) != len(out)):
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
            if config.get("activation") in ("softmax", "log_softmax") and (channels is not None or rows is not None):
                raise _unsupported(layer, "a softmax over the channels mixes them, so removing one changes the others")
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
    if channels is not None or rows is not None:
        raise SurgeryError(f"The filters removed from the last Conv2D of {model.name!r} would be outputs of the model: "
                           f"keep all of that layer's filters (ratio 0 for it). The surgery supports {SUPPORTED}.")
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
    return [unwrap(layer).filters for layer in flat_layers(model) if isinstance(unwrap(layer), layers.Conv2D)]
