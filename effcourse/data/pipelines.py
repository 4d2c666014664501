"""From arrays to training: `normalise`, `model_input` (images as a model takes them), tf.data `pipeline`s (shuffled, augmented,
prefetched) and `show_samples`, a grid of images per class."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .imagedata import ImageData


def normalise(x):
    """uint8 pixels (0-255) as float32 in [0, 1]: a numpy array stays numpy, else a tf.Tensor."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) / np.float32(255)
    import tensorflow as tf

    return tf.cast(x, tf.float32) / 255.0


def model_input(images, who: str = "The model") -> np.ndarray:
    """`images` as the course's models take them, float32 in [0, 1]: uint8 pixels divided by 255,
    floats as they are. Larger floats (unnormalised pixels) would give silently wrong numbers, so
    they are refused, `who` naming the receiver in the message."""
    given = np.asarray(images)
    if given.dtype == np.uint8:
        return normalise(given)
    x = given.astype(np.float32)
    if x.size and x.max() > 1:
        raise ValueError(f"{who} takes uint8 pixels or floats in [0, 1], got {given.dtype} values up to {x.max():g}: "
                         "pass the uint8 images, or normalise the floats first (x / 255).")
    return x


def pipeline(x, y, *, batch_size, training=False, augment=False, seed=0):
    """A tf.data pipeline of (normalised images, labels) batches: shuffled when `training`,
    with random horizontal flips and shifts of up to 1/8 of the image when `augment`,
    prefetched. After `keras.utils.set_random_seed`, the same seed gives the same batches."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augment:
        import tf_keras

        augmenter = tf_keras.Sequential([
            tf_keras.layers.RandomFlip("horizontal", seed=seed),
            tf_keras.layers.RandomTranslation(0.125, 0.125, fill_mode="reflect", seed=seed + 1),
        ])
        # One batch at a time: the random layers draw from one generator, so parallel calls would
        # take its numbers in a varying order and a seeded run would not repeat itself.
        ds = ds.map(lambda xb, yb: (augmenter(normalise(xb), training=True), yb))
    else:
        ds = ds.map(lambda xb, yb: (normalise(xb), yb), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def show_samples(data: ImageData, *, per_class=1, split="train", seed=0):
    """A matplotlib figure: `per_class` rows of random images, one column per class, each
    titled with its class name; the figure is titled with the data's source."""
    import matplotlib.pyplot as plt

    arrays = {"train": (data.x_train, data.y_train), "val": (data.x_val, data.y_val),
              "test": (data.x_test, data.y_test)}
    if split not in arrays:
        raise ValueError(f"split must be one of {', '.join(arrays)}, got {split!r}")
    x, y = arrays[split]
    rng = np.random.default_rng(seed)
    k = data.num_classes
    fig, axes = plt.subplots(per_class, k, figsize=(1.2 * k, 1.3 * per_class + 0.5), squeeze=False)
    for c, name in enumerate(data.class_names):
        members = np.flatnonzero(y == c)
        picks = rng.choice(members, min(per_class, len(members)), replace=False)
        for row in range(per_class):
            ax = axes[row, c]
            ax.axis("off")
            if row < len(picks):
                ax.imshow(x[picks[row]])
                ax.set_title(name, fontsize=8)
    fig.suptitle(data.source, fontsize=9)
    fig.tight_layout()
    return fig
