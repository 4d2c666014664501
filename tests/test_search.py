"""Lesson 06's search engine: storages, studies shared by worker processes (a journal file, and
PostgreSQL where $EFFCOURSE_TEST_POSTGRES names a server), interrupted and resumed studies, and
reading a study (front, hypervolume)."""
import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from search_worker import SHAPE, toy_accuracy, toy_objective

from effcourse import cli, search, search_space
from effcourse.data import ImageData
from effcourse.search import SearchError

POSTGRES_ENV = "EFFCOURSE_TEST_POSTGRES"
WORKER = Path(__file__).with_name("search_worker.py")
FAST = {"objective": "toy", "profile": "smoke", "heartbeat_interval": 0.5, "grace_period": 3.0}


def _postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server to test against: ${POSTGRES_ENV} is not set (.ci/run starts one "
                    "where it may install Debian's postgresql)")
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed: pip install 'effcourse[postgres]'")
    return url


@pytest.fixture(autouse=True)
def toy(monkeypatch):
    """The toy objective, registered in this process as the worker script registers it in its own."""
    monkeypatch.setitem(search.OBJECTIVES, "toy", toy_objective)


@pytest.fixture(params=["journal", "postgresql"])
def shared(request, tmp_path):
    """(storage, study name) for workers in other processes: a journal file, or the PostgreSQL
    server of $EFFCOURSE_TEST_POSTGRES (the study is deleted afterwards)."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    if request.param == "journal":
        yield str(tmp_path / "search.journal"), name
        return
    url = _postgres_url()
    yield url, name
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=search.storage_for(url))


def _workers(storage: str, study_name: str, trials: int, n: int, pause: float = 0.0) -> list[subprocess.Popen]:
    env = {**os.environ, "SEARCH_TEST_PAUSE": str(pause), "PYTHONPATH": str(WORKER.parent)}
    command = [sys.executable, str(WORKER), "--storage", storage, "--study", study_name, "--trials", str(trials)]
    return [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for _ in range(n)]


def _finished(process: subprocess.Popen, timeout: float = 120) -> str:
    output = process.communicate(timeout=timeout)[0]
    assert process.returncode == 0, output
    return output


def _states(study) -> dict[str, list[int]]:
    states: dict[str, list[int]] = {}
    for t in study.get_trials(deepcopy=False):
        states.setdefault(t.state.name, []).append(t.number)
    return states


def _brute_force_front(trials) -> set[int]:
    """Numbers of the trials no other one beats: accuracy at least as high and MACs at most as many, one strictly."""
    def beats(a, b):
        return (a.values[0] >= b.values[0] and a.values[1] <= b.values[1]
                and (a.values[0] > b.values[0] or a.values[1] < b.values[1]))

    return {t.number for t in trials if not any(beats(o, t) for o in trials)}


# --------------------------------------------------------------------------- workers sharing a study


def test_two_workers_share_one_study(shared):
    storage, study_name = shared
    study = search.create_or_load(study_name, storage, population_size=4, **FAST)
    workers = _workers(storage, study_name, trials=16, n=2, pause=0.3)  # long enough for both to start
    outputs = [_finished(w) for w in workers]
    states = _states(study)
    trials = study.get_trials(deepcopy=False)
    assert len(states.get("COMPLETE", [])) == 16, states
    assert set(states) <= {"COMPLETE", "FAIL"} and [t.number for t in trials] == list(range(len(trials)))
    assert all(t.user_attrs.get(search.SURPLUS) for t in trials if t.state == TrialState.FAIL)  # none lost
    reported = [int(re.search(r"this worker completed (\d+)", out).group(1)) for out in outputs]
    assert sum(reported) == 16  # no trial counted by both
    assert all(re.findall(r"^trial \d+:", out, re.M) for out in outputs)  # each worker ran trials
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert {t.number for t in search.front(study)} == _brute_force_front(complete) == \
        {t.number for t in study.best_trials}
    assert all(t.values[0] == pytest.approx(toy_accuracy(search_space.Spec(**t.user_attrs["spec"]))) for t in complete)


def test_a_killed_worker_leaves_a_trial_that_the_resumed_study_retries(shared):
    storage, study_name = shared
    study = search.create_or_load(study_name, storage, sampler="random", **FAST)
    [slow] = _workers(storage, study_name, trials=3, n=1, pause=120)
    deadline = time.monotonic() + 60
    while not [t for t in study.get_trials(states=(TrialState.RUNNING,)) if "spec" in t.user_attrs]:  # sleeping
        assert slow.poll() is None and time.monotonic() < deadline, "the slow worker never started a trial"
        time.sleep(0.2)
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    [lost] = study.get_trials(states=(TrialState.RUNNING,))  # Optuna leaves it running
    _finished(_workers(storage, study_name, trials=3, n=1)[0])
    states = _states(study)
    assert states == {"FAIL": [lost.number], "COMPLETE": [n for n in range(4) if n != lost.number]}, states
    [retry] = [t for t in study.get_trials() if t.user_attrs.get(search.RETRY_OF) == lost.number]
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params


# --------------------------------------------------------------------------- one worker, in this process


@pytest.fixture
def journal(tmp_path):
    return search.storage_for(tmp_path / "search.journal")



def test_a_journal_works_where_symbolic_links_are_not_allowed(tmp_path, monkeypatch):
    """Windows allows symbolic links only with extra privileges, and Optuna's default journal lock
    makes one: lesson 06 failed there with "A required privilege is not held by the client"."""
    import os

    def refused(*args, **kwargs):
        raise OSError(1314, "A required privilege is not held by the client")

    monkeypatch.setattr(os, "symlink", refused)
    study = search.create_or_load("s", search.storage_for(tmp_path / "search.journal"), sampler="random", **FAST)
    assert search.run_worker(study, 2, toy_objective(study), verbose=False) == [0, 1]

def test_an_interrupted_trial_is_queued_again(journal):
    study = search.create_or_load("s", journal, sampler="random", **FAST)
    objective = toy_objective(study)
    calls = []

    def interrupted_once(trial):
        calls.append(trial.number)
        values = objective(trial)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return values

    with pytest.raises(KeyboardInterrupt):
        search.run_worker(study, 3, interrupted_once, verbose=False)
    assert _states(study) == {"COMPLETE": [0], "FAIL": [1], "WAITING": [2]}
    assert study.trials[1].user_attrs["error"] == "interrupted"
    assert search.run_worker(study, 3, objective, verbose=False) == [2, 3]
    assert study.trials[2].params == study.trials[1].params and study.trials[2].user_attrs[search.RETRY_OF] == 1


def test_a_failing_objective_stops_the_worker_and_records_why(journal):
    study = search.create_or_load("s", journal, **FAST)

    def broken(trial):
        raise RuntimeError("no converter today")

    with pytest.raises(RuntimeError, match="no converter"):
        search.run_worker(study, 2, broken, verbose=False)
    [trial] = study.trials
    assert trial.state == TrialState.FAIL and trial.user_attrs["error"] == "RuntimeError: no converter today"


def test_a_pruned_trial_does_not_count_and_the_worker_goes_on(journal):
    """A candidate over the MACs ceiling is pruned before training; the study still gets its count."""
    study = search.create_or_load("s", journal, **FAST)

    def every_other(trial):
        if trial.number % 2 == 0:
            raise optuna.TrialPruned("too many MACs")
        return 0.5, 1e6

    search.run_worker(study, 3, every_other, verbose=False)
    assert _states(study) == {"PRUNED": [0, 2, 4], "COMPLETE": [1, 3, 5]}
    assert [t.user_attrs.get(search.PRUNED_BECAUSE) for t in study.trials] == ["too many MACs", None] * 3


def test_a_worker_prints_the_trials_finished_before_it_started(journal, capsys):
    """A rerun on a complete study shows its trials, with why each pruned one was not trained."""
    study = search.create_or_load("s", journal, **{**FAST, "goal": "best"})

    def every_other(trial):
        if trial.number % 2 == 0:
            raise optuna.TrialPruned("too many MACs")
        trial.set_user_attr("macs", 2_000_000)
        return (0.25 * trial.number,)

    search.run_worker(study, 2, every_other)
    live = capsys.readouterr().out.splitlines()
    assert [re.sub(r"\(\d+\.\d s\)", "(s)", line) for line in live] == [
        "trial 0: pruned (too many MACs)", "trial 1: accuracy 0.250, 2.00 M MACs (s)",
        "trial 2: pruned (too many MACs)", "trial 3: accuracy 0.750, 2.00 M MACs (s)"]
    assert search.run_worker(study, 2, lambda trial: pytest.fail("a complete study ran a trial")) == []
    assert capsys.readouterr().out.splitlines() == ["s: 4 trials finished before this worker started",
                                                    *("  " + line for line in live)]


def test_candidates_over_the_macs_ceiling_are_not_trained(journal, monkeypatch):
    monkeypatch.setattr(search_space, "MAX_MACS", 1)
    monkeypatch.setattr(search_space, "proxy_accuracy", lambda *a, **k: pytest.fail("a pruned candidate was trained"))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, *SHAPE), dtype=np.uint8), np.arange(60) % 4
    data = ImageData(x[:40], y[:40], x[40:], y[40:], x[40:], y[40:], ("a", "b", "c", "d"), "test images", True, 16)
    study = search.create_or_load("s", journal, **{**FAST, "objective": "candidates"})
    objective = search.candidate_objective(study, data)
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="ceiling"):
        objective(trial)
    assert trial.user_attrs["macs"] > 1


def test_candidates_over_the_budget_are_not_trained(journal, monkeypatch):
    monkeypatch.setattr(search_space, "proxy_accuracy", lambda *a, **k: pytest.fail("a candidate over the budget was trained"))
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, *SHAPE), dtype=np.uint8), np.arange(60) % 4
    data = ImageData(x[:40], y[:40], x[40:], y[40:], x[40:], y[40:], ("a", "b", "c", "d"), "test images", True, 16)
    budget = search_space.Budget(int8_bytes=10**9, peak_activation_bytes=10, macs=10**9)
    study = search.create_or_load("s", journal, **{**FAST, "objective": "candidates", "budget": budget})
    objective = search.candidate_objective(study, data)
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match=r"over the budget \(peak_activation_bytes [0-9,]+ > 10\)"):
        objective(trial)
    assert trial.user_attrs["peak_activation_bytes"] > 10 and trial.user_attrs["int8_bytes"] > 0


def test_a_candidate_measured_before_is_not_trained_again(journal, monkeypatch):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, *SHAPE), dtype=np.uint8), np.arange(60) % 4
    data = ImageData(x[:40], y[:40], x[40:], y[40:], x[40:], y[40:], ("a", "b", "c", "d"), "test images", True, 16)
    study = search.create_or_load("s", journal, **{**FAST, "objective": "candidates"})
    objective = search.candidate_objective(study, data)
    [first] = search.run_worker(study, 1, objective, verbose=False)
    study.enqueue_trial(study.trials[first].params)
    monkeypatch.setattr(search_space, "proxy_accuracy", lambda *a, **k: pytest.fail("a repeated candidate was trained"))
    with pytest.raises(optuna.TrialPruned, match=f"measured in trial {first}: not trained twice"):
        objective(study.ask())


def test_a_candidate_starts_from_the_same_weights_whatever_the_worker_ran_before(journal, monkeypatch):
    """Two studies train the same candidate, one after another candidate: the same initial weights."""
    first_kernels = {}

    def record(model, *args, **kwargs):
        first_kernels.setdefault(study.study_name, []).append(model.get_weights()[0].copy())
        return 0.5

    monkeypatch.setattr(search_space, "proxy_accuracy", record)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, *SHAPE), dtype=np.uint8), np.arange(60) % 4
    data = ImageData(x[:40], y[:40], x[40:], y[40:], x[40:], y[40:], ("a", "b", "c", "d"), "test images", True, 16)
    study = search.create_or_load("a", journal, **{**FAST, "objective": "candidates"})
    [trial] = search.run_worker(study, 1, search.candidate_objective(study, data), verbose=False)
    params = study.trials[trial].params
    study = search.create_or_load("b", journal, **{**FAST, "objective": "candidates"})
    other_kernel = next(k for k in search_space.KERNEL_SIZES if k != params["kernel_size"])
    study.enqueue_trial({**params, "kernel_size": other_kernel})  # another candidate first, drawing weights
    study.enqueue_trial(params)
    search.run_worker(study, 2, search.candidate_objective(study, data), verbose=False)
    assert np.array_equal(first_kernels["a"][0], first_kernels["b"][-1])


def test_a_trial_asked_beyond_the_count_is_closed_as_surplus(journal):
    """Another worker asks for the last trial and completes it just before this one asks."""
    study = search.create_or_load("s", journal, **FAST)
    ask = study.ask

    def ask_after_another_worker():
        other = ask()
        study.tell(other, [0.5, 1.0])
        return ask()

    study.ask = ask_after_another_worker
    assert search.run_worker(study, 1, lambda trial: pytest.fail("a surplus trial ran"), verbose=False) == []
    assert _states(study) == {"COMPLETE": [0], "FAIL": [1]} and study.trials[1].user_attrs[search.SURPLUS]


def test_a_trial_without_heartbeat_is_retried_at_most_twice(journal):
    study = search.create_or_load("s", journal, heartbeat_interval=0.05, grace_period=0.2,
                                  **{k: v for k, v in FAST.items() if k not in ("heartbeat_interval", "grace_period")})
    first = study.ask()
    first.suggest_int("stages", 1, 4)
    time.sleep(0.1)
    assert search.retry_lost_trials(study, 0.2) == []  # still within its grace period
    for lost in (0, 1, 2):
        time.sleep(0.3)
        assert search.retry_lost_trials(study, 0.2) == [lost]
        if lost < 2:
            retry = study.ask()  # the queued candidate, started and lost again
            assert retry.number == lost + 1 and retry.suggest_int("stages", 1, 4) == first.params["stages"]
    assert _states(study) == {"FAIL": [0, 1, 2]}  # the second retry was not queued again


def test_settings_are_shared_and_checked(journal, tmp_path):
    study = search.create_or_load("s", journal, sampler="random", seed=3, **FAST)
    joined = search.create_or_load("s", journal)
    assert search.settings_of(joined) == search.settings_of(study)
    assert search.settings_of(study).sampler == "random" and isinstance(joined.sampler, optuna.samplers.RandomSampler)
    with pytest.raises(SearchError, match="sampler='random'"):
        search.create_or_load("s", journal, sampler="tpe")
    with pytest.raises(SearchError, match="sampler 'annealing' is not one of"):
        search.create_or_load("t", journal, sampler="annealing")
    with pytest.raises(SearchError, match="Unknown search settings"):
        search.create_or_load("t", journal, samplr="tpe")
    plain = optuna.create_study(study_name="plain", storage=journal, directions=list(search.DIRECTIONS))
    with pytest.raises(SearchError, match="not created by effcourse"):
        search.settings_of(plain, wait=0)


def test_storage_errors_say_what_to_do(tmp_path):
    with pytest.raises(SearchError, match="is a folder"):
        search.storage_for(tmp_path)
    with pytest.raises(SearchError, match="create it first"):
        search.storage_for(tmp_path / "missing" / "search.journal")
    with pytest.raises(SearchError, match="Cannot open the study database") as err:
        search.storage_for("postgresql://someone:secret@127.0.0.1:1/nothing")
    assert "secret" not in str(err.value)


@pytest.mark.parametrize("storage, match", [
    ("postgresql:effcourse@db", r"The storage postgresql:\.\.\. is not a database URL: write // after postgresql:"),
    ("postgresql:/u:SECRET@host/db", r"postgresql://user:password@host:5432/db \(a journal file whose name starts"),
    ("postgresql://u:SECRET@host:port/db", r"postgresql://\.\.\. is not a database URL \(its port is not a number\)"),
    ("postgres://u:SECRET@host/db", r"postgres://u:\*\*\*@host/db names no .*write postgresql://, not postgres"),
    ("mongodb://u:SECRET@host/db", r"mongodb://u:\*\*\*@host/db: SQLAlchemy knows no database 'mongodb'"),
    ("postgresql//u:SECRET@host/db", r"postgresql//u:\*\*\*@host/db reads as a journal file's path in a missing folder; "
                                     r"a database URL starts with its scheme, a colon and two slashes"),
])
def test_a_malformed_database_url_is_refused_without_its_password(tmp_path, monkeypatch, storage, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SearchError, match=match) as err:
        search.storage_for(storage)
    assert "SECRET" not in str(err.value) and "create it" not in str(err.value)
    assert not list(tmp_path.iterdir())  # no journal file made of it


def test_a_windows_drive_is_a_journal_path_not_a_url_scheme(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SearchError, match="No folder C:/studies for the journal file s.journal: create it first"):
        search.storage_for("C:/studies/s.journal")
    assert isinstance(search.storage_for("./postgresql:effcourse@db"), optuna.storages.JournalStorage)


def test_a_missing_database_driver_names_the_install(monkeypatch):
    for driver in ("psycopg", "psycopg2"):  # as on a machine without them, whatever this one has
        monkeypatch.setitem(sys.modules, driver, None)
    with pytest.raises(SearchError, match=r"postgresql://u:\*\*\*@127.0.0.1:1/db: the database driver psycopg2? is "
                                          r"not installed; for PostgreSQL, pip install 'effcourse\[postgres\]'") as err:
        search.storage_for("postgresql://u:SECRET@127.0.0.1:1/db")
    assert "SECRET" not in str(err.value)


def test_the_worker_command_reports_errors_in_one_line(tmp_path, capsys):
    code = cli.main(["worker", "--storage", str(tmp_path / "missing" / "s.journal"), "--study", "s", "--trials", "2"])
    assert code == 1 and capsys.readouterr().err.startswith("effcourse: No folder")


@pytest.mark.parametrize("sampler", search.SAMPLERS)
def test_a_budget_keeps_the_front_within_it(journal, sampler):
    budget = search_space.Budget(int8_bytes=10**9, peak_activation_bytes=10**9, macs=200_000)
    study = search.create_or_load("s", journal, sampler=sampler, population_size=4, budget=budget, **FAST)
    search.run_worker(study, 12, verbose=False)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    within = [t for t in complete if t.values[1] <= 200_000]
    assert within and len(within) < len(complete)  # the candidates (seeded) fall on both sides
    assert all(t.constraints["macs"] == t.values[1] / 200_000 - 1 for t in complete)  # what samplers heed
    assert {t.number for t in search.front(study)} == _brute_force_front(within) == \
        {t.number for t in study.best_trials}
    table = search.trials_table(study)
    assert table["within budget"].sum() == len(within) and table["on front"].sum() == len(search.front(study))


def test_a_study_for_the_best_model_within_a_budget_is_read_as_a_front_too(journal):
    budget = search_space.Budget(int8_bytes=10**9, peak_activation_bytes=10**9, macs=200_000)
    study = search.create_or_load("s", journal, goal="best", sampler="tpe", budget=budget, **FAST)
    search.run_worker(study, 12, verbose=False)
    assert [d.name for d in study.directions] == ["MAXIMIZE"]  # what the sampler optimises: accuracy alone
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert all(len(t.values) == 1 for t in complete)
    within = [t for t in complete if t.user_attrs["macs"] <= 200_000]
    as_pairs = [SimpleNamespace(number=t.number, values=(t.values[0], t.user_attrs["macs"])) for t in within]
    assert {t.number for t in search.front(study)} == _brute_force_front(as_pairs)  # read by the MACs recorded
    best = max(within, key=lambda t: t.values[0])
    assert best.number in {t.number for t in search.front(study)}
    assert search.trials_table(study).loc[best.number, "macs"] == best.user_attrs["macs"]
    with pytest.raises(SearchError, match="goal 'fastest' is not one of front, best"):
        search.create_or_load("t", journal, goal="fastest", **FAST)


# --------------------------------------------------------------------------- the lesson's objective


def test_the_candidate_objective_records_every_cost(journal):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, *SHAPE), dtype=np.uint8), np.arange(60) % 4
    data = ImageData(x[:40], y[:40], x[40:], y[40:], x[40:], y[40:], ("a", "b", "c", "d"), "test images", True, 16)
    study = search.create_or_load("s", journal, **{**FAST, "objective": "candidates"})
    [number] = search.run_worker(study, 1, data=data, verbose=False)
    trial = study.trials[number]
    costs = {f.name for f in dataclasses.fields(search_space.Costs)}
    assert costs | {"spec", "data", "accuracy"} <= set(trial.user_attrs)
    assert trial.values == [trial.user_attrs["accuracy"], trial.user_attrs["macs"]]
    assert 0 <= trial.values[0] <= 1 and trial.user_attrs["int8_bytes"] > 0
    other = ImageData(x[20:], y[20:], x[:20], y[:20], x[:20], y[:20], ("a", "b", "c", "d"), "other images", True, 16)
    with pytest.raises(SearchError, match="other data"):
        search.candidate_objective(study, other)


# --------------------------------------------------------------------------- reading a study


def test_non_dominated_keeps_ties_and_drops_beaten_points():
    points = [(0.9, 10), (0.8, 5), (0.8, 5), (0.7, 6), (0.95, 20), (0.9, 12)]
    assert search.non_dominated(points).tolist() == [True, True, True, False, True, False]


def test_hypervolume_of_two_objectives():
    """Accuracy 0.8 at 4 MACs and 0.5 at 2 MACs, up to (0, 10): 0.8 x 6 + 0.5 x 2."""
    points = [(0.5, 2), (0.8, 4)]
    assert search.hypervolume(points, (0, 10)) == pytest.approx(0.8 * 6 + 0.5 * 2)
    beaten_or_outside = points + [(0.4, 3), (0.9, 11), (-0.1, 1)]
    assert search.hypervolume(beaten_or_outside, (0, 10)) == pytest.approx(5.8)
    assert search.hypervolume([], (0, 10)) == 0.0
    assert search.hypervolume([(1, 1)], (2, 2), ("minimize", "minimize")) == pytest.approx(1.0)


def test_the_profile_sets_the_trials_of_a_search(monkeypatch):
    assert search.trials_for("smoke") < search.trials_for("workshop") < search.trials_for("full")
    monkeypatch.setenv("EFFCOURSE_PROFILE", "smoke")
    assert search.trials_for() == search.trials_for("smoke")


def test_a_worker_joins_only_a_study_that_exists_unless_told_to_create_one(tmp_path, capsys):
    journal = str(tmp_path / "search.journal")
    search.create_or_load("lesson06-nsga2", journal, **FAST)
    code = cli.main(["worker", "--storage", journal, "--study", "lesson06-nsga", "--trials", "2"])  # mistyped
    err = capsys.readouterr().err
    assert code == 1 and "There is no study 'lesson06-nsga' in this storage; it holds 'lesson06-nsga2'" in err
    assert "effcourse worker --new" in err
    assert optuna.study.get_all_study_names(search.storage_for(journal)) == ["lesson06-nsga2"], "nothing created"
    assert search.create_or_load("another", journal, create=True, **FAST).study_name == "another"
