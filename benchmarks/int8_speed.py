"""Does int8 run faster than float32 on this CPU? The course's trained CNNs, as deployed.

How much faster int8 runs depends on the CPU's integer dot-product instructions (VNNI, AMX), and a
lesson's stored outputs come from one CPU: lesson 03 cannot tell from them alone what those
instructions bring. This script converts the course's trained CNNs from the run profile's model
cache (lesson 01's improved CNN, quantized in lesson 03; the distilled student where lesson 08's
chain starts; each trained first where the cache lacks it) to float32, dynamic-range int8 and
full-integer int8 LiteRT, times each model's three files together in interleaved rounds
(`litert.compare`: single images, XNNPACK, the profile's runs) and writes their latency ratios to
float32 with 95% intervals and verdicts, beside the CPU's vector instructions. Run it on CPUs with
and without VNNI and compare.

    EFFCOURSE_PROFILE=full python benchmarks/int8_speed.py [--out FILE]   (workshop: minutes, not an hour)

The results go to benchmarks/results/int8_speed-<vector instructions>.json (or --out).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import effcourse  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from effcourse import convert, hardware, litert, paths, profiles, zoo
from effcourse import data as course_data

RESULTS = paths.CHECKOUT / "benchmarks" / "results"
MODELS = {"improved CNN (01, 03)": "improved", "distilled student (05, 08)": "distilled-student"}
FORMATS = ("float32", "dynamic-range int8", "int8")


def speeds(model, data, profile: profiles.Profile) -> list[dict]:
    """`model` as float32, dynamic-range int8 and full-integer int8 LiteRT, timed together: one
    row per format, its latency and its ratio to float32's."""
    image = course_data.normalise(data.x_test[:1])[0]
    files = {kind: convert.to_litert(model, kind, data=data, name=kind) for kind in FORMATS}
    table = litert.compare(files, image, profile=profile)
    return [{"format": "full-integer int8" if kind == "int8" else kind, "KiB": float(table.loc[kind, "KiB"]),
             "latency ms": float(table.loc[kind, "latency ms"]), "x float32": float(table.loc[kind, "x ref"]),
             "95% interval": [float(table.loc[kind, "CI low"]), float(table.loc[kind, "CI high"])],
             "verdict": table.loc[kind, "verdict"]} for kind in FORMATS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to write the results (default: benchmarks/results/...)")
    args = parser.parse_args()
    profile = profiles.current()
    data = course_data.load_cifar10()
    out = args.out or RESULTS / f"int8_speed-{hardware.vector_label()}.json"
    result = {"question": __doc__.splitlines()[0], "hardware": hardware.describe(),
              "vector instructions": hardware.simd_support(), "versions": hardware.versions(),
              "profile": profile.name, "data": data.source, "threads": hardware.cpu_threads(), "models": {}}
    for name, recipe in MODELS.items():
        result["models"][name] = speeds(zoo.trained(recipe, data, profile).model, data, profile)
        for row in result["models"][name]:
            print(name, json.dumps(row), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{hardware.describe()}; written to {paths.display(out)}")


if __name__ == "__main__":
    main()
