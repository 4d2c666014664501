"""`synthetic_cifar10`: a deterministic, balanced stand-in for CIFAR-10 (ten classes of
striped shapes on cluttered backgrounds), used when no copy of the real data is found."""
from __future__ import annotations

import numpy as np

# Per class: shape (0 disc, 1 square, 2 ring, 3 diamond, 4 cross), stripe orientation in
# degrees, hue (in fifths of the colour wheel) and stripe frequency (cycles per image). Every
# feature is shared by several classes: a model has to combine them.
_SYNTHETIC_CLASSES = np.array([
    (0, 0, 0, 2.5), (1, 45, 1, 4.0), (2, 90, 2, 2.5), (3, 135, 3, 4.0), (4, 0, 4, 2.5),
    (0, 90, 2, 4.0), (1, 135, 3, 2.5), (2, 0, 4, 4.0), (3, 45, 0, 2.5), (4, 90, 1, 4.0),
], dtype=np.float32)


def synthetic_cifar10(n_train, n_test, *, seed=0, image_size=(32, 32)):
    """(x_train, y_train, x_test, y_test): a deterministic, balanced stand-in for CIFAR-10.

    Ten classes of striped shapes (shape, stripe orientation and frequency, colour) with random
    position, size, rotation and phase, on cluttered backgrounds with noise; each feature is
    swapped for another class's now and then, so classes overlap. A small CNN learns it far
    above chance but not perfectly. uint8 (N, H, W, 3) images, int64 labels.
    """
    train = _synthetic(n_train, np.random.default_rng([seed, 0]), tuple(image_size))
    test = _synthetic(n_test, np.random.default_rng([seed, 1]), tuple(image_size))
    return (*train, *test)


def _synthetic(n: int, rng: np.random.Generator, image_size, chunk: int = 1000):
    labels = rng.permutation(np.arange(n) % 10).astype(np.int64)
    images = np.empty((n, *image_size, 3), dtype=np.uint8)
    for start in range(0, n, chunk):  # chunks keep the float temporaries small and fast
        images[start:start + chunk] = _render(labels[start:start + chunk], rng, image_size)
    return images, labels


def _render(labels: np.ndarray, rng: np.random.Generator, image_size) -> np.ndarray:
    f32, n = np.float32, len(labels)
    yy, xx = np.meshgrid(np.linspace(-1, 1, image_size[0], dtype=f32),
                         np.linspace(-1, 1, image_size[1], dtype=f32), indexing="ij")

    def uniform(low, high):
        return rng.uniform(low, high, n).astype(f32)

    # class overlap: each feature comes from a random class with probability 0.12
    source = np.where(rng.random((4, n)) < 0.12, rng.integers(0, 10, (4, n)), labels)
    shape, orient, hue, freq = (_SYNTHETIC_CLASSES[source[k], k] for k in range(4))
    # the object: position, size and rotation jitter, as coordinates in the object's frame
    cx, cy, size = uniform(-0.35, 0.35), uniform(-0.35, 0.35), uniform(0.35, 0.85)
    rot = np.deg2rad(uniform(-20, 20))
    cos, sin = _col(np.cos(rot) / size), _col(np.sin(rot) / size)
    dx, dy = xx - _col(cx), yy - _col(cy)
    x, y = dx * cos + dy * sin, dy * cos - dx * sin
    ax, ay = np.abs(x), np.abs(y)
    dist = np.empty_like(x)  # 1 on the shape's outline
    shapes = (
        lambda i: np.hypot(x[i], y[i]),
        lambda i: np.maximum(ax[i], ay[i]) * 1.1,
        lambda i: np.abs(np.hypot(x[i], y[i]) - 0.7) / 0.3,
        lambda i: (ax[i] + ay[i]) * 0.8,
        lambda i: np.minimum(np.maximum(ax[i], ay[i] / 0.35), np.maximum(ax[i] / 0.35, ay[i])),
    )
    for k, distance in enumerate(shapes):
        dist[shape == k] = distance(shape == k)
    mask = np.clip((1 - dist) * 3 + 0.5, 0, 1)
    # stripes inside the object, a weaker grating of any orientation behind it
    theta = np.deg2rad(orient + rng.normal(0, 14, n)).astype(f32)
    k = freq * np.pi * uniform(0.8, 1.25)
    stripes = _grating(xx, yy, theta, k, uniform(0, 2 * np.pi))
    clutter = _grating(xx, yy, uniform(0, np.pi), uniform(1, 6) * np.pi, uniform(0, 2 * np.pi))
    clutter *= _col(uniform(0.05, 0.3))
    # colours: the class hue (any hue for 15% of objects), a random greyish background
    fg_hue = (hue / 5 + rng.normal(0, 0.045, n).astype(f32)) % 1
    recolour = rng.random(n) < 0.15
    fg_hue[recolour] = rng.random(recolour.sum())
    fg = _hsv_to_rgb(fg_hue, uniform(0.45, 1), uniform(0.55, 1))
    bg = _hsv_to_rgb(uniform(0, 1), uniform(0, 0.5), uniform(0.2, 0.8))
    # compose channel-first (numpy broadcasts fast over pixels, slowly over 3 channels)
    image = (1 + clutter)[:, None] * bg[:, :, None, None]
    blend = (0.65 + 0.35 * stripes)[:, None] * fg[:, :, None, None]
    blend -= image
    blend *= mask[:, None]
    image += blend
    image *= 255
    noise = np.frombuffer(rng.bytes(image.size), dtype=np.uint8).reshape(image.shape)
    image += noise * f32(60 / 255)  # uniform noise of +-30 grey levels
    image -= f32(30 - 0.5)  # (and +0.5 to round)
    np.clip(image, 0, 255, out=image)
    return image.transpose(0, 2, 3, 1).astype(np.uint8)


def _col(values: np.ndarray) -> np.ndarray:
    """Per-image values (n,) as float32 (n, 1, 1), to broadcast over pixels."""
    return values.astype(np.float32)[:, None, None]


def _grating(xx, yy, theta, k, phase) -> np.ndarray:
    """Sine gratings (n, H, W): orientation `theta`, angular frequency `k`, `phase` per image."""
    return np.sin(_col(k * np.cos(theta)) * xx + _col(k * np.sin(theta)) * yy + _col(phase))


def _hsv_to_rgb(h, s, v) -> np.ndarray:
    """Colours (n, 3) in [0, 1] from hue, saturation and value arrays of length n."""
    k = (np.array([5, 3, 1], dtype=np.float32) + h[:, None] * 6) % 6
    return v[:, None] - (v * s)[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)
