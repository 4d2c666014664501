"""Lesson 04's accuracy parity over more seeds: is a 16-bit policy's difference from float32 the
policy's, or one training run's luck?

Lesson 04 trains each policy once (seed 0) and a second float32 run (seed 1) as the control; on a
short budget one run can land a point away from another. This script trains the lesson's model
(the improved CNN at the plan's widths, logits in float32) under float32 and one 16-bit policy with
other seeds, each seed's pair together in interleaved rounds with the same initial weights and
batches (`training.compare_policies`, the lesson's own measurement, with the run profile's plan),
and compares each pair on the same test images: the paired verdict (exact McNemar test) and the 95%
interval of the difference; over several seeds the mean difference gets its interval too.

    EFFCOURSE_PROFILE=full python benchmarks/policy_seeds.py [--policy mixed_bfloat16] [--seeds 1 2] [--xla] [--out FILE]

With --xla the 16-bit policy's training step is compiled by XLA, whose kernels compute a 16-bit
convolution's gradients differently from TensorFlow's own (`training.convolution_error` measures
how). The results, with the profile, data, plan and machine, are written after every seed to
benchmarks/results/policy_seeds-<profile>-<policy>[-xla].json (or --out).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import effcourse  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from effcourse import data as course_data
from effcourse import hardware, models, paths, profiles, stats, training

RESULTS = paths.CHECKOUT / "benchmarks" / "results"


def label(policy: str, xla: bool) -> str:
    """The 16-bit setting's name in the results: the policy, and "+ XLA" when XLA compiles its training step."""
    return f"{policy} + XLA" if xla else policy


def compare_seed(data, policy: str, seed: int, plan: training.Plan, profile: profiles.Profile,
                 xla: bool = False) -> tuple[dict, dict]:
    """float32 and `policy` (its training step compiled by XLA if `xla`) trained together from
    `seed`: (the pair's figures, per setting the per-image correctness on the test images)."""
    start = time.perf_counter()
    name = label(policy, xla)
    pair = training.compare_policies(
        lambda: models.improved_cnn(data.image_shape, data.num_classes, widths=plan.widths, logits_dtype="float32"),
        data, policies={"float32": "float32", name: training.Setting(policy, jit_compile=xla)},
        plan=plan, seed=seed, lesson="04", profile=profile, record=False, title=f"float32 and {name}, seed {seed}")
    low, high = stats.paired_difference_interval(pair.correct["float32"], pair.correct[name])
    row = pair.table.loc[name]  # the pair's accuracies, paired difference and verdict (McNemar)
    figures = {"seed": seed, "float32 %": float(pair.table.loc["float32", "accuracy %"]),
               f"{name} %": float(row["accuracy %"]), "difference (points)": float(row["vs ref (points)"]),
               "95% interval": [round(100 * low, 2), round(100 * high, 2)], "verdict": row["accuracy verdict"],
               "McNemar p": float(row["McNemar p"]), "throughput x float32": round(float(row["x ref"]), 3),
               "throughput CI": row["CI"], "minutes": round((time.perf_counter() - start) / 60, 1)}
    return figures, pair.correct


def summary(correct: dict[int, dict], policy: str) -> dict | None:
    """The mean difference (policy minus float32) over the seeds with its 95% interval, for two or more seeds."""
    if len(correct) < 2:
        return None
    float32 = np.array([c["float32"] for c in correct.values()])
    other = np.array([c[policy] for c in correct.values()])
    low, high = stats.mean_difference_interval(float32, other)
    return {"seeds": len(correct), "mean difference (points)": round(100 * float(other.mean() - float32.mean()), 2),
            "95% interval": [round(100 * low, 2), round(100 * high, 2)]}


def convolution_errors(plan: training.Plan) -> dict[str, list[dict]]:
    """`training.convolution_error` for the plan's middle width (a batch of 16), computed by
    TensorFlow's own kernels and by XLA's: a row per part and format."""
    return {kernels: training.convolution_error(plan.widths[1], jit_compile=xla).reset_index().to_dict("records")
            for kernels, xla in (("TensorFlow", False), ("XLA", True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="mixed_bfloat16", choices=("mixed_float16", "mixed_bfloat16"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1], help="seeds to train (the lesson trains seed 0)")
    parser.add_argument("--xla", action="store_true", help="compile the 16-bit policy's training step with XLA")
    parser.add_argument("--out", type=Path, help="where to write the results (default: benchmarks/results/...)")
    args = parser.parse_args()
    profile = profiles.current()
    data = course_data.load_cifar10()
    plan = training.plan_for(profile)
    out = args.out or RESULTS / f"policy_seeds-{profile.name}-{args.policy}{'-xla' if args.xla else ''}.json"
    result = {"profile": profile.name, "data": data.source, "hardware": hardware.describe(),
              "plan": plan.describe(len(data.x_train)), "test images": len(data.x_test), "policy": label(args.policy, args.xla),
              "expected speed": hardware.reduced_precision().expect(args.policy)[0],
              "convolution error": convolution_errors(plan), "seeds": []}
    correct = {}
    for seed in args.seeds:
        figures, correct[seed] = compare_seed(data, args.policy, seed, plan, profile, xla=args.xla)
        result["seeds"].append(figures)
        result["over seeds"] = summary(correct, label(args.policy, args.xla))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(figures), flush=True)
    print(f"written to {paths.display(out)}")


if __name__ == "__main__":
    main()
