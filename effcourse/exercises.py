"""Exercises: the learner fills in a function, `check(function)` says "passed" or what is wrong.

A check calls the learner's function on a few inputs and tests what the answer must satisfy
(its type, shape, a property, the package's own count for a real layer). A wrong answer is
told which input failed and what kind of answer was expected, never the answer itself. An
exercise left as it came (`raise NotImplementedError`, or a body that returns nothing) is
"not answered yet": nothing fails, so a notebook with open exercises still runs end to end (a
function that answered some inputs and returns nothing for another is told to check its returns).
The teachers' solutions are in `effcourse.solutions`; `show_solution` displays one.
"""
from __future__ import annotations

import html
import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

PASSED, NOT_ANSWERED, NOT_YET = "passed", "not answered yet", "not yet"


class Wrong(Exception):
    """What is wrong with an answer, in words for the learner."""


class _NotAnswered(Exception):
    """The learner's function returned nothing or raised NotImplementedError for the input it names."""


@dataclass(frozen=True)
class Result:
    """The outcome of one check: its status and the message for the learner."""

    exercise: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self) -> str:
        return f"{self.exercise}: {self.status}. {self.message}".rstrip()

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colour = {PASSED: "#1a7f37", NOT_ANSWERED: "#6e7781", NOT_YET: "#b35900"}[self.status]
        return (f'<p style="border-left: 4px solid {colour}; padding-left: 8px">'
                f'<b>{html.escape(self.exercise)}: {self.status}.</b> {html.escape(self.message)}</p>')


_CHECKS: dict[str, tuple[Callable[[Callable], None], str]] = {}


def _exercise(praise: str):
    """Register a check for the learner's function of its name (without `_check_`), with what
    a passing answer has got right."""
    def register(check: Callable[[Callable], None]) -> Callable[[Callable], None]:
        _CHECKS[check.__name__.removeprefix("_check_")] = (check, praise)
        return check
    return register


def exercises() -> list[str]:
    """The names of the functions the course's exercises ask for."""
    return sorted(_CHECKS)


def check(function: Callable) -> Result:
    """Check the learner's `function` (found by its name) and return the verdict to display."""
    name = getattr(function, "__name__", None)
    if name not in _CHECKS:
        raise KeyError(f"No exercise asks for a function named {name!r}. Keep the name the exercise cell "
                       f"gives it; the exercises are: {', '.join(exercises())}.")
    run_check, praise = _CHECKS[name]
    answered = []

    def recorded(*args):
        answer = function(*args)
        answered.append(answer is not None)
        return answer

    try:
        run_check(recorded)
    except _NotAnswered as missing:
        if any(answered):  # it answered an input before: a branch without a return, not an open exercise
            return Result(name, NOT_YET, f"For {missing} your function returned nothing (None) or raised "
                                         "NotImplementedError, though it answered the inputs before: does every "
                                         "branch end in a return?")
        return Result(name, NOT_ANSWERED, "Fill in the function's body, run its cell, then this one.")
    except Wrong as wrong:
        return Result(name, NOT_YET, str(wrong))
    return Result(name, PASSED, praise)


def show_solution(name: str) -> None:
    """Display a teacher's solution (the lessons keep this cell collapsed)."""
    from IPython.display import Markdown, display

    from . import solutions

    display(Markdown(f"```python\n{inspect.getsource(getattr(solutions, name))}```"))


def _call(function: Callable, *args, described: str):
    """The learner's answer for `args`, or why it is not one."""
    try:
        answer = function(*args)
    except NotImplementedError:
        raise _NotAnswered(described) from None
    except Exception as error:  # the learner's code may raise anything; say which input made it
        raise Wrong(f"For {described} your function raised {type(error).__name__}: {error}") from None
    if answer is None:
        raise _NotAnswered(described)
    return answer


def _whole_number(answer, described: str) -> int:
    """A count: a whole number of any numeric type (Python, numpy, a 0-d array, a TensorFlow scalar)."""
    value = _array(answer, described, "answer")
    if value.shape != () or value.dtype.kind not in "iuf":
        raise Wrong(f"For {described} your function returned {type(answer).__name__}; expected a number.")
    number = value.item()
    if not float(number).is_integer() or number < 0:  # nan and inf are not whole
        raise Wrong(f"For {described} your function returned {number}; a count is a whole number, not negative.")
    return int(number)


