"""Lesson 06's search space: candidates, what they cost, the budget, the proxy and Kendall's tau."""
import dataclasses
import itertools

import numpy as np
import optuna
import pytest
import tf_keras as keras
from tf_keras import layers
from tiny import SHAPE

from effcourse import convert, measure, search_space
from effcourse.data import ImageData
from effcourse.search_space import MICROCONTROLLER, Budget, Costs, Spec


@pytest.fixture(scope="module")
def tiny_data():
    """60 training and 20 validation images of the small model's shape, 4 classes."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (80, *SHAPE), dtype=np.uint8)
    y = rng.integers(0, 4, 80).astype(np.int64)
    return ImageData(x[:60], y[:60], x[60:], y[60:], x[60:], y[60:], ("a", "b", "c", "d"), "test images", True, 16)


def test_a_spec_checks_its_values_and_round_trips_through_json():
    spec = Spec((16, 32, 64), kernel_size=5, conv="separable", pooling="average", head=64)
    assert Spec.from_json(spec.to_json()) == spec
    assert spec.name == "cnn_16-32-64_k5_sep_ave_h64"
    assert Spec([16, 32]).filters == (16, 32)  # a list from JSON becomes the tuple
    for bad in ({"filters": (20,)}, {"filters": ()}, {"filters": (16,) * 5}, {"filters": (16,), "conv": "dilated"},
                {"filters": (16,), "kernel_size": 7}, {"filters": (16,), "head": 48}):
        with pytest.raises(ValueError, match="Not a candidate"):
            Spec(**bad)


ONE_WIDTH_PER_STAGE = "filters are one width per stage, e.g. Spec\\(\\(16, 32\\)\\)"


@pytest.mark.parametrize("bad, match", [
    ({"filters": 16}, ONE_WIDTH_PER_STAGE), ({"filters": 16.0}, ONE_WIDTH_PER_STAGE), ({"filters": "16"}, ONE_WIDTH_PER_STAGE),
    ({"filters": (16.0, 32.0)}, "whole numbers \\(int\\), got filters \\(16.0, 32.0\\)"),
    ({"filters": (16,), "kernel_size": 3.0}, "whole numbers \\(int\\), got kernel_size 3.0"),
    ({"filters": (16,), "head": False}, "whole numbers \\(int\\), got head False"),
])
def test_a_spec_refuses_values_of_the_wrong_type(bad, match):
    """A bare width failed as "'int' object is not iterable", a string was split into characters,
    and 16.0, 3.0 or False passed as 16, 3 or 0 into the candidate's name ('cnn_16.0_...')."""
    with pytest.raises(TypeError, match=match):
        Spec(**bad)


def test_a_spec_of_numpy_integers_holds_ints():
    """Its to_json failed ("Object of type int64 is not JSON serializable")."""
    spec = Spec(np.array([16, 32]), kernel_size=np.int64(3))
    assert spec == Spec((16, 32)) and Spec.from_json(spec.to_json()) == spec


def test_suggest_asks_only_for_the_stages_a_candidate_has():
    fixed = {"stages": 2, "filters_1": 32, "filters_2": 64, "kernel_size": 5, "conv": "separable",
             "pooling": "average", "head": 32}
    assert search_space.suggest(optuna.trial.FixedTrial(fixed)) == Spec((32, 64), 5, "separable", "average", 32)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        spec = search_space.suggest(trial)
        filters = {f"filters_{i}" for i in range(1, len(spec.filters) + 1)}
        assert set(trial.params) == {"stages", "kernel_size", "conv", "pooling", "head"} | filters
        study.tell(trial, 0.0)


def test_build_makes_the_candidate_it_describes():
    spec = Spec((16, 32), kernel_size=5, conv="separable", pooling="average", head=32)
    model = search_space.build(spec, SHAPE, 4)
    assert model.name == spec.name and model.output_shape == (None, 4)
    names = [layer.name for layer in model.layers]
    assert len(set(names)) == len(names) and names[-1] == "logits"
    convs = [layer for layer in model.layers if isinstance(layer, (layers.Conv2D, layers.SeparableConv2D))]
    assert [type(c).__name__ for c in convs] == ["Conv2D"] + ["SeparableConv2D"] * 3  # the first one stays regular
    assert [c.kernel_size for c in convs] == [(5, 5)] * 4 and [c.filters for c in convs] == [16, 16, 32, 32]
    assert [type(layer).__name__ for layer in model.layers if "pool" in layer.name] == \
        ["AveragePooling2D", "GlobalAveragePooling2D"]
    assert model.get_layer("head_dense").units == 32


def test_a_regular_candidate_has_the_macs_of_its_convolutions():
    """One stage of two 3x3 convolutions of 16 filters on 8x8 images, pooled straight to 4 logits."""
    model = search_space.build(Spec((16,)), SHAPE, 4)
    positions = SHAPE[0] * SHAPE[1]
    expected = positions * 3 * 3 * 3 * 16 + positions * 3 * 3 * 16 * 16 + 16 * 4
    assert measure.macs(model)[0] == expected
    assert "head_dense" not in [layer.name for layer in model.layers]


