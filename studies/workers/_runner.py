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
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Protocol

import optuna

from studies._errors import ParameterError, StudyError
from studies.spec import RaySettings, StudySpec
from studies.storage import (
    STORAGE_ENV,
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
from studies.workers._lr_auto import ensure_ranges
from studies.workers._preflight import Code, preflight
from studies.workers._progress import count, format_duration, progress_line
from studies.workers._recovery import MAX_RETRY, recover_dead_workers
from studies.workers._signals import Stop
from studies.workers._warm import Point, enqueue_points, warm_start_points

POLL = 1.0  # seconds between progress updates
STOP_GRACE = 15.0  # seconds workers get to re-queue their trials after Ctrl-C before being killed


# How `hpstudy worker` starts the one line it prints for a user error (the CLI's own form).
WORKER_ERROR = "hpstudy worker: error:"


def log_dir(spec: StudySpec) -> Path:
    """Worker logs: beside a SQLite file, else in the current folder."""
    db = sqlite_path(spec.storage)
    base = db.parent if db is not None else Path.cwd()
    return base / "hpstudy-logs" / spec.name


def threads_per_worker(workers: int) -> int:
    """Splits the cores so N workers do not oversubscribe them (at least one thread each).

    The user's HPSTUDY_THREADS wins: on a busy 2-core machine one thread runs far faster.
    """
    chosen = os.environ.get("HPSTUDY_THREADS", "")
    if chosen.isdigit() and int(chosen) > 0:
        return int(chosen)
    return max(1, (os.cpu_count() or 1) // workers)


def worker_command(spec: StudySpec, index: int, timeout: float | None) -> list[str]:
    """A worker's command line; it names the URL's variable, never the URL (see `worker_env`)."""
    command = [
        sys.executable,
        "-m",
        "studies",
        "worker",
        spec.name,
        "--storage",
        f"env:{STORAGE_ENV}",
        "--index",
        str(index),
    ]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    return command


def worker_env(index: int, workers: int, *, storage: str | None = None) -> dict[str, str]:
    """Thread limits, on a GPU machine a device per worker (round robin), and the storage URL.

    The URL goes in HPSTUDY_STORAGE: a process's environment is readable by its owner only,
    its command line by every user of the machine (`ps`).
    """
    env = dict(os.environ)
    if storage is not None:
        env[STORAGE_ENV] = storage
    threads = str(threads_per_worker(workers))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, HPSTUDY_THREADS=threads)
    env.setdefault("PYTHONUNBUFFERED", "1")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else _gpu_ids()
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    return env


def _gpu_ids() -> list[str]:
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no torch CUDA runtime: CPU only
        return []


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
    if spec.n_trials is not None and held >= spec.n_trials and not _unfinished(study):
        echo(
            f"study '{spec.name}' already has its {spec.n_trials} trials; "
            f"raise its n_trials to add more"
        )
        return study
    reached = target_reached(spec, storage)
    if reached is not None:
        echo(
            describe_reached(reached, started=study_start(study)) + "; raise study.target to go on"
        )
        return study
    ensure_ranges(spec, study, echo=echo)  # [space.lr] auto = true: once per study
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
        if not pool.watch(progress):
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
    codes = pool.exit_codes()
    if all(code != 0 for code in codes):
        said = worker_errors(logs, len(codes))
        why = f":\n{said}\n" if said else "; "
        raise StudyError(f"every worker failed (exit codes {codes}){why}see the logs in {logs}")
    if any(code != 0 for code in codes):
        echo(f"warning: some workers failed (exit codes {codes}); see the logs in {logs}")
    return study


def worker_errors(logs: Path, workers: int, *, lines: int = 20) -> str:
    """What the workers' logs say last as a user error ("hpstudy worker: error: ..."): the
    message once for all workers that said the same, at most `lines` lines of it."""
    said: dict[str, list[int]] = {}
    for index in range(workers):
        path = logs / f"worker-{index}.log"
        if not path.exists():
            continue
        text = path.read_text(errors="replace").splitlines()
        starts = [i for i, line in enumerate(text) if line.startswith(WORKER_ERROR)]
        if starts:
            message = "\n".join(text[starts[-1] : starts[-1] + lines])
            said.setdefault(message.removeprefix(WORKER_ERROR).strip(), []).append(index)
    return "\n".join(
        f"worker{'s' if len(who) > 1 else ''} {', '.join(map(str, who))}: {message}"
        for message, who in said.items()
    )


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

    Trials of workers that died on this machine are re-queued, the budget is recounted from
    the trials that hold a claim, checkpoints of chains that ended are deleted, and a database
    password an earlier hpstudy stored with the study is removed (saying so).

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


class Pool(Protocol):
    """Where the workers of one `hpstudy run` run: entering starts them, leaving cleans up."""

    def __enter__(self) -> Pool: ...

    def __exit__(self, *_exc: object) -> None: ...

    def watch(self, progress: _Progress) -> bool:
        """Shows progress until every worker has ended (True) or a stop was asked for."""
        ...

    def stop(self) -> int:
        """Stops every worker (its trial re-queued); returns how many had to be killed."""
        ...

    def exit_codes(self) -> list[int | None]:
        """Each worker's exit status once they have ended; 0 for a good end."""
        ...


def open_pool(spec: StudySpec, workers: int, logs: Path, *, ray: RaySettings | None = None) -> Pool:
    """Local worker processes, or with `ray` Ray tasks (Ray imported only then)."""
    if ray is None:
        return _WorkerPool(spec, workers, logs)
    from studies.workers._ray import RayPool

    return RayPool(spec, workers, logs, ray, grace=STOP_GRACE)


class _WorkerPool:
    """The worker processes of one `hpstudy run`, each with its log file."""

    def __init__(self, spec: StudySpec, workers: int, logs: Path) -> None:
        self.spec, self.workers, self.logs = spec, workers, logs
        self.stop_requested = Stop()
        self.processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []

    def __enter__(self) -> _WorkerPool:
        if threading.current_thread() is threading.main_thread():
            self.stop_requested.install()  # SIGTERM as well as Ctrl-C stops the workers in order
        for index in range(self.workers):
            log = open(self.logs / f"worker-{index}.log", "ab")
            process = subprocess.Popen(
                worker_command(self.spec, index, self.spec.timeout),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=worker_env(index, self.workers, storage=self.spec.storage),
                start_new_session=True,  # Ctrl-C reaches the parent only; it stops workers
            )
            self.processes.append((process, log))
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_requested.uninstall()
        for _, log in self.processes:
            log.close()

    def watch(self, progress: _Progress) -> bool:
        """Shows progress until every worker has exited (True) or a stop was asked for."""
        return self.stop_requested.watch(
            lambda: any(p.poll() is None for p, _ in self.processes), progress.show, POLL
        )

    def stop(self) -> int:
        """Stops every worker; returns how many had to be killed."""
        return _stop(self.processes)

    def exit_codes(self) -> list[int | None]:
        return [process.returncode for process, _ in self.processes]


def _unfinished(study: optuna.Study) -> bool:
    states = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    return bool(study.get_trials(deepcopy=False, states=states))


def _stop(processes: Sequence[tuple[subprocess.Popen[bytes], object]]) -> int:
    """SIGTERM every worker, wait for a clean exit, then SIGKILL the stragglers.

    Returns:
        How many had to be killed.
    """
    for process, _ in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    killed = 0
    for process, _ in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            killed += 1
    return killed
