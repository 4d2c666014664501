"""What one training step of each of the course's CNNs costs on this machine.

The cost table's times differ between CPUs (README): the lessons that train most took about twice
as long on one 2-core machine as on another. This measures the models' own arithmetic, model by
model: each CNN the lessons train (lesson 01's reference and improved CNN, lesson 05's
depthwise-separable student, lesson 07's narrow student, lesson 06's ResNet-8), compiled as the
course compiles it (`recipes.compile_model`), takes optimizer steps on one fixed batch of real
training images; the steps are timed together in interleaved rounds (`latency.interleaved`), so
every model sees the same machine state. Per model: its MACs, the median milliseconds per step,
images per second, and the step's ratio to the improved CNN's with its 95% interval over rounds.
Loading and augmenting images are not in the step.

    python benchmarks/training_speed.py [--runs 200] [--batch-size 64] [--out FILE]

The results, with the data and the machine, are written to
benchmarks/results/training_speed-<vector instructions>.json (or --out).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import effcourse  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from effcourse import data as course_data
from effcourse import hardware, latency, measure, models, paths, recipes, search_space

RESULTS = paths.CHECKOUT / "benchmarks" / "results"
REFERENCE = "improved CNN (01, 05's teacher)"
BUILDERS: dict[str, Callable] = {
    "reference CNN (01)": models.reference_cnn,
    REFERENCE: models.improved_cnn,
    "separable student (05)": models.separable_student_cnn,
    "narrow student (07)": models.student_cnn,
    "ResNet-8 (06)": search_space.resnet8,
}


def step_times(built: dict, x, y, *, runs: int, reference: str) -> list[dict]:
    """Time one optimizer step (`train_on_batch(x, y)`) of every compiled model in `built`
    ({name: model}), interleaved; one row per model, its ratio to `reference`'s step."""
    runners = {name: (lambda model=model: model.train_on_batch(x, y)) for name, model in built.items()}
    timing = latency.interleaved(runners, runs=runs, warmup=3, threads=hardware.cpu_threads())
    rows = []
    for name, model in built.items():
        ms = timing.stats(name).median_ms
        ratio = timing.latency_ratio(name, reference)
        rows.append({"model": name, "MACs (M)": round(measure.macs(model)[0] / 1e6, 2),
                     "ms per step": round(ms, 1), "images/s": round(len(x) / ms * 1000, 1),
                     f"x {reference}": round(ratio.median, 2), "95% interval": [round(ratio.low, 2), round(ratio.high, 2)]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed steps per model")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (the course trains in 64)")
    parser.add_argument("--out", type=Path, help="where to write the results (default: benchmarks/results/...)")
    args = parser.parse_args()
    data = course_data.load_cifar10()
    x, y = course_data.normalise(data.x_train[: args.batch_size]), data.y_train[: args.batch_size]
    built = {name: recipes.compile_model(build(data.image_shape, data.num_classes)) for name, build in BUILDERS.items()}
    rows = step_times(built, x, y, runs=args.runs, reference=REFERENCE)
    out = args.out or RESULTS / f"training_speed-{hardware.vector_label()}.json"
    result = {"question": __doc__.splitlines()[0], "hardware": hardware.describe(), "versions": hardware.versions(),
              "data": data.source, "batch size": len(x), "timed steps per model": args.runs, "models": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for row in rows:
        print(json.dumps(row))
    print(f"{hardware.describe()}; written to {paths.display(out)}")


if __name__ == "__main__":
    main()
