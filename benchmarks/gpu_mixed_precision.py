"""Lessons 04 and 07 on an NVIDIA GPU where TensorFlow is not installed.

The course's CNNs (built by `effcourse.models`, with Keras 3 standing in for tf_keras: they use
only layers both have) are trained under the `float32` and `mixed_float16` dtype policies and
measured by the course's energy method (`effcourse.joules`: interleaved windows, repeats, idle
subtracted) with NVML's GPU energy counter:

1. accuracy parity: each policy trains the improved CNN from the same initial weights, plus a
   float32 run with another seed (the seed noise), and each is read against float32 by McNemar;
2. training: throughput and joules per image of both policies, for the course's CNN and wider
   ones (`--factors`: where float16 tensor cores have enough work), in interleaved windows, and
   float32 without TF32 (`--strict`);
3. inference: joules per image of the baseline, its float16 version, the narrow student CNN
   (`models.student_cnn`, lesson 05's first student) and lesson 01's reference CNN, at a stated
   batch size, in interleaved windows.

NVML counts the whole GPU (not the CPU that feeds it). Usage, on a GPU machine with Keras 3:

    KERAS_BACKEND=jax python benchmarks/gpu_mixed_precision.py --data subset.npz --out results/

`--data` is an .npz with x_train, y_train, x_test, y_test (uint8 images, integer labels).
`--smoke` runs a few seconds of everything (any backend, any device) to check the script.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
COURSE_WIDTHS = (32, 64, 108)  # the improved CNN's


def widened(factor: int) -> tuple[int, ...]:
    """The improved CNN's widths times `factor`, rounded to multiples of 16 (tensor cores take
    channel counts in multiples of 8)."""
    return tuple(16 * round(factor * w / 16) for w in COURSE_WIDTHS)


def course_modules():
    """The TensorFlow-free modules of effcourse, imported without effcourse/__init__.py (which
    imports TensorFlow), with Keras 3 standing in for tf_keras in `effcourse.models`."""
    import keras

    sys.modules["tf_keras"] = keras
    package = types.ModuleType("effcourse")
    package.__path__ = [str(REPO / "effcourse")]
    sys.modules["effcourse"] = package
    from effcourse import joules, models, stats

    return keras, joules, models, stats


def machine() -> dict:
    """The GPU, driver and library versions this run used."""
    import keras

    found = {"python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend(),
             "cpu": platform.processor() or platform.machine()}
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        found.update(gpu=name.decode() if isinstance(name, bytes) else name,
                     driver=pynvml.nvmlSystemGetDriverVersion(),
                     power_limit_w=pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1e3)
        pynvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001 - a CPU run of --smoke has no GPU to describe
        found["gpu"] = f"none ({exc})"
    if found["backend"] == "jax":
        import jax

        found.update(jax=jax.__version__, devices=[str(d) for d in jax.devices()])
    return found


def build(keras, models, policy: str, widths=None, kind: str = "improved", seed: int = 0):
    """A compiled course model under `policy` (Keras 3 wraps the optimizer in a
    LossScaleOptimizer itself under mixed_float16); the logits stay float32."""
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(seed)
    if kind == "reference":
        model = models.reference_cnn()
    elif kind == "student":
        model = models.student_cnn()
    else:
        model = models.improved_cnn(widths=widths or COURSE_WIDTHS, logits_dtype="float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    keras.mixed_precision.set_global_policy("float32")
    return model


def train_chunk(model, x, y, batch: int, steps: int, rng, feed: str):
    """A call that trains `steps` batches of consecutive images from a random start in (x, y).
    feed "host": numpy arrays through `fit` (copied to the GPU every step, as a plain `fit` does);
    "device": arrays already on the accelerator, one `train_on_batch` per step (no copies)."""
    def run():
        index = int(rng.integers(0, len(x) - batch * steps))
        if feed == "host":
            model.fit(x[index:index + batch * steps], y[index:index + batch * steps], batch_size=batch,
                      epochs=1, shuffle=False, verbose=0)
            return
        for start in range(index, index + batch * steps, batch):
            model.train_on_batch(x[start:start + batch], y[start:start + batch])
    return run


def strict(run):
    """`run` with float32 matrix products and convolutions at full float32 precision: on NVIDIA
    GPUs from compute capability 8.0, JAX and TensorFlow by default let float32 products use the
    tensor cores' TF32 format (10-bit mantissa)."""
    import jax

    def call():
        with jax.default_matmul_precision("highest"):
            run()
    return call


