"""How a worker starts, written once for `hpstudy worker`, `studies.worker()` and a Ray task.

Two parts, because only one of them may touch the process:

- `start_worker`: what every worker does, in any process (a notebook's too): its torch
  threads, Optuna's experimental warnings kept quiet while it runs, then the worker loop.
- `worker_process`: what a process that exists to run one worker sets up, and only such a
  process (the `hpstudy worker` command, a Ray task): hpstudy's log lines on stderr, SIGINT and
  SIGTERM handled by a `Stop` (the running trial ends "interrupted" and is re-queued), and for
  a worker that `hpstudy run` started, a stop at the next epoch's end once that run is gone.

Called from Python without `worker_process`, a worker leaves logging and signal handlers as
they were; Ctrl-C (a `KeyboardInterrupt`) still re-queues its running trial.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Iterator

import optuna

from studies.workers._processes import PARENT_ENV
from studies.workers._signals import Stop
from studies.workers._worker import WorkerOptions, WorkerSummary, run_worker

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s: %(message)s"
LOGGERS = ("hpstudy", "trainer")  # whose lines a worker process shows
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HPSTUDY_THREADS")
PARENT_POLL = 1.0  # seconds between looks at whether the run that started a worker is gone


def start_worker(
    name: str,
    url: str,
    *,
    options: WorkerOptions | None = None,
    stop: threading.Event | None = None,
    threads: int | None = None,
) -> WorkerSummary:
    """Runs study `name`'s worker loop with the set-up every worker shares.

    Args:
        url: the study's database URL, or `env:NAME`.
        stop: set it to stop between trials; a `Stop` that handles signals also interrupts
            the running trial.
        threads: torch CPU threads (and the thread variables its child processes read);
            None leaves them as they are.

    Raises:
        StudyError: as `run_worker`.
    """
    if threads is not None:
        import torch

        for variable in THREAD_VARIABLES:
            os.environ[variable] = str(threads)
        torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        return run_worker(name, url, options=options, stop=stop)


@contextlib.contextmanager
def worker_process(*, watch_parent: bool = True) -> Iterator[Stop]:
    """Sets this process up to run one worker, and undoes it when the block ends.

    hpstudy's (and the trainer's) log lines go to stderr; SIGINT and SIGTERM set the `Stop`
    yielded, and inside a trial interrupt it (called from the main thread; from another, the
    stop only ends the worker between trials).

    Args:
        watch_parent: with `PARENT_ENV` set (a worker `hpstudy run` started), stop at the
            running epoch's end once that run is gone: SIGKILLed, the run cannot stop its
            workers itself.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    loggers = [logging.getLogger(name) for name in LOGGERS]
    before = [(log.level, log.propagate) for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # once, even where the root logger has a handler (Ray's)
    stop = Stop()
    if threading.current_thread() is threading.main_thread():
        stop.install()  # first, so that a stop that comes early is not lost
    parent = os.environ.get(PARENT_ENV, "")
    unwatch = None
    if watch_parent and parent.isdigit():
        unwatch = stop.watch_parent(int(parent), every=PARENT_POLL)
    try:
        yield stop
    finally:
        if unwatch is not None:
            unwatch()
        stop.uninstall()
        for log, (level, propagate) in zip(loggers, before, strict=True):
            log.removeHandler(handler)
            log.setLevel(level)
            log.propagate = propagate
