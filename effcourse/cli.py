"""Command line: `effcourse run` executes the lessons and prints what their models measured
together; `effcourse compare` prints the recorded comparisons again; `effcourse worker` joins an
architecture search (lesson 06) from any core or machine."""
from __future__ import annotations

import argparse
import sys
import textwrap

from . import course, paths, profiles, results

WIDTH = 100
# Short words for a terminal table; the saved CSV keeps the full ones.
_SHORT = {"no measurable difference": "no diff.", "within noise": "noise", "reference": "ref"}


def _cell(value, width: int) -> str:
    text = _SHORT.get(str(value), str(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def format_comparison(comparison: dict, width: int = WIDTH) -> str:
    """One recorded comparison as a text table under `width` columns: per model, accuracy and
    its verdict against the reference, gzipped size, latency ratio with its 95% CI and verdict
    (a figure its record lacks shows as –)."""
    columns = [("accuracy %", "acc %", 6), ("vs ref (points)", "Δ pts", 6), ("accuracy verdict", "acc.", 6),
               ("gzip KiB", "gz KiB", 7), ("latency x ref", "lat. x", 6), ("latency CI", "95% CI", 9),
               ("speed verdict", "speed", 8)]
    name_width = width - sum(w + 1 for _, _, w in columns) - 1
    lines = [comparison["title"],
             f"{'model':<{name_width}} " + " ".join(f"{head:>{w}}" for _, head, w in columns)]
    for row in comparison["rows"]:
        cells = " ".join(f"{_cell(row.get(key, '–'), w):>{w}}" for key, _, w in columns)
        lines.append(f"{_cell(row.get('model', '–'), name_width):<{name_width}} {cells}")
    lines += textwrap.wrap(comparison["conditions"], width)
    return "\n".join(lines)


def _print_comparisons(comparisons: list[dict]) -> None:
    if not comparisons:
        print("No comparisons recorded (a lesson records one with report.measure_together).")
        return
    import pandas as pd

    for comparison in comparisons:
        print(format_comparison(comparison), end="\n\n")
    frame = pd.DataFrame([{"comparison": c["title"], "measured": c["timestamp"], **row}
                          for c in comparisons for row in c["rows"]])
    saved = paths.workdir() / "comparisons.csv"
    frame.to_csv(saved, index=False)
    print(f"Legend: Δ pts = accuracy minus the reference's; acc. = paired verdict (noise: within noise);\n"
          f"lat. x = latency / the reference's, 95% CI over interleaved rounds; speed: faster, slower, no diff.\n"
          f"Every figure of these tables: {paths.display(saved)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="effcourse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute the lesson notebooks headlessly and print their comparisons")
    run.add_argument("--profile", help=f"one of {', '.join(profiles.PROFILES)} (default: ${profiles.ENV_VAR} or {profiles.DEFAULT})")
    run.add_argument("--only", nargs="+", metavar="NN",
                     help="run only these lessons (their numbers, or how their names start), e.g. 01 03")
    run.add_argument("--inplace", action="store_true", help="store outputs in notebooks/ (to refresh the committed outputs)")
    compare = sub.add_parser("compare", help="print the recorded comparisons of models measured together")
    compare.add_argument("--lesson", metavar="NN", help="only this lesson's comparisons, e.g. 02")
    worker = sub.add_parser("worker", help="join an architecture search (lesson 06) and run its trials")
    worker.add_argument("--storage", required=True, help="a journal file path or a database URL (postgresql://...)")
    worker.add_argument("--study", required=True, help="the study's name (the lesson prints it)")
    worker.add_argument("--new", action="store_true", help="create the study if the storage has none of that name")
    worker.add_argument("--trials", required=True, type=int, help="complete trials the study needs, all workers together")
    worker.add_argument("--profile", help="with --new, for a new study: the profile it measures in (default: "
                        f"${profiles.ENV_VAR} or {profiles.DEFAULT}); for an existing one it must match")
    worker.add_argument("--goal", help="with --new, for a new study: front (accuracy and MACs, default) or best (accuracy alone)")
    worker.add_argument("--sampler", help="with --new, for a new study: nsga2 (default), tpe or random")
    worker.add_argument("--seed", type=int, help="with --new, for a new study: the sampler's seed (default 0)")
    worker.add_argument("--microcontroller", action="store_true",
                        help="with --new, for a new study: keep within the microcontroller budget")
    args = parser.parse_args(argv)
    _printable_everywhere()
    if args.command == "worker":
        return _worker(args)
    try:
        if args.command == "run":
            runs, started = course.run(args.profile, only=_lessons(args.only), inplace=args.inplace)
            print("\nWall time and peak memory per notebook:")
            for r in runs:
                peak = f"{r.peak_mib:,.0f} MiB" if r.peak_mib else "unknown"
                print(f"  {r.notebook:<32} {r.seconds:8.1f} s   {peak}")
            print("\nModels measured together in this run:\n")
            _print_comparisons(results.load_comparisons(since=started))
        else:
            lesson = _lessons([args.lesson])[0] if args.lesson else None
            _print_comparisons(results.load_comparisons(**({"lesson": lesson} if lesson else {})))
    except (course.CourseError, profiles.ProfileError, paths.WorkdirError) as err:
        print(f"effcourse: {err}", file=sys.stderr)
        return 1
    return 0


def _printable_everywhere() -> None:
    """Let stdout and stderr print what their encoding lacks as '?' instead of failing: the tables hold
    characters such as Δ and ≥, which a Windows pipe or file (cp1252) cannot encode."""
    for stream in (sys.stdout, sys.stderr):
        if (getattr(stream, "encoding", None) or "").lower().replace("-", "") != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")


def _lessons(only: list[str] | None) -> list[str] | None:
    """--only's values as the starts of lesson names: a number is a lesson's, in two digits (1: 01)."""
    if not only:
        return None
    prefixes = [f"{int(value):02d}" if value.isascii() and value.isdigit() else value for value in only]
    unnamed = [value for value, prefix in zip(only, prefixes) if prefix in ("", "00")]
    if unnamed:
        raise course.CourseError(f"--only {' '.join(map(repr, unnamed))} names no lesson: lessons are numbered "
                                 "from 01; give their numbers, e.g. --only 01 03.")
    return prefixes


def _worker(args) -> int:
    """`effcourse worker`: join the study (or, with --new, create it) and run trials until it has enough."""
    from . import search, search_space
    from .data import DataError

    given = {"profile": args.profile, "goal": args.goal, "sampler": args.sampler,
             "seed": args.seed, "budget": search_space.MICROCONTROLLER if args.microcontroller else None}
    settings = {name: value for name, value in given.items() if value is not None}
    try:
        study = search.create_or_load(args.study, args.storage, create=args.new, **settings)
        done = search.run_worker(study, args.trials)
    except (search.SearchError, profiles.ProfileError, DataError, paths.WorkdirError) as err:
        print(f"effcourse: {err}", file=sys.stderr)
        return 1
    print(f"Study {args.study!r} has its {args.trials} trials; this worker completed {len(done)} of them.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
