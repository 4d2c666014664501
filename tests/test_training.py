"""Training under dtype policies, measured together: plans, float32 copies, the gradients loss scaling
protects, the interleaved rounds (with fake steps whose times are known) and one real comparison of
tiny models."""
import dataclasses
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from effcourse import convert, energy, paths, profiles, results, training
from effcourse.data import ImageData


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))


@pytest.fixture(autouse=True)
def float32_policy():
    """Every test starts and must end under the float32 policy."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    assert keras.mixed_precision.global_policy().name == "float32", "a test left a mixed policy behind"


def tiny_cnn():
    """Conv-BN-ReLU, global pooling, float32 logits: built under whatever policy is set."""
    return keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(8, 3, padding="same", use_bias=False),
                             layers.BatchNormalization(), layers.ReLU(), layers.GlobalAveragePooling2D(),
                             layers.Dense(3, dtype="float32")])


@pytest.fixture(scope="module")
def tiny_data():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 160)
    x = np.clip(rng.normal(40 + 70 * y[:, None, None, None], 20, (160, 8, 8, 3)), 0, 255).astype(np.uint8)
    return ImageData(x[:96], y[:96], x[96:112], y[96:112], x[112:], y[112:], ("a", "b", "c"), "tiny", True, 16)


TINY_PLAN = training.Plan(widths=(8,), batch_size=16, rounds=3, steps=2, warmup=1)


def test_plans_use_multiples_of_8_and_16_and_grow_with_the_profile_and_on_a_gpu():
    plans = {name: training.plan_for(profiles.get(name), gpu=False, emulated=False) for name in ("smoke", "workshop", "full")}
    for plan in plans.values():
        assert all(w % 16 == 0 for w in plan.widths) and plan.batch_size % 8 == 0
    steps = [plans[n].steps_per_policy * plans[n].batch_size for n in ("smoke", "workshop", "full")]
    assert steps == sorted(steps) and len(set(steps)) == 3, "each profile trains on more images than the last"
    gpu = training.plan_for(profiles.get("workshop"), gpu=True)
    assert gpu.widths == tuple(2 * w for w in plans["workshop"].widths)
    assert gpu.batch_size == 4 * plans["workshop"].batch_size and gpu.rounds == plans["workshop"].rounds


def test_a_cpu_that_emulates_bfloat16_trains_one_workshop_epoch_per_policy_instead_of_two():
    native = {n: training.plan_for(profiles.get(n), gpu=False, emulated=False) for n in ("smoke", "workshop", "full")}
    emulated = {n: training.plan_for(profiles.get(n), gpu=False, emulated=True) for n in ("smoke", "workshop", "full")}
    assert emulated["smoke"] == native["smoke"] and emulated["full"] == native["full"]
    workshop, images = emulated["workshop"], 9_000  # the workshop profile's training images, less validation
    assert 0.9 < workshop.epochs(images) < 1.1 < 1.9 < native["workshop"].epochs(images) < 2.1
    assert (workshop.widths, workshop.batch_size, workshop.rounds) == (native["workshop"].widths, native["workshop"].batch_size,
                                                                       native["workshop"].rounds), "only the steps change"
    assert training.plan_for(profiles.get("workshop"), gpu=True, emulated=True).steps == native["workshop"].steps, \
        "a GPU does not emulate: its plan is the native one, wider"


def test_a_plan_counts_its_warm_up_round_and_epochs():
    plan = training.Plan(widths=(16,), batch_size=10, rounds=4, steps=3, warmup=2)
    assert plan.steps_per_policy == 5 * 5  # a warm-up round and 4 rounds, of 2 + 3 steps each
    assert plan.epochs(50) == pytest.approx(5.0)
    assert "25 steps (5.00 epochs of 50 images)" in plan.describe(50) and "4 rounds of 2 untimed + 3 timed" in plan.describe(50)


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("rounds", 0), ("steps", 0), ("warmup", -1)])
def test_a_plan_refuses_counts_it_cannot_train(field, value):
    with pytest.raises(ValueError, match=f"A plan's {field} must be at least {value + 1}, got {value}"):
        dataclasses.replace(TINY_PLAN, **{field: value})


def test_unknown_policies_and_empty_settings_are_refused():
    with pytest.raises(ValueError):
        training._settings(["mixed_float8"])
    with pytest.raises(ValueError, match="No policies"):
        training._settings([])
    with pytest.raises(ValueError, match=r"several policy names, e.g. training.POLICIES or \['float32'\], not one"):
        training._settings("float32")  # else read letter by letter: "Cannot convert value f"
    found = training._settings({"fast": training.Setting("float32", jit_compile=True), "plain": "mixed_bfloat16"})
    assert found == {"fast": training.Setting("float32", True), "plain": training.Setting("mixed_bfloat16")}


def test_a_mixed_model_deploys_through_its_float32_copy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    mixed = tiny_cnn()
    keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(convert.ConversionError):  # the converter refuses a graph that computes in float16
        convert.to_litert(mixed)
    copy = training.float32_copy(mixed)
    assert all(layer.compute_dtype == "float32" for layer in copy.layers)
    assert all(np.array_equal(a, b) for a, b in zip(mixed.get_weights(), copy.get_weights()))
    x = np.random.default_rng(1).random((4, 8, 8, 3), dtype=np.float32)
    assert mixed.layers[0](x).dtype == tf.float16 and copy.layers[0](x).dtype == tf.float32
    np.testing.assert_allclose(copy(x).numpy(), mixed(x).numpy(), atol=2e-2)  # float16 rounding, no more
    lite = convert.to_litert(copy)
    np.testing.assert_allclose(lite.predict(x), copy(x).numpy(), atol=1e-4)


def test_activation_gradients_are_per_convolution_and_leave_the_model_as_it_was():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(4, 3, padding="same"), layers.BatchNormalization(),
                              layers.ReLU(), layers.Conv2D(6, 3, strides=2), layers.GlobalAveragePooling2D(),
                              layers.Dense(3)])
    x = np.random.default_rng(2).random((5, 8, 8, 3), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1])
    before = [w.copy() for w in model.get_weights()]
    gradients = training.activation_gradients(model, x, y)
    assert list(gradients) == [model.layers[0].name, model.layers[3].name]
    assert gradients[model.layers[0].name].shape == (5, 8, 8, 4) and gradients[model.layers[3].name].shape == (5, 3, 3, 6)
    assert all(np.any(g != 0) for g in gradients.values())
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "batch norm's statistics restored"
    # The last convolution feeds global average pooling: its gradient is spread evenly over the 3x3 positions.
    last = gradients[model.layers[3].name]
    np.testing.assert_allclose(last, np.broadcast_to(last[:, :1, :1, :], last.shape), rtol=1e-5)


class FakeModel:
    def reset_metrics(self):
        pass


def fake_run(label, calls, first=0.0, rest=0.0):
    """A run whose step takes `first` seconds at the start of each block (after reset_metrics) and
    `rest` seconds otherwise, recording its label on every call."""
    state = {"fresh": True}
    model = FakeModel()

    def reset():
        state["fresh"] = True
    model.reset_metrics = reset

    def step(batches):
        calls.append(label)
        time.sleep(first if state["fresh"] else rest)
        state["fresh"] = False
        return {"loss": tf.constant(1.0)}
    return training._Run(label, training.Setting("float32"), model, step, iter(()))


def test_rounds_rotate_the_order_and_every_run_trains_the_same_steps():
    calls = []
    runs = [fake_run(name, calls) for name in "abc"]
    plan = training.Plan(widths=(16,), batch_size=4, rounds=3, steps=2, warmup=1)
    training._train(runs, plan, energy.EnergyMeter("estimate"), None)
    blocks = [calls[i] for i in range(0, len(calls), 3)]  # each block is 3 calls of one run
    assert blocks == list("abc") + list("abc") + list("bca") + list("cab"), "warm-up round, then a rotating order"
    assert all(calls.count(name) == plan.steps_per_policy for name in "abc")


def test_throughput_leaves_out_the_untimed_steps_and_ratios_follow_the_step_times():
    calls = []
    runs = [fake_run("quick", calls, first=0.2, rest=0.01), fake_run("slow", calls, first=0.0, rest=0.02)]
    plan = training.Plan(widths=(16,), batch_size=8, rounds=6, steps=3, warmup=1)
    found = training._train(runs, plan, energy.EnergyMeter("estimate"), None)
    # 0.2 s first steps would make "quick" the slower one if they were timed
    assert found["throughput"]["quick"] == pytest.approx(np.full(6, 8 / 0.01), rel=0.4)
    ratio = found["throughput"]["slow"] / found["throughput"]["quick"]
    assert np.median(ratio) == pytest.approx(0.5, rel=0.3)
    assert found["losses"]["quick"].shape == (6,) and (found["joules"]["slow"] >= 0).all()
    assert found["peak bytes"] == {"quick": 0.0, "slow": 0.0}


def test_policies_trained_together_on_tiny_models(tiny_data):
    built = []

    def build():
        model = tiny_cnn()
        built.append((keras.mixed_precision.global_policy().name, [w.copy() for w in model.get_weights()]))
        return model

    policies = {"float32": "float32", "mixed_float16": "mixed_float16", "mixed_bfloat16": "mixed_bfloat16",
                "float32, seed 1": training.Setting("float32", seed=1)}
    result = training.compare_policies(build, tiny_data, policies=policies, plan=TINY_PLAN, lesson="t",
                                       profile=profiles.get("smoke"), energy_method="estimate", device=None)
    assert [policy for policy, _ in built] == ["float32", "mixed_float16", "mixed_bfloat16", "float32"]
    same_seed = [weights for _, weights in built[:3]]
    assert all(np.array_equal(a, b) for w in same_seed[1:] for a, b in zip(same_seed[0], w)), "same initial weights"
    assert not all(np.array_equal(a, b) for a, b in zip(built[0][1], built[3][1])), "another seed, other weights"
    table = result.table
    assert list(table.index) == list(policies)
    assert list(table["compute"]) == ["float32", "float16", "bfloat16", "float32"]
    assert (table["variables"] == "float32").all()
    assert table.loc["mixed_float16", "loss scale"] != "none" and (table.drop("mixed_float16")["loss scale"] == "none").all()
    assert table.loc["float32", "x ref"] == 1.0 and table.loc["float32", "speed verdict"] == "reference"
    assert set(table["speed verdict"].iloc[1:]) <= {"faster", "slower", "no measurable difference"}
    assert ((table["accuracy %"] >= 0) & (table["accuracy %"] <= 100)).all()
    assert all(len(v) == TINY_PLAN.rounds for v in result.throughput.values())
    assert all(len(c) == len(tiny_data.y_test) for c in result.correct.values())
    for label, model in result.models.items():  # the models trained: their weights moved from the initial ones
        assert model.layers[-1].compute_dtype == "float32"
        assert not all(np.array_equal(a, b) for a, b in zip(built[list(policies).index(label)][1], model.get_weights()))
    assert "estimated" in result.energy_method and "estimate" in result.conditions()
    assert "peak RSS" in result.memory and "peak MiB" not in table.columns
    assert "images/s" in result.speed_table().columns and "accuracy verdict" in result.accuracy_table().columns
    assert "<table" in result._repr_html_() and result.title in str(result)
    stored = results.load_trainings(lesson="t")
    assert [s["id"] for s in stored] == [result.id] and len(stored[0]["rows"]) == 4
    figure = result.plot_losses()
    assert len(figure.axes[0].lines) == 4



def test_without_a_resource_module_peak_memory_is_not_reported(monkeypatch):
    """Windows has no `resource`: effcourse.training imported it at the top, so lesson 04 failed there."""
    import sys

    assert training._peak_rss() > 0
    monkeypatch.setitem(sys.modules, "resource", None)  # what `import resource` finds on Windows
    assert training._peak_rss() is None


def test_no_module_of_the_package_needs_a_posix_only_module_to_import():
    """Every effcourse module imports in an interpreter where resource, fcntl, termios, pwd and grp
    are missing, as on Windows."""
    import pkgutil
    import subprocess
    import sys

    import effcourse

    names = [m.name for m in pkgutil.walk_packages(effcourse.__path__, "effcourse.") if not m.name.endswith("__main__")]
    code = ("import sys\nfor posix_only in ('resource', 'fcntl', 'termios', 'pwd', 'grp'):\n"
            "    sys.modules[posix_only] = None\nimport importlib\n"
            f"for name in {names!r}:\n    importlib.import_module(name)\nprint('imported', len({names!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"imported {len(names)}" in done.stdout and len(names) > 30

def test_a_model_of_other_classes_than_the_data_is_refused_before_training(tiny_data):
    def two_classes():
        return keras.Sequential([keras.Input((8, 8, 3)), layers.GlobalAveragePooling2D(), layers.Dense(2)])

    with pytest.raises(ValueError, match="build\\(\\)'s model gives 2 logits, but the data has 3 classes"):
        training.compare_policies(two_classes, tiny_data, policies=("float32",), plan=TINY_PLAN, lesson="t",
                                  profile=profiles.get("smoke"), energy_method="estimate", device=None, record=False)


@pytest.mark.parametrize("learning_rate", [-2e-3, 0.0, float("nan")])
def test_a_learning_rate_that_cannot_train_is_refused_before_building(tiny_data, learning_rate):
    """A negative rate trained every policy uphill, 0 not at all, without a word."""
    built = []
    with pytest.raises(ValueError, match="learning_rate must be positive and finite"):
        training.compare_policies(lambda: built.append(1) or tiny_cnn(), tiny_data, policies=("float32",),
                                  plan=TINY_PLAN, lesson="t", learning_rate=learning_rate, record=False)
    assert not built


def test_a_learning_rate_given_as_an_int_trains(tiny_data):
    """It failed inside CosineDecay: "Cannot convert 3.141592653589793 to EagerTensor of dtype int32"."""
    result = training.compare_policies(tiny_cnn, tiny_data, policies=("float32",), plan=TINY_PLAN, lesson="t",
                                       learning_rate=1, profile=profiles.get("smoke"), energy_method="estimate",
                                       device=None, record=False)
    config = result.models["float32"].optimizer.get_config()["learning_rate"]["config"]
    assert config["initial_learning_rate"] == 1.0


def test_peak_memory_is_read_per_run_where_the_device_reports_it(monkeypatch):
    reads = iter([3 * 2**20, 5 * 2**20, 4 * 2**20, 2**20])
    monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", lambda device: None)
    monkeypatch.setattr(tf.config.experimental, "get_memory_info", lambda device: {"current": 0, "peak": next(reads)})
    calls = []
    runs = [fake_run("a", calls), fake_run("b", calls)]
    plan = training.Plan(widths=(16,), batch_size=4, rounds=2, steps=1, warmup=0)
    found = training._train(runs, plan, energy.EnergyMeter("estimate"), "GPU:0")
    # round 1: a then b, round 2: b then a; a's blocks peaked at 3 and 1 MiB, b's at 5 and 4 MiB
    assert found["peak bytes"] == {"a": 3 * 2**20, "b": 5 * 2**20}


def test_the_improved_cnn_keeps_its_logits_in_float32_when_asked():
    from effcourse import models

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        asked, default = models.improved_cnn(widths=(16, 16, 16), logits_dtype="float32"), models.improved_cnn(widths=(16, 16, 16))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert asked.layers[0].compute_dtype == "bfloat16" and asked.layers[-1].compute_dtype == "float32"
    assert asked.output.dtype == tf.float32 and default.output.dtype == tf.bfloat16


def test_each_part_of_the_convolution_computes_in_its_own_format():
    parts = training.convolution_parts(8, batch_size=2, size=6)
    assert set(parts) == {(p, f) for p in training.CONVOLUTION_PARTS for f in ("float32", "float16", "bfloat16")}
    shapes = {"forward": (2, 6, 6, 8), "input gradient": (2, 6, 6, 8), "weight gradient": (3, 3, 8, 8)}
    for (part, dtype), compute in parts.items():
        result = compute()
        assert result.dtype.name == dtype and tuple(result.shape) == shapes[part], (part, dtype)
    # The same numbers in every format, up to 16-bit rounding: each computes the same convolution.
    for part in training.CONVOLUTION_PARTS:
        exact = parts[(part, "float32")]().numpy()
        for dtype, tolerance in (("float16", 0.02), ("bfloat16", 0.1)):
            rounded = np.asarray(parts[(part, dtype)](), dtype=np.float32)
            assert np.max(np.abs(rounded - exact)) <= tolerance * np.max(np.abs(exact)), (part, dtype)


@pytest.mark.parametrize("measure", [training.convolution_speed, training.convolution_error])
def test_a_convolution_of_no_channels_is_refused(measure):
    with pytest.raises(ValueError, match="channels, batch_size and size must be at least 1, got 0, 16 and 32"):
        measure(0)


def test_convolution_speed_gives_each_part_and_the_step_as_ratios_to_float32():
    table = training.convolution_speed(8, batch_size=2, size=6, runs=10)
    assert list(table.index.get_level_values("part").unique()) == [*training.CONVOLUTION_PARTS, "training step"]
    float32 = table.xs("float32", level="format")
    assert (float32["x float32"] == 1).all() and (float32["verdict"] == "reference").all()
    others = table.drop("float32", level="format")
    assert set(others["verdict"]) <= {"faster", "slower", "no measurable difference"}
    for dtype in ("float32", "float16", "bfloat16"):  # a step is every part: per round no less than any
        step = table.loc[("training step", dtype), "ms"]
        assert all(step >= table.loc[(part, dtype), "ms"] for part in training.CONVOLUTION_PARTS)
    assert table.attrs["rounds"] >= 10


@pytest.mark.parametrize("jit_compile", [False, True])
def test_convolution_error_is_measured_against_float64_and_no_kernel_beats_rounding_once(jit_compile):
    table = training.convolution_error(8, batch_size=2, size=6, jit_compile=jit_compile)
    assert set(table.index) == {(p, f) for p in training.CONVOLUTION_PARTS for f in ("float32", "float16", "bfloat16")}
    assert table.attrs["jit_compile"] is jit_compile
    # float32 keeps about 7 digits; float16 about 3 and bfloat16 about 2, and a 16-bit result can be
    # no closer to the exact one than that result rounded once to the format.
    assert (table.xs("float32", level="format")["relative error"] < 1e-5).all()
    for dtype, largest in (("float16", 0.01), ("bfloat16", 0.05)):
        rows = table.xs(dtype, level="format")
        assert (rows["relative error"] > 0).all() and (rows["relative error"] < largest).all(), dtype
        assert (rows["x rounding once"] >= 0.99).all(), dtype


def test_a_settings_training_does_not_depend_on_the_others_trained_beside_it(tiny_data):
    # Dropout draws random masks at every step; each model's stream must be its own, seeded by its
    # setting, not shared with the models trained in between.
    def with_dropout():
        return keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(8, 3), layers.Flatten(),
                                 layers.Dropout(0.5), layers.Dense(3, dtype="float32")])

    alone = training.compare_policies(with_dropout, tiny_data, policies=("float32",), plan=TINY_PLAN,
                                      lesson="00", record=False)
    beside = training.compare_policies(with_dropout, tiny_data, plan=TINY_PLAN, lesson="00", record=False,
                                       policies={"float32": "float32", "bfloat16": "mixed_bfloat16",
                                                 "seed 1": training.Setting("float32", seed=1)})
    for a, b in zip(alone.models["float32"].get_weights(), beside.models["float32"].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not keras.backend.experimental.is_tf_random_generator_enabled(), "the global setting is left as it was"
