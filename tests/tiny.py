"""Test helpers: a tiny trained-looking CNN and its LiteRT conversions, through the package's own converter."""
import numpy as np
import tf_keras as keras
from tf_keras import layers

from effcourse import convert, kerasutil, pruning

SHAPE = (8, 8, 3)


def small_model(seed: int = 0) -> keras.Model:
    """Conv-BN-ReLU, global pooling and logits, with trained-looking (non-default) weights."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=SHAPE),
        layers.Conv2D(6, 3, padding="same", use_bias=False),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.GlobalAveragePooling2D(),
        layers.Dense(4),
    ])
    rng = np.random.default_rng(seed)
    bn = model.layers[1]
    bn.set_weights([rng.uniform(0.5, 1.5, 6), rng.normal(0, 0.1, 6), rng.normal(0, 0.1, 6), rng.uniform(0.5, 1.5, 6)])
    model.layers[-1].bias.assign(rng.normal(0, 0.1, 4).astype(np.float32))
    return model


def small_images(n: int = 64) -> np.ndarray:
    """`n` random float images in [0, 1] of the small model's shape."""
    return np.random.default_rng(1).random((n, *SHAPE), dtype=np.float32)


def lite_bytes(model, int8_images=None) -> bytes:
    """`model` as float32 LiteRT bytes, or full-integer int8 calibrated on `int8_images`."""
    if int8_images is None:
        return convert.to_litert(model).content
    return convert.to_litert(model, "int8", data=int8_images).content


def pruned_copy(model, sparsity):
    """A copy of `model` pruned once by magnitude (what `pruned_in_place` does, kept)."""
    copy = kerasutil.clone(model)
    for layer in pruning.prunable_layers(copy):
        for kernel in kerasutil.kernel_variables(layer):
            kernel.assign(kernel.numpy() * pruning.magnitude_mask(kernel.numpy(), sparsity))
    return copy
