"""How often does the measuring stick's speed verdict cry wolf? One LiteRT model is timed twice,
as two entries of one interleaved comparison, many times over: the verdict should say "no
measurable difference" nearly always. As a control, the same model run twice per inference
(twice the work) should be called "slower" every time.

    python benchmarks/verdict_false_alarms.py [--trials 100] [--profile workshop]
"""
from __future__ import annotations

import argparse
import collections
import time

import numpy as np

import effcourse  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from effcourse import convert, hardware, latency, models, profiles
from effcourse.litert import LiteRTModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="interleaved comparisons to run")
    parser.add_argument("--profile", default="workshop", help="whose latency runs and warm-up each comparison uses")
    args = parser.parse_args()
    profile = profiles.get(args.profile)
    threads = hardware.cpu_threads()
    model = LiteRTModel(convert.to_litert(models.improved_cnn()).content, num_threads=threads)
    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    one = model.single_image_runner(image)
    copy = LiteRTModel(model.content, num_threads=threads).single_image_runner(image)

    def twice():
        one()
        one()

    print(f"Hardware: {hardware.describe()}; CPU: {hardware.simd_support()}")
    print(f"Improved CNN as float32 LiteRT, {threads} threads; {args.trials} comparisons in the {profile.name} "
          f"profile ({profile.latency_runs} runs per model in rounds of at most {latency.BLOCK})\n")
    verdicts = {"same model": collections.Counter(), "twice the work": collections.Counter()}
    ratios = {name: [] for name in verdicts}
    start = time.perf_counter()
    for trial in range(args.trials):
        timing = latency.interleaved({"model": one, "same model": copy, "twice the work": twice},
                                     runs=profile.latency_runs, warmup=profile.warmup_runs, threads=threads,
                                     seed=trial)
        for name in verdicts:
            ratio = timing.latency_ratio(name, "model")
            verdicts[name][ratio.verdict()] += 1
            ratios[name].append(ratio.median)
    for name, counts in verdicts.items():
        r = np.array(ratios[name])
        print(f"{name:<15} verdicts: {dict(counts)}; median ratio {np.median(r):.3f} "
              f"(middle 90% of trials {np.percentile(r, 5):.3f}-{np.percentile(r, 95):.3f})")
    wrong = args.trials - verdicts["same model"]["no measurable difference"]
    print(f"\nFalse alarms (faster or slower for the same model): {wrong} of {args.trials} "
          f"({wrong / args.trials:.1%}); twice the work called slower in "
          f"{verdicts['twice the work']['slower']} of {args.trials}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
