"""What one Ray task runs: the `hpstudy worker` loop, in the Ray worker process.

The storage URL may hold a password, and Ray shows a task's arguments and its `runtime_env`
(env_vars included) in its logs and dashboard. So the URL travels through the object store:
the caller `ray.put`s it and hands the reference inside a list, which Ray passes on as it is
(a reference at the top level would be resolved into the visible arguments); the task
`ray.get`s it and keeps it in its own process's environment, as `hpstudy run` does for its
worker processes.

A stop is Ray's `ray.cancel(ref)`: without `force` it raises the SIGINT handler in the task's
main thread, which is `Stop`'s, so the running trial ends FAIL ("interrupted") and is
re-queued, exactly as Ctrl-C does to `hpstudy worker`.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from typing import Any

from studies._errors import StudyError
from studies.storage import STORAGE_ENV
from studies.workers._signals import Stop
from studies.workers._worker import WorkerOptions, run_worker


def run_ray_worker(
    name: str,
    url_box: list[Any],
    *,
    index: int,
    threads: int,
    timeout: float | None,
) -> dict[str, Any]:
    """Runs study `name`'s worker loop until its budget is spent; Ray calls this in a task.

    Args:
        url_box: `[ray.put(url)]`: the storage URL as an object reference, inside a list.
        index: the worker's index (its sampler's seed stream).
        threads: torch threads of this worker (its Ray CPU share).
        timeout: seconds after which no new trial starts.

    Returns:
        {"code": 0 or 1, "trials": n, "interrupted": bool, "error": message or ""}.
    """
    stop = Stop()
    if threading.current_thread() is threading.main_thread():
        # First, so that a cancel that comes early stops the worker too.
        stop.install()  # ray.cancel (and SIGTERM) interrupt the running trial, which is re-queued
    try:
        return _run(name, url_box, index=index, threads=threads, timeout=timeout, stop=stop)
    finally:
        stop.uninstall()


def _run(
    name: str, url_box: list[Any], *, index: int, threads: int, timeout: float | None, stop: Stop
) -> dict[str, Any]:
    import optuna
    import ray
    import torch

    [url_ref] = url_box
    os.environ[STORAGE_ENV] = ray.get(url_ref)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HPSTUDY_THREADS"):
        os.environ[variable] = str(threads)
    torch.set_num_threads(threads)
    _log_to_stderr()  # the worker's lines in Ray's log of this worker (worker-*.err)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        options = WorkerOptions(index=index, timeout=timeout)
        summary = run_worker(name, f"env:{STORAGE_ENV}", options=options, stop=stop)
    except StudyError as exc:
        return {"code": 1, "trials": 0, "interrupted": False, "error": str(exc)}
    return {
        "code": 0,
        "trials": summary.trials,
        "interrupted": summary.interrupted,
        "error": "",
    }


def _log_to_stderr() -> None:
    """hpstudy's log lines on the process's stderr (Ray has configured the root logger)."""
    log = logging.getLogger("hpstudy")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
