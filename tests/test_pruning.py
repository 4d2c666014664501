"""Pruning helpers and the structured-pruning surgery, on small models with hand-computed answers."""
import numpy as np
import pandas as pd
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tf_keras import layers

from effcourse import kerasutil, measure, models, pruning, recipes, surgery
from effcourse.data import ImageData
from tiny import pruned_copy

RNG = np.random.default_rng(0)


def _data(n_train=96, n_val=40, n_test=40, shape=(8, 8, 3), classes=3, batch_size=16):
    rng = np.random.default_rng(1)
    make = lambda n: (rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, classes, n))  # noqa: E731
    (xt, yt), (xv, yv), (xs, ys) = make(n_train), make(n_val), make(n_test)
    return ImageData(xt, yt, xv, yv, xs, ys, tuple(f"c{i}" for i in range(classes)), "test data", True, batch_size)


def _randomise(model, seed=0):
    """Non-trivial weights everywhere (biases, batch norm statistics), as after training."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = weights
            weights = [rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                       rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)]
        else:
            weights = [rng.normal(0, 0.3, w.shape) for w in weights]
        layer.set_weights([w.astype(np.float32) for w in weights])
    return model


def _small_gap_cnn():
    return keras.Sequential([
        keras.Input((8, 8, 3)),
        layers.Conv2D(4, 3, padding="same", name="c1"),
        layers.ReLU(),
        layers.MaxPooling2D(),
        layers.Conv2D(6, 3, padding="same", name="c2"),
        layers.Activation("relu"),
        layers.GlobalAveragePooling2D(),
        layers.Dense(5, name="logits"),
    ])


def _silence(model, keep, bn_too=True):
    """Zero every filter not in `keep` (kernel, bias, and the batch norm after it, past any max-pool)
    so removing it changes nothing."""
    layer_list = model.layers
    for i, layer in enumerate(layer_list):
        if layer.name not in keep:
            continue
        drop = np.setdiff1d(np.arange(layer.filters), keep[layer.name])
        weights = layer.get_weights()
        weights[0][..., drop] = 0
        if layer.use_bias:
            weights[1][drop] = 0
        layer.set_weights(weights)
        nxt = next((later for later in layer_list[i + 1:] if not isinstance(later, layers.MaxPooling2D)), None)
        if bn_too and isinstance(nxt, layers.BatchNormalization):
            gamma, beta, mean, var = nxt.get_weights()
            beta[drop], mean[drop] = 0, 0
            nxt.set_weights([gamma, beta, mean, var])


X = RNG.random((6, 8, 8, 3), dtype=np.float32)

# --------------------------------------------------------------------------- data and schedules


@pytest.mark.parametrize("steps, expected", [(1, (1, 1)), (4, (3, 1)), (86, (60, 6)), (5632, (4200, 100))])
def test_schedule_steps_ends_on_a_mask_update(steps, expected):
    end, frequency = pruning.schedule_steps(steps)
    assert (end, frequency) == expected
    assert 1 <= end <= steps and end % frequency == 0


def test_schedule_steps_rejects_bad_arguments():
    with pytest.raises(ValueError, match="total_steps"):
        pruning.schedule_steps(0)
    with pytest.raises(ValueError, match="ramp"):
        pruning.schedule_steps(10, ramp=0)


@pytest.mark.parametrize("frequency", [0, -5, 2.5])
def test_schedule_steps_refuses_a_frequency_that_is_not_a_count_of_steps(frequency):
    """0 and -5 became 1 silently (a mask update every step), 2.5 a fractional schedule (750.0, 2.5)."""
    with pytest.raises(ValueError, match=f"frequency must be a whole number of steps .* at least 1, got {frequency}"):
        pruning.schedule_steps(1000, frequency=frequency)


@pytest.mark.parametrize("eager", [False, True])
def test_toolkit_reaches_the_target_with_schedule_steps(eager):
    data = _data(n_train=80)  # 5 steps of 16
    model = _randomise(_small_gap_cnn())
    steps = recipes.training_steps(data, 2)
    end, frequency = pruning.schedule_steps(steps)
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, 0.7, begin_step=0, end_step=end, frequency=frequency)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(kerasutil.clone(model), pruning_schedule=schedule)
    wrapped.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), run_eagerly=eager)
    wrapped.fit(data.train_dataset(), epochs=2, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    assert measure.sparsity(stripped) == pytest.approx(0.7, abs=0.01)
    assert measure.sparsity(model) == 0  # the original was copied, not pruned


# --------------------------------------------------------------------------- prune once


def test_magnitude_mask_removes_exactly_the_smallest():
    w = np.array([[0.5, -0.1], [0.3, -0.9], [0.0, 0.2]])
    np.testing.assert_array_equal(pruning.magnitude_mask(w, 0.5), [[True, False], [True, True], [False, False]])
    ties = np.ones(10)
    assert (~pruning.magnitude_mask(ties, 0.3)).sum() == 3  # exact count even when every weight ties
    assert pruning.magnitude_mask(w, 0.0).all()
    with pytest.raises(ValueError, match="sparsity"):
        pruning.magnitude_mask(w, 1.0)


def test_magnitude_mask_is_the_toolkits_criterion():
    # tfmot prunes a kernel once (constant sparsity from step 0) with a learning rate of 0, so the
    # weights it keeps are exactly its mask; lesson 02's check says the two masks are the same.
    inputs = keras.Input((12,))
    model = keras.Model(inputs, layers.Dense(10)(inputs))
    kernel = np.random.default_rng(3).normal(size=(12, 10)).astype("float32")
    model.layers[1].set_weights([kernel, np.zeros(10, "float32")])
    schedule = tfmot.sparsity.keras.ConstantSparsity(0.8, begin_step=0, frequency=1)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    wrapped.compile(keras.optimizers.SGD(0.0), "mse")
    wrapped.fit(np.ones((4, 12), "float32"), np.zeros((4, 10), "float32"), epochs=1, verbose=0,
                callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    kept = tfmot.sparsity.keras.strip_pruning(wrapped).layers[1].kernel.numpy() != 0
    np.testing.assert_array_equal(kept, pruning.magnitude_mask(kernel, 0.8))


def test_pruned_in_place_prunes_each_layer_and_restores():
    model = _randomise(models.reference_cnn())
    before = [w.copy() for w in model.get_weights()]
    with pruning.pruned_in_place(model, 0.6):
        assert all(s == pytest.approx(0.6, abs=1e-3) for s in pruning.layer_sparsity(model).values())
        assert measure.sparsity(model) == pytest.approx(0.6, abs=1e-3)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    first = pruning.prunable_layers(model)[0].name
    with pruning.pruned_in_place(model, {first: 0.5}):
        per_layer = pruning.layer_sparsity(model)
        assert per_layer[first] == pytest.approx(0.5, abs=1e-3)
        assert all(s == 0 for name, s in per_layer.items() if name != first)
    with pytest.raises(ValueError, match="No prunable layer named nope"):
        with pruning.pruned_in_place(model, {"nope": 0.5}):
            pass


def test_pruned_in_place_refuses_ratios_it_would_skip_and_models_with_nothing_to_prune():
    """A negative or NaN ratio would leave the layer dense without a word."""
    model = _small_gap_cnn()
    for sparsity in (-0.2, {"c1": float("nan")}):
        with pytest.raises(ValueError, match="sparsity must be in \\[0, 1\\)"):
            with pruning.pruned_in_place(model, sparsity):
                pass
    with pytest.raises(ValueError, match="'no_kernels' has no Conv2D/Dense-family layer to prune"):
        with pruning.pruned_in_place(keras.Sequential([keras.Input((4,)), layers.ReLU()], name="no_kernels"), 0.5):
            pass


def test_magnitude_masks_prune_a_copy_to_the_sparsity_asked():
    model = _randomise(models.reference_cnn())
    pruned = pruned_copy(model, 0.9)
    assert measure.sparsity(pruned) == pytest.approx(0.9, abs=1e-3)
    assert measure.sparsity(model) == 0
    dense, nonzero = measure.macs(pruned)
    assert dense == measure.macs(model)[0] and nonzero == pytest.approx(0.1 * dense, rel=0.01)


# --------------------------------------------------------------------------- accuracy, scans, plans


def _scan(curves, weights, dense=0.8):
    rows = []
    for name, accs in curves.items():
        rows.append({"layer": name, "kind": "Conv2D", "weights": weights[name], "ratio": 0.0, "accuracy": dense})
        rows += [{"layer": name, "kind": "Conv2D", "weights": weights[name], "ratio": r, "accuracy": a}
                 for r, a in zip((0.3, 0.6, 0.9), accs)]
    scan = pd.DataFrame(rows)
    scan.attrs["dense accuracy"] = dense
    return scan


def test_sparsity_plan_hits_the_target_and_spares_sensitive_layers():
    weights = {"sensitive": 100, "robust": 1000, "middle": 500}
    scan = _scan({"sensitive": (0.5, 0.2, 0.1), "robust": (0.8, 0.8, 0.75), "middle": (0.79, 0.7, 0.4)}, weights)
    for target in (0.3, 0.6, 0.8):
        plan = pruning.sparsity_plan(scan, target)
        overall = sum(plan[n] * w for n, w in weights.items()) / sum(weights.values())
        assert overall == pytest.approx(target, abs=1e-6)
        assert plan["sensitive"] <= plan["middle"] < plan["robust"] <= 0.9
        assert all(0 <= r <= 0.9 for r in plan.values())
    plan = pruning.sparsity_plan(scan, 0.8)
    assert plan["sensitive"] < plan["middle"]
    flat = _scan({"a": (0.8, 0.8, 0.8), "b": (0.8, 0.8, 0.8)}, {"a": 10, "b": 30})  # nothing drops
    assert pruning.sparsity_plan(flat, 0.45) == pytest.approx({"a": 0.45, "b": 0.45})
    with pytest.raises(ValueError, match="beyond what the scan covers"):
        pruning.sparsity_plan(scan, 0.95)
    with pytest.raises(ValueError, match="target"):
        pruning.sparsity_plan(scan, 0)


def test_sparsity_plan_refuses_scans_it_would_misread():
    scan = _scan({"a": (0.7, 0.6, 0.2), "b": (0.8, 0.8, 0.7)}, {"a": 10, "b": 100})
    with pytest.raises(ValueError, match="columns layer, weights, ratio and accuracy \\(this one is empty\\)"):
        pruning.sparsity_plan(scan.iloc[:0], 0.5)
    with pytest.raises(ValueError, match="has no column weights"):
        pruning.sparsity_plan(scan.drop(columns="weights"), 0.5)
    with pytest.raises(ValueError, match="has no column weights"):
        pruning.plot_sensitivity(scan.drop(columns="weights"))
    with pytest.raises(ValueError, match="ratios must be fractions"):  # percentages: a plan in the wrong unit
        pruning.sparsity_plan(scan.assign(ratio=100 * scan["ratio"]), 0.5)
    with pytest.raises(ValueError, match="NaN"):
        pruning.sparsity_plan(scan.assign(accuracy=scan["accuracy"].where(scan["ratio"] != 0.6)), 0.5)
    unpruned_unknown = scan[scan["ratio"] > 0].copy()  # no ratio-0 rows, no attrs: the first drop would read as 0
    unpruned_unknown.attrs = {}
    with pytest.raises(ValueError, match="no row at ratio 0 for 'a'.*dense accuracy"):
        pruning.sparsity_plan(unpruned_unknown, 0.5)
    unpruned_unknown.attrs["dense accuracy"] = 0.8
    assert pruning.sparsity_plan(unpruned_unknown, 0.5) == pytest.approx(pruning.sparsity_plan(scan, 0.5))


def test_sparsity_plan_from_a_real_scan_gives_the_overall_sparsity():
    data = _data(shape=(32, 32, 3))
    model = _randomise(models.reference_cnn(num_classes=3))
    dense = measure.accuracy(model, data.x_val, data.y_val)
    rows = []
    for layer in pruning.prunable_layers(model):  # one layer at a time, as lesson 02 scans
        weights = layer.kernel.shape.num_elements()
        rows.append({"layer": layer.name, "weights": weights, "ratio": 0.0, "accuracy": dense})
        for ratio in (0.3, 0.6, 0.9):
            with pruning.pruned_in_place(model, {layer.name: ratio}):
                rows.append({"layer": layer.name, "weights": weights, "ratio": ratio,
                             "accuracy": measure.accuracy(model, data.x_val, data.y_val)})
    scan = pd.DataFrame(rows)
    plan = pruning.sparsity_plan(scan, 0.7)
    with pruning.pruned_in_place(model, plan):
        assert measure.sparsity(model) == pytest.approx(0.7, abs=2e-3)


def test_macs_table_counts_from_the_weights():
    model = _randomise(models.reference_cnn())
    table = pruning.macs_table({0.0: model, 0.5: pruned_copy(model, 0.5)})
    assert list(table["sparsity asked"]) == [0.0, 0.5]
    assert list(table["MACs (M)"]) == [round(4_548_608 / 1e6, 3)] * 2
    assert table["non-zero share"].tolist() == [1.0, 0.5]
    assert table["sparsity measured"].tolist() == [0.0, 0.5]


def test_macs_table_refuses_a_model_without_kernels_and_layer_sparsity_counts_none():
    """Both failed with ZeroDivisionError: macs_table on a model of no MACs, layer_sparsity on an empty kernel."""
    flat = keras.Sequential([keras.Input((4, 4, 3)), layers.GlobalAveragePooling2D(), layers.BatchNormalization()],
                            name="no_kernels")
    with pytest.raises(ValueError, match="'no_kernels' \\(sparsity 0.5\\) has no MACs to compare: it has no Conv2D/Dense"):
        pruning.macs_table({0.5: flat})
    assert pruning.layer_sparsity(flat) == {}
    empty = keras.Sequential([keras.Input((3,)), layers.Dense(0, name="none"), layers.Dense(2, name="d")])
    assert pruning.layer_sparsity(empty) == {"none": 0.0, "d": 0.0}


# --------------------------------------------------------------------------- structured pruning


def test_l1_and_l2_rank_hand_made_filters_differently():
    kernel = np.zeros((1, 1, 4, 3), np.float32)
    kernel[0, 0, :, 0] = [1, 1, 1, 1]  # L1 4, L2 2
    kernel[0, 0, :, 1] = [3, 0, 0, 0]  # L1 3, L2 3
    kernel[0, 0, :, 2] = [0.5, 0, 0, -0.5]  # L1 1, L2 0.71: least important by both
    np.testing.assert_allclose(surgery.filter_norms(kernel, "l1"), [4, 3, 1])
    np.testing.assert_allclose(surgery.filter_norms(kernel, "l2"), [2, 3, np.sqrt(0.5)])
    assert surgery.rank_filters(kernel, "l1").tolist() == [2, 1, 0]
    assert surgery.rank_filters(kernel, "l2").tolist() == [2, 0, 1]
    model = keras.Sequential([keras.Input((4, 4, 4)), layers.Conv2D(3, 1, name="c")])
    model.layers[0].set_weights([kernel, np.zeros(3, np.float32)])
    assert surgery.filters_to_keep(model, 0.34, "l1")["c"].tolist() == [0, 1]
    assert surgery.filters_to_keep(model, 0.67, "l1")["c"].tolist() == [0]
    assert surgery.filters_to_keep(model, 0.67, "l2")["c"].tolist() == [1]
    with pytest.raises(ValueError, match="norm"):
        surgery.filter_norms(kernel, "l3")


def test_filters_to_keep_counts_and_rounding():
    model = _randomise(models.improved_cnn(widths=(32, 64, 96)))
    keep = surgery.filters_to_keep(model, 0.4)
    assert [len(v) for v in keep.values()] == [19, 19, 38, 38, 58, 58]
    assert all(np.all(np.diff(v) > 0) for v in keep.values())
    keep8 = surgery.filters_to_keep(model, 0.4, multiple_of=8)
    assert [len(v) for v in keep8.values()] == [24, 24, 40, 40, 64, 64]
    assert [len(v) for v in surgery.filters_to_keep(model, 0.99).values()] == [1] * 6
    names = list(keep)
    one = surgery.filters_to_keep(model, {names[1]: 0.5})
    assert [len(v) for v in one.values()] == [32, 16, 64, 64, 96, 96]
    dense = model.layers[-1].name
    with pytest.raises(ValueError, match=f"No Conv2D layer named {dense}"):
        surgery.filters_to_keep(model, {dense: 0.5})


def test_narrow_model_is_exact_when_removed_filters_are_zero():
    model = _randomise(_small_gap_cnn())
    keep = {"c1": np.array([1, 3]), "c2": np.array([0, 2, 5])}
    _silence(model, keep)
    narrow = surgery.narrow(model, keep)
    assert surgery.widths(narrow) == [2, 3]
    np.testing.assert_allclose(narrow(X).numpy(), model(X).numpy(), atol=1e-5)
    # by hand: conv1 27x2+2, conv2 9x2x3+3, dense 3x5+5 (was 112 + 222 + 35)
    assert model.count_params() == 369 and narrow.count_params() == 56 + 57 + 20
    # conv1 on 8x8 outputs, conv2 on 4x4, dense once (was 6912 + 3456 + 30)
    assert measure.macs(model)[0] == 10_398
    assert measure.macs(narrow)[0] == 64 * 27 * 2 + 16 * 18 * 3 + 3 * 5


def test_narrow_handles_batch_norm_dropout_and_pooling():
    model = _randomise(models.improved_cnn(input_shape=(16, 16, 3), num_classes=4, widths=(8, 12, 16)))
    keep = surgery.filters_to_keep(model, 0.5)
    _silence(model, keep)
    narrow = surgery.narrow(model, keep)
    x = RNG.random((4, 16, 16, 3), dtype=np.float32)
    np.testing.assert_allclose(narrow(x, training=False).numpy(), model(x, training=False).numpy(), atol=1e-4)
    bn = [layer for layer in narrow.layers if isinstance(layer, layers.BatchNormalization)][0]
    assert bn.gamma.shape == (4,)
    assert surgery.widths(narrow) == [4, 4, 6, 6, 8, 8]


def test_narrow_maps_kept_channels_to_flattened_positions():
    model = keras.Sequential([
        keras.Input((4, 4, 3)),
        layers.Conv2D(4, 3, activation="relu", name="c"),  # 2x2x4 outputs
        layers.Flatten(),
        layers.Dense(3, name="d"),
    ])
    _randomise(model)
    keep = {"c": np.array([1, 3])}
    _silence(model, keep)
    narrow = surgery.narrow(model, keep)
    x = RNG.random((5, 4, 4, 3), dtype=np.float32)
    np.testing.assert_allclose(narrow(x).numpy(), model(x).numpy(), atol=1e-5)
    rows = [position * 4 + channel for position in range(4) for channel in (1, 3)]
    np.testing.assert_array_equal(narrow.get_layer("d").kernel.numpy(), model.get_layer("d").kernel.numpy()[rows])


def test_structured_pruning_of_the_reference_cnn_shrinks_it():
    model = _randomise(models.reference_cnn())
    narrow = surgery.prune_filters(model, 0.5, "l2")
    assert surgery.widths(narrow) == [16, 32, 32]
    # conv 27x16+16, conv 144x32+32, conv 288x32+32, dense 512x64+64 (4x4x32 flattened), dense 64x10+10
    assert narrow.count_params() == 448 + 4640 + 9248 + 32832 + 650
    assert measure.macs(narrow)[0] == 900 * 27 * 16 + 169 * 144 * 32 + 16 * 288 * 32 + 512 * 64 + 640
    assert narrow(X.repeat(4, axis=1).repeat(4, axis=2)).shape == (6, 10)
    assert model.count_params() == 122_570  # the original is untouched


def test_surgery_errors_name_the_layer_and_what_is_supported():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same")(inputs)
    functional = keras.Model(inputs, layers.Add()([x, x]), name="branchy")
    with pytest.raises(surgery.SurgeryError, match="'branchy'.*supports a keras.Sequential"):
        surgery.prune_filters(functional, 0.5)
    between = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, name="c"),
                                layers.DepthwiseConv2D(3, name="dw"), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(surgery.SurgeryError, match="'dw' \\(DepthwiseConv2D\\).*supports"):
        surgery.prune_filters(between, 0.5)
    reshape = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, name="c"),
                                layers.Reshape((36, 4), name="r"), layers.GlobalAveragePooling1D(), layers.Dense(2)])
    with pytest.raises(surgery.SurgeryError, match="'r' \\(Reshape\\)"):
        surgery.prune_filters(reshape, 0.5)
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(_small_gap_cnn())
    with pytest.raises(surgery.SurgeryError, match="strip_pruning"):
        surgery.prune_filters(wrapped, 0.5)
    nested = keras.Sequential([keras.Input((8, 8, 3)), keras.Sequential([layers.Conv2D(4, 3)], name="inner")])
    with pytest.raises(surgery.SurgeryError, match="nested model 'inner'"):
        surgery.prune_filters(nested, 0.5)
    grouped = keras.Sequential([keras.Input((8, 8, 4)), layers.Conv2D(4, 3, groups=2, name="g")])
    with pytest.raises(surgery.SurgeryError, match="'g'.*grouped"):
        surgery.prune_filters(grouped, 0.5)
    model = _small_gap_cnn()
    with pytest.raises(ValueError, match="distinct indices"):
        surgery.narrow(model, {"c1": [0, 0]})
    with pytest.raises(ValueError, match="not a Conv2D"):
        surgery.narrow(model, {"logits": [0]})
    with pytest.raises(ValueError, match="No layer named zz"):
        surgery.narrow(model, {"zz": [0]})
    # SurgeryError is a ValueError, as the lesson catches it
    assert issubclass(surgery.SurgeryError, ValueError)


def test_surgery_refuses_what_it_would_rewrite_wrongly():
    def sequential(*between, head=None, name="m"):
        head = head or (layers.Flatten(), layers.Dense(2))
        return _randomise(keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, name="c"), *between, *head], name=name))

    model = _small_gap_cnn()
    for multiple_of in (0, -4, 2.5):
        with pytest.raises(ValueError, match="multiple_of must be a whole number"):
            surgery.filters_to_keep(model, 0.5, multiple_of=multiple_of)
    with pytest.raises(surgery.SurgeryError, match="'mlp' has no Conv2D layer"):  # not an unchanged copy
        surgery.prune_filters(keras.Sequential([keras.Input((8,)), layers.Dense(4), layers.Dense(2)], name="mlp"), 0.5)
    with pytest.raises(surgery.SurgeryError, match="last Conv2D of 'convs_out'.*ratio 0"):  # would drop outputs
        surgery.prune_filters(sequential(head=(layers.GlobalAveragePooling2D(),), name="convs_out"), 0.5)
    with pytest.raises(surgery.SurgeryError, match="'f' \\(Flatten\\): channels_first"):  # wrong rows, no error
        surgery.prune_filters(sequential(head=(layers.Flatten(data_format="channels_first", name="f"), layers.Dense(2))), 0.5)
    with pytest.raises(surgery.SurgeryError, match="'p' \\(MaxPooling2D\\): channels_first"):
        surgery.prune_filters(sequential(layers.MaxPooling2D(data_format="channels_first", name="p")), 0.5)
    with pytest.raises(surgery.SurgeryError, match="'s' \\(Activation\\): a softmax over the channels"):
        surgery.prune_filters(sequential(layers.Activation("softmax", name="s")), 0.5)
    with pytest.raises(ValueError, match="distinct indices"):  # not truncated to filters 0 and 1
        surgery.narrow(model, {"c1": [0.5, 1.7]})
    # a softmax on the classifier's outputs stays supported
    classifier = sequential(head=(layers.GlobalAveragePooling2D(), layers.Dense(2), layers.Activation("softmax")))
    assert surgery.widths(surgery.prune_filters(classifier, 0.5)) == [2]


def test_narrow_says_what_keep_is_and_names_the_conv2d_layers():
    """A misspelt layer given a count failed as "'int' object is not iterable", a list of pairs as
    "'list' object has no attribute 'items'"."""
    model = _small_gap_cnn()
    with pytest.raises(ValueError, match="No layer named conv1 in '.*'; its Conv2D layers: c1, c2\\."):
        surgery.narrow(model, {"conv1": 2})
    for count in (2, 2.0):
        with pytest.raises(TypeError, match=f"indices of the filters to keep, not a count \\(c1: {count}\\)"):
            surgery.narrow(model, {"c1": count})
    with pytest.raises(TypeError, match="keep maps Conv2D layer names to the indices"):
        surgery.narrow(model, [("c1", [0, 1])])
    assert surgery.widths(surgery.narrow(model, {"c1": np.array([0, 1])})) == [2, 6]


# --------------------------------------------------------------------------- 2:4, converted models, plots


def test_m_by_n_share_checks_groups_along_input_channels():
    model = keras.Sequential([keras.Input((4, 4, 8)), layers.Conv2D(2, 1, name="c"), layers.Flatten(), layers.Dense(4, name="d")])
    kernel = np.ones((1, 1, 8, 2), np.float32)
    kernel[0, 0, [0, 1, 6, 7], 0] = 0  # filter 0: both groups of 4 input channels hold 2 zeros
    kernel[0, 0, [0, 5], 1] = 0  # filter 1: 1 zero per group
    model.get_layer("c").set_weights([kernel, np.zeros(2, np.float32)])
    dense = np.zeros((32, 4), np.float32)  # all zero: every group qualifies
    model.get_layer("d").set_weights([dense, np.zeros(4, np.float32)])
    assert pruning.m_by_n_share(model, (2, 4)) == pytest.approx((2 + 32) / (4 + 32))
    assert pruning.m_by_n_share(model, (1, 4)) == 1.0
    with pytest.raises(ValueError, match="multiple of 4"):
        pruning.m_by_n_share(keras.Sequential([keras.Input((4, 4, 3)), layers.Conv2D(2, 1)]), (2, 4))
    for pattern in ((0, 4), (5, 4), (2, 0), (2, -4), (1.5, 4)):  # (0, 4) would read as every group qualifying
        with pytest.raises(ValueError, match="m_by_n must be \\(M, N\\)"):
            pruning.m_by_n_share(model, pattern)


def test_toolkit_2_by_4_passes_the_check():
    model = _randomise(keras.Sequential([keras.Input((8, 8, 4)), layers.Conv2D(8, 3, name="c"),
                                         layers.GlobalAveragePooling2D(), layers.Dense(3)]))
    wrapped = tfmot.sparsity.keras.prune_low_magnitude(
        model, sparsity_m_by_n=(2, 4), pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, 0, frequency=1))
    wrapped.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = RNG.random((16, 8, 8, 4), dtype=np.float32)
    wrapped.fit(x, RNG.integers(0, 3, 16), epochs=1, verbose=0, callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    assert pruning.m_by_n_share(stripped, (2, 4)) == 1.0
    assert measure.sparsity(stripped) == pytest.approx(0.5)


def test_plots_return_figures():
    import matplotlib

    matplotlib.use("Agg")
    fig = pruning.plot_sparsity_curves({"once": {0.0: 0.8, 0.5: 0.6}, "tuned": {0.0: 0.8, 0.5: 0.78}}, dense_accuracy=0.8)
    assert len(fig.axes[0].lines) == 3 and not fig.axes[0].collections  # no band without an image count
    banded = pruning.plot_sparsity_curves({"once": {0.0: 0.8, 0.5: 0.6}}, images=10_000)
    (band,) = banded.axes[0].collections
    low, high = band.get_paths()[0].vertices[:, 1].min(), band.get_paths()[0].vertices[:, 1].max()
    assert 59 < low < 60 and 80 < high < 81  # the 95% interval of 60% and 80% on 10,000 images: about +-0.8
    scan = _scan({"a": (0.7, 0.6, 0.2), "b": (0.8, 0.8, 0.7)}, {"a": 10, "b": 100})
    assert len(pruning.plot_sensitivity(scan).axes) == 1
    assert len(pruning.plot_sensitivity(scan, pruning.sparsity_plan(scan, 0.5), uniform=0.5).axes) == 2
