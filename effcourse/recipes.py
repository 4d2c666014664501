"""Training recipes: how each of the course's trained models is made, in one place,
so a later lesson can retrain exactly the model an earlier lesson trained."""
from __future__ import annotations

import math
import numbers
import time

import tensorflow as tf
import tf_keras as keras

from . import kerasutil, models
from .data import ImageData
from .profiles import Profile


def check_logits(model: keras.Model, who: str = "The model") -> None:
    """Refuse a model whose last layer computes a softmax: the course's losses take logits, and
    probabilities taken for logits train and distil silently wrong."""
    last = kerasutil.unwrap(list(kerasutil.flat_layers(model))[-1]) if model.layers else None
    if isinstance(last, keras.layers.Softmax) or getattr(last, "activation", None) in (keras.activations.softmax,
                                                                                       tf.nn.softmax):
        raise ValueError(f"{who} ends in a softmax (layer {last.name!r}), but the course's losses take logits: "
                         "build its last layer without it, e.g. Dense(num_classes).")


def check_classes(model: keras.Model, data: ImageData, who: str = "The model") -> None:
    """Refuse a model with another number of logits than `data` has classes (once it is built)."""
    try:
        logits = model.output_shape[-1]
    except AttributeError:  # not built yet: Keras builds it on the first batch
        return
    if logits != data.num_classes:
        raise ValueError(f"{who} gives {logits} logits, but the data has {data.num_classes} classes: build it "
                         "with num_classes=data.num_classes.")


def check_learning_rate(learning_rate) -> float:
    """`learning_rate` as a float, refused unless it is a positive, finite number (an int is taken)."""
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real):
        raise TypeError(f"learning_rate must be a number such as 1e-4, got {learning_rate!r}.")
    if not 0 < learning_rate < math.inf:
        raise ValueError(f"learning_rate must be positive and finite, such as 1e-4, got {learning_rate!r}: "
                         "zero does not train, and a negative rate climbs the loss instead of descending it.")
    return float(learning_rate)


def compile_model(model: keras.Model, learning_rate=1e-3) -> keras.Model:
    """Adam, sparse categorical cross-entropy on logits, accuracy: how every course model is compiled."""
    check_logits(model)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def train_reference(data: ImageData, profile: Profile) -> tuple[keras.Model, dict]:
    """The reference recipe: the reference CNN, Adam at 1e-3, 10 epochs in the full profile."""
    keras.utils.set_random_seed(0)
    model = compile_model(models.reference_cnn(data.image_shape, data.num_classes))
    history = model.fit(
        data.train_dataset(),
        validation_data=data.val_dataset(),
        epochs=profile.epochs(10),
        verbose=2,
    )
    return model, history.history


def train_improved(data: ImageData, profile: Profile) -> tuple[keras.Model, dict]:
    """The improved recipe: batch norm and dropout in the model, augmented images,
    a cosine learning-rate schedule and early stopping on validation accuracy (30 epochs in full)."""
    keras.utils.set_random_seed(0)
    return fit_improved_recipe(models.improved_cnn(data.image_shape, data.num_classes), data, profile)


def train_improved_wide(data: ImageData, profile: Profile) -> tuple[keras.Model, dict]:
    """The improved recipe on the improved CNN made 1.5x wider (48, 96 and 160 channels, 2.2x the
    parameters): a stronger teacher for lesson 05's student (benchmarks/distillation_epochs.py)."""
    keras.utils.set_random_seed(0)
    model = models.improved_cnn(data.image_shape, data.num_classes, widths=(48, 96, 160), name="improved_wide_cnn")
    return fit_improved_recipe(model, data, profile)


