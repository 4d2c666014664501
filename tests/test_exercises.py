"""Every exercise's check passes the teachers' solution, fails a typical wrong answer with a
message that says what is wrong without giving the answer, and waits for an unanswered one."""
import numpy as np
import pytest

from effcourse import exercises, solutions


def _unanswered(*args):
    raise NotImplementedError


def _named(name, function):
    function.__name__ = name
    return function


def test_every_exercise_has_a_solution_that_passes():
    for name in exercises.exercises():
        result = exercises.check(getattr(solutions, name))
        assert result.passed, result


@pytest.mark.parametrize("name", exercises.exercises())
def test_an_unanswered_exercise_waits_without_failing(name):
    for body in (_unanswered, lambda *args: None):
        result = exercises.check(_named(name, body))
        assert result.status == exercises.NOT_ANSWERED and "Fill in" in result.message


WRONG = {  # a typical mistake for each exercise, and what the message must point at
    "conv_macs": (lambda h, w, cin, cout, k: h * w * cout * (k * k * cin + 1), "bias"),
    "conv_parameters": (lambda cin, cout, k: k * k * cin * cout, "bias"),
    "two_of_four_mask": (lambda w: np.abs(w) >= np.median(np.abs(w)), "exactly 2"),
    "quantize_per_channel": (lambda k: (np.round(k / (np.abs(k).max() / 127)).astype(np.int8),
                                        np.full(k.shape[-1], np.abs(k).max() / 127)), "range"),
    "smallest_loss_scale": (lambda g: 2.0**15, "half your scale"),  # LossScaleOptimizer's start, not the smallest
    "distillation_loss": (lambda s, t, y, temperature, alpha: solutions.distillation_loss(s, t, y, temperature, alpha)
                          - (1 - alpha) * (1 - 1 / temperature**2) * solutions.distillation_loss(s, t, y, temperature, 0.0),
                          "T²"),  # the soft term without its T² factor
    "pareto_front": (lambda a, m: np.array([not np.any((a > x) & (m < y)) for x, y in zip(a, m)]), "better in one"),
    "net_joules_per_inference": (lambda s, e, r, idle, sec, n: ((e - s) / 1e6 - idle * sec) / n, "wrapped"),
    "compressed_bits": (lambda k, c: np.count_nonzero(k) * int(np.ceil(np.log2(c))) + 32 * c, "bitmask"),
    "energy_verdict": (lambda ref, m: "less" if np.mean(m) < 0.97 * np.mean(ref) else
                       "more" if np.mean(m) > 1.03 * np.mean(ref) else "no measurable difference", "every repeat"),
}


@pytest.mark.parametrize("name", exercises.exercises())
def test_a_typical_wrong_answer_is_told_what_is_wrong_not_the_answer(name):
    wrong, hint = WRONG[name]
    result = exercises.check(_named(name, wrong))
    assert result.status == exercises.NOT_YET and hint in result.message, result
    assert "For a" in result.message, "the message names the input that failed"
    if name == "conv_macs":  # the message quotes the learner's number, never the right one
        assert "917,504" in result.message and "884,736" not in result.message


def test_wrong_kinds_of_answer_are_named():
    assert "expected a number" in exercises.check(_named("conv_macs", lambda *a: "many")).message
    assert "shape" in exercises.check(_named("two_of_four_mask", lambda w: np.ones(3, bool))).message
    last_axis = exercises.check(_named("two_of_four_mask", lambda w: np.swapaxes(
        solutions.two_of_four_mask(np.swapaxes(w, -1, -2)), -1, -2)))
    assert "output channels" in last_axis.message
    signed = exercises.check(_named("two_of_four_mask", lambda w: solutions.two_of_four_mask(w + 10)))
    assert "whatever their sign" in signed.message
    crash = exercises.check(_named("conv_parameters", lambda *a: a.foo))
    assert crash.status == exercises.NOT_YET and "AttributeError" in crash.message
    per_tensor = exercises.check(_named("quantize_per_channel", lambda k: solutions.quantize_per_channel(k)[0]))
    assert "two things" in per_tensor.message


def test_distillation_loss_mistakes_are_named():
    def check(function):
        return exercises.check(_named("distillation_loss", function)).message

    solution = solutions.distillation_loss
    swapped = check(lambda s, t, y, temperature, alpha: solution(s, t, y, temperature, 1 - alpha))
    assert "alpha weighs the hard-label loss" in swapped
    reversed_kl = check(lambda s, t, y, temperature, alpha: alpha * solution(s, t, y, temperature, 1.0)
                        + (1 - alpha) * solution(t, s, y, temperature, 0.0))
    assert "teacher's distribution (the target)" in reversed_kl
    hard_at_t = check(lambda s, t, y, temperature, alpha: solution(s / temperature, t / temperature, y, 1.0, alpha))
    assert "temperature 1" in hard_at_t
    summed = check(lambda s, t, y, temperature, alpha: len(y) * solution(s, t, y, temperature, alpha) if alpha == 0
                   else solution(s, t, y, temperature, alpha))
    assert "not the sum" in summed
    per_image = check(lambda s, t, y, temperature, alpha: np.full(len(y), solution(s, t, y, temperature, alpha)))
    assert "expected one number" in per_image
    import tensorflow as tf  # a TensorFlow scalar is an answer too

    assert exercises.check(_named("distillation_loss", lambda *a: tf.constant(solution(*a)))).passed


