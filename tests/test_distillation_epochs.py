"""benchmarks/distillation_epochs.py runs lesson 05's own code (its Distiller, train_student,
temperature and alpha, read from the notebook) and compares each pair of students on the same
test images."""
import nbformat
import numpy as np
import pytest

from effcourse import models
from effcourse.data import ImageData, normalise

import benchmark_scripts

bench = benchmark_scripts.load("distillation_epochs")


def _data(n: int = 64) -> ImageData:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = np.arange(n) % 10
    return ImageData(x, y, x[:16], y[:16], x[:32], y[:32], tuple("abcdefghij"), "test images", True, 16)


def test_the_lessons_code_and_settings_are_read_from_the_notebook():
    lesson = bench.lesson_code()
    assert (lesson.TEMPERATURE, lesson.ALPHA) == (4, 0.1)  # section 5 of lesson 05 fixes these
    assert issubclass(lesson.Distiller, lesson.keras.Model)
    data = _data()
    teacher = models.reference_cnn(data.image_shape, data.num_classes)
    row, correct = bench.compare(lesson, data, teacher, normalise(data.x_test), epochs=1, seed=0)
    assert row["epochs"] == 1 and row["verdict"] in ("better", "worse", "within noise")
    assert row["gain (points)"] == pytest.approx(100 * (correct["distilled"].mean() - correct["alone"].mean()), abs=0.01)
    low, high = row["95% interval"]
    assert low <= row["gain (points)"] <= high
    assert bench.by_budget({(1, 0): correct, (1, 1): correct})[0]["mean gain (points)"] == row["gain (points)"]


def test_a_notebook_without_the_lessons_definitions_is_refused(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import numpy"),
                                               nbformat.v4.new_code_cell("class Distiller(object): pass")])
    path = tmp_path / "05.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(SystemExit, match="0 cells with 'def train_student\\('"):
        bench.lesson_code(path)


def test_mixup_blends_the_batch_and_shows_the_teacher_the_students_blend():
    lesson = bench.lesson_code()
    data = _data(32)
    x, y = normalise(data.x_train), data.y_train
    model = models.reference_cnn(data.image_shape, data.num_classes)  # no dropout, no batch norm
    mixup = bench.with_mixup(lesson.Distiller)
    # its own teacher: the soft loss is zero only if the teacher answers for the very blend the student saw
    copying = mixup(model, model, alpha=0.0, temperature=4)
    copying.compile(optimizer=lesson.keras.optimizers.SGD(0.0))
    assert float(copying.train_step((x, y))["soft_loss"]) == pytest.approx(0.0, abs=1e-6)
    # alone, on blends: a hard loss other than the plain one on the same batch
    losses = []
    for distiller in (mixup, lesson.Distiller):
        alone = distiller(model, model, alpha=1.0, temperature=4)
        alone.compile(optimizer=lesson.keras.optimizers.SGD(0.0))
        losses.append(float(alone.train_step((x, y))["hard_loss"]))
    assert losses[0] > 0 and abs(losses[0] - losses[1]) > 1e-3


def test_with_mixup_the_row_adds_the_control_on_blends_and_the_lesson_keeps_its_distiller():
    lesson = bench.lesson_code()
    data = _data()
    teacher = models.reference_cnn(data.image_shape, data.num_classes)
    row, correct = bench.compare(lesson, data, teacher, normalise(data.x_test), epochs=1, seed=0, mixup=True)
    assert lesson.Distiller.__name__ == "Distiller"
    assert set(correct) == {"alone", "distilled", "alone, mixup"} and row["mixup"]
    control = row["over alone, mixup"]
    assert control["gain (points)"] == pytest.approx(100 * (correct["distilled"].mean() - correct["alone, mixup"].mean()), abs=0.01)
    assert control["95% interval"][0] <= control["gain (points)"] <= control["95% interval"][1]


def test_an_ensemble_teacher_answers_with_its_members_mean_logits():
    data = _data()
    members = [models.reference_cnn(data.image_shape, data.num_classes), models.improved_cnn(data.image_shape, data.num_classes)]
    teacher = bench.ensemble(members, data.image_shape)
    x = normalise(data.x_test)
    mean = np.mean([member.predict(x, verbose=0) for member in members], axis=0)
    np.testing.assert_allclose(teacher.predict(x, verbose=0), mean, atol=1e-5)
    assert teacher.count_params() == sum(member.count_params() for member in members)
    assert bench.ensemble(members[:1], data.image_shape) is members[0]