def fit_improved_recipe(model: keras.Model, data: ImageData, profile: Profile) -> tuple[keras.Model, dict]:
    """Train any model as the improved recipe trains the improved CNN (augmented images, Adam from
    2e-3 down a cosine, early stopping on validation accuracy, 30 epochs in full): lesson 06 trains
    its search's winner and ResNet-8 this way, alike. Seed the model's creation beforehand."""
    check_classes(model, data)
    epochs = profile.epochs(30)
    steps = training_steps(data, epochs)
    schedule = keras.optimizers.schedules.CosineDecay(initial_learning_rate=2e-3, decay_steps=steps)
    model = compile_model(model, learning_rate=schedule)
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=10, restore_best_weights=True)
    history = model.fit(
        data.train_dataset(augment=True),
        validation_data=data.val_dataset(),
        epochs=epochs,
        callbacks=[early_stopping],
        verbose=2,
    )
    return model, history.history


def training_steps(data: ImageData, epochs: int) -> int:
    """Optimizer steps in `epochs` epochs over `data`'s training images."""
    return epochs * math.ceil(len(data.x_train) / data.batch_size)


class TrainingLog(keras.callbacks.Callback):
    """What a `fit` did beyond its history: the wall seconds of every epoch (its training and
    validation) in `epoch_seconds`, and the training loss after the first batch in `first_loss`."""

    _supports_tf_logs = True  # the logs stay tensors: only the first batch's loss is read back

    def on_train_begin(self, logs=None):
        self.epoch_seconds: list[float] = []
        self.first_loss: float | None = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.first_loss is None and logs and "loss" in logs:
            self.first_loss = float(logs["loss"])

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)


def fine_tune(model: keras.Model, data: ImageData, *, epochs: int, learning_rate: float = 1e-4,
              callbacks=(), verbose: int = 0, seed: int = 0, teacher: keras.Model | None = None) -> keras.Model:
    """Fine-tune a trained model (or the toolkit's wrapped copy of it) on augmented training batches,
    against the labels, or with a `teacher` against the labels and its softened predictions too
    (lesson 05's distillation loss, `distillation.Distiller`).

    `seed` fixes the batch order, augmentation and dropout, so a rerun fine-tunes the same way
    (within the small run-to-run noise of multi-threaded kernels).

    The learning rate falls from `learning_rate` to zero along a cosine over the run: a trained
    model sits in a minimum that a constant rate keeps shaking it out of (in one run, QAT of the
    full-profile improved CNN for 4 epochs at a constant 1e-4 lost 1.4 points). Short runs (under 30 steps) run
    eagerly, since tracing a training step takes longer than they do."""
    check_classes(model, data)
    learning_rate = check_learning_rate(learning_rate)
    steps = training_steps(data, epochs)
    keras.utils.set_random_seed(seed)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    if teacher is None:
        trainer = compile_model(model, schedule)
    else:
        from .distillation import Distiller  # imported here: distillation imports this module

        trainer = Distiller(model, teacher)
        trainer.compile(optimizer=keras.optimizers.Adam(schedule))
    trainer.run_eagerly = steps < 30
    trainer.fit(data.train_dataset(augment=True), epochs=epochs, verbose=verbose, callbacks=list(callbacks))
    return model


def freeze_batch_norm(model: keras.Model) -> keras.Model:
    """Keep every BatchNormalization layer of `model` (its own layers, not those of a model nested
    in it: the course's models nest none) as trained, and return the model.

    `trainable=False` makes a batch-norm layer normalise with its moving statistics, and stops
    fine-tuning from re-estimating them or moving its scale and offset. A short fine-tune of a
    trained model otherwise drifts: in one run, 4 epochs of the full-profile improved CNN at 1e-5,
    with no quantization at all, lost 0.6 points with batch norm training and 0.3 with it frozen."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return model


def train_distilled_student(data: ImageData, profile: Profile) -> tuple[keras.Model, dict]:
    """Lesson 05's distilled student of seed 0: its separable student distilled from the improved
    CNN (from the model cache) at T = 4, alpha = 0.1, 20 epochs in full: where lesson 08 starts."""
    from . import distillation, zoo  # imported here: both import this module

    teacher = zoo.trained("improved", data, profile).model
    return distillation.distilled_student(teacher, data, epochs=profile.epochs(20), seed=0)


RECIPES = {"reference": train_reference, "improved": train_improved, "improved-wide": train_improved_wide,
           "distilled-student": train_distilled_student}
