"""Ctrl-C and SIGTERM for workers: stop between trials, or interrupt the trial that runs.

A worker interrupted inside a trial ends it FAIL ("interrupted") and re-queues it, so nothing
stays RUNNING and nothing is lost. Outside a trial (asking for one, telling its result, waiting)
the signal only sets the stop flag, so a database write is never cut in half.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived while a trial ran."""


class Stop(threading.Event):
    """A stop request that SIGINT and SIGTERM set once `install`ed.

    Inside `interruptible()` the first signal also raises `Interrupted` in the main thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self._interruptible = False
        self._previous: dict[int, Any] = {}
        self.orphaned = threading.Event()  # the run that started this worker is gone

    def install(self) -> Stop:
        """Handles SIGINT and SIGTERM (call from the main thread); returns self.

        Installing again (after a library took a signal over, as `ray.init` does SIGTERM)
        keeps the handlers from before the first install for `uninstall`.
        """
        for signum in STOP_SIGNALS:
            self._previous.setdefault(signum, signal.signal(signum, self._handle))
        return self

    def uninstall(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def watch(self, running: Callable[[], bool], show: Callable[[], object], every: float) -> bool:
        """Calls `show` every `every` seconds while `running()`: True once it is not, False as
        soon as a stop is asked for (a pool of workers, watched by `hpstudy run`)."""
        while running():
            if self.is_set():
                return False
            show()
            self.wait(every)
        return not self.is_set()

    def watch_parent(self, pid: int, *, every: float = 1.0) -> Callable[[], None]:
        """Stops at the next epoch's end once process `pid` is no longer this process's
        parent: it died, and this process was handed to another (as a worker whose run was
        SIGKILLed is, which can no longer stop its workers itself).

        The stop is set, so no new trial starts, and `end_of_epoch` interrupts the running
        trial once its epoch is written and checkpointed: the trial is re-queued as for
        Ctrl-C and resumes from that epoch, losing nothing. A thread looks every `every`
        seconds.

        Returns:
            A function that ends the watch.
        """
        done = threading.Event()

        def watch() -> None:
            while os.getppid() == pid:
                if done.wait(every):
                    return
            self.orphaned.set()
            self.set()

        threading.Thread(target=watch, name="hpstudy-parent", daemon=True).start()
        return done.set

    def end_of_epoch(self) -> None:
        """Called once an epoch is stored: interrupts the trial if the run that started
        this worker is gone (`watch_parent`).

        Raises:
            Interrupted: the worker was orphaned.
        """
        if self.orphaned.is_set():
            raise Interrupted("the hpstudy run that started this worker is gone")

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        first = not self.is_set()
        self.set()
        if first and self._interruptible:
            self._interruptible = False
            raise Interrupted(signal.Signals(signum).name)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """A stop signal raises `Interrupted` in this block; one that came before, at once."""
        if self.is_set():
            raise Interrupted("stop requested")
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False