def test_smallest_loss_scale_mistakes_are_named():
    def check(function):
        return exercises.check(_named("smallest_loss_scale", function)).message

    assert "not a power of two" in check(lambda g: 3e-8 / np.abs(g).min())
    assert "rounds to 0" in check(lambda g: solutions.smallest_loss_scale(np.ravel(g)[:1]))  # the first value only
    normal = check(lambda g: 2.0 ** np.ceil(np.log2(np.finfo(np.float16).tiny / np.abs(g).min())))  # normal, not subnormal
    assert "half your scale" in normal and "subnormal" in normal
    assert "overflow" in check(lambda g: 2.0**40 if np.max(np.abs(g)) > 1 else solutions.smallest_loss_scale(g))
    assert "expected one number" in check(lambda g: np.ones(3))
    for described, gradient in exercises._GRADIENTS:  # every case needs a scale above 1 but the last
        assert (solutions.smallest_loss_scale(gradient) > 1) == ("as it is" not in described)


def test_a_function_no_exercise_asks_for_is_refused_with_the_names():
    with pytest.raises(KeyError, match="conv_macs"):
        exercises.check(_named("my_function", lambda: 1))


def test_results_display_as_text_and_html():
    result = exercises.check(solutions.conv_macs)
    assert str(result).startswith("conv_macs: passed.")
    assert "<b>conv_macs: passed.</b>" in result._repr_html_()


