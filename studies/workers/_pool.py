"""The workers of one `hpstudy run`: one base for every place they can run.

`WorkerPool` owns what every backend shares, in joblib's `ParallelBackendBase` manner: the
stop handler (SIGINT and SIGTERM, installed from the main thread while the pool is open), the
watch loop that shows progress, the soft stop with its grace period, the forced stop after it,
and a typed `WorkerOutcome` per worker. A backend keeps only what differs: start one worker,
say which still run, signal one softly, kill one, and read one's outcome. Local processes
(`_processes.ProcessPool`) and Ray tasks (`_ray.RayPool`) are the two; a third is one file.

A soft stop asks a worker to do what Ctrl-C does to `hpstudy worker`: end its running trial
FAIL ("interrupted") and re-queue it. A worker still running `grace` seconds later is killed,
and the caller re-queues its trial (`recover_dead_workers`).
"""

from __future__ import annotations

import abc
import dataclasses
import threading
import time
from collections.abc import Callable

from studies.workers._signals import Stop

POLL = 1.0  # seconds between progress updates
STOP_GRACE = 15.0  # seconds workers get to re-queue their trials after Ctrl-C before being killed
_STOP_POLL = 0.1  # seconds between looks at stopping workers


@dataclasses.dataclass(frozen=True)
class WorkerOutcome:
    """How one worker ended."""

    code: int | None  # 0 for a good end; None: it never ended (killed and not waited for)
    trials: int | None = None  # trials it ran; None where the backend cannot tell
    interrupted: bool = False  # stopped by a signal or a cancel; its trial was re-queued
    error: str = ""  # what it said as a user error, or why its task failed

    @property
    def ok(self) -> bool:
        return self.code == 0


class WorkerPool(abc.ABC):
    """The workers of one run: entering starts them, `watch` follows them, `stop` ends them.

    Subclasses implement the five backend methods; everything else is here.
    """

    def __init__(self, workers: int, *, grace: float = STOP_GRACE, poll: float = POLL) -> None:
        self.workers, self.grace, self.poll = workers, grace, poll
        self.stop_requested = Stop()
        self._outcomes: list[WorkerOutcome] | None = None

    # What a backend implements.
    @abc.abstractmethod
    def start(self, index: int) -> None:
        """Starts worker `index`."""

    @abc.abstractmethod
    def running(self) -> list[int]:
        """The indices of the workers that have not ended."""

    @abc.abstractmethod
    def signal(self, index: int) -> None:
        """Asks worker `index` to stop as Ctrl-C would (its running trial re-queued)."""

    @abc.abstractmethod
    def kill(self, index: int) -> None:
        """Ends worker `index` now; returns once it is gone, or waiting longer is pointless."""

    @abc.abstractmethod
    def outcome(self, index: int) -> WorkerOutcome:
        """How worker `index` ended (called once every worker has ended or was killed)."""

    def close(self) -> None:  # noqa: B027 (a hook: most backends hold nothing)
        """Releases what the backend holds (log files); the workers have ended."""

    # What every backend shares.
    def __enter__(self) -> WorkerPool:
        if threading.current_thread() is threading.main_thread():
            self.stop_requested.install()  # SIGTERM as well as Ctrl-C stops the workers in order
        try:
            for index in range(self.workers):
                self.start(index)
        except BaseException:
            self.stop()
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_requested.uninstall()
        try:
            if self._outcomes is None and not self.running():
                self._outcomes = [self.outcome(i) for i in range(self.workers)]
        finally:
            self.close()

    def watch(self, show: Callable[[], object]) -> bool:
        """Calls `show` every `poll` seconds until every worker has ended (True) or a stop
        was asked for (False)."""
        return self.stop_requested.watch(lambda: bool(self.running()), show, self.poll)

    def stop(self) -> int:
        """Stops every worker: softly, then by force after `grace` seconds.

        Returns:
            How many had to be killed.
        """
        for index in self.running():
            self.signal(index)
        deadline = time.monotonic() + self.grace
        while self.running() and time.monotonic() < deadline:
            time.sleep(_STOP_POLL)
        stragglers = self.running()
        for index in stragglers:
            self.kill(index)
        return len(stragglers)

    def outcomes(self) -> list[WorkerOutcome]:
        """Each worker's outcome, by index, once they have ended."""
        if self._outcomes is None:
            self._outcomes = [self.outcome(i) for i in range(self.workers)]
        return self._outcomes
