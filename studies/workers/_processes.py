"""Workers as `hpstudy worker` processes on this machine, each with its log file.

A worker process gets its share of the cores, on a GPU machine its own device, the storage URL
in its environment (never on its command line) and the run's pid (`PARENT_ENV`), so that it
stops when the run that started it is gone. Its outcome is read back from its exit status and
its log: the "hpstudy worker: error:" line it ends with on a user error, and the summary line
it prints at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from studies.spec import StudySpec
from studies.storage import STORAGE_ENV, sqlite_path
from studies.workers._pool import STOP_GRACE, WorkerOutcome, WorkerPool
from studies.workers._worker import WorkerSummary

PARENT_ENV = "HPSTUDY_PARENT_PID"  # the pid of the `hpstudy run` that started a worker
# How `hpstudy worker` starts the one line it prints for a user error (the CLI's own form);
# the summary line it ends with is `WorkerSummary.line`, read back by `WorkerSummary.parse`.
WORKER_ERROR = "hpstudy worker: error:"
_ERROR_LINES = 20  # lines of a worker's error message kept in its outcome


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
    """Thread limits, on a GPU machine a device per worker (round robin), the storage URL, and
    this process's pid (the worker stops once this process is gone).

    The URL goes in HPSTUDY_STORAGE: a process's environment is readable by its owner only,
    its command line by every user of the machine (`ps`).
    """
    env = dict(os.environ)
    if storage is not None:
        env[STORAGE_ENV] = storage
    threads = str(threads_per_worker(workers))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, HPSTUDY_THREADS=threads)
    env[PARENT_ENV] = str(os.getpid())
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


class ProcessPool(WorkerPool):
    """`hpstudy worker` processes, in their own sessions: Ctrl-C reaches the run only, which
    stops them in order."""

    def __init__(
        self, spec: StudySpec, workers: int, logs: Path, *, grace: float = STOP_GRACE
    ) -> None:
        super().__init__(workers, grace=grace)
        self.spec, self.logs = spec, logs
        self.processes: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self.offsets: list[int] = []  # where each log stood before this run: it appends

    def log(self, index: int) -> Path:
        return self.logs / f"worker-{index}.log"

    def start(self, index: int) -> None:
        log = open(self.log(index), "ab")  # noqa: SIM115 (open while the worker runs: `close`)
        self.offsets.append(log.tell())
        process = subprocess.Popen(
            worker_command(self.spec, index, self.spec.timeout),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=worker_env(index, self.workers, storage=self.spec.storage),
            start_new_session=True,
        )
        self.processes.append((process, log))

    def running(self) -> list[int]:
        return [i for i, (process, _) in enumerate(self.processes) if process.poll() is None]

    def signal(self, index: int) -> None:
        self.processes[index][0].send_signal(signal.SIGTERM)

    def kill(self, index: int) -> None:
        process = self.processes[index][0]
        process.kill()
        process.wait()

    def outcome(self, index: int) -> WorkerOutcome:
        code = self.processes[index][0].returncode if index < len(self.processes) else None
        text = []
        if index < len(self.offsets):
            with open(self.log(index), "rb") as log:
                log.seek(self.offsets[index])
                text = log.read().decode(errors="replace").splitlines()
        errors = [i for i, line in enumerate(text) if line.startswith(WORKER_ERROR)]
        error = ""
        if errors:
            said = "\n".join(text[errors[-1] : errors[-1] + _ERROR_LINES])
            error = said.removeprefix(WORKER_ERROR).strip()
        summaries = [s for s in map(WorkerSummary.parse, text) if s is not None]
        if not summaries:
            return WorkerOutcome(code, error=error)
        last = summaries[-1]
        return WorkerOutcome(code, trials=last.trials, interrupted=last.interrupted, error=error)

    def close(self) -> None:
        for _, log in self.processes:
            log.close()