def training_measurement(keras, models, joules, stats, x_train, y_train, args, policies, trained=None) -> dict:
    """Throughput and joules per image of each policy, for the course's CNN widened by each of
    `args.factors`, in interleaved windows with idle subtracted; ratios to float32 of the
    same width. `args.strict` adds float32 at full precision (no TF32) for the widest model."""
    rng = np.random.default_rng(0)
    steps = 4 if args.smoke else 20
    if args.feed == "device":
        x_train, y_train = keras.ops.convert_to_tensor(x_train), keras.ops.convert_to_tensor(y_train)
    works = {}
    for factor in args.factors:
        suffix = "" if factor == 1 else f" wide {widened(factor)}"
        for policy in policies:
            model = (trained or {}).get(policy) if not suffix else None
            model = model or build(keras, models, policy, widths=widened(factor))
            works[policy + suffix] = train_chunk(model, x_train, y_train, args.batch, steps, rng, args.feed)
        if args.strict and factor == max(args.factors):
            model = build(keras, models, "float32", widths=widened(factor))
            works[f"float32 highest precision{suffix}"] = strict(
                train_chunk(model, x_train, y_train, args.batch, steps, rng, args.feed))
    training = joules.measure_energy(works, items_per_call=args.batch * steps, unit="image", batch=args.batch,
                                     window_s=args.window, repeats=args.repeats, method=args.method)
    training.check()
    print(training, flush=True)
    ratios, strict_ratios = {}, {}
    for name, subject in training.subjects.items():
        suffix = name[name.index(" wide"):] if " wide" in name else ""
        for base_name, table in (("float32", ratios), ("float32 highest precision", strict_ratios)):
            base = training.subjects.get(base_name + suffix)
            if base is not None and base is not subject:
                table[name] = {f"throughput x {base_name}": str(stats.median_range(subject.items_per_second() / base.items_per_second())),
                               f"net energy x {base_name}": str(stats.median_range(subject.net_per_item() / base.net_per_item()))}
    return {"feed": args.feed, "table": training.table().reset_index().to_dict(orient="records"),
            "conditions": training.conditions(), "ratios to float32 of the same width": ratios,
            "ratios to float32 without TF32 of the same width": strict_ratios}


def train_and_compare(keras, models, stats, x_train, y_train, x_test, y_test, args, runs: dict,
                      widths=None) -> tuple[dict, dict]:
    """Train each of `runs` ({label: (policy, seed, kind)}) for `args.epochs` epochs and read its
    test accuracy against the run labelled "float32" by McNemar. Runs with the same seed and kind
    start from the same initial weights, so a second float32 seed is the training noise.
    Returns ({label: accuracy, interval, difference, verdict, p, seconds}, {label: model})."""
    trained, correct, seconds = {}, {}, {}
    for label, (policy, seed, kind) in runs.items():
        model = build(keras, models, policy, widths=widths, kind=kind, seed=seed)
        start = time.perf_counter()
        model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, verbose=0, shuffle=True)
        seconds[label] = time.perf_counter() - start
        correct[label] = np.argmax(model.predict(x_test, batch_size=1024, verbose=0), axis=1) == y_test
        trained[label] = model
        print(f"{label}{f' {widths}' if widths else ''}: {correct[label].mean():.2%} after {args.epochs} epochs "
              f"in {seconds[label]:.1f} s", flush=True)
    table = {}
    for label, hits in correct.items():
        paired = stats.paired_accuracy(correct["float32"], hits)
        low, high = stats.accuracy_interval(int(hits.sum()), len(y_test))
        table[label] = {"accuracy": float(hits.mean()), "interval": [low, high],
                        "vs float32 points": 100 * paired.difference, "verdict": paired.verdict,
                        "p": paired.p_value, "train seconds (incl. compile)": seconds[label]}
    return table, trained