def test_the_logits_stay_float32_under_a_mixed_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = search_space.build(Spec((16,), head=32), SHAPE, 4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("head_dense").compute_dtype == "float16"
    assert model.output.dtype == "float32"


def test_resnet8_has_mlperf_tinys_counts():
    """MLPerf Tiny's ResNet-8: about 78.7k parameters and 12.5 M MACs on 32x32 images, counted here
    layer by layer (kernels and biases, batch norm's 4 values per channel)."""
    model = search_space.resnet8()
    convs = [(3, 3, 16), (3, 16, 16), (3, 16, 16),  # stem, stack 1 (32x32)
             (3, 16, 32), (3, 32, 32), (1, 16, 32),  # stack 2 (16x16), its shortcut
             (3, 32, 64), (3, 64, 64), (1, 32, 64)]  # stack 3 (8x8), its shortcut
    positions = [32 * 32] * 3 + [16 * 16] * 3 + [8 * 8] * 3
    batch_norm_channels = 16 * 3 + 32 * 2 + 64 * 2
    parameters = sum(k * k * i * o + o for k, i, o in convs) + 4 * batch_norm_channels + 64 * 10 + 10
    macs = sum(p * k * k * i * o for p, (k, i, o) in zip(positions, convs)) + 64 * 10
    assert measure.parameters(model)[0] == parameters == 78_666
    assert measure.macs(model)[0] == macs == 12_501_632
    assert model.output_shape == (None, 10) and model.layers[-1].dtype == "float32"


def test_peak_activation_counts_the_tensors_alive_together(model, images):
    """The small CNN (int8): its input and the convolution's output are alive at the convolution,
    and nothing later is larger."""
    content = convert.to_litert(model, "int8", data=images).content
    h, w, c = SHAPE
    assert search_space.peak_activation_bytes(content) == h * w * c + h * w * 6


def test_resnet8_fits_the_microcontroller_budget():
    """Its first stack keeps three 32x32x16 int8 tensors alive: the shortcut, the convolution's
    input and its output."""
    model = search_space.resnet8()
    calibration = np.random.default_rng(0).random((20, 32, 32, 3), dtype=np.float32)
    costs = search_space.measure_costs(model, calibration, latency_runs=5, warmup=1)
    assert costs.peak_activation_bytes == 3 * 32 * 32 * 16
    assert costs.macs == measure.macs(model)[0] and costs.parameters == measure.parameters(model)[0]
    assert costs.parameters < costs.int8_bytes < MICROCONTROLLER.int8_bytes
    assert MICROCONTROLLER.allows(costs)


def test_costs_of_a_small_model(model, images):
    costs = search_space.measure_costs(model, images, latency_runs=10, warmup=2)
    int8 = convert.to_litert(model, "int8", data=images).content
    assert costs.int8_bytes == len(int8)
    assert costs.peak_activation_bytes >= images[0].size  # at least the int8 input image
    assert costs.latency_ms > 0 and costs.latency_threads == 1
    assert costs.macs == measure.macs(model)[0]


def test_budget_costs_before_training_are_those_after(images):
    """MACs, peak activations and the int8 file's bytes of the untrained model are the trained model's."""
    model = search_space.build(Spec((16, 32), conv="separable", head=32), images.shape[1:], 4)
    before = search_space.budget_costs(model, images)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images, np.arange(len(images)) % 4, epochs=2, verbose=0)
    after = search_space.measure_costs(model, images, latency_runs=2, warmup=1)
    assert before == {"macs": after.macs, "int8_bytes": after.int8_bytes, "peak_activation_bytes": after.peak_activation_bytes}
    untrained = len(convert.to_litert(search_space.build(Spec((16, 32), conv="separable", head=32), images.shape[1:], 4),
                                      "int8", data=images).content)
    assert untrained < before["int8_bytes"]  # its zero arrays stored once: what budget_costs corrects


def test_build_refuses_images_too_small_for_the_candidates_poolings_and_what_is_not_a_spec():
    assert search_space.build(Spec((16,) * 4), (8, 8, 3), 2).output_shape == (None, 2)
    with pytest.raises(ValueError, match="Images of 4x8 are too small .* fewer stages"):
        search_space.build(Spec((16,) * 4), (4, 8, 3))
    with pytest.raises(ValueError, match="num_classes must be a whole number of at least 2"):
        search_space.build(Spec((16,)), SHAPE, 0)
    with pytest.raises(ValueError, match="num_classes must be a whole number of at least 2"):
        search_space.resnet8(SHAPE, 0)
    with pytest.raises(TypeError, match="build takes a Spec"):
        search_space.build((16, 32), SHAPE)


@pytest.mark.parametrize("limit", [0, -1024, float("nan")])
def test_a_budget_refuses_limits_that_are_not_positive(limit):
    with pytest.raises(ValueError, match=f"positive numbers, got peak_activation_bytes={limit}"):
        Budget(int8_bytes=1000, peak_activation_bytes=limit, macs=10_000)  # 0: division by zero; below: allows all


