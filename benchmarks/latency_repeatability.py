"""How repeatable is the report card's latency? Measure one model's single-image latency
5 times in a row and print the spread of the medians (target: under 10% on an idle machine).

    python benchmarks/latency_repeatability.py [--runs 1000] [--repeats 5]
"""
from __future__ import annotations

import argparse

import numpy as np

import effcourse  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from effcourse import hardware, latency, models
from effcourse.litert import LiteRTModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="timed inferences per measurement")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf

    model = models.reference_cnn()
    image = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    runners = {
        "keras (tf.function)": latency.keras_runner(model, image),
        "LiteRT float32": LiteRTModel(tf.lite.TFLiteConverter.from_keras_model(model).convert()).single_image_runner(image[0]),
    }
    threads = hardware.cpu_threads()
    print(f"Hardware: {hardware.describe()}")
    print(f"Reference CNN, {args.repeats} measurements of {args.runs} single-image runs ({args.warmup} warm-up), {threads} threads\n")
    for name, run in runners.items():
        medians = []
        for i in range(args.repeats):
            stats = latency.latency(run, runs=args.runs, warmup=args.warmup, threads=threads)
            medians.append(stats.median_ms)
            print(f"  {name:<20} run {i + 1}: {stats}")
        medians = np.array(medians)
        spread = (medians.max() - medians.min()) / np.median(medians)
        verdict = "within" if spread < 0.10 else "OVER"
        print(f"  {name:<20} median of medians {np.median(medians):.3f} ms, spread (max-min)/median = {spread:.1%} "
              f"({verdict} the 10% target)\n")


if __name__ == "__main__":
    main()
