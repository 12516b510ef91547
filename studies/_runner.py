"""`hpstudy run`: create or resume a study, start its worker processes, show progress.

The parent runs no trials. It starts N `hpstudy worker` processes (the same command that
joins a study from another machine), polls the database for progress, and prints the best
trials at the end. Each worker's output goes to a log file.

Ctrl-C or SIGTERM stops the workers in order: each ends its running trial FAIL
("interrupted") and re-queues it, and a later `hpstudy run` resumes it from its checkpoint.
Trials of workers that died on this machine are re-queued when `hpstudy run` starts, without
waiting for their heartbeats to go stale.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

import optuna

from studies._budget import Budget
from studies._checkpoints import Checkpoints
from studies._errors import StudyError
from studies._progress import count, progress_line
from studies._recovery import recover_dead_workers
from studies._signals import Stop
from studies._spec import StudySpec
from studies._storage import (
    MAX_RETRY,
    create_engine,
    open_storage,
    sqlite_path,
    store_heartbeat,
    stored_heartbeat,
)
from studies._study import create_or_resume

POLL = 1.0  # seconds between progress updates
STOP_GRACE = 15.0  # seconds workers get to re-queue their trials after Ctrl-C before being killed


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
    command = [
        sys.executable,
        "-m",
        "studies",
        "worker",
        spec.name,
        "--storage",
        spec.storage,
        "--index",
        str(index),
    ]
    if timeout is not None:
        command += ["--timeout", str(timeout)]
    return command


def worker_env(index: int, workers: int) -> dict[str, str]:
    """Thread limits, and on a GPU machine a device per worker (round robin)."""
    env = dict(os.environ)
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
) -> optuna.Study:
    """Creates or resumes `spec`'s study and runs `workers` processes until it is done.

    Args:
        spec: the study; its n_trials is the total over all runs and workers.
        workers: worker processes on this machine.
        echo: where progress lines go.
        live: redraw one progress line in place (a terminal) instead of printing on change.
        heartbeat: seconds between a running trial's heartbeats, kept with the study for every
            worker that joins it; None keeps the stored (or default) one.
        grace: seconds without a heartbeat after which a trial is failed and re-queued.

    Raises:
        StudyError: for a bad storage or spec, or when every worker failed.
        KeyboardInterrupt: after Ctrl-C or SIGTERM, once the workers have stopped.
    """
    if workers < 1:
        raise StudyError(f"--workers must be at least 1, got {workers}")
    storage = open_storage(spec.storage, heartbeat_interval=None)
    study = create_or_resume(spec, storage)
    study_id = storage.get_study_id_from_name(spec.name)
    if heartbeat is not None or grace is not None:
        interval, period = stored_heartbeat(storage, study_id)
        store_heartbeat(storage, study_id, interval=heartbeat or interval, grace=grace or period)
    requeued = recover_dead_workers(study, storage, max_retry=MAX_RETRY)
    if requeued:
        echo(f"re-queued trial(s) {requeued}: their workers on this machine are gone")
    engine = create_engine(spec.storage)
    budget = Budget(engine, study_id)
    held = budget.reconcile(study)
    Checkpoints(engine, study_id).prune(study)
    engine.dispose()
    if spec.n_trials is not None and held >= spec.n_trials and not _unfinished(study):
        echo(
            f"study '{spec.name}' already has its {spec.n_trials} trials; "
            f"raise n_trials (--n-trials) to add more"
        )
        return study

    logs = log_dir(spec)
    logs.mkdir(parents=True, exist_ok=True)
    echo(
        f"study '{spec.name}' in {spec.storage}: {workers} worker(s), "
        f"{threads_per_worker(workers)} thread(s) each, logs in {logs}"
    )
    stop = Stop()
    if threading.current_thread() is threading.main_thread():
        stop.install()  # SIGTERM as well as Ctrl-C stops the workers in order
    processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
    started = time.monotonic()
    try:
        for index in range(workers):
            log = open(logs / f"worker-{index}.log", "ab")  # noqa: SIM115 - closed below
            process = subprocess.Popen(
                worker_command(spec, index, spec.timeout),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=worker_env(index, workers),
                start_new_session=True,  # Ctrl-C reaches the parent only; it stops workers
            )
            processes.append((process, log))
        last = ""
        while any(p.poll() is None for p, _ in processes) and not stop.is_set():
            line = progress_line(count(study), spec.n_trials, started)
            if live:
                echo("\r" + line + "\x1b[K")
            elif line.split("|")[0] != last.split("|")[0]:
                echo(line)
            last = line
            stop.wait(POLL)
        if stop.is_set():
            echo("\nstopping: each worker re-queues its running trial ...")
            killed = _stop(processes)
            if killed:
                recover_dead_workers(study, storage, max_retry=MAX_RETRY)
            echo(progress_line(count(study), spec.n_trials, started))
            raise KeyboardInterrupt
    finally:
        stop.uninstall()
        for _, opened in processes:
            opened.close()
    final = progress_line(count(study), spec.n_trials, started)
    if live:
        echo("\r" + final)
    elif final.split("|")[0] != last.split("|")[0]:
        echo(final)
    codes = [p.returncode for p, _ in processes]
    if all(code != 0 for code in codes):
        raise StudyError(f"every worker failed (exit codes {codes}); see the logs in {logs}")
    if any(code != 0 for code in codes):
        echo(f"warning: some workers failed (exit codes {codes}); see the logs in {logs}")
    return study


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
