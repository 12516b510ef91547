"""What one Ray task runs: the `hpstudy worker` start-up and loop, in the Ray worker process.

The storage URL may hold a password, and Ray shows a task's arguments and its `runtime_env`
(env_vars included) in its logs and dashboard. So the URL travels through the object store:
the caller `ray.put`s it and hands the reference inside a list, which Ray passes on as it is
(a reference at the top level would be resolved into the visible arguments); the task
`ray.get`s it and keeps it in its own process's environment, as `hpstudy run` does for its
worker processes.

A stop is Ray's `ray.cancel(ref)`: without `force` it raises the SIGINT handler in the task's
main thread, which is `worker_process`'s `Stop`, so the running trial ends FAIL
("interrupted") and is re-queued, exactly as Ctrl-C does to `hpstudy worker`.
"""

from __future__ import annotations

import os
from typing import Any

from studies._errors import StudyError
from studies.storage import STORAGE_ENV
from studies.workers._pool import WorkerOutcome
from studies.workers._startup import start_worker, worker_process
from studies.workers._worker import WorkerOptions


def run_ray_worker(
    name: str,
    url_box: list[Any],
    *,
    index: int,
    threads: int,
    timeout: float | None,
) -> WorkerOutcome:
    """Runs study `name`'s worker loop until its budget is spent; Ray calls this in a task.

    Args:
        url_box: `[ray.put(url)]`: the storage URL as an object reference, inside a list.
        index: the worker's index (its sampler's seed stream).
        threads: torch threads of this worker (its Ray CPU share).
        timeout: seconds after which no new trial starts.

    Returns:
        Code 0 and what the worker did, or code 1 and the user error that stopped it.
    """
    import ray

    # The task owns its process (a Ray worker) while it runs; no `hpstudy run` is its parent.
    with worker_process(watch_parent=False) as stop:  # first: an early cancel stops it too
        [url_ref] = url_box
        os.environ[STORAGE_ENV] = ray.get(url_ref)
        try:
            summary = start_worker(
                name,
                f"env:{STORAGE_ENV}",
                options=WorkerOptions(index=index, timeout=timeout),
                stop=stop,
                threads=threads,
            )
        except StudyError as exc:
            return WorkerOutcome(1, trials=0, error=str(exc))
    return WorkerOutcome(0, trials=summary.trials, interrupted=summary.interrupted)
