"""The course's data: CIFAR-10 (a local copy, the Keras cache or download, else a synthetic
stand-in), any class-per-folder image dataset, tf.data pipelines and a grid of samples.

Every loader returns an `ImageData`: uint8 images (N, H, W, 3) and int64 labels, split into
train, validation (carved stratified from the training images) and test, at the sizes of the
run profile, and a one-line `source` that says what was loaded. What is loaded is announced
once per process in a banner; synthetic data is announced as what it is: not CIFAR-10.
Printed messages name paths only as `paths.display` shows them, never as absolute paths.

Modules (each imports only those above it):

- `pipelines`: `normalise`, `pipeline` (tf.data) and `show_samples`;
- `imagedata`: `ImageData`, `DataError`, the settings and class names, stratified splits,
  the banner;
- `synthetic`: `synthetic_cifar10`, the stand-in;
- `batches`: the official CIFAR-10 archive and folder, read with a restricted unpickler
  (a batch file is data, never code);
- `trees`, `folders`: class-per-folder trees and zips, `load_image_folder`, decoding and the
  cache of decoded images;
- `cifar10`: `load_cifar10`, the order of sources, the Keras cache and download.
"""
from .cifar10 import load_cifar10
from .folders import load_image_folder
from .imagedata import (CIFAR10_CLASSES, CIFAR10_URL, DATA_ENV_VAR, OFFLINE_ENV_VAR, DataError,
                        ImageData)
from .pipelines import model_input, normalise, pipeline, show_samples
from .synthetic import synthetic_cifar10

__all__ = [
    "CIFAR10_CLASSES", "CIFAR10_URL", "DATA_ENV_VAR", "OFFLINE_ENV_VAR", "DataError", "ImageData",
    "load_cifar10", "load_image_folder", "model_input", "normalise", "pipeline", "show_samples",
    "synthetic_cifar10",
]
