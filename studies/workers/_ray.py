"""`hpstudy run --ray`: the study's workers as Ray tasks, on a local Ray or on a cluster.

Each task runs the same worker loop as `hpstudy worker` (`_ray_task.run_ray_worker`), so
sampling, pruning, heartbeats, checkpoints, kept weights, targets and warm starts behave as
with local processes; the watch and the stop are the pool base's (`_pool`), progress and
recovery `hpstudy run`'s (`_runner`).

One retry mechanism only: tasks run with `max_retries=0`. A node that dies takes its tasks'
trials with it; their heartbeats stop, and a worker on another node fails them after the
grace period and re-queues them, to resume from their checkpoints. A Ray retry would start a
second copy of the same trial beside that re-queued one.

On a cluster (an address), the spec's folder travels with the job as Ray's `working_dir`
(up to `MAX_FOLDER_MB`); without one, Ray starts on this machine and the workers read the
folder where it is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from studies._errors import ParameterError
from studies.spec import RaySettings, StudySpec
from studies.workers._pool import STOP_GRACE, WorkerOutcome, WorkerPool
from studies.workers._ray_checks import (
    EXCLUDES,
    check_cluster,
    check_spec,
    import_ray,
    shipped_folder,
)
from studies.workers._ray_task import run_ray_worker
from studies.workers._signals import Stop

LOCAL_OBJECT_STORE = 80 * 1024 * 1024  # bytes; the tasks pass only a URL and small results
# Ray 2.5x warns on every new local instance that it turned token authentication on (its
# default); on a Ray that lives only as long as the run, the line tells the user nothing.
TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


def connect(
    ray: ModuleType, settings: RaySettings, workers: int, *, spec: StudySpec | None = None
) -> bool:
    """Joins the cluster at `settings.address`, or starts a Ray on this machine.

    Joining a cluster, the job takes `spec`'s folder along (`runtime_env`; Ray accepts a
    local folder only for a whole job, not per task). A driver that is connected already (a
    notebook, a test) is used as it is: its job's own `runtime_env` applies.

    Returns:
        Whether this call connected (and so should disconnect at the end).
    """
    if ray.is_initialized():
        return False
    common: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if settings.address is not None:
        shipped = runtime_env(spec, settings) if spec is not None else {}
        ray.init(address=settings.address, runtime_env=shipped or None, **common)
        return True
    # Ray reaches its own services on 127.0.0.1, not on the machine's network address, and
    # its workers run at the default priority (Ray's own default nices them to 15, behind
    # anything else on the machine; local worker processes are not niced either).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")
    cpus = max(os.cpu_count() or 1, workers * settings.cpus_per_worker)
    token = logging.getLogger(TOKEN_LOGGER)
    level = token.level
    token.setLevel(logging.ERROR)
    try:
        ray.init(
            address="local",  # a new instance, even where RAY_ADDRESS or a running cluster is
            num_cpus=cpus,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE,
            **common,
        )
    finally:
        token.setLevel(level)
    return True


@contextlib.contextmanager
def ray_session(spec: StudySpec, settings: RaySettings, workers: int) -> Iterator[float]:
    """Ray joined or started, and the study refused if it cannot run there, before any study
    exists; disconnects (and a Ray started here ends) when the block ends.

    Yields:
        The seconds that starting or joining Ray and the checks took.

    Raises:
        StudyError: without the extra, or for what `check_spec` and `check_cluster` refuse.
        KeyboardInterrupt: for Ctrl-C or SIGTERM while Ray starts.
    """
    ray = import_ray()
    check_spec(spec, settings)
    stop = Stop()
    if threading.current_thread() is threading.main_thread():
        stop.install()  # ray.init may swallow a Ctrl-C that comes while it starts
    started = time.monotonic()
    try:
        connected = connect(ray, settings, workers, spec=spec)
    except Exception as exc:  # ConnectionError, RuntimeError, ... with Ray's own wording
        where = f"the Ray cluster at {settings.address}" if settings.address else "a local Ray"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ParameterError(
            f"cannot start or join {where}: {reason}. Check the address (auto: the cluster "
            f"this machine belongs to, started with ray start; ray://head:10001: Ray Client "
            f"on the head), or leave it out (`ray=True`) to start a Ray on this machine"
        ) from None
    finally:
        stop.uninstall()
    try:
        if stop.is_set():
            raise KeyboardInterrupt
        check_cluster(spec, settings, ray.nodes())
        yield time.monotonic() - started
    finally:
        if connected:
            ray.shutdown()


def runtime_env(spec: StudySpec, settings: RaySettings) -> dict[str, Any]:
    """The spec's folder as the job's working folder, on a cluster; nothing secret."""
    folder = shipped_folder(spec, settings)
    if folder is None:
        return {}
    return {"working_dir": str(folder), "excludes": list(EXCLUDES)}


def describe(settings: RaySettings) -> str:
    where = "a local Ray" if settings.address is None else f"Ray at {settings.address}"
    gpus = f", {settings.gpus_per_worker:g} GPU" if settings.gpus_per_worker else ""
    return f"{where}, {settings.cpus_per_worker:g} CPU{gpus} each"


class RayPool(WorkerPool):
    """The Ray tasks of one `hpstudy run --ray`; a soft stop is `ray.cancel`, which the task
    takes as Ctrl-C, and a forced one `ray.cancel(force=True)`."""

    def __init__(
        self,
        spec: StudySpec,
        workers: int,
        logs: Path,
        settings: RaySettings,
        *,
        grace: float = STOP_GRACE,
    ) -> None:
        super().__init__(workers, grace=grace)
        self.spec, self.logs, self.settings = spec, logs, settings
        self.refs: list[Any] = []
        self.ray = import_ray()
        self.task = self.ray.remote(run_ray_worker)  # one remote function: exported once
        self.url_box: list[Any] = []

    def start(self, index: int) -> None:
        if not self.url_box:
            self.url_box = [self.ray.put(self.spec.storage)]  # by reference: never shown
        options: dict[str, Any] = {
            "num_cpus": self.settings.cpus_per_worker,
            "num_gpus": self.settings.gpus_per_worker,
            "max_retries": 0,  # our heartbeat + re-queue is the one retry (see the module)
            "retry_exceptions": False,
            "name": f"hpstudy-worker-{index}",
        }
        task = self.task.options(**options)
        threads = max(1, int(self.settings.cpus_per_worker))
        timeout = self.spec.timeout
        self.refs.append(
            task.remote(self.spec.name, self.url_box, index=index, threads=threads, timeout=timeout)
        )

    def running(self) -> list[int]:
        if not self.refs:
            return []
        _, pending = self.ray.wait(self.refs, num_returns=len(self.refs), timeout=0)
        return [i for i, ref in enumerate(self.refs) if ref in pending]

    def signal(self, index: int) -> None:
        self.ray.cancel(self.refs[index], force=False)

    def kill(self, index: int) -> None:
        ref = self.refs[index]
        self.ray.cancel(ref, force=True)
        self.ray.wait([ref], timeout=self.grace)  # gone before the caller re-queues its trial

    def outcome(self, index: int) -> WorkerOutcome:
        """The task's own outcome; one that raised, or whose process or node died, failed. A
        failure's reason also goes to `ray-worker-INDEX.log` beside the process logs."""
        try:
            outcome = self.ray.get(self.refs[index])
            assert isinstance(outcome, WorkerOutcome)
        except Exception as exc:  # the task raised, or its process or node died
            outcome = WorkerOutcome(1, error=f"{type(exc).__name__}: {exc}")
        if outcome.error:
            (self.logs / f"ray-worker-{index}.log").write_text(outcome.error + "\n")
        return outcome
