"""Lesson 06's search engine: an Optuna study of candidate CNNs that several processes or machines
work on at once, and how to read it (Pareto front, hypervolume).

A study's sampler steers by its `goal`: "front" maximises accuracy and minimises MACs
(`DIRECTIONS`), "best" maximises accuracy alone (the best model within a budget). MACs rather
than latency: they are the same on every machine, so workers on different hardware compare alike;
each trial still records its MACs, measured latency, int8 bytes and peak activation memory as user
attributes, and every study is read the same way, as a front of accuracy against MACs. In a
study with a `budget` (`search_space.MICROCONTROLLER`) a candidate beyond it is pruned before it is
trained (`search_space.budget_costs`), and each trial records how far it lies beyond
it as Optuna constraints, which NSGA-II and TPE heed (random search does not), and the study's
front holds only the trials within it.

Trials live in a storage (`storage_for`): a journal file by default (SQLite locks up under
parallel writers; Optuna recommends its journal for that), or a database URL such as
postgresql://user:password@host/db for workers on several machines. `run_worker` joins a study
from any process (`effcourse worker` on the command line); the study records the settings every
worker must share (`Settings`), so a worker only needs the storage and the study's name.

How workers share a study (`run_worker`):
- a worker stops when the study holds the requested number of COMPLETE trials; it never starts a
  trial beyond them (one asked in a race with another worker is closed at once as FAIL with the
  user attribute `surplus`), and it waits while other workers' trials could still complete them,
  looking again every `POLL_S` seconds;
- a running trial records a heartbeat (a user attribute, every `heartbeat_interval` seconds); a
  trial whose heartbeat is older than `grace_period` lost its worker (killed, machine gone): the
  next worker to look marks it FAIL and queues its candidate again (user attribute `retry_of`),
  so a study resumed after an interruption finishes its trials (the workers' clocks must agree to
  well within the grace period). Optuna's own heartbeat only exists for database storages inside
  `study.optimize`, which cannot stop at an exact count of trials; this one works with every storage;
- a worker prints a line per trial it finishes (`trial_line`), a pruned trial's reason stored as its
  user attribute `pruned_because`, and on starting, the lines of the trials the study finished
  before: a rerun on a complete study shows its trials as the run that searched them did.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import optuna
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from . import measure, paths, profiles, search_space
from .search_space import Budget

if TYPE_CHECKING:
    from .data import ImageData

DIRECTIONS = ("maximize", "minimize")  # accuracy, MACs: how every study is read
GOALS = {"front": DIRECTIONS, "best": DIRECTIONS[:1]}  # what a study's sampler optimises
SAMPLERS = ("nsga2", "tpe", "random")
SETTINGS_KEY = "effcourse_search"  # study user attribute holding the Settings
HEARTBEAT, RETRY_OF, SURPLUS, PRUNED_BECAUSE = "heartbeat", "retry_of", "surplus", "pruned_because"  # trial user attributes
POLL_S = 2.0  # how often a worker waiting for other workers' last trials looks at the study
MAX_RETRIES = 2  # a candidate that loses its worker more often (out of memory, say) is left failed

Objective = Callable[[optuna.trial.Trial], Sequence[float]]

# The engine prints one line per trial; Optuna's own INFO lines would repeat them in red.
optuna.logging.set_verbosity(optuna.logging.WARNING)


class SearchError(ValueError):
    """A storage, study or worker setting that cannot work, with what to do about it."""


# --------------------------------------------------------------------------- storages


# What starts a URL: its scheme and a colon; a single letter is a Windows drive (C:), not a scheme.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
_PASSWORD = re.compile(r":[^/:@]*@")  # the password of user:password@host


def storage_for(location: str | os.PathLike) -> optuna.storages.BaseStorage:
    """The Optuna storage at `location`: a database URL (postgresql://..., mysql://...,
    sqlite:///...; whatever starts with a word and a colon is read as one) or the path of a journal
    file (created if missing)."""
    text = os.fspath(location)
    scheme = _SCHEME.match(text)
    if scheme:
        return _database(text, scheme.group(1))
    path = Path(text).expanduser()
    if path.is_dir():
        raise SearchError(f"{paths.display(path)} is a folder: give the path of a journal file in it, such as "
                          f"{paths.display(path / 'search.journal')}.")
    if not path.parent.is_dir():
        if "@" in text:  # user:password@host: a database URL without its colon, never a folder to create
            raise SearchError(f"{_PASSWORD.sub(':***@', text)} reads as a journal file's path in a missing folder; "
                              "a database URL starts with its scheme, a colon and two slashes: postgresql://user:password@host/db.")
        raise SearchError(f"No folder {paths.display(path.parent)} for the journal file {path.name}: create it first.")
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    try:  # Optuna's default lock makes a symbolic link, which Windows allows only with extra privileges
        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    except OSError as err:
        raise SearchError(f"Cannot open the journal file {paths.display(path)} ({err.strerror}): "
                          "choose a file you may write.") from err


def _database(text: str, scheme: str) -> optuna.storages.RDBStorage:
    """An Optuna RDBStorage; a postgresql:// URL without a driver uses whichever of psycopg and
    psycopg2 is installed (SQLAlchemy 2.0 defaults to psycopg2, 2.1 to psycopg). No message
    shows the URL's password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    example = "postgresql://user:password@host:5432/db"
    if not text.startswith(f"{scheme}://"):  # the rest is not shown: it may hold a password
        raise SearchError(f"The storage {scheme}:... is not a database URL: write // after {scheme}:, as in "
                          f"{example} (a journal file whose name starts with {scheme}: needs ./ before it).")
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as err:
        why = " (its port is not a number)" if isinstance(err, ValueError) else ""
        raise SearchError(f"The storage {scheme}://... is not a database URL{why}: write it as {example}.") from None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "postgres":
        raise SearchError(f"The storage {shown} names no database SQLAlchemy knows: write postgresql://, "
                          "not postgres://.")
    if url.drivername == "postgresql":
        driver = next((d for d in ("psycopg", "psycopg2") if importlib.util.find_spec(d)), None)
        url = url.set(drivername=f"postgresql+{driver}") if driver else url
    try:
        return optuna.storages.RDBStorage(url.render_as_string(hide_password=False))
    except ImportError as err:  # Optuna's, raised from the driver's ModuleNotFoundError
        missing = getattr(err.__cause__, "name", None) or "its driver"
        raise SearchError(f"Cannot open the study database {shown}: the database driver {missing} is not "
                          "installed; for PostgreSQL, pip install 'effcourse[postgres]'.") from None
    except NoSuchModuleError:
        raise SearchError(f"Cannot open the study database {shown}: SQLAlchemy knows no database "
                          f"{url.get_backend_name()!r}; write postgresql://, mysql:// or sqlite:///.") from None
    except Exception as err:  # SQLAlchemy's OperationalError and friends: server down, wrong password, ...
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SearchError(f"Cannot open the study database {shown}: {reason}") from err


def _storage(storage) -> optuna.storages.BaseStorage:
    return storage if isinstance(storage, optuna.storages.BaseStorage) else storage_for(storage)


# --------------------------------------------------------------------------- studies


@dataclass(frozen=True)
class Settings:
    """What every worker of a study shares, stored in the study: the objective (a name in
    OBJECTIVES) and the run profile it measures in, its goal (a name in GOALS), the sampler, its
    seed and NSGA-II's population size, an optional cost budget, and how often running trials beat
    and how long a silent one may stay before it counts as lost (seconds)."""

    objective: str = "candidates"
    goal: str = "front"
    profile: str | None = None  # None: the current profile
    sampler: str = "nsga2"
    seed: int = 0
    population_size: int = 10
    budget: Budget | None = None
    heartbeat_interval: float = 30.0
    grace_period: float = 120.0

    def __post_init__(self):
        if isinstance(self.budget, dict):
            object.__setattr__(self, "budget", Budget(**self.budget))
        object.__setattr__(self, "profile", (profiles.get(self.profile) if self.profile else profiles.current()).name)
        problems = []
        if self.objective not in OBJECTIVES:
            problems.append(f"objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        if self.goal not in GOALS:
            problems.append(f"goal {self.goal!r} is not one of {', '.join(GOALS)}")
        if self.sampler not in SAMPLERS:
            problems.append(f"sampler {self.sampler!r} is not one of {', '.join(SAMPLERS)}")
        if self.population_size < 2:
            problems.append(f"population_size must be at least 2, got {self.population_size}")
        if not 0 < self.heartbeat_interval < self.grace_period:
            problems.append(f"need 0 < heartbeat_interval < grace_period, got {self.heartbeat_interval} and "
                            f"{self.grace_period}")
        if problems:
            raise SearchError("Invalid search settings: " + "; ".join(problems) + ".")


def settings_of(study: optuna.Study, wait: float = 10.0) -> Settings:
    """The Settings a study was created with (waiting up to `wait` seconds for a worker that is
    creating it at this moment to write them)."""
    deadline = time.monotonic() + wait
    while SETTINGS_KEY not in study.user_attrs:
        if time.monotonic() > deadline:
            raise SearchError(f"Study {study.study_name!r} was not created by effcourse (it holds no search "
                              "settings): choose another study name.")
        time.sleep(0.2)
    return Settings(**study.user_attrs[SETTINGS_KEY])


def _sampler(settings: Settings, seed: int | None) -> optuna.samplers.BaseSampler:
    """The sampler the settings name. NSGA-II and TPE heed the constraints each trial of a study
    with a budget records (`_constrain`); random search ignores them."""
    if settings.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=settings.population_size, seed=seed)
    if settings.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def create_or_load(study_name: str, storage, *, create: bool = True, **settings) -> optuna.Study:
    """The study `study_name` in `storage` (a storage, URL or journal path), created with these
    `Settings` fields (the rest at their defaults) if it does not exist yet and `create` allows
    it (else a SearchError names the studies there: a mistyped name would start a search of
    its own). An existing study keeps its settings: a field given here must equal the stored one.

    The process that creates the study samples with its `seed`, so a one-worker search repeats
    itself; a worker that joins an existing study draws a fresh seed (with the same seed every
    worker would propose the same candidates)."""
    storage = _storage(storage)
    unknown = set(settings) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise SearchError(f"Unknown search settings {sorted(unknown)}: the settings are "
                          f"{', '.join(f.name for f in dataclasses.fields(Settings))}.")
    created = False
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        if not create:
            held = optuna.study.get_all_study_names(storage)
            raise SearchError(f"There is no study {study_name!r} in this storage; it holds "
                              f"{', '.join(map(repr, held)) if held else 'none'}. Copy the name the lesson printed, "
                              "or create a new study (effcourse worker --new).") from None
        wanted = Settings(**settings)
        try:
            study = optuna.create_study(storage=storage, study_name=study_name, directions=list(GOALS[wanted.goal]))
            study.set_user_attr(SETTINGS_KEY, dataclasses.asdict(wanted))
            created = True
        except DuplicatedStudyError:  # another worker created it first
            study = optuna.load_study(study_name=study_name, storage=storage)
    stored = settings_of(study)
    given = Settings(**{**dataclasses.asdict(stored), **settings})
    conflicts = [f"{name}={getattr(stored, name)!r}" for name in settings if getattr(given, name) != getattr(stored, name)]
    if conflicts:
        raise SearchError(f"Study {study_name!r} exists with {', '.join(conflicts)}: pass the same settings "
                          "(or none) to join it, or choose another study name.")
    study.sampler = _sampler(stored, stored.seed if created else None)
    return study


# Trials per search in each run profile: a few trials of the proxy take about as long as one
# lesson's training in that profile (smoke: seconds each; full: about a minute each on the 2-core AMD EPYC with AVX-512).
TRIALS = {"smoke": 4, "workshop": 6, "full": 12}


def trials_for(profile: profiles.Profile | str | None = None) -> int:
    """How many trials a search runs in a profile (default: the current one)."""
    if profile is None:
        profile = profiles.current()
    return TRIALS[profiles.get(profile).name if isinstance(profile, str) else profile.name]


# --------------------------------------------------------------------------- workers


@contextlib.contextmanager
def _heartbeat(trial: optuna.trial.Trial, interval: float):
    """Within this block, `trial` records the time every `interval` seconds (from a thread)."""
    stop = threading.Event()

    def beat():
        while not stop.wait(interval):
            try:
                trial.set_user_attr(HEARTBEAT, time.time())
            except Exception:  # the trial was finished elsewhere: the worker finds out when it tells
                return

    trial.set_user_attr(HEARTBEAT, time.time())
    thread = threading.Thread(target=beat, name=f"heartbeat of trial {trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _requeue(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Queue `trial`'s candidate again, unless it was already tried MAX_RETRIES + 1 times."""
    origin = trial.user_attrs.get(RETRY_OF, trial.number)
    retries = sum(t.user_attrs.get(RETRY_OF) == origin for t in study.get_trials(deepcopy=False))
    if retries >= MAX_RETRIES:
        return False
    study.enqueue_trial(trial.params, user_attrs={RETRY_OF: origin})
    return True


def _fail(study: optuna.Study, trial: "optuna.trial.Trial | int", **attrs) -> bool:
    """Mark a running trial FAIL, after recording `attrs` on it (a Trial of this worker's only);
    False if another worker finished it first."""
    try:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        study.tell(trial, state=TrialState.FAIL)
        return True
    except (UpdateFinishedTrialError, ValueError):  # ValueError: "Cannot tell a FAIL trial"
        return False


def retry_lost_trials(study: optuna.Study, grace_period: float) -> list[int]:
    """Mark FAIL every running trial whose heartbeat (or start) is older than `grace_period`
    seconds, and queue its candidate again; the numbers of the trials this call failed."""
    now, lost = time.time(), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        last = trial.user_attrs.get(HEARTBEAT, trial.datetime_start.timestamp())
        if now - last > grace_period and _fail(study, trial.number):
            _requeue(study, trial)
            lost.append(trial.number)
    return lost


def _constrain(trial: optuna.trial.Trial, budget: Budget) -> None:
    """Record, as Optuna constraints, how far the costs the objective recorded lie beyond `budget`."""
    limits = [f.name for f in dataclasses.fields(Budget)]
    missing = [name for name in limits if name not in trial.user_attrs]
    if missing:
        raise SearchError(f"The objective recorded no {', '.join(missing)} for trial {trial.number}: a study with a "
                          "budget needs every cost it limits as a user attribute of each trial.")
    for name, violation in zip(limits, budget.violations(trial.user_attrs)):
        trial.set_constraint(name, violation)


def _surplus(study: optuna.Study, trial: optuna.trial.Trial, n_trials: int) -> bool:
    """Whether `n_trials` trials that can still complete were numbered before `trial` (another
    worker asked for one at the same moment as this worker checked the count)."""
    alive = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
    return sum(t.number < trial.number for t in study.get_trials(deepcopy=False, states=alive)) >= n_trials


def run_worker(study: optuna.Study, n_trials: int, objective: Objective | None = None, *,
               data: "ImageData | None" = None, verbose: bool = True) -> list[int]:
    """Work on `study` until it holds `n_trials` COMPLETE trials (all workers together), and return
    the numbers of those this worker completed. `objective` (default: the study's, measured on
    `data` or the data of the study's profile) takes an Optuna trial and returns (accuracy, MACs);
    it records the costs as the trial's user attributes.

    Any number of workers may run this at once, in processes or on machines sharing the storage.
    A trial whose objective raises is marked FAIL (user attribute `error`) and the error stops this
    worker; an interrupted one (Ctrl-C) is marked FAIL and its candidate queued again.
    `verbose`: print the study's finished trials first, then a line per trial as it finishes."""
    if n_trials < 1:
        raise SearchError(f"n_trials must be at least 1, got {n_trials}.")
    settings = settings_of(study)
    objective = objective or objective_for(study, data)
    if verbose:
        _replay(study)
    completed: list[int] = []
    while True:
        retry_lost_trials(study, settings.grace_period)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        done, running = states.count(TrialState.COMPLETE), states.count(TrialState.RUNNING)
        if done >= n_trials:
            return completed
        if done + running >= n_trials:  # other workers' trials may complete the study: wait for them
            time.sleep(min(settings.heartbeat_interval, POLL_S))
            continue
        trial = study.ask()
        if _surplus(study, trial, n_trials):
            _fail(study, trial, **{SURPLUS: True})
            continue
        try:
            with _heartbeat(trial, settings.heartbeat_interval):
                values = objective(trial)
                if settings.budget is not None:
                    _constrain(trial, settings.budget)
            study.tell(trial, values[:len(study.directions)])
        except optuna.TrialPruned as pruned:  # too costly to train: does not count, ask for another
            trial.set_user_attr(PRUNED_BECAUSE, str(pruned))
            study.tell(trial, state=TrialState.PRUNED)
            _say(verbose, trial_line(_frozen(study, trial)))
            continue
        except UpdateFinishedTrialError:
            _say(verbose, f"trial {trial.number}: another worker found it lost (no heartbeat for "
                          f"{settings.grace_period:.0f} s) and queued its candidate again")
            continue
        except Exception as err:
            if _fail(study, trial, error=f"{type(err).__name__}: {err}"):
                raise
            continue  # finished by another worker meanwhile, as above
        except BaseException:  # KeyboardInterrupt, SystemExit: try the candidate again on resuming
            if _fail(study, trial, error="interrupted"):
                _requeue(study, _frozen(study, trial))
            raise
        completed.append(trial.number)
        _say(verbose, trial_line(_frozen(study, trial)))


def _say(verbose: bool, line: str) -> None:
    if verbose:
        print(line, flush=True)


def _frozen(study: optuna.Study, trial: optuna.trial.Trial) -> FrozenTrial:
    return study.get_trials(deepcopy=False)[trial.number]


def trial_line(trial: FrozenTrial) -> str:
    """A finished trial in one line: its accuracy, MACs and duration; why it was pruned; or why it failed."""
    if trial.state == TrialState.COMPLETE:
        accuracy, macs = _point(trial)
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
        return f"trial {trial.number}: accuracy {accuracy:.3f}, {macs / 1e6:.2f} M MACs ({seconds:.1f} s)"
    if trial.state == TrialState.PRUNED:
        return f"trial {trial.number}: pruned ({trial.user_attrs.get(PRUNED_BECAUSE, 'no reason recorded')})"
    why = trial.user_attrs.get("error") or ("asked beyond the trials wanted" if trial.user_attrs.get(SURPLUS) else None)
    return f"trial {trial.number}: {trial.state.name.lower()}" + (f" ({why})" if why else "")


def _replay(study: optuna.Study) -> None:
    """Print the trials `study` finished before this worker started, indented under a heading."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    if finished:
        print(f"{study.study_name}: {len(finished)} trials finished before this worker started", flush=True)
        for trial in finished:
            print("  " + trial_line(trial), flush=True)


# --------------------------------------------------------------------------- objectives


def candidate_objective(study: optuna.Study, data: "ImageData | None" = None) -> Objective:
    """The lesson's objective: a candidate of the search space (`search_space.suggest`) that no
    complete trial of the study measured yet (a repeat is pruned), trained as
    the study profile's proxy says (`search_space.proxy_for`) on `data` (default: CIFAR-10 as the
    profile loads it), its costs measured (`search_space.measure_costs`) and stored with the
    candidate (`spec`), the proxy accuracy and the data's fingerprint as user attributes.
    Returns (proxy accuracy, MACs)."""
    settings = settings_of(study)
    profile = profiles.get(settings.profile)
    if data is None:
        from .data import load_cifar10

        data = load_cifar10(profile=profile)
    fingerprint = data.fingerprint()
    seen = {t.user_attrs.get("data") for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    if seen - {None, fingerprint}:
        raise SearchError(f"This worker loaded other data ({data.source}, fingerprint {fingerprint}) than the study's "
                          f"trials were measured on ({', '.join(sorted(seen - {None}))}): point {profiles.ENV_VAR} "
                          "and EFFCOURSE_DATA at the same profile and copy as the other workers.")
    proxy = search_space.proxy_for(profile)

    def objective(trial: optuna.trial.Trial) -> tuple[float, int]:
        spec = search_space.suggest(trial)
        twin = next((t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                     if "spec" in t.user_attrs and search_space.Spec(**t.user_attrs["spec"]) == spec), None)
        trial.set_user_attr("spec", dataclasses.asdict(spec))
        if twin is not None:  # NSGA-II's offspring of a small population often repeat a parent
            raise optuna.TrialPruned(f"{spec.name} again, measured in trial {twin}: not trained twice")
        trial.set_user_attr("data", fingerprint)
        # seeded: a candidate's proxy score does not depend on the trials this worker ran before it
        model = search_space.build(spec, data.image_shape, data.num_classes, seed=settings.seed)
        macs = measure.macs(model)[0]
        if macs > search_space.MAX_MACS:
            trial.set_user_attr("macs", macs)
            raise optuna.TrialPruned(f"{macs / 1e6:.0f} M MACs, over the {search_space.MAX_MACS / 1e6:.0f} M ceiling: not trained")
        if settings.budget is not None:  # a candidate over the budget would never win: do not train it
            before = search_space.budget_costs(model, data)
            over = settings.budget.exceeded(before)
            if over:
                for name, value in before.items():
                    trial.set_user_attr(name, value)
                raise optuna.TrialPruned(f"over the budget ({'; '.join(over)}): not trained")
        accuracy = search_space.proxy_accuracy(model, data, proxy, seed=settings.seed)
        costs = search_space.measure_costs(model, data, latency_runs=profile.latency_runs, warmup=profile.warmup_runs)
        for name, value in dataclasses.asdict(costs).items():
            trial.set_user_attr(name, value)
        trial.set_user_attr("accuracy", accuracy)
        return accuracy, costs.macs

    return objective


# {name: function (study, data or None) -> objective}: the objectives a study may name.
OBJECTIVES: dict[str, Callable[..., Objective]] = {"candidates": candidate_objective}


def objective_for(study: optuna.Study, data: "ImageData | None" = None) -> Objective:
    """The objective the study's settings name, built for this worker."""
    return OBJECTIVES[settings_of(study).objective](study, data)


# --------------------------------------------------------------------------- reading a study


def non_dominated(points, directions: Sequence[str] = DIRECTIONS) -> np.ndarray:
    """Per point (one row of objective values), whether no other point is at least as good in every
    objective and better in one (`directions`: "maximize" or "minimize" per column)."""
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    q = np.asarray(points, dtype=float).reshape(-1, len(directions)) * signs  # every objective minimised
    at_least_as_good = (q[:, None, :] <= q[None, :, :]).all(axis=2)  # [j, i]: j at least as good as i
    better_somewhere = (q[:, None, :] < q[None, :, :]).any(axis=2)
    return ~(at_least_as_good & better_somewhere).any(axis=0)


def hypervolume(points, reference, directions: Sequence[str] = DIRECTIONS) -> float:
    """The area two objectives' points dominate up to `reference` (a point worse than all in both):
    the larger, the better a front. Points not better than the reference in both add nothing."""
    if len(directions) != 2:
        raise ValueError(f"hypervolume is computed for 2 objectives, got {len(directions)} directions.")
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    q = np.asarray(points, dtype=float).reshape(-1, 2) * signs
    ref = np.asarray(reference, dtype=float) * signs
    q = q[(q < ref).all(axis=1)]
    if not len(q):
        return 0.0
    q = q[non_dominated(q, ("minimize", "minimize"))]
    q = q[np.argsort(q[:, 0])]  # along the first objective; the second then falls
    widths = np.diff(np.append(q[:, 0], ref[0]))
    return float(np.sum(widths * (ref[1] - q[:, 1])))


def search_seconds(study: optuna.Study) -> float:
    """What a study's search cost: its finished trials' durations summed as the storage recorded
    them (pruned and failed ones included), however many workers ran them and in however many runs."""
    return sum((t.datetime_complete - t.datetime_start).total_seconds()
               for t in study.get_trials(deepcopy=False) if t.datetime_start and t.datetime_complete)


def _feasible(settings: Settings, trial: FrozenTrial) -> bool:
    return settings.budget is None or settings.budget.allows(trial.user_attrs)


def _point(trial: FrozenTrial) -> tuple[float, float]:
    """A complete trial's (accuracy, MACs): its values, or for a study whose goal is "best" its
    accuracy and the MACs its objective recorded."""
    return tuple(trial.values) if len(trial.values) == 2 else (trial.values[0], trial.user_attrs["macs"])


def front(study: optuna.Study) -> list[FrozenTrial]:
    """The study's Pareto front: its COMPLETE trials (within its budget, if it has one) that no
    other such trial dominates, by MACs."""
    settings = settings_of(study)
    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if _feasible(settings, t)]
    if not trials:
        return []
    keep = non_dominated([_point(t) for t in trials])
    return sorted((t for t, k in zip(trials, keep) if k), key=lambda t: (_point(t)[1], -_point(t)[0]))


def trials_table(study: optuna.Study):
    """One row per trial: number, state, accuracy and MACs (its objectives), the costs and
    candidate its objective recorded, whether it is within the study's budget and on its front,
    and which trial it retries."""
    import pandas as pd

    settings = settings_of(study)
    on_front = {t.number for t in front(study)}
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = {k: v for k, v in t.user_attrs.items() if k not in (HEARTBEAT, "data")}
        spec = attrs.pop("spec", None)
        accuracy, macs = _point(t) if t.values else (None, t.user_attrs.get("macs"))
        rows.append({"trial": t.number, "state": t.state.name, "accuracy": accuracy, "macs": macs,
                     "candidate": search_space.Spec(**spec).name if spec else None,
                     **{k: v for k, v in attrs.items() if k not in ("accuracy", "macs")},
                     "within budget": _feasible(settings, t) if t.state == TrialState.COMPLETE else None,
                     "on front": t.number in on_front})
    return pd.DataFrame(rows).set_index("trial") if rows else pd.DataFrame()
