"""The pool base: a backend that only starts, polls, signals, kills and reads an outcome gets
the watch, the soft-then-forced stop and the outcomes from `WorkerPool`.

The backend here runs real processes that either obey SIGTERM or ignore it, as a worker in
the middle of a database write (or a hung one) would.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from studies.workers import WorkerOutcome, WorkerPool

OBEYS = "import time; time.sleep(60)"  # SIGTERM's default: it ends
IGNORES = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
ENDS = "import sys; sys.exit(3)"


class Scripts(WorkerPool):
    """Each worker a `python -c` script: a whole backend in five methods."""

    def __init__(self, scripts: list[str], *, grace: float) -> None:
        super().__init__(len(scripts), grace=grace, poll=0.05)
        self.scripts = scripts
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, index: int) -> None:
        self.processes.append(subprocess.Popen([sys.executable, "-c", self.scripts[index]]))

    def running(self) -> list[int]:
        return [i for i, p in enumerate(self.processes) if p.poll() is None]

    def signal(self, index: int) -> None:
        self.processes[index].send_signal(signal.SIGTERM)

    def kill(self, index: int) -> None:
        self.processes[index].kill()
        self.processes[index].wait()

    def outcome(self, index: int) -> WorkerOutcome:
        return WorkerOutcome(self.processes[index].returncode)


def test_workers_that_end_are_watched_to_the_end_with_their_outcomes() -> None:
    shown: list[int] = []
    with Scripts([ENDS, "pass"], grace=5) as pool:
        assert pool.watch(lambda: shown.append(1))
    assert [outcome.code for outcome in pool.outcomes()] == [3, 0]
    assert [outcome.ok for outcome in pool.outcomes()] == [False, True]


def test_a_stop_signals_every_worker_and_kills_only_those_still_running_after_the_grace() -> None:
    with Scripts([OBEYS, IGNORES], grace=1.0) as pool:
        time.sleep(1.0)  # both scripts have set themselves up
        pool.stop_requested.set()  # as Ctrl-C does
        assert not pool.watch(lambda: None)
        started = time.monotonic()
        assert pool.stop() == 1  # the one that ignored SIGTERM
        assert time.monotonic() - started < 5
    assert [outcome.code for outcome in pool.outcomes()] == [-signal.SIGTERM, -signal.SIGKILL]


def test_the_stop_handler_is_the_pools_only_while_it_is_open() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with Scripts(["pass"], grace=1.0) as pool:
        assert signal.getsignal(signal.SIGTERM) != before
        pool.watch(lambda: None)
    assert signal.getsignal(signal.SIGTERM) == before
