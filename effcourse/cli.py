"""Command line: `effcourse run` executes the lessons, `effcourse compare` prints the recorded cards."""
from __future__ import annotations

import argparse
import sys

import pandas as pd

from . import course, profiles, results


def _print_comparison(cards) -> None:
    if not cards:
        print("No report cards recorded.")
        return
    table = results.compare(cards)
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 60):
        print(table.to_string(index=False))
    print(results.describe_conditions(table))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="effcourse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the lesson notebooks headlessly and compare their report cards")
    run.add_argument("--profile", help=f"one of {', '.join(profiles.PROFILES)} (default: ${profiles.ENV_VAR} or {profiles.DEFAULT})")
    run.add_argument("--only", nargs="+", metavar="NN", help="run only lessons whose names start with these, e.g. 01 03")
    run.add_argument("--inplace", action="store_true", help="store outputs in notebooks/ (to refresh the committed outputs)")
    compare = sub.add_parser("compare", help="print the recorded report cards side by side")
    compare.add_argument("--profile")
    compare.add_argument("--lesson")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            runs, started = course.run(args.profile, only=args.only, inplace=args.inplace)
            print("\nWall time and peak memory per notebook:")
            for r in runs:
                peak = f"{r.peak_mib:,.0f} MiB" if r.peak_mib else "unknown"
                print(f"  {r.notebook:<32} {r.seconds:8.1f} s   {peak}")
            print("\nReport cards recorded by this run:")
            _print_comparison(results.load(since=started, profile=profiles.current().name))
        else:
            filters = {k: v for k, v in (("profile", args.profile), ("lesson", args.lesson)) if v}
            _print_comparison(results.load(**filters))
    except (course.CourseError, profiles.ProfileError) as err:
        print(f"effcourse: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
