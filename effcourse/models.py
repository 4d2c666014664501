"""The course's CNNs for CIFAR-10-sized images, in plain Keras 2 (tf_keras)."""
from __future__ import annotations

import tf_keras as keras
from tf_keras import layers


def reference_cnn(input_shape=(32, 32, 3), num_classes=10) -> keras.Model:
    """The reference CNN of lesson 01, exactly as first specified: three convolutions,
    two max-pools, a 64-unit dense layer and 10 logits."""
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
                 batch_norm: bool = True, dropout: float = 0.1) -> keras.Model:
    """The improved baseline: three blocks of conv-BN-ReLU, max-pool, conv-BN-ReLU and dropout
    (pooling between the two convolutions halves the MACs of the second), then global average
    pooling and the logits (about 1.9x the reference's parameters).

    `batch_norm=False` and `dropout=0` build the same convolutions without those two tools (what
    benchmarks/ablation_baseline.py trains to tell the architecture from the training tools)."""
    stack = [keras.Input(shape=input_shape)]
    for filters in widths:
        stack += _conv_bn_relu(filters, batch_norm) + [layers.MaxPooling2D()] + _conv_bn_relu(filters, batch_norm)
        stack += [layers.Dropout(dropout)] if dropout else []
    stack += [layers.GlobalAveragePooling2D(), layers.Dense(num_classes)]  # logits
    return keras.Sequential(stack, name="improved_cnn")
