"""The package's Distiller (lesson 05's, for lesson 08): its loss is lesson 05's formula, and
`recipes.fine_tune` with a teacher trains the student only, through the toolkit's pruning wrappers."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tiny import small_images, small_model

from effcourse import data, distillation, kerasutil, recipes, solutions


def test_the_loss_is_lesson_05s_formula():
    rng = np.random.default_rng(0)
    student_logits, teacher_logits = rng.normal(0, 3, (16, 10)), rng.normal(0, 3, (16, 10))
    labels = rng.integers(0, 10, 16)
    for temperature, alpha in ((1, 0.5), (4, 0.1), (8, 0.0)):
        distiller = distillation.Distiller(small_model(), small_model(1), alpha=alpha, temperature=temperature)
        loss, hard, soft = distiller.loss_terms(labels, tf.constant(student_logits, tf.float32),
                                                tf.constant(teacher_logits, tf.float32))
        expected = solutions.distillation_loss(student_logits, teacher_logits, labels, temperature, alpha)
        np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
        np.testing.assert_allclose(float(hard), solutions.distillation_loss(student_logits, teacher_logits, labels, temperature, 1.0), rtol=1e-4)
        assert float(soft) >= 0


def _tiny_data(n=128):
    images = small_images(n + 32)
    labels = np.random.default_rng(2).integers(0, 4, n + 32)
    return data.ImageData(images[:n], labels[:n], images[n:], labels[n:], images[n:], labels[n:],
                          ["a", "b", "c", "d"], "tiny", True)


def test_fine_tune_trains_the_student_only_and_prunes_through_the_wrappers():
    tiny = _tiny_data()
    teacher, student = small_model(1), small_model(0)
    before = [w.copy() for w in teacher.get_weights()]
    sparsity = tfmot.sparsity.keras
    wrapped = sparsity.prune_low_magnitude(kerasutil.clone(student), pruning_schedule=sparsity.ConstantSparsity(0.5, 0, frequency=1))
    tuned = recipes.fine_tune(wrapped, tiny, epochs=2, learning_rate=1e-2, teacher=teacher,
                              callbacks=[sparsity.UpdatePruningStep()])
    assert tuned is wrapped
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)  # the teacher does not learn
    stripped = sparsity.strip_pruning(tuned)
    for kernel in kerasutil.kernels(stripped).values():
        assert abs(np.mean(kernel == 0) - 0.5) < 0.05  # the callback reached the wrappers inside the Distiller
    assert not np.allclose(stripped.layers[-1].get_weights()[0], student.layers[-1].get_weights()[0])


def test_validation_reports_the_students_hard_loss_and_accuracy():
    tiny = _tiny_data()
    distiller = distillation.Distiller(small_model(0), small_model(1))
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = distiller.fit(tiny.train_dataset(), validation_data=tiny.val_dataset(), epochs=1, verbose=0).history
    assert {"loss", "hard_loss", "soft_loss", "accuracy", "val_loss", "val_accuracy"} <= set(history)
    assert distiller.predict(tiny.x_test, verbose=0).shape == (len(tiny.x_test), 4)
    x_val, y_val = (np.concatenate(parts) for parts in zip(*tiny.val_dataset().as_numpy_iterator()))
    logits = distiller.student(x_val, training=False)
    hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y_val, logits)
    np.testing.assert_allclose(history["val_loss"][-1], float(hard), rtol=1e-4)  # the student's, not the teacher's
    np.testing.assert_allclose(history["val_accuracy"][-1], np.mean(np.argmax(logits, axis=1) == y_val), rtol=1e-6)



def _softmax_model(seed=0):
    model = small_model(seed)
    return keras.Model(model.input, keras.layers.Softmax()(model.output))


def _other_model(shape=(8, 8, 3), classes=4, activation=None):
    return keras.Sequential([keras.Input(shape), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(classes, activation=activation)])


BAD_DISTILLERS = {  # what each would do unchecked: NaN, silently wrong losses, or a TensorFlow traceback
    "temperature 0": (lambda: {"temperature": 0}, "temperature must be above 0"),
    "negative temperature": (lambda: {"temperature": -4}, "temperature must be above 0"),
    "alpha over 1": (lambda: {"alpha": 1.5}, "alpha .* from 0 to 1"),
    "negative alpha": (lambda: {"alpha": -0.1}, "alpha .* from 0 to 1"),
    "other classes": (lambda: {"teacher": _other_model(classes=10)}, "gives 10 logits, the student .* and 4: build"),
    "other images": (lambda: {"teacher": _other_model(shape=(16, 16, 3))}, r"images of \(16, 16, 3\) .* student \(8, 8, 3\)"),
    "softmax teacher": (lambda: {"teacher": _softmax_model(1)}, "The teacher ends in a softmax"),
    "softmax student": (lambda: {"student": _other_model(activation="softmax")}, "The student ends in a softmax"),
}


@pytest.mark.parametrize("case", BAD_DISTILLERS)
def test_a_distiller_refuses_what_would_train_wrong_or_fail_inside_tensorflow(case):
    make, message = BAD_DISTILLERS[case]
    kwargs = {"student": small_model(0), "teacher": small_model(1), **make()}
    with pytest.raises(ValueError, match=message):
        distillation.Distiller(**kwargs)


def test_fine_tune_refuses_a_model_of_other_classes_than_the_data_or_giving_probabilities():
    with pytest.raises(ValueError, match="gives 10 logits, but the data has 4 classes"):
        recipes.fine_tune(_other_model(classes=10), _tiny_data(), epochs=1)
    with pytest.raises(ValueError, match="ends in a softmax"):
        recipes.fine_tune(_other_model(activation="softmax"), _tiny_data(), epochs=1)
