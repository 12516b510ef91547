"""`hpstudy run`: create or resume a study, start its worker processes, show progress.

The parent runs no trials. It starts N `hpstudy worker` processes (the same command that
joins a study from another machine), or with `--ray` N Ray tasks running the same worker loop
(`_ray`), polls the database for progress, and prints the best trials at the end. Each worker
process's output goes to a log file (a Ray task's to Ray's logs).

Ctrl-C or SIGTERM stops the workers in order: each ends its running trial FAIL
("interrupted") and re-queues it, and a later `hpstudy run` resumes it from its checkpoint.
Trials of workers that died on this machine are re-queued when `hpstudy run` starts, without
waiting for their heartbeats to go stale.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import optuna

from studies._errors import ParameterError, StudyError
from studies.spec import RaySettings, StudySpec
from studies.storage import (
    Budget,
    Checkpoints,
    Reached,
    TargetRecord,
    create_engine,
    create_or_resume,
    open_storage,
    redact,
    resolve_storage,
    sqlite_path,
    store_heartbeat,
    stored_heartbeat,
    strip_stored_passwords,
)
from studies.workers._fractions_auto import ensure_fractions
from studies.workers._lr_auto import ensure_ranges
from studies.workers._pool import WorkerOutcome, WorkerPool
from studies.workers._preflight import Code, preflight
from studies.workers._priors import enqueue_priors
from studies.workers._processes import ProcessPool, log_dir, threads_per_worker
from studies.workers._progress import count, format_duration, progress_line
from studies.workers._recovery import MAX_RETRY, recover_dead_workers
from studies.workers._warm import Point, enqueue_points, warm_start_points


def run_study(
    spec: StudySpec,
    *,
    workers: int = 1,
    echo: Callable[[str], None] = print,
    live: bool = False,
    heartbeat: int | None = None,
    grace: int | None = None,
    warm_start: Sequence[str] = (),
    ray: RaySettings | None = None,
) -> optuna.Study:
    """Creates or resumes `spec`'s study and runs `workers` workers until it is done.

    The workers are processes on this machine, or with `ray` (or the spec's `ray`) Ray tasks
    on a local Ray or a cluster; everything else (checks, study, progress, stop, recovery) is
    the same.

    Args:
        spec: the study; its n_trials is the total over all runs and workers.
        workers: worker processes on this machine.
        echo: where progress lines go.
        live: redraw one progress line in place (a terminal) instead of printing on change.
        heartbeat: seconds between a running trial's heartbeats, kept with the study for every
            worker that joins it; None keeps the stored (or default) one.
        grace: seconds without a heartbeat after which a trial is failed and re-queued.
        warm_start: exported config files or `NAME@URL` studies whose configurations are
            tried first, once per study, with the spec's `enqueue` points.
        ray: run the workers as Ray tasks with these settings; None: the spec's `ray`, and
            without one local processes.

    Raises:
        StudyError: for a bad storage, spec or warm start, or when every worker failed.
        KeyboardInterrupt: after Ctrl-C or SIGTERM, once the workers have stopped.
    """
    if workers < 1:
        raise ParameterError(f"`workers` must be at least 1, got {workers}")
    spec = spec.replace(storage=resolve_storage(spec.storage))  # env:NAME -> its URL, once
    ray = ray or spec.ray

    def run(on: RaySettings | None) -> optuna.Study:
        return _run_study(
            spec,
            workers=workers,
            echo=echo,
            live=live,
            heartbeat=heartbeat,
            grace=grace,
            warm_start=warm_start,
            ray=on,
        )

    if ray is None:
        return run(None)
    done = _finished_study(spec)
    if done is not None and _said_done(spec, *done, echo=echo):
        return done[0]  # and no Ray started for nothing
    from studies.workers._ray import ray_session

    with ray_session(spec, ray, workers) as seconds:  # joined or started, and checked: first
        echo(f"Ray ready in {seconds:.1f} s")
        return run(ray)


def _run_study(
    spec: StudySpec,
    *,
    workers: int,
    echo: Callable[[str], None],
    live: bool,
    heartbeat: int | None,
    grace: int | None,
    warm_start: Sequence[str],
    ray: RaySettings | None,
) -> optuna.Study:
    # 1. The user's code and data, checked before any study exists; then the study, with
    # what earlier runs left behind settled.
    code = preflight(spec)
    points = warm_start_points(spec, warm_start)
    study, storage, held = prepare_study(
        spec, echo=echo, heartbeat=heartbeat, grace=grace, code=code, points=points
    )
    if _said_done(spec, study, storage, held, echo=echo):
        return study
    ensure_ranges(spec, study, echo=echo)  # [space.lr] auto = true: once per study
    ensure_fractions(spec, study, workers=workers, echo=echo)  # [train] fractions = "auto"
    if spec.timeout is not None:
        from studies.workers._plan import plan  # a probe epoch: torch, seconds

        fits = plan(spec, budget=spec.timeout, workers=workers)
        echo(
            f"timeout {spec.timeout / 60:.0f} min: about {fits.epochs} epochs, "
            f"{fits.trials} trials with {fits.pruner} ({fits.trials_unpruned} without "
            f"pruning; a probe epoch took {fits.epoch_seconds:.1f} s)"
        )
    # 2. The workers, watched until they end or a signal stops them.
    logs = log_dir(spec)
    logs.mkdir(parents=True, exist_ok=True)
    if ray is None:
        each = f"{threads_per_worker(workers)} thread(s) each"
    else:
        from studies.workers._ray import describe

        each = f"Ray tasks on {describe(ray)}"
    echo(
        f"study '{spec.name}' in {redact(spec.storage)}: {workers} worker(s), {each}, "
        f"logs in {logs}"
    )
    progress = _Progress(study, spec.n_trials, echo, live)
    with open_pool(spec, workers, logs, ray=ray) as pool:
        if not pool.watch(progress.show):
            echo("\nstopping: each worker re-queues its running trial ...")
            if pool.stop():
                recover_dead_workers(study, storage, max_retry=MAX_RETRY)
            echo(progress.line())
            raise KeyboardInterrupt
    progress.show(final=True)
    reached = target_reached(spec, storage)
    if reached is not None:
        echo(describe_reached(reached, started=study_start(study)))
    # 3. How the workers ended.
    outcomes = pool.outcomes()
    codes = [outcome.code for outcome in outcomes]
    if not any(outcome.ok for outcome in outcomes):
        said = worker_errors(outcomes)
        why = f":\n{said}\n" if said else "; "
        raise StudyError(f"every worker failed (exit codes {codes}){why}see the logs in {logs}")
    if not all(outcome.ok for outcome in outcomes):
        echo(f"warning: some workers failed (exit codes {codes}); see the logs in {logs}")
    return study


def worker_errors(outcomes: Sequence[WorkerOutcome], *, lines: int = 20) -> str:
    """What the workers said as a user error (or why their tasks failed): each message once,
    at most `lines` lines of it, with the workers that said it ("workers 0, 1: ...")."""
    said: dict[str, list[int]] = {}
    for index, outcome in enumerate(outcomes):
        if outcome.error:
            message = "\n".join(outcome.error.splitlines()[:lines])
            said.setdefault(message, []).append(index)
    return "\n".join(
        f"worker{'s' if len(who) > 1 else ''} {', '.join(map(str, who))}: {message}"
        for message, who in said.items()
    )


def _finished_study(
    spec: StudySpec,
) -> tuple[optuna.Study, optuna.storages.RDBStorage, int] | None:
    """The study as it stands, when it exists, with its storage and its finished trials (with
    any running or waiting it is not done anyway); nothing is created or settled."""
    db = sqlite_path(spec.storage)
    if db is not None and not db.exists():
        return None
    storage = open_storage(spec.storage)
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage)
    except KeyError:
        return None
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study, storage, len(study.get_trials(deepcopy=False, states=finished))


def _said_done(
    spec: StudySpec,
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    held: int,
    *,
    echo: Callable[[str], None],
) -> bool:
    """Whether the study has all its trials or reached its target; if so, says so."""
    if spec.n_trials is not None and held >= spec.n_trials and not _unfinished(study):
        echo(
            f"study '{spec.name}' already has its {spec.n_trials} trials; "
            f"raise its n_trials to add more"
        )
        return True
    reached = target_reached(spec, storage)
    if reached is not None:
        echo(
            describe_reached(reached, started=study_start(study)) + "; raise study.target to go on"
        )
        return True
    return False


def prepare_study(
    spec: StudySpec,
    *,
    echo: Callable[[str], None] = print,
    heartbeat: int | None = None,
    grace: int | None = None,
    code: Code | None = None,
    points: Sequence[Point] = (),
) -> tuple[optuna.Study, optuna.storages.RDBStorage, int]:
    """Creates or resumes the study, stores its heartbeat, and settles earlier runs' leftovers.

    A study without trials gets `points` (the spec's `enqueue`, the warm starts) and then its
    priors (`_priors`: the best configurations of earlier studies of the same task), each once
    per study. Trials of workers that died on this machine are re-queued, the budget is
    recounted from the trials that hold a claim, checkpoints of chains that ended are deleted,
    and a database password an earlier hpstudy stored with the study is removed (saying so).

    Returns:
        The study, its storage, and the number of trials that hold a claim on its budget.
    """
    storage = open_storage(spec.storage)
    cleaned = strip_stored_passwords(storage, spec.name)
    if cleaned:
        echo(
            f"removed the database password that an earlier hpstudy stored in clear with "
            f"study '{spec.name}' ({_listed(cleaned)}); whoever could read the database "
            f"(optuna-dashboard, copies of it) could read the password: change it"
        )
    study = create_or_resume(spec, storage, code=code)
    fresh = not study.get_trials(deepcopy=False)
    study_id = storage.get_study_id_from_name(spec.name)
    if heartbeat is not None or grace is not None:
        interval, period = stored_heartbeat(storage, study_id)
        store_heartbeat(storage, study_id, interval=heartbeat or interval, grace=grace or period)
    requeued = recover_dead_workers(study, storage, max_retry=MAX_RETRY)
    if requeued:
        echo(f"re-queued trial(s) {requeued}: their workers on this machine are gone")
    enqueued = enqueue_points(study, study_id, spec.storage, points)
    if enqueued:
        more = f"; and {len(enqueued) - 3} more" if len(enqueued) > 3 else ""
        shown = "; ".join(enqueued[:3]) + more
        echo(f"warm start: {len(enqueued)} known configuration(s) first: {shown}")
    priors = enqueue_priors(spec, study, storage, fresh=fresh)
    if priors:
        shown = "; ".join(prior.source for prior in priors)
        echo(
            f"priors: {len(priors)} configuration(s) from earlier studies of the same task "
            f"first: {shown} (off: study.priors = false, or --no-priors)"
        )
    engine = create_engine(spec.storage)
    try:
        held = Budget(engine, study_id).reconcile(study)
        Checkpoints(engine, study_id).prune(study)
        if spec.target is not None:
            TargetRecord(engine, study_id, spec.target).forget()  # a record a new target outgrew
    finally:
        engine.dispose()
    return study, storage, held


def _listed(items: Sequence[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def target_reached(spec: StudySpec, storage: optuna.storages.BaseStorage) -> Reached | None:
    """The epoch that reached the spec's target, once one has."""
    if spec.target is None:
        return None
    engine = create_engine(spec.storage)
    try:
        study_id = storage.get_study_id_from_name(spec.name)
        return TargetRecord(engine, study_id, spec.target).reached()
    finally:
        engine.dispose()


def describe_reached(reached: Reached, *, started: datetime.datetime | None = None) -> str:
    """ "target dev_accuracy reached by trial 7 at epoch 9 (0.9812), 3:05 into the study"."""
    when = datetime.datetime.fromtimestamp(reached.reached_at)
    into = ""
    if started is not None:
        into = f", {format_duration((when - started).total_seconds())} into the study"
    return (
        f"target {reached.metric} reached by trial {reached.trial} at epoch {reached.epoch} "
        f"({reached.value:.4g}) at {when:%H:%M:%S}{into}: no new trials started after it"
    )


def study_start(study: optuna.Study) -> datetime.datetime | None:
    """When the study's first trial started (None before any has)."""
    starts = [t.datetime_start for t in study.get_trials(deepcopy=False) if t.datetime_start]
    return min(starts) if starts else None


class _Progress:
    """The progress line: redrawn in place on a terminal, else printed when the counts change."""

    def __init__(
        self, study: optuna.Study, budget: int | None, echo: Callable[[str], None], live: bool
    ) -> None:
        self.study, self.budget, self.echo, self.live = study, budget, echo, live
        self.started = time.monotonic()
        self.last = ""

    def line(self) -> str:
        return progress_line(count(self.study), self.budget, self.started)

    def show(self, *, final: bool = False) -> None:
        line = self.line()
        if self.live:
            self.echo("\r" + line + ("" if final else "\x1b[K"))
        elif line.split("|")[0] != self.last.split("|")[0]:
            self.echo(line)
        self.last = line


def open_pool(
    spec: StudySpec, workers: int, logs: Path, *, ray: RaySettings | None = None
) -> WorkerPool:
    """Local worker processes, or with `ray` Ray tasks (Ray imported only then)."""
    if ray is None:
        return ProcessPool(spec, workers, logs)
    from studies.workers._ray import RayPool

    return RayPool(spec, workers, logs, ray)


def _unfinished(study: optuna.Study) -> bool:
    states = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    return bool(study.get_trials(deepcopy=False, states=states))
