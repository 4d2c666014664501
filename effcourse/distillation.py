"""Knowledge distillation for the lessons after lesson 05, which teaches it: the same `Distiller`
(hard labels weighted by alpha, the KL divergence at temperature T scaled by T² weighted by
1 - alpha, the teacher in inference mode on the student's own augmented batch), which
`recipes.fine_tune(..., teacher=...)` uses too, and the training of lesson 05's distilled student."""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from . import models, recipes
from .data import ImageData

TEMPERATURE, ALPHA = 4, 0.1  # lesson 05's choices (its section 5)


def _shapes(model: keras.Model) -> tuple | None:
    """(height, width, channels, logits) of a model's images and output (None where any size
    goes), or None for a model not built yet."""
    try:
        return (*model.input_shape[1:], model.output_shape[-1])
    except AttributeError:
        return None


class Distiller(keras.Model):
    """Trains `student` on the labels and on `teacher`'s predictions softened at `temperature`;
    validates (its hard-label loss and accuracy) and predicts with the student alone. Lesson 05's
    class, for reuse. Both models take the same images and give logits for the same classes."""

    def __init__(self, student: keras.Model, teacher: keras.Model, *, alpha: float = ALPHA,
                 temperature: float = TEMPERATURE):
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha is the hard-label loss's share, from 0 to 1 (lesson 05: {ALPHA}), got {alpha!r}.")
        if not temperature > 0:
            raise ValueError(f"temperature must be above 0 (lesson 05: {TEMPERATURE}), got {temperature!r}.")
        for who, model in (("The student", student), ("The teacher", teacher)):
            recipes.check_logits(model, who)
        shapes = _shapes(student), _shapes(teacher)
        if None not in shapes and not tf.TensorShape(shapes[0]).is_compatible_with(shapes[1]):
            raise ValueError(f"The teacher takes images of {shapes[1][:-1]} and gives {shapes[1][-1]} logits, the "
                             f"student {shapes[0][:-1]} and {shapes[0][-1]}: build the student for the teacher's "
                             "images and classes.")
        super().__init__()
        self.student, self.teacher = student, teacher
        self.alpha, self.temperature = alpha, temperature
        self.hard_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.kl_divergence = keras.losses.KLDivergence()
        self.trackers = [keras.metrics.Mean(name) for name in ("loss", "hard_loss", "soft_loss")]
        self.accuracy = keras.metrics.SparseCategoricalAccuracy("accuracy")

    @property
    def metrics(self):
        return [*self.trackers, self.accuracy]

    def loss_terms(self, labels, student_logits, teacher_logits):
        """The loss and its hard and soft terms."""
        hard = self.hard_loss(labels, student_logits)
        t = self.temperature
        soft = self.kl_divergence(tf.nn.softmax(teacher_logits / t), tf.nn.softmax(student_logits / t)) * t**2
        return self.alpha * hard + (1 - self.alpha) * soft, hard, soft

    def train_step(self, batch):
        x, labels = batch
        teacher_logits = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_logits = self.student(x, training=True)
            loss, hard, soft = self.loss_terms(labels, student_logits, teacher_logits)
        weights = self.student.trainable_variables
        gradients = tape.gradient(loss, weights)  # None for weights a toolkit wrapper does not use (PCQAT's kernels)
        self.optimizer.apply_gradients([(g, w) for g, w in zip(gradients, weights) if g is not None])
        for tracker, value in zip(self.trackers, (loss, hard, soft)):
            tracker.update_state(value)
        self.accuracy.update_state(labels, student_logits)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, batch):
        x, labels = batch
        student_logits = self.student(x, training=False)
        self.trackers[1].update_state(self.hard_loss(labels, student_logits))
        self.accuracy.update_state(labels, student_logits)
        return {"loss": self.trackers[1].result(), "accuracy": self.accuracy.result()}  # fit: val_loss, val_accuracy

    def call(self, x, training=False):
        return self.student(x, training=training)


def distilled_student(teacher: keras.Model, data: ImageData, *, epochs: int, seed: int = 0) -> tuple[keras.Model, dict]:
    """Lesson 05's separable student distilled from `teacher` as its `train_student` does it: from
    `seed`, augmented batches, Adam with a cosine decay from 2e-3 over `epochs`. The same seed
    gives lesson 05's student of that seed. Returns the student and the history."""
    keras.utils.set_random_seed(seed)
    student = models.separable_student_cnn(data.image_shape, data.num_classes)
    distiller = Distiller(student, teacher)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, decay_steps=recipes.training_steps(data, epochs))
    distiller.compile(optimizer=keras.optimizers.Adam(schedule))
    history = distiller.fit(data.train_dataset(augment=True), validation_data=data.val_dataset(), epochs=epochs, verbose=0)
    recipes.compile_model(student)  # as every cached model: ready to evaluate
    return student, history.history

