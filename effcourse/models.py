"""The course's CNNs for CIFAR-10-sized images, in plain Keras 2 (tf_keras)."""
from __future__ import annotations

import tf_keras as keras
from tf_keras import layers


def check_input(input_shape, num_classes, smallest: int = 1) -> None:
    """Refuse what a builder cannot make a classifier for: an `input_shape` other than (height, width,
    channels), a side under `smallest` pixels (what its convolutions and poolings shrink to one
    pixel), fewer than 2 classes."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), e.g. data.image_shape, got {input_shape!r}.")
    if any(side is not None and side < smallest for side in shape[:2]):
        raise ValueError(f"Images of {shape[0]}x{shape[1]} are too small for this model: its convolutions and poolings "
                         f"shrink {smallest}x{smallest} pixels to one, and smaller images to nothing. Resize the images "
                         "up, or build a model with fewer stages.")
    try:
        classes_ok = int(num_classes) == num_classes >= 2
    except (TypeError, ValueError):
        classes_ok = False
    if not classes_ok:
        raise ValueError(f"num_classes must be a whole number of at least 2 (data.num_classes), got {num_classes!r}.")


def reference_cnn(input_shape=(32, 32, 3), num_classes=10) -> keras.Model:
    """The reference CNN of lesson 01, exactly as first specified: three convolutions,
    two max-pools, a 64-unit dense layer and 10 logits. Its unpadded convolutions need images of
    at least 18x18."""
    check_input(input_shape, num_classes, smallest=18)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(num_classes),  # logits
        ],
        name="reference_cnn",
    )


def _conv_bn_relu(filters: int, batch_norm: bool = True) -> list[layers.Layer]:
    """3x3 convolution (no bias: batch norm has one), batch normalisation, ReLU.
    Momentum 0.9 lets the running statistics settle within a few hundred steps, so even
    a short run evaluates with sensible ones (Keras' default 0.99 needs thousands).
    Without `batch_norm` (an ablation's variant): a 3x3 convolution with a bias, then ReLU."""
    if not batch_norm:
        return [layers.Conv2D(filters, 3, padding="same"), layers.ReLU()]
    return [
        layers.Conv2D(filters, 3, padding="same", use_bias=False),
        layers.BatchNormalization(momentum=0.9),
        layers.ReLU(),
    ]


def improved_cnn(input_shape=(32, 32, 3), num_classes=10, widths=(32, 64, 108), *,
                 batch_norm: bool = True, dropout: float = 0.1, name: str = "improved_cnn",
                 logits_dtype: str | None = None) -> keras.Model:
    """The improved baseline: three blocks of conv-BN-ReLU, max-pool, conv-BN-ReLU and dropout
    (pooling between the two convolutions quarters the MACs of the second), then global average
    pooling and the logits (about 1.9x the reference's parameters).

    `batch_norm=False` and `dropout=0` build the same convolutions without those two tools (what
    benchmarks/ablation_baseline.py trains to tell the architecture from the training tools).

    `logits_dtype="float32"` keeps the logits layer in float32 under a mixed-precision policy
    (lesson 04); by default every layer follows the global dtype policy."""
    check_input(input_shape, num_classes, smallest=2 ** len(widths))
    stack = [keras.Input(shape=input_shape)]
    for filters in widths:
        stack += _conv_bn_relu(filters, batch_norm) + [layers.MaxPooling2D()] + _conv_bn_relu(filters, batch_norm)
        stack += [layers.Dropout(dropout)] if dropout else []
    stack += [layers.GlobalAveragePooling2D(), layers.Dense(num_classes, dtype=logits_dtype)]  # logits
    return keras.Sequential(stack, name=name)


STUDENT_WIDTHS = (16, 32, 48)


def _check_widths(widths) -> tuple[int, ...]:
    if not widths or any(int(w) != w or w < 16 or w % 16 for w in widths):
        raise ValueError(f"The student's widths must be whole multiples of 16, got {tuple(widths)}.")
    return tuple(int(w) for w in widths)


def student_cnn(input_shape=(32, 32, 3), num_classes=10, widths=STUDENT_WIDTHS) -> keras.Model:
    """The improved CNN's architecture, narrower: lesson 05's first student, and the small CNN whose
    training lesson 07 measures. Its widths are whole multiples of 16 (XNNPACK computes output
    channels in tiles of 16 on x86, lesson 02); the default (16, 32, 48) has about 22% of the
    improved CNN's parameters and a quarter of its MACs."""
    return improved_cnn(input_shape, num_classes, _check_widths(widths), name="student_cnn")


SEPARABLE_STUDENT_WIDTHS = (32, 96, 112)


def separable_student_cnn(input_shape=(32, 32, 3), num_classes=10, widths=SEPARABLE_STUDENT_WIDTHS,
                          head: int = 64) -> keras.Model:
    """Lesson 05's student: lesson 06's search-space candidate `Spec(widths, conv="separable",
    head=head)`, stages of two 3x3 convolution-BN-ReLU blocks, depthwise-separable except the first
    convolution, max-pooling between stages, global average pooling, a dense layer of `head` units
    and the logits. Widths in whole multiples of 16; the default has about 21.5% of the improved
    CNN's parameters: separable convolutions spend them on width rather than on the 3x3 kernels of
    every channel pair."""
    from .search_space import Spec, build  # imported here: search_space's training imports this module

    return build(Spec(_check_widths(widths), conv="separable", head=head), input_shape, num_classes)
