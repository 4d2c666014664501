"""The course's models and training recipes."""
import dataclasses

import numpy as np
import pytest
import tf_keras as keras

from effcourse import data, models, profiles, recipes


def test_reference_cnn_is_the_specified_architecture():
    model = models.reference_cnn()
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Conv2D", "Flatten", "Dense", "Dense"]
    assert [getattr(layer, "filters", getattr(layer, "units", None)) for layer in model.layers if layer.weights] == [32, 64, 64, 64, 10]
    assert model.layers[-1].activation is keras.activations.linear  # logits
    assert model.count_params() == 122_570


def test_improved_cnn_stays_under_twice_the_reference():
    improved, reference = models.improved_cnn(), models.reference_cnn()
    assert improved.count_params() <= 2 * reference.count_params()
    kinds = {type(layer).__name__ for layer in improved.layers}
    assert {"BatchNormalization", "Dropout", "GlobalAveragePooling2D"} <= kinds
    assert improved.output_shape == (None, 10)


def test_models_follow_the_data_shape():
    assert models.reference_cnn((48, 40, 3), 3).output_shape == (None, 3)
    assert models.improved_cnn((48, 40, 3), 3).output_shape == (None, 3)


def tiny(n_train=256):
    x_train, y_train, x_test, y_test = data.synthetic_cifar10(n_train, 64, seed=2)
    return data.ImageData(x_train, y_train, x_test, y_test, x_test, y_test, data.CIFAR10_CLASSES, "tiny", True)


def test_recipes_train_with_the_profile_epochs(monkeypatch, tmp_path):
    monkeypatch.setenv("EFFCOURSE_WORKDIR", str(tmp_path))  # the distilled student's teacher is cached there
    profile = dataclasses.replace(profiles.get("smoke"), max_epochs=1)
    for name, recipe in recipes.RECIPES.items():
        model, history = recipe(tiny(), profile)
        assert len(history["loss"]) == 1, name
        assert {"accuracy", "val_accuracy", "val_loss"} <= set(history), name
        assert np.isfinite(history["loss"][0]), name
        assert model.optimizer is not None


@pytest.mark.parametrize("recipe", sorted(recipes.RECIPES))
def test_recipes_are_reproducible(recipe, monkeypatch, tmp_path):
    monkeypatch.setenv("EFFCOURSE_WORKDIR", str(tmp_path))
    profile = dataclasses.replace(profiles.get("smoke"), max_epochs=1)
    first, _ = recipes.RECIPES[recipe](tiny(128), profile)
    second, _ = recipes.RECIPES[recipe](tiny(128), profile)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_fine_tune_decays_the_learning_rate_to_zero_over_the_run():
    small = tiny(256)  # 4 batches of 64
    model, _ = recipes.train_reference(small, dataclasses.replace(profiles.get("smoke"), max_epochs=1))
    rates = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda batch, logs: rates.append(float(model.optimizer.learning_rate)))
    tuned = recipes.fine_tune(model, small, epochs=3, learning_rate=1e-3, callbacks=[record])
    assert tuned is model and recipes.training_steps(small, 3) == 12 == len(rates)
    assert model.run_eagerly  # 12 steps: not worth tracing
    assert rates[0] == pytest.approx(1e-3, rel=1e-6) and all(a >= b for a, b in zip(rates, rates[1:])) and rates[-1] < 1e-4
    schedule = model.optimizer.get_config()["learning_rate"]["config"]  # the cosine ends where the run does
    assert schedule["initial_learning_rate"] == 1e-3 and schedule["decay_steps"] == int(model.optimizer.iterations) == 12
    assert recipes.training_steps(tiny(2048), 1) == 32


@pytest.mark.parametrize("learning_rate, error", [(-1e-3, ValueError), (0, ValueError), (float("nan"), ValueError),
                                                  (float("inf"), ValueError), ("1e-3", TypeError), (True, TypeError)])
def test_fine_tune_refuses_a_learning_rate_that_cannot_train(learning_rate, error):
    """A negative rate trained uphill and 0 or NaN ran without a word; now refused before training."""
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    with pytest.raises(error, match="learning_rate must be"):
        recipes.fine_tune(model, tiny(128), epochs=1, learning_rate=learning_rate)
    assert model.optimizer is None


def test_fine_tune_takes_a_learning_rate_given_as_an_int():
    """It failed inside CosineDecay: "Cannot convert 3.141592653589793 to EagerTensor of dtype int32"."""
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    recipes.fine_tune(model, tiny(128), epochs=1, learning_rate=1)
    assert model.optimizer.get_config()["learning_rate"]["config"]["initial_learning_rate"] == 1.0


@pytest.fixture(scope="module")
def improved_and_data():
    """The improved CNN trained one epoch on tiny data, and that data."""
    small = tiny(256)
    return recipes.train_improved(small, dataclasses.replace(profiles.get("smoke"), max_epochs=1))[0], small


def copy_of(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def test_fine_tune_is_reproducible_and_its_seed_matters(improved_and_data):
    trained, small = improved_and_data

    def fine_tuned(seed):
        return recipes.fine_tune(copy_of(trained), small, epochs=1, learning_rate=1e-2, seed=seed).get_weights()

    first, again, other = fine_tuned(0), fine_tuned(0), fine_tuned(1)
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(first, again))
    assert not all(np.allclose(a, b, atol=1e-5) for a, b in zip(first, other))