def _array(answer, described: str, what: str) -> np.ndarray:
    """The learner's `what` as a numpy array, or why it cannot be one."""
    try:
        return np.asarray(answer)
    except (ValueError, TypeError):  # ValueError: nested lists of different lengths
        raise Wrong(f"For {described} your {what} ({type(answer).__name__}) cannot be read as an array: "
                    "its rows differ in length, or it holds something other than numbers.") from None


# Lesson 01 ------------------------------------------------------------------------------


def _conv_layer(height: int, in_channels: int, out_channels: int, kernel_size: int):
    """A real Keras convolution ('same' padding, stride 1) on a height x height input."""
    import tf_keras as keras

    model = keras.Sequential([keras.Input((height, height, in_channels)),
                              keras.layers.Conv2D(out_channels, kernel_size, padding="same")])
    return model


_CONV_CASES = [  # (height, width, in, out, kernel): the reference CNN's first layers, and a 1x1
    (32, 32, 3, 32, 3), (32, 32, 32, 32, 3), (16, 16, 32, 64, 3), (8, 8, 64, 48, 1), (4, 6, 5, 7, 5)]


def _conv_description(height, width, in_channels, out_channels, kernel_size) -> str:
    return (f"a {kernel_size}x{kernel_size} convolution from {in_channels} to {out_channels} channels "
            f"with a {height}x{width} output")


@_exercise("You count what the package's measure.layer_macs counts.")
def _check_conv_macs(function: Callable) -> None:
    from .measure import layer_macs

    for case in _CONV_CASES:
        height, width, in_channels, out_channels, kernel_size = case
        described = _conv_description(*case)
        answer = _whole_number(_call(function, *case, described=described), described)
        model = _conv_layer(height, in_channels, out_channels, kernel_size)
        per_position = layer_macs(model)[0].macs // (height * height)
        expected = per_position * height * width
        if answer != expected:
            hint = ("the count should not depend on the bias (an addition, not a multiply-accumulate)"
                    if answer == expected + out_channels * height * width else
                    "every output position of every output channel needs kernel x kernel x input-channels MACs")
            raise Wrong(f"For {described} your function gives {answer:,}, not what the package counts: {hint}.")


@_exercise("Kernel and bias: the parameters Keras reports for every convolution.")
def _check_conv_parameters(function: Callable) -> None:
    for case in _CONV_CASES:
        height, width, in_channels, out_channels, kernel_size = case
        described = _conv_description(*case)
        answer = _whole_number(_call(function, in_channels, out_channels, kernel_size,
                                     described=described), described)
        expected = _conv_layer(height, in_channels, out_channels, kernel_size).count_params()
        if answer != expected:
            hint = ("the bias has one parameter per output channel" if answer == expected - out_channels else
                    "the parameters do not depend on the image size"
                    if answer in (expected * height * width, (expected - out_channels) * height * width) else
                    "count the kernel's weights and the bias")
            raise Wrong(f"For {described} your function gives {answer:,}, not what Keras counts: {hint}.")


# Lesson 02 ------------------------------------------------------------------------------


def _kernel(seed: int, shape=(3, 3, 8, 16)) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, shape).astype(np.float32)


