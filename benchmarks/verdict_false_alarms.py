"""How often does the measuring stick's speed verdict cry wolf? One LiteRT model is timed twice,
as two entries of one interleaved comparison, many times over: the verdict should say "no
measurable difference" nearly always. Each model is timed two ways: the stick's (a fresh
interpreter for every round, `litert.SingleImageRunner.renew`) and the way it timed before
(one interpreter per entry, kept for the whole comparison), to show what the renewal is for. As a
control, the same model run twice per inference (twice the work) should be called "slower" every
time. Models: lesson 05's student (small, about 0.1 ms on 2 threads) and lesson 01's improved CNN,
untrained (weights do not change a float32 model's latency).

A ratio of two *different* models is a second question: a state of the machine that lasts longer
than a comparison (on a virtual machine, the second core can be slow or missing for seconds) can
slow the two models unequally, which no interval over one comparison's rounds can see. Lesson 01's
two CNNs are compared many times over, on the machine's threads and on one thread: how far does
their ratio move from one comparison to the next, and how often does one comparison's 95% interval
hold the median of all of them?

    python benchmarks/verdict_false_alarms.py [--trials 100] [--profile workshop] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import collections
import json
import time
from pathlib import Path

import numpy as np

import effcourse  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from effcourse import convert, hardware, latency, models, profiles
from effcourse.litert import LiteRTModel


class Twice:
    """Two inferences per call of a runner (twice the work), renewed when it is."""

    def __init__(self, runner):
        self.runner = runner

    def renew(self):
        self.runner.renew()

    def __call__(self):
        self.runner()
        self.runner()


def trials(content: bytes, image: np.ndarray, threads: int, profile, count: int, renew: bool) -> dict:
    """Verdicts and median ratios of `count` comparisons of the model, its copy and twice the work."""
    verdicts = {"same model": collections.Counter(), "twice the work": collections.Counter()}
    ratios = {name: [] for name in verdicts}
    for trial in range(count):
        one, copy, other = (LiteRTModel(content, num_threads=threads).single_image_runner(image) for _ in range(3))
        runners = {"model": one, "same model": copy, "twice the work": Twice(other)}
        if not renew:  # the same callables without renew(): one interpreter each, kept
            runners = {name: run.__call__ for name, run in runners.items()}
        timing = latency.interleaved(runners, runs=profile.latency_runs, warmup=profile.warmup_runs,
                                     threads=threads, seed=trial)
        for name in verdicts:
            ratio = timing.latency_ratio(name, "model")
            verdicts[name][ratio.verdict()] += 1
            ratios[name].append(ratio.median)
    summary = {}
    for name, counts in verdicts.items():
        r = np.array(ratios[name])
        summary[name] = {"verdicts": dict(counts), "median ratio": round(float(np.median(r)), 3),
                         "middle 90% of trials": [round(float(np.percentile(r, q)), 3) for q in (5, 95)]}
    summary["false alarms"] = count - verdicts["same model"]["no measurable difference"]
    return summary


def reproducibility(model: bytes, reference: bytes, image: np.ndarray, threads: int, profile, count: int) -> dict:
    """`count` comparisons of `model` with `reference`: the spread of their latency ratio over the
    comparisons, against the 95% interval each comparison gives, and the reference's median latency."""
    ratios, reference_ms = [], []
    for trial in range(count):
        runners = {name: LiteRTModel(content, num_threads=threads).single_image_runner(image)
                   for name, content in (("model", model), ("reference", reference))}
        timing = latency.interleaved(runners, runs=profile.latency_runs, warmup=profile.warmup_runs,
                                     threads=threads, seed=trial)
        ratios.append(timing.latency_ratio("model", "reference"))
        reference_ms.append(timing.stats("reference").median_ms)
    return spread(ratios, reference_ms)


def spread(ratios: list, reference_ms: list) -> dict:
    """Summary of many comparisons' ratios (`stats.Ratio`) of one pair of models: their median and
    spread, each one's interval against the median of all, their verdicts, the reference's latency."""
    medians = np.array([r.median for r in ratios])
    middle = float(np.median(medians))
    rounded = lambda values: [round(float(v), 4) for v in values]  # noqa: E731
    return {"median ratio": round(middle, 3),
            "middle 90% of trials": rounded(np.percentile(medians, [5, 95])),
            "lowest and highest": rounded([medians.min(), medians.max()]),
            "mean width of one trial's 95% interval": round(float(np.mean([r.high - r.low for r in ratios])), 4),
            "trials whose interval holds the median of all": sum(r.low <= middle <= r.high for r in ratios),
            "verdicts": dict(collections.Counter(r.verdict() for r in ratios)),
            "reference's median ms, middle 90% of trials": rounded(np.percentile(reference_ms, [5, 95]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="interleaved comparisons per model and way")
    parser.add_argument("--profile", default="workshop", help="whose latency runs and warm-up each comparison uses")
    parser.add_argument("--out", help="write the results to this JSON file too")
    args = parser.parse_args()
    profile = profiles.get(args.profile)
    threads = hardware.cpu_threads()
    image = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
    print(f"Hardware: {hardware.describe()}; CPU: {hardware.simd_support()}")
    print(f"float32 LiteRT, {threads} threads; {args.trials} comparisons per model and way in the {profile.name} "
          f"profile ({profile.latency_runs} runs per model in rounds of at most {latency.BLOCK})\n")
    result = {"hardware": hardware.describe(), "threads": threads, "profile": profile.name, "trials": args.trials}
    start = time.perf_counter()
    for label, build in (("lesson 05's student", models.separable_student_cnn), ("improved CNN", models.improved_cnn)):
        content = convert.to_litert(build()).content
        for way, renew in (("fresh interpreter every round", True), ("one interpreter kept", False)):
            summary = trials(content, image, threads, profile, args.trials, renew)
            result[f"{label}, {way}"] = summary
            print(f"{label}, {way}: false alarms {summary['false alarms']} of {args.trials}")
            for name in ("same model", "twice the work"):
                s = summary[name]
                print(f"  {name:<15} verdicts {s['verdicts']}; median ratio {s['median ratio']:.3f} "
                      f"(middle 90% of trials {s['middle 90% of trials'][0]:.3f}-{s['middle 90% of trials'][1]:.3f})")
    model, reference = (convert.to_litert(build()).content for build in (models.improved_cnn, models.reference_cnn))
    for on in sorted({threads, 1}, reverse=True):
        summary = reproducibility(model, reference, image, on, profile, args.trials)
        result[f"improved CNN over reference CNN, {on} thread{'s' * (on > 1)}"] = summary
        width, held = summary["mean width of one trial's 95% interval"], summary["trials whose interval holds the median of all"]
        print(f"improved CNN over reference CNN, {on} thread(s): median ratio {summary['median ratio']:.3f}, middle 90% "
              f"of trials {summary['middle 90% of trials']}, lowest and highest {summary['lowest and highest']}; one "
              f"trial's interval {width:.3f} wide on average, holding the median of all in {held} of {args.trials}")
    result["seconds"] = round(time.perf_counter() - start)
    print(f"\n{result['seconds']} s")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