def test_freeze_batch_norm_keeps_the_statistics_and_trains_the_rest(improved_and_data):
    trained, small = improved_and_data

    def fine_tuned(freeze):
        model = copy_of(trained)
        if freeze:
            assert recipes.freeze_batch_norm(model) is model
        return recipes.fine_tune(model, small, epochs=1, learning_rate=1e-2)

    def batch_norm_and_kernels(model):
        norms = [w for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization) for w in layer.get_weights()]
        kernels = [layer.get_weights()[0] for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        return norms, kernels

    before_norms, before_kernels = batch_norm_and_kernels(trained)
    for freeze in (True, False):
        norms, kernels = batch_norm_and_kernels(fine_tuned(freeze))
        assert len(norms) == len(before_norms) > 0
        # gamma, beta, moving mean and variance stay exactly as trained only when frozen
        assert all(np.array_equal(a, b) for a, b in zip(norms, before_norms)) == freeze
        assert not any(np.array_equal(a, b) for a, b in zip(kernels, before_kernels))


def _conv_widths(model):
    return [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_student_cnn_has_at_most_a_quarter_of_the_teachers_parameters_in_widths_of_16():
    student, teacher = models.student_cnn(), models.improved_cnn()
    assert student.count_params() <= 0.25 * teacher.count_params()
    assert _conv_widths(student) == [16, 16, 32, 32, 48, 48] and all(w % 16 == 0 for w in _conv_widths(student))
    assert [type(layer).__name__ for layer in student.layers] == [type(layer).__name__ for layer in teacher.layers]
    assert student.name == "student_cnn" and teacher.name == "improved_cnn"
    assert models.student_cnn((48, 40, 3), 3).output_shape == (None, 3)
    assert _conv_widths(models.student_cnn(widths=(32, 64))) == [32, 32, 64, 64]


@pytest.mark.parametrize("widths", [(16, 32, 40), (8, 16), (), (16.5, 32)])
@pytest.mark.parametrize("build", [models.student_cnn, models.separable_student_cnn])
def test_student_widths_must_be_whole_multiples_of_16(widths, build):
    with pytest.raises(ValueError, match="multiples of 16"):
        build(widths=widths)


def test_the_separable_student_is_lesson_06s_candidate_with_a_quarter_of_the_teachers_parameters():
    from effcourse import search_space

    student = models.separable_student_cnn()
    assert student.name == search_space.Spec(models.SEPARABLE_STUDENT_WIDTHS, conv="separable", head=64).name
    assert student.count_params() == 50_586 <= 0.25 * models.improved_cnn().count_params()
    separable = [layer for layer in student.layers if isinstance(layer, keras.layers.SeparableConv2D)]
    assert len(separable) == 5 and [layer.filters for layer in separable] == [32, 96, 96, 112, 112]
    assert models.separable_student_cnn((48, 40, 3), 3).output_shape == (None, 3)


def test_training_log_records_each_epoch_and_the_first_batch_loss():
    import tensorflow as tf

    small = tiny(256)
    keras.utils.set_random_seed(0)
    model = recipes.compile_model(models.reference_cnn(), learning_rate=0.0)  # no learning: every batch's loss is known
    x = data.normalise(small.x_train)
    batches = tf.data.Dataset.from_tensor_slices((x, small.y_train)).batch(64)  # in order: the first batch is x[:64]
    log = recipes.TrainingLog()
    history = model.fit(batches, epochs=3, callbacks=[log], verbose=0)
    first_batch_loss = model.evaluate(x[:64], small.y_train[:64], verbose=0)[0]
    assert log.first_loss == pytest.approx(first_batch_loss, rel=1e-4)
    assert len(log.epoch_seconds) == 3 and all(s > 0 for s in log.epoch_seconds)
    assert history.history["loss"][0] != pytest.approx(log.first_loss, rel=1e-4)  # an epoch's mean is not its first batch
    model.fit(batches, epochs=1, callbacks=[log], verbose=0)
    assert len(log.epoch_seconds) == 1  # a new fit starts a new log


@pytest.mark.parametrize("build, smallest", [(models.reference_cnn, 18), (models.improved_cnn, 8), (models.student_cnn, 8)])
def test_builders_refuse_images_their_poolings_shrink_to_nothing(build, smallest):
    assert build((smallest, smallest + 5, 3), 3).output_shape == (None, 3)
    with pytest.raises(ValueError, match=f"Images of {smallest - 1}x40 are too small .* {smallest}x{smallest} pixels"):
        build((smallest - 1, 40, 3), 3)


@pytest.mark.parametrize("input_shape, num_classes, message", [
    ((32, 32, 3), 0, "num_classes must be a whole number of at least 2"),  # else a model of no logits
    ((32, 32, 3), 1, "num_classes must be a whole number of at least 2"),
    ((32, 32, 3), 2.5, "num_classes must be a whole number of at least 2"),
    ((32, 32), 10, r"input_shape must be \(height, width, channels\)"),
    (32, 10, r"input_shape must be \(height, width, channels\)"),
])
@pytest.mark.parametrize("build", [models.reference_cnn, models.improved_cnn, models.separable_student_cnn])
def test_builders_refuse_shapes_and_classes_no_classifier_has(build, input_shape, num_classes, message):
    with pytest.raises(ValueError, match=message):
        build(input_shape, num_classes)
