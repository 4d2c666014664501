"""Does a second search worker shorten lesson 06's search on this machine? The same candidates
are searched once by one `effcourse worker` process and once by two at the same time, each run
in a new study on a journal file, and the wall times are compared.

The candidates are the first `--trials` that a seeded random sampler draws within the MACs
ceiling (`search_space.MAX_MACS`), queued in each study in the same order, so both runs train
the same models with the same proxy. Every worker is a separate process, as a learner would add
one in a terminal; TensorFlow in each uses every core it sees, so two workers on two cores share
them. The data come from `EFFCOURSE_DATA` as in the lessons.

    python benchmarks/search_workers.py [--profile workshop] [--trials 6] [--out FILE.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

import effcourse  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from effcourse import data, hardware, measure, profiles, search, search_space


def candidates(count: int, seed: int = 0) -> list[dict]:
    """The parameters of the first `count` candidates a random sampler with `seed` draws within
    the MACs ceiling."""
    draws = optuna.create_study(directions=search.DIRECTIONS, sampler=optuna.samplers.RandomSampler(seed=seed))
    chosen = []
    while len(chosen) < count:
        trial = draws.ask()
        spec = search_space.suggest(trial)
        if measure.macs(search_space.build(spec))[0] <= search_space.MAX_MACS:
            chosen.append(dict(trial.params))
        draws.tell(trial, state=optuna.trial.TrialState.FAIL)
    return chosen


def search_with(workers: int, params: list[dict], profile: str, folder: Path) -> dict:
    """Wall time of `workers` worker processes completing a new study of `params`."""
    journal = folder / f"workers-{workers}.journal"
    name = f"workers-{workers}"
    study = search.create_or_load(name, search.storage_for(journal), profile=profile, sampler="random", seed=0)
    for candidate in params:
        study.enqueue_trial(candidate)
    command = [sys.executable, "-m", "effcourse", "worker", "--storage", str(journal), "--study", name,
               "--trials", str(len(params))]
    start = time.perf_counter()
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(workers)]
    outputs = [p.communicate()[0] for p in processes]
    seconds = time.perf_counter() - start
    failed = [out for p, out in zip(processes, outputs) if p.returncode]
    if failed:
        raise SystemExit(f"a worker failed:\n{failed[0][-2000:]}")
    trials = search.trials_table(search.create_or_load(name, search.storage_for(journal)))
    done = trials[trials["state"] == "COMPLETE"]
    return {"workers": workers, "seconds": round(seconds, 1), "complete trials": len(done),
            "candidates": sorted(done["candidate"]) if "candidate" in done else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="workshop", help="the proxy's profile (smoke, workshop, full)")
    parser.add_argument("--trials", type=int, default=6, help="candidates each run completes")
    parser.add_argument("--out", help="write the results to this JSON file too")
    args = parser.parse_args()
    profile = profiles.get(args.profile)
    os.environ[profiles.ENV_VAR] = profile.name  # the workers' data and proxy
    print(data.load_cifar10(profile=profile).describe())
    params = candidates(args.trials)
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for workers in (1, 2):
            runs.append(search_with(workers, params, profile.name, Path(folder)))
            print(f"{workers} worker(s): {runs[-1]['complete trials']} trials in {runs[-1]['seconds'] / 60:.1f} min", flush=True)
    result = {"hardware": hardware.describe(), "profile": profile.name, "proxy": vars(search_space.proxy_for(profile)),
              "trials": args.trials, "runs": runs, "two workers x one": round(runs[0]["seconds"] / runs[1]["seconds"], 2)}
    print(f"Two workers finished {result['two workers x one']}x as fast as one ({hardware.describe()}).")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