def test_show_solution_displays_the_source(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    exercises.show_solution("conv_macs")
    assert shown[0].data.startswith("```python\ndef conv_macs(")


def test_compressed_bits_names_each_part_left_out():
    def check(wrong):
        return exercises.check(_named("compressed_bits", wrong)).message

    assert "centroids" in check(lambda k, c: k.size + np.count_nonzero(k) * int(np.ceil(np.log2(c))))
    assert "needs no cluster index" in check(lambda k, c: k.size * (1 + int(np.ceil(np.log2(c)))) + 32 * c)
    assert "round log2(clusters) up" in check(lambda k, c: k.size + np.count_nonzero(k) * np.log2(c) + 32 * c)


BROKEN = {  # answers of the wrong kind that must get "not yet" and what is wrong, never a crash of the checker
    "conv_macs": [(lambda *a: float("nan"), "returned nan; a count is a whole number"),
                  (lambda *a: float("inf"), "returned inf; a count is a whole number")],
    "conv_parameters": [(lambda *a: np.float64("nan"), "returned nan"), (lambda *a: -np.inf, "returned -inf")],
    "compressed_bits": [(lambda k, c: float("nan"), "returned nan"), (lambda k, c: float("inf"), "returned inf")],
    "two_of_four_mask": [(lambda w: [[True, False], [True]], "your mask (list) cannot be read as an array")],
    "quantize_per_channel": [(lambda k: ([[1, 2], [3]], np.ones(k.shape[-1])), "your integers (list) cannot be read"),
                             (lambda k: (np.zeros(k.shape, np.int8), [[0.1], [0.1, 0.2]]), "your scales (list) cannot"),
                             (lambda k: (np.full(k.shape, "7"), np.ones(k.shape[-1])), "both must be numbers")],
    "smallest_loss_scale": [(lambda g: [[1.0], [2.0, 4.0]], "your scale (list) cannot be read as an array"),
                            (lambda g: 1 + 1j, "expected one number, the scale")],
    "distillation_loss": [(lambda s, t, y, temperature, alpha: [[1.0], [2.0, 3.0]], "your answer (list) cannot")],
    "pareto_front": [(lambda a, m: [[True], [False, True]], "your answer (list) cannot be read as an array")],
}


@pytest.mark.parametrize("name, wrong, told", [pytest.param(name, wrong, told, id=f"{name}-{i}") for name, cases
                                                in BROKEN.items() for i, (wrong, told) in enumerate(cases)])
def test_an_answer_the_checker_cannot_use_is_told_not_yet_without_a_crash(name, wrong, told):
    result = exercises.check(_named(name, wrong))
    assert result.status == exercises.NOT_YET and told in result.message, result
    assert result.message.startswith("For "), "the message names the input that failed"


PASSED_WRONGLY = {  # wrong answers the checks passed before (a probe of every check with typical mistakes)
    "energy_verdict": [  # no 3% margin; 0.03 mJ instead of 3%
        lambda ref, m: "less" if np.all(m / ref < 1) else "more" if np.all(m / ref > 1) else "no measurable difference",
        lambda ref, m: "less" if np.all(m - ref < -0.03) else "more" if np.all(m - ref > 0.03) else "no measurable difference"],
    "pareto_front": [  # domination missed at equal MACs
        lambda a, m: np.array([not np.any((a >= x) & (m < y)) for x, y in zip(a, m)])],
    "net_joules_per_inference": [  # whole joules only
        lambda s, e, r, idle, sec, n: (((e - s) % r) // 1_000_000 - idle * sec) / n,
        lambda s, e, r, idle, sec, n: (int(((e - s) % r) / 1e6) - idle * sec) / n],
}


@pytest.mark.parametrize("name, wrong", [pytest.param(name, wrong, id=f"{name}-{i}") for name, cases
                                         in PASSED_WRONGLY.items() for i, wrong in enumerate(cases)])
def test_a_wrong_answer_that_passed_before_is_caught(name, wrong):
    result = exercises.check(_named(name, wrong))
    assert result.status == exercises.NOT_YET and result.message.startswith("For "), result


def test_the_caught_mistakes_are_named():
    def message(name, wrong):
        return exercises.check(_named(name, wrong)).message

    assert "at equal MACs" in message("pareto_front", PASSED_WRONGLY["pareto_front"][0])
    assert "fractions of a joule" in message("net_joules_per_inference", PASSED_WRONGLY["net_joules_per_inference"][0])
    assert "within 3%" in message("energy_verdict", PASSED_WRONGLY["energy_verdict"][0])
    assert "not 0.03 mJ" in message("energy_verdict", PASSED_WRONGLY["energy_verdict"][1])


def test_correct_answers_in_other_forms_pass():
    """Failed before: a whole float from np.ceil, a 0-d array, a TensorFlow scalar, a list of two."""
    import tensorflow as tf

    passing = {
        "compressed_bits": [lambda k, c: k.size + np.count_nonzero(k) * np.ceil(np.log2(c)) + 32 * c,
                            lambda k, c: np.array(solutions.compressed_bits(k, c)),
                            lambda k, c: k.size + tf.math.count_nonzero(k) * int(np.ceil(np.log2(c))) + 32 * c],
        "conv_macs": [lambda h, w, cin, cout, k: tf.reduce_prod([h, w, cout, k, k, cin])],
        "conv_parameters": [lambda cin, cout, k: np.array((k * k * cin + 1) * cout)],
        "quantize_per_channel": [lambda k: list(solutions.quantize_per_channel(k))],
    }
    for name, answers in passing.items():
        for answer in answers:
            result = exercises.check(_named(name, answer))
            assert result.passed, result


def test_a_branch_without_a_return_is_not_yet_not_unanswered():
    """It was 'not answered yet' as soon as one input got None, though the others had answers."""
    def two_branches(ref, m):
        ratios = m / ref
        if np.all(ratios < 0.97):
            return "less"
        if np.all(ratios > 1.03):
            return "more"

    result = exercises.check(_named("energy_verdict", two_branches))
    assert result.status == exercises.NOT_YET and "does every branch end in a return" in result.message, result
    assert result.message.startswith("For a model cheaper on average, but not in one repeat")


def test_quantize_per_channel_names_a_clipping_scale_and_the_int8_minimum():
    def scaled(divisor, dtype=np.int8):
        def quantize_per_channel(k):
            scale = np.abs(k).reshape(-1, k.shape[-1]).max(axis=0) / divisor
            return np.clip(np.round(k / scale), -127, 127).astype(dtype), scale
        return quantize_per_channel

    for divisor in (128, 255):  # the scale too small: the largest weights clip at 127
        assert "was clipped" in exercises.check(scaled(divisor)).message

    def full_range(k):  # -128..127, with int8 values: np.abs(-128) is -128 in int8
        scale = np.abs(k).reshape(-1, k.shape[-1]).max(axis=0) / 127
        q = np.round(k / scale)
        q[q == -127] = -128
        return q.astype(np.int8), scale

    assert "outside -127..127" in exercises.check(_named("quantize_per_channel", full_range)).message


def test_a_count_in_a_list_is_not_a_number():
    result = exercises.check(_named("compressed_bits", lambda k, c: [solutions.compressed_bits(k, c)]))
    assert result.status == exercises.NOT_YET and "returned list; expected a number" in result.message


def test_a_non_number_is_told_what_number_is_expected():
    message = exercises.check(_named("net_joules_per_inference", lambda *a: [1.0, 2.0])).message
    assert "expected one number, the net joules per inference" in message and "loss" not in message
