"""Run the course's main job in the smoke and workshop profiles and print each notebook's
wall time and peak memory (target: workshop under 10 min per notebook and 4 GiB of memory).

    python benchmarks/profile_runs.py [--profiles smoke workshop] [--only 01]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

LIMIT_GIB = 4.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=["smoke", "workshop"])
    parser.add_argument("--only", nargs="+", metavar="NN", help="lessons to run (default: all)")
    args = parser.parse_args()
    for profile in args.profiles:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        command = [sys.executable, "-m", "effcourse", "run", "--profile", profile] + (["--only", *args.only] if args.only else [])
        print(f"$ {' '.join(command[1:])}", flush=True)
        start = time.perf_counter()
        subprocess.run(command, check=True, env=os.environ.copy())
        seconds = time.perf_counter() - start
        # ru_maxrss of children: the largest process among all that ran (the notebook kernels), in KiB.
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        note = "" if peak_gib > before / 2**20 else " (no larger than an earlier profile's: a lower bound)"
        verdict = "under" if peak_gib < LIMIT_GIB else "OVER"
        print(f"\n== {profile}: {seconds:,.0f} s in all; peak memory of the largest process {peak_gib:.2f} GiB{note} "
              f"({verdict} the {LIMIT_GIB:.0f} GiB classroom limit)\n", flush=True)


if __name__ == "__main__":
    main()