def test_the_budget_measures_each_limit_as_a_share():
    budget = Budget(int8_bytes=1000, peak_activation_bytes=500, macs=10_000)
    inside = Costs(macs=10_000, parameters=1, int8_bytes=1000, peak_activation_bytes=250, latency_ms=1.0,
                   latency_threads=1)
    assert budget.violations(inside) == [0.0, -0.5, 0.0] and budget.allows(inside)
    over = dataclasses.replace(inside, macs=15_000)
    assert budget.violations(over) == [0.0, -0.5, 0.5] and not budget.allows(over)
    assert budget.allows(dataclasses.asdict(inside))  # a trial's user attributes work alike
    assert budget.exceeded(inside) == [] and budget.exceeded(over) == ["macs 15,000 > 10,000"]
    assert MICROCONTROLLER == Budget(100 * 1024, 64 * 1024, 15_000_000)


def test_a_budget_within_a_reference_keeps_the_lower_of_each_limit():
    reference = {"macs": 12_000_000, "int8_bytes": 200 * 1024, "peak_activation_bytes": 48 * 1024, "parameters": 5}
    assert MICROCONTROLLER.within(reference) == Budget(100 * 1024, 48 * 1024, 12_000_000)
    assert MICROCONTROLLER.within(reference).allows(reference) is False  # its bytes are over 100 KiB
    assert MICROCONTROLLER.within(reference, "macs", "int8_bytes") == Budget(100 * 1024, 64 * 1024, 12_000_000)
    with pytest.raises(ValueError, match="no limit latency_ms"):
        MICROCONTROLLER.within(reference, "latency_ms")


def test_a_budget_names_the_cost_it_is_not_given():
    """A KeyError('peak_activation_bytes') before."""
    costs = {"macs": 12_000_000, "int8_bytes": 200 * 1024}
    for check in (MICROCONTROLLER.violations, MICROCONTROLLER.allows, MICROCONTROLLER.exceeded, MICROCONTROLLER.within):
        with pytest.raises(ValueError, match="The costs have no peak_activation_bytes: pass a Costs"):
            check(costs)
    assert MICROCONTROLLER.within(costs, "macs") == Budget(100 * 1024, 64 * 1024, 12_000_000)  # only macs is read


def test_the_proxy_follows_the_profile_and_trains_the_candidate(tiny_data):
    assert search_space.proxy_for("smoke").epochs <= search_space.proxy_for("workshop").epochs \
        <= search_space.proxy_for("full").epochs
    assert search_space.proxy_for("smoke").train_images < search_space.proxy_for("full").train_images
    proxy = search_space.Proxy(train_images=48, val_images=10, epochs=2)
    model = search_space.build(Spec((16,)), SHAPE, 4)
    accuracy = search_space.proxy_accuracy(model, tiny_data, proxy)
    assert int(model.optimizer.iterations.numpy()) == 2 * 3  # 48 images in batches of 16, twice
    assert accuracy == measure.accuracy(model, tiny_data.x_val[:10], tiny_data.y_val[:10])


def test_kendall_tau_counts_concordant_pairs():
    a, b = [0.1, 0.4, 0.3, 0.9, 0.5], [0.2, 0.3, 0.5, 0.8, 0.6]
    pairs = list(itertools.combinations(range(len(a)), 2))
    sign = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    assert search_space.kendall_tau(a, b) == pytest.approx(sign / len(pairs))
    assert search_space.kendall_tau(a, a) == pytest.approx(1.0)
    assert search_space.kendall_tau(a, [-v for v in a]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same length"):
        search_space.kendall_tau([1, 2, 3], [1, 2])


def test_kendall_tau_of_a_score_that_ranks_nothing_is_0():
    """NaN before (printed as 'nan' by lesson 06): a proxy equal for every candidate ranks none."""
    assert search_space.kendall_tau([0.1, 0.1, 0.1], [0.2, 0.5, 0.4]) == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_kendall_tau_refuses_a_score_that_is_not_finite(bad):
    """NaN before, with no word on which candidate broke it (scipy ranks NaN nowhere)."""
    with pytest.raises(ValueError, match="finite scores.*leave that candidate out"):
        search_space.kendall_tau([0.1, bad, 0.3], [0.2, 0.5, 0.4])
    assert search_space.kendall_tau([0.2, 0.5, 0.4], [0.3, 0.3, 0.3]) == 0.0
    assert f"{search_space.kendall_tau([0.5, 0.5], [0.5, 0.5]):.2f}" == "0.00"


def test_a_model_of_other_classes_than_the_data_is_refused_before_training(tiny_data):
    """Lesson 06 trained 10-logit models on 4-class data without a word (proxy) or for minutes (the recipe)."""
    from effcourse import profiles, recipes

    ten = search_space.build(Spec((16,)), SHAPE, 10)
    with pytest.raises(ValueError, match="gives 10 logits, but the data has 4 classes"):
        search_space.proxy_accuracy(ten, tiny_data, search_space.Proxy(train_images=16, val_images=8, epochs=1))
    with pytest.raises(ValueError, match="gives 10 logits, but the data has 4 classes"):
        recipes.fit_improved_recipe(ten, tiny_data, profiles.get("smoke"))
    assert ten.optimizer is None  # refused before compiling, let alone training