PARITY_RUNS = {"float32": ("float32", 0, "improved"), "mixed_float16": ("mixed_float16", 0, "improved"),
               "float32 seed 1": ("float32", 1, "improved")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help=".npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--out", required=True, help="folder for results.json and the log")
    parser.add_argument("--smoke", action="store_true", help="seconds of everything, to check the script")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--window", type=float, default=8.0, help="seconds per energy window")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--method", default="nvml", help="energy method: nvml, rapl, estimate or auto")
    parser.add_argument("--feed", choices=("host", "device"), default="host",
                        help="training data copied every step (host) or resident on the accelerator (device)")
    parser.add_argument("--training-only", action="store_true",
                        help="only the training measurement (section 2), with mixed_bfloat16 too, and the "
                             "accuracy parity of the widest model")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 4],
                        help="width factors of the CNNs measured, 1 being the course's (default: 1 4)")
    parser.add_argument("--no-parity", action="store_true",
                        help="with --training-only: measure throughput and energy only")
    parser.add_argument("--strict", action="store_true",
                        help="add float32 at full precision (no TF32) for the widest model")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras, joules, models, stats = course_modules()
    if args.smoke:
        args.epochs, args.window, args.batch = 1, 0.2, 32
    with np.load(args.data) as data:
        x_train = data["x_train"].astype("float32") / 255.0
        y_train = data["y_train"].astype("int32").ravel()
        x_test = data["x_test"].astype("float32") / 255.0
        y_test = data["y_test"].astype("int32").ravel()
    if args.smoke:
        x_train, y_train, x_test, y_test = x_train[:2048], y_train[:2048], x_test[:256], y_test[:256]
    settings = {key: value for key, value in vars(args).items() if key != "out"}  # the results' own folder: a path of the machine
    results = {"machine": machine(), "settings": settings | {"train_images": len(x_train), "test_images": len(x_test)}}
    save = lambda: (out / "results.json").write_text(json.dumps(results, indent=1, default=str))  # noqa: E731
    save()
    started = time.perf_counter()

    if args.training_only:
        if max(args.factors) > 1 and not args.no_parity:
            widths = widened(max(args.factors))
            table, _ = train_and_compare(keras, models, stats, x_train, y_train, x_test, y_test, args, PARITY_RUNS, widths)
            results["parity"] = {"widths": list(widths), "epochs": args.epochs, "runs": table}
            save()
        results["training"] = training_measurement(keras, models, joules, stats, x_train, y_train, args,
                                                   ("float32", "mixed_float16", "mixed_bfloat16"))
        results["seconds"] = time.perf_counter() - started
        save()
        return 0

    # 1. accuracy parity: same initial weights for both policies, a second float32 seed as the control
    runs = {**PARITY_RUNS, "student (float32)": ("float32", 0, "student"),
            "reference CNN (float32)": ("float32", 0, "reference")}
    accuracy, trained = train_and_compare(keras, models, stats, x_train, y_train, x_test, y_test, args, runs)
    results["accuracy"] = accuracy
    save()

    # 2. training throughput and energy, interleaved, idle subtracted
    results["training"] = training_measurement(keras, models, joules, stats, x_train, y_train, args,
                                               ("float32", "mixed_float16"), trained)
    save()

    # 3. inference energy per image at a stated batch size
    batch = x_test[:1024] if len(x_test) >= 1024 else x_test
    inference = {"improved CNN float32": trained["float32"], "improved CNN mixed_float16": trained["mixed_float16"],
                 "student (float32)": trained["student (float32)"],
                 "reference CNN (float32)": trained["reference CNN (float32)"]}
    predicted = joules.measure_energy({name: (lambda m=m: m.predict_on_batch(batch)) for name, m in inference.items()},
                                      items_per_call=len(batch), unit="inference", batch=len(batch),
                                      window_s=args.window * 0.75, repeats=args.repeats, method=args.method)
    predicted.check()
    results["inference"] = {"table": predicted.table().reset_index().to_dict(orient="records"),
                            "conditions": predicted.conditions(),
                            "accuracy": {name: accuracy[name if name in accuracy else name.replace("improved CNN ", "")]["accuracy"]
                                         for name in inference}}
    print(predicted, flush=True)
    results["seconds"] = time.perf_counter() - started
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