def _groups_of_four(array: np.ndarray) -> np.ndarray:
    """Groups of 4 consecutive input channels (axis -2), as the last axis."""
    moved = np.moveaxis(array, -2, -1)
    return moved.reshape(moved.shape[:-1] + (moved.shape[-1] // 4, 4))


@_exercise("In every group of 4 input-channel weights your mask keeps the 2 largest: the 2:4 pattern.")
def _check_two_of_four_mask(function: Callable) -> None:
    for seed, shape in [(0, (3, 3, 8, 16)), (1, (64, 10)), (2, (1, 1, 4, 4))]:
        weights = _kernel(seed, shape)
        described = f"a {shape} kernel"
        mask = _array(_call(function, weights.copy(), described=described), described, "mask")
        if mask.shape != weights.shape:
            raise Wrong(f"For {described} your mask has shape {mask.shape}; it must have the weights' shape.")
        if not (mask.dtype == bool or np.isin(mask, (0, 1)).all()):
            raise Wrong(f"For {described} your mask holds values other than keep (1/True) and drop (0/False).")
        mask = mask.astype(bool)
        kept = _groups_of_four(mask)
        if not np.all(kept.sum(axis=-1) == 2):
            along_last = mask.reshape(mask.shape[:-1] + (mask.shape[-1] // 4, 4)).sum(axis=-1) if mask.shape[-1] % 4 == 0 else None
            if along_last is not None and np.all(along_last == 2):
                raise Wrong(f"For {described} your groups run along the output channels (the last axis); 2:4 "
                            "groups are 4 consecutive input channels (axis -2), for each position and filter.")
            raise Wrong(f"For {described} some group of 4 consecutive input-channel weights does not keep "
                        "exactly 2.")
        size = np.abs(_groups_of_four(weights))
        smallest_kept = np.where(kept, size, np.inf).min(axis=-1)
        largest_dropped = np.where(kept, -np.inf, size).max(axis=-1)
        if np.any(smallest_kept < largest_dropped):
            raise Wrong(f"For {described} some group keeps a weight smaller in magnitude than one it drops; "
                        "keep the 2 largest |w| of each group, whatever their sign.")


# Lesson 03 ------------------------------------------------------------------------------


@_exercise("Symmetric, per channel, 255 levels, and every weight within half a step.")
def _check_quantize_per_channel(function: Callable) -> None:
    for seed, shape in [(0, (3, 3, 8, 16)), (1, (1, 1, 4, 6))]:
        kernel = _kernel(seed, shape)
        kernel[..., 0] *= 20  # channels of very different ranges: a per-tensor scale fails here
        described = f"a {shape} kernel whose channels have very different ranges"
        answer = _call(function, kernel.copy(), described=described)
        if not (isinstance(answer, (tuple, list)) and len(answer) == 2):
            raise Wrong(f"For {described} return two things: the int8 values and the scales.")
        q, scale = _array(answer[0], described, "integers"), _array(answer[1], described, "scales")
        if q.dtype.kind not in "iuf" or scale.dtype.kind not in "iuf":  # whole or floating-point numbers
            raise Wrong(f"For {described} your function returned {q.dtype} integers and {scale.dtype} scales; "
                        "both must be numbers.")
        if q.shape != kernel.shape:
            raise Wrong(f"For {described} your integers have shape {q.shape}; they need the kernel's shape.")
        if not np.issubdtype(q.dtype, np.integer) and not np.array_equal(q, np.round(q)):
            raise Wrong(f"For {described} your quantized values are not whole numbers.")
        if q.min() < -127 or q.max() > 127:  # np.abs of an int8 -128 is -128
            raise Wrong(f"For {described} a value falls outside -127..127, the symmetric int8 range.")
        if scale.shape != (shape[-1],):
            raise Wrong(f"For {described} your scales have shape {scale.shape}; per channel means one scale per "
                        f"output channel, shape ({shape[-1]},).")
        error = np.abs(q * scale - kernel)
        far = error > scale / 2 * (1 + 1e-5) + 1e-12
        if np.any(far) and np.all(np.abs(q[far]) == 127):
            raise Wrong(f"For {described} some weight lies beyond 127 steps of your scale and was clipped: the "
                        "scale must bring each channel's largest |w| to 127, no further.")
        if np.any(far):
            raise Wrong(f"For {described} some weight is further than half a step (scale / 2) from its "
                        "dequantized value q x scale: round to the nearest level.")
        peak = np.abs(q).reshape(-1, shape[-1]).max(axis=0)
        if not np.all(peak == 127):
            raise Wrong(f"For {described} some channel does not use the whole range: its largest |w| should "
                        "map to 127, so the scale is that channel's max |w| / 127.")



# Lesson 04 ------------------------------------------------------------------------------


_GRADIENTS = [  # (description, non-zero float32 gradient values)
    ("a gradient value of 3e-10", np.float32(3e-10)),
    ("a gradient array of values between 1e-10 and 1e-3, of both signs",
     (np.random.default_rng(4).choice([-1, 1], 200) * 10 ** np.random.default_rng(5).uniform(-10, -3, 200)).astype(np.float32)),
    ("a gradient array of values between 1e-9 and 3", np.array([1e-9, 2e-6, 0.01, 3.0], dtype=np.float32)),
    ("a gradient array that float16 holds as it is", np.array([0.5, -1e-3, 2e-4], dtype=np.float32)),
]


def _float16_zeros(values: np.ndarray, scale: float) -> int:
    """How many of the non-zero `values`, multiplied by `scale` in float32, float16 rounds to 0."""
    scaled = np.abs(values).astype(np.float32) * np.float32(scale)
    with np.errstate(over="ignore"):
        return int(np.sum(scaled.astype(np.float16) == 0))


@_exercise("The smallest power of two whose product with every value survives in float16.")
def _check_smallest_loss_scale(function: Callable) -> None:
    for described, gradient in _GRADIENTS:
        answer = _call(function, np.copy(gradient), described=described)
        value = _array(answer, described, "scale")
        if value.size != 1 or value.dtype.kind not in "iuf":  # one whole or floating-point number
            raise Wrong(f"For {described} your function returned {type(answer).__name__}; expected one number, the scale.")
        scale = float(value.reshape(()))
        if not np.isfinite(scale) or scale < 1 or 2.0 ** round(np.log2(scale)) != scale:
            raise Wrong(f"For {described} your scale {scale:g} is not a power of two of at least 1 (1, 2, 4, 8, ...): "
                        "multiplying by a power of two changes only the exponent, so unscaling is exact.")
        lost = _float16_zeros(np.ravel(gradient), scale)
        if lost:
            raise Wrong(f"For {described} your scale {scale:g} still leaves {lost} value(s) that float16 rounds to 0.")
        with np.errstate(over="ignore"):
            overflows = np.isinf((np.abs(np.ravel(gradient)) * np.float32(scale)).astype(np.float16))
        if np.any(overflows):
            raise Wrong(f"For {described} your scale {scale:g} makes a value overflow float16 (above 65,504).")
        if scale > 1 and not _float16_zeros(np.ravel(gradient), scale / 2):
            raise Wrong(f"For {described}, half your scale ({scale / 2:g}) also keeps every value from rounding to 0 "
                        "in float16: the smallest such power of two is asked (float16's subnormal numbers reach "
                        "down to about 6e-8).")


# Lesson 05 ------------------------------------------------------------------------------


def _softmax(logits, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _mean_kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) of each row, averaged over the rows."""
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1)))


def _mean_cross_entropy(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.mean(-np.sum(p * np.log(q), axis=-1)))


def _number(answer, described: str, what: str) -> float:
    value = _array(answer, described, "answer")
    if value.size != 1 or value.dtype.kind not in "iuf":
        raise Wrong(f"For {described} your function returned {type(answer).__name__} of shape {value.shape}; "
                    f"expected one number, {what}.")
    return float(value.reshape(()))


@_exercise("alpha weighs the hard-label loss, 1 - alpha the soft term: T² x KL(teacher || student) at temperature T.")
def _check_distillation_loss(function: Callable) -> None:
    rng = np.random.default_rng(5)
    n, k = 8, 10
    student = rng.normal(0, 2, (n, k)).astype(np.float32)
    teacher = rng.normal(0, 3, (n, k)).astype(np.float32)
    labels = rng.integers(0, k, n)
    one_hot = np.eye(k)[labels]

    def answer(s, t, temperature, alpha, what="a batch of 8 images and 10 classes"):
        described = f"{what} at temperature {temperature:g} with alpha {alpha:g}"
        got = _number(_call(function, s.copy(), t.copy(), labels.copy(), temperature, alpha, described=described),
                      described, "the loss averaged over the batch")
        return got, described

    def close(a, b):
        return bool(np.isclose(a, b, rtol=1e-3, atol=1e-5))

    hard = _mean_cross_entropy(one_hot, _softmax(student))
    temperature = 4.0
    got, described = answer(student, teacher, temperature, 1.0)
    soft = temperature**2 * _mean_kl(_softmax(teacher, temperature), _softmax(student, temperature))
    if not close(got, hard):
        hint = ("the hard-label loss compares the student's own softmax (temperature 1) with the labels"
                if close(got, _mean_cross_entropy(one_hot, _softmax(student, temperature))) else
                "alpha weighs the hard-label loss, so alpha = 1 leaves only it"
                if close(got, soft) or close(got, soft / temperature**2) else
                "alpha = 1 leaves only the hard-label loss, the cross-entropy of the student's softmax against "
                "the labels, averaged over the batch")
        raise Wrong(f"For {described} your function gives {got:.4g}: {hint}.")
    for temperature in (1.0, 2.0, 4.0):
        got, described = answer(student, teacher, temperature, 0.0)
        p_teacher, p_student = _softmax(teacher, temperature), _softmax(student, temperature)
        kl, squared = _mean_kl(p_teacher, p_student), temperature**2
        if not close(got, squared * kl):
            hint = ("scale the soft term by T²: softening shrinks its gradients by about 1/T², and T² keeps its "
                    "weight the same at any temperature" if close(got, kl) else
                    "the KL divergence is taken from the teacher's distribution (the target) to the student's: "
                    "KL(teacher || student)" if close(got, squared * _mean_kl(p_student, p_teacher)) else
                    "KL divergence, not cross-entropy: subtract the teacher's own entropy (two equal "
                    "distributions are 0 apart)" if close(got, squared * _mean_cross_entropy(p_teacher, p_student)) else
                    "average over the images of the batch, not the sum" if close(got, n * squared * kl) else
                    "alpha = 0 leaves only the soft term: T² x the KL divergence between the teacher's and the "
                    "student's softmax at temperature T, averaged over the batch")
            raise Wrong(f"For {described} your function gives {got:.4g}: {hint}.")
    got, described = answer(teacher, teacher, 4.0, 0.0, what="student logits equal to the teacher's")
    if not close(got, 0.0):
        raise Wrong(f"For {described} your function gives {got:.4g}: two equal distributions are 0 apart.")
    temperature, alpha = 2.0, 0.3
    got, described = answer(student, teacher, temperature, alpha)
    soft = temperature**2 * _mean_kl(_softmax(teacher, temperature), _softmax(student, temperature))
    if not close(got, alpha * hard + (1 - alpha) * soft):
        hint = ("alpha weighs the hard-label loss and 1 - alpha the soft term"
                if close(got, (1 - alpha) * hard + alpha * soft) else
                "add the two terms, weighted: alpha x the hard-label loss + (1 - alpha) x the soft term")
        raise Wrong(f"For {described} your function gives {got:.4g}: {hint}.")


# Lesson 06 ------------------------------------------------------------------------------

_FRONTS = {  # (accuracies, MACs in millions, which are Pareto-optimal)
    "five models, three on the front": ([0.70, 0.75, 0.72, 0.80, 0.78], [2.0, 4.0, 5.0, 9.0, 12.0],
                                        [True, True, False, True, False]),
    "two models equal in both objectives": ([0.70, 0.70, 0.60], [3.0, 3.0, 1.0], [True, True, True]),
    "a tie in accuracy, one with fewer MACs": ([0.70, 0.70, 0.65], [3.0, 4.0, 1.0], [True, False, True]),
    "a tie in MACs, one more accurate": ([0.70, 0.80, 0.60], [3.0, 3.0, 1.0], [False, True, True]),
}


@_exercise("a model is on the front unless another is at least as good in both objectives and better in one.")
def _check_pareto_front(function: Callable) -> None:
    for what, (accuracy, macs, right) in _FRONTS.items():
        described = f"{what} (accuracy {accuracy}, MACs in millions {macs})"
        got = _array(_call(function, np.array(accuracy), np.array(macs), described=described), described, "answer")
        if got.shape != (len(accuracy),) or got.dtype != bool:
            raise Wrong(f"For {described} your function returned {got.dtype} of shape {got.shape}; expected "
                        f"{len(accuracy)} booleans, one per model.")
        if np.array_equal(got, right):
            continue
        wrong = [i for i, (g, r) in enumerate(zip(got, right)) if g != r]
        hint = ("a model equal to another in both objectives is not dominated by it: domination needs one "
                "objective strictly better" if what.startswith("two models equal") else
                "at equal accuracy, fewer MACs dominate: 'at least as good in both, better in one'"
                if what.startswith("a tie in accuracy") else
                "at equal MACs, the more accurate model dominates: 'at least as good in both, better in one'"
                if what.startswith("a tie in MACs") else
                "more accurate is better, fewer MACs are better: compare each model with every other one")
        raise Wrong(f"For {described} your answer is wrong for model(s) {wrong} (counting from 0): {hint}.")


# Lesson 07 ------------------------------------------------------------------------------

_MAX_RANGE_UJ = 262_143_328_850  # a real Intel package's max_energy_range_uj


@_exercise("the counter's difference, wrapped once at its range, in joules, less idle power x time, per inference.")
def _check_net_joules_per_inference(function: Callable) -> None:
    cases = [  # (start µJ, end µJ, idle W, seconds, inferences, what)
        (1_000_000_000, 1_700_000_000, 20.0, 10.0, 50_000, "a window that does not wrap"),
        (_MAX_RANGE_UJ - 300_000_000, 400_000_000, 20.0, 10.0, 50_000, "a window in which the counter wraps"),
        (5_000_000, 47_000_000, 3.0, 12.0, 1, "one long inference of 12 s"),
        (123_456_789, 456_789_012, 2.5, 4.0, 1_000, "a window of a fraction of a joule more than whole joules"),
    ]
    for start, end, idle, seconds, n, what in cases:
        described = f"{what} (start {start:,} µJ, end {end:,} µJ, idle {idle:g} W, {seconds:g} s, {n:,} inferences)"
        got = _number(_call(function, start, end, _MAX_RANGE_UJ, idle, seconds, n, described=described), described,
                      "the net joules per inference")
        delta = (end - start if end >= start else end + _MAX_RANGE_UJ - start) / 1e6
        right = (delta - idle * seconds) / n
        if np.isclose(got, right, rtol=1e-6):
            continue
        hint = ("the counter wrapped: it counts up to max_energy_range_uj and starts again at 0, so add the range"
                if np.isclose(got, ((end - start) / 1e6 - idle * seconds) / n, rtol=1e-6) else
                "subtract the idle energy (idle power x the window's seconds): that is net, the work's own share"
                if np.isclose(got, delta / n, rtol=1e-6) else
                "the counter is in microjoules: divide by 1,000,000 for joules"
                if np.isclose(got, right * 1e6, rtol=1e-6) or np.isclose(got, (delta * 1e6 - idle * seconds) / n, rtol=1e-6) else
                "divide by the number of inferences: the window holds many"
                if np.isclose(got, right * n, rtol=1e-6) else
                "keep the fractions of a joule: divide the microjoules by 1,000,000 with /, not //, and do not round"
                if np.isclose(got, (np.floor(delta) - idle * seconds) / n, rtol=1e-6) else
                "net joules per inference = (counter difference in joules - idle W x seconds) / inferences")
        raise Wrong(f"For {described} your function gives {got:.6g}: {hint}.")


_REPEATS = {  # net mJ per inference of a reference and a model, one per interleaved repeat, and the answer
    "a model clearly cheaper in every repeat": ([1.00, 1.05, 0.97, 1.02, 0.99], [0.61, 0.66, 0.59, 0.63, 0.60], "less"),
    "a model clearly costlier in every repeat": ([1.00, 1.05, 0.97, 1.02, 0.99], [1.31, 1.40, 1.25, 1.33, 1.29], "more"),
    "a model cheaper on average, but not in one repeat": ([1.00, 1.05, 0.97, 1.02, 0.99], [0.80, 0.84, 1.05, 0.81, 0.79],
                                                           "no measurable difference"),
    "two models within 3% in every repeat": ([1.00, 1.05, 0.97, 1.02, 0.99], [0.99, 1.03, 0.98, 1.00, 1.01],
                                             "no measurable difference"),
    "a noisy machine whose repeats drift together": ([1.0, 2.0, 1.5, 3.0, 1.2], [0.5, 1.0, 0.75, 1.5, 0.6], "less"),
    "a large model 1-2% cheaper in every repeat": ([10.0, 10.4, 9.8, 10.1, 9.9], [9.85, 10.25, 9.68, 9.95, 9.75],
                                                   "no measurable difference"),
    "a small model 5% cheaper in every repeat": ([0.50, 0.52, 0.49, 0.51, 0.50], [0.475, 0.494, 0.4655, 0.4845, 0.475],
                                                 "less"),
}


@_exercise("the ratio of each interleaved repeat, and a verdict only when every ratio lies beyond 3% of 1.")
def _check_energy_verdict(function: Callable) -> None:
    for what, (reference, model, right) in _REPEATS.items():
        described = f"{what} (reference {reference}, model {model})"
        got = _call(function, np.array(reference), np.array(model), described=described)
        if not isinstance(got, str) or got not in ("less", "more", "no measurable difference"):
            raise Wrong(f"For {described} your function returned {got!r}; expected 'less', 'more' or "
                        "'no measurable difference'.")
        if got == right:
            continue
        if what.startswith("a noisy machine"):
            hint = ("compare each repeat's pair, measured side by side: the machine's drift moves both, and "
                    "their ratio stays put; the two ranges overlap, the ratios do not")
        elif right == "no measurable difference":
            hint = ("a difference counts only when every repeat's ratio lies more than 3% from 1: one repeat "
                    "that disagrees, or ratios within 3%, leave no measurable difference")
        else:
            hint = "every repeat's ratio lies beyond 3% of 1 here, on the same side"
        if what.startswith(("a large model", "a small model")):
            hint += " (the margin is 3% of the reference's value, a ratio, not 0.03 mJ)"
        raise Wrong(f"For {described} your function says {got!r}: {hint}.")


# Lesson 08 ------------------------------------------------------------------------------


def _clustered_kernel(seed: int, shape, clusters: int, zeros: float) -> np.ndarray:
    """A kernel with `zeros` of its weights exactly 0 and the rest drawn from `clusters` values."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(0, 0.1, clusters) + 0.01  # none is exactly 0
    kernel = rng.choice(centroids, size=shape).astype(np.float32)
    kernel[rng.random(shape) < zeros] = 0.0
    return kernel


_KERNELS = {  # what, kernel, clusters
    "a 1x1 kernel of 64 to 96 channels, half zeros, 16 clusters": (_clustered_kernel(0, (1, 1, 64, 96), 16, 0.5), 16),
    "a 3x3 kernel of 16 to 32 channels, 70% zeros, 12 clusters": (_clustered_kernel(1, (3, 3, 16, 32), 12, 0.7), 12),
    "a dense kernel of 112 to 64 units, no zeros, 8 clusters": (_clustered_kernel(2, (112, 64), 8, 0.0), 8),
    "a kernel of one cluster, 90% zeros": (_clustered_kernel(3, (1, 1, 32, 32), 1, 0.9), 1),
}


@_exercise("one bit per weight for the mask, ceil(log2(clusters)) bits per non-zero weight, 32 per centroid.")
def _check_compressed_bits(function: Callable) -> None:
    for what, (kernel, clusters) in _KERNELS.items():
        described = f"{what} (shape {kernel.shape}, {np.count_nonzero(kernel):,} non-zero)"
        answer = _call(function, kernel.copy(), clusters, described=described)
        size, nonzero = kernel.size, int(np.count_nonzero(kernel))
        try:
            got = _whole_number(answer, described)
        except Wrong:
            unrounded = size + nonzero * np.log2(clusters) + 32 * clusters
            value = _array(answer, described, "answer")
            if value.size == 1 and value.dtype.kind == "f" and abs(float(value.reshape(())) - unrounded) < 1:
                raise Wrong(f"For {described} your function returned {float(value.reshape(())):,.1f} bits: a "
                            "stored index has a whole number of bits, so round log2(clusters) up.") from None
            raise
        index_bits = int(np.ceil(np.log2(clusters))) if clusters > 1 else 0
        right = size + nonzero * index_bits + 32 * clusters
        if got == right:
            continue
        if clusters == 1 and got == right + nonzero:
            hint = "with one cluster every non-zero weight is that cluster's: its index needs no bit (log2(1) = 0)"
        elif got in (size + nonzero * bits + 32 * clusters for bits in (int(np.log2(clusters)), clusters.bit_length())):
            hint = (f"an index numbers {clusters} clusters (0 to {clusters - 1}): the fewest whole bits b with "
                    f"2**b >= {clusters}, neither fewer nor more")
        elif got == right - size:
            hint = "the zeros must be stored too: a bitmask of one bit per weight says which are non-zero"
        elif got == right - 32 * clusters:
            hint = "an index means nothing without the table it points into: the centroids, 32 bits each"
        elif got == size + size * index_bits + 32 * clusters:
            hint = "a zero needs no cluster index: the mask already says it is zero"
        else:
            hint = "add the mask (a bit per weight), the indices (per non-zero weight) and the centroids"
        raise Wrong(f"For {described} your function returned {got:,} bits: {hint}.")
