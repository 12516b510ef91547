"""More workers than PostgreSQL has connections, through PgBouncer in transaction mode.

PostgreSQL allows 100 connections by default and a worker holds two or three (its storage, its
epoch rows, the write-behind's flushes): past about 30 workers the server refuses more. A
PgBouncer in transaction mode lends a few server connections to many clients, one transaction
at a time. Here 150 workers (threads in 3 processes, each with its own `WorkerStorage` and epoch
engine, as a worker process has) run one trial each through a PgBouncer of 20 server
connections. Skips when the `pgbouncer` binary is absent (Debian: apt-get install pgbouncer).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa

from studies.storage import (
    BufferedEpochStore,
    WorkerStorage,
    create_engine,
    ensure_tables,
    open_storage,
)
from tests.studies_tests.conftest import POSTGRES, throwaway_database
from trainer import EpochResult

PROCESSES = 3
THREADS = 50  # workers per process: 150 in all, each with several client connections
EPOCHS = 3
POOL = 20  # PgBouncer's server connections
INI = """\
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
pool_mode = transaction
default_pool_size = {pool}
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
"""


def _binary() -> str | None:
    found = shutil.which("pgbouncer")
    if found is None and os.access("/usr/sbin/pgbouncer", os.X_OK):
        found = "/usr/sbin/pgbouncer"
    return found


@pytest.fixture
def pgbouncer(tmp_path: Path) -> Iterator[Callable[[int], int]]:
    """Starts PgBouncers in transaction mode with a given server pool; each returns its port."""
    binary = _binary()
    if binary is None:
        pytest.skip("no pgbouncer binary (Debian: apt-get install pgbouncer; .ci/run does)")
    started: list[subprocess.Popen[bytes]] = []

    def start(pool: int) -> int:
        folder = tmp_path / f"pgbouncer{len(started)}"
        folder.mkdir(mode=0o755)  # readable by the postgres user it drops to as root
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        (folder / "users.txt").write_text('"postgres" ""\n')
        ini = folder / "pgbouncer.ini"
        ini.write_text(INI.format(port=port, folder=folder, pool=pool))
        user = ["-u", "postgres"] if os.geteuid() == 0 else []
        log = folder / "pgbouncer.log"  # a file, not a pipe: a full pipe would stop pgbouncer
        with log.open("wb") as sink:
            process = subprocess.Popen([str(binary), *user, str(ini)], stdout=sink, stderr=sink)
        started.append(process)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                return port
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pgbouncer did not start: {log.read_text()}")
            time.sleep(0.05)

    yield start
    for process in started:
        process.terminate()
        process.wait(10)


def _epoch(epoch: int, loss: float) -> EpochResult:
    return EpochResult(
        epoch=epoch,
        train_loss=loss,
        train_accuracy=0.5,
        dev_loss=loss,
        dev_accuracy=0.5,
        lr=0.01,
        grad_norm_mean={"0.weight": 1.0},
        grad_norm_max={"0.weight": 2.0},
        seconds=0.0,
    )


def _worker(url: str, barrier: threading.Barrier, errors: list[str]) -> None:
    """A worker: its own storage and epoch engine; one trial, a report and a row per epoch."""
    storage = WorkerStorage(url, heartbeat_interval=10, grace_period=60, flush_interval=0.2)
    engine = create_engine(url)
    try:
        epochs = BufferedEpochStore(engine, storage.writes)
        study = optuna.load_study(study_name="s", storage=storage)
        barrier.wait()  # every worker holds its connections before any trial starts
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        for epoch in range(EPOCHS):
            time.sleep(0.05)
            trial.report(x + epoch, epoch)
            epochs.add(trial._trial_id, _epoch(epoch, x + epoch))
            trial.should_prune()
        study.tell(trial, x)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        barrier.abort()
    finally:
        storage.close()
        engine.dispose()


def _process(url: str, out: Any) -> None:
    errors: list[str] = []
    barrier = threading.Barrier(THREADS, timeout=120)
    threads = [
        threading.Thread(target=_worker, args=(url, barrier, errors)) for _ in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(errors)


def _server_connections(name: str, stop: threading.Event, peak: list[int]) -> None:
    admin = sa.create_engine(f"{POSTGRES}/postgres")
    query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name")
    with admin.connect() as connection:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], int(connection.execute(query, {"name": name}).scalar() or 0))
    admin.dispose()


def test_a_storage_opens_behind_pgbouncer_with_a_single_server_connection(
    pgbouncer: Callable[[int], int],
) -> None:
    # Optuna's schema check held a connection in a transaction while it opened another: with
    # every server connection held that way, workers starting together waited forever.
    with throwaway_database() as direct:
        open_storage(direct).engine.dispose()  # the tables
        name = direct.rsplit("/", 1)[1]
        url = f"postgresql://postgres@127.0.0.1:{pgbouncer(1)}/{name}"
        opened: list[Any] = []
        thread = threading.Thread(target=lambda: opened.append(open_storage(url)), daemon=True)
        thread.start()
        thread.join(30)
        assert opened, "opening the storage waited 30 s for a second server connection"
        opened[0].engine.dispose()


REPEATS = 10  # runs of one statement on one connection: psycopg 3 prepares it after 5


def _rerun_on_another_server_connection(engine: sa.Engine, holder: sa.Engine) -> str | None:
    """Runs a statement often on one connection, then again on another server connection.

    The statement runs `REPEATS` times in a transaction (psycopg 3's default prepares it on
    that server connection); after the commit, `holder` takes that idle server connection in a
    transaction of its own, so PgBouncer hands the next run a new one. Returns the error of
    that run, None when it worked.
    """
    query = sa.text("SELECT CAST(:x AS integer) + 1")
    with engine.connect() as connection:
        for x in range(REPEATS):
            connection.execute(query, {"x": x})
        connection.commit()
        with holder.connect() as holding:
            holding.execute(sa.text("SELECT 1"))
            try:
                connection.execute(query, {"x": 0})
            except sa.exc.DBAPIError as exc:
                return str(exc.orig).splitlines()[0]
    return None


@pytest.mark.parametrize("opened_by", ["create_engine", "open_storage"])
def test_hpstudys_engines_prepare_no_statement_that_pgbouncer_cannot_carry(
    pgbouncer: Callable[[int], int], opened_by: str
) -> None:
    with throwaway_database() as direct:
        # Each on a PgBouncer of its own: server connections that held the same statement
        # under the same name (psycopg 3 numbers them per connection) would hide the failure.
        name = direct.rsplit("/", 1)[1]
        control, url = (f"postgresql://postgres@127.0.0.1:{pgbouncer(2)}/{name}" for _ in "ab")
        plain, holder = sa.create_engine(control), sa.create_engine(control)
        failed = _rerun_on_another_server_connection(plain, holder)
        plain.dispose()
        holder.dispose()
        if failed is None:  # PgBouncer 1.21+ with max_prepared_statements set carries them
            pytest.skip("this PgBouncer carries prepared statements: nothing to guard against")
        assert "prepared statement" in failed
        engine = create_engine(url) if opened_by == "create_engine" else open_storage(url).engine
        holder = sa.create_engine(url)
        try:
            assert _rerun_on_another_server_connection(engine, holder) is None
        finally:
            engine.dispose()
            holder.dispose()


@pytest.mark.slow
def test_150_workers_report_through_pgbouncer_on_20_server_connections(
    pgbouncer: Callable[[int], int],
) -> None:
    pgbouncer_port = pgbouncer(POOL)
    with throwaway_database() as direct:
        rdb = open_storage(direct)
        optuna.create_study(study_name="s", storage=rdb)
        rdb.engine.dispose()
        engine = create_engine(direct)
        ensure_tables(engine)
        engine.dispose()  # its idle connection would count as a server connection below
        name = direct.rsplit("/", 1)[1]
        url = f"postgresql://postgres@127.0.0.1:{pgbouncer_port}/{name}"

        context = multiprocessing.get_context("fork")
        out = context.Queue()
        processes = [context.Process(target=_process, args=(url, out)) for _ in range(PROCESSES)]
        for process in processes:
            process.start()  # before the watching thread: a fork copies no running thread
        stop, peak = threading.Event(), [0]
        watch = threading.Thread(target=_server_connections, args=(name, stop, peak))
        watch.start()
        try:
            errors = [e for _ in processes for e in out.get(timeout=180)]
        finally:
            stop.set()
            watch.join()
            for process in processes:
                process.join(30)
        with engine.connect() as connection:
            states = {
                state: count
                for state, count in connection.execute(
                    sa.text("SELECT state, count(*) FROM trials GROUP BY state")
                )
            }
            values = connection.execute(sa.text("SELECT count(*) FROM trial_intermediate_values"))
            rows = connection.execute(sa.text("SELECT count(*) FROM hpstudy_epochs"))
            counts = (values.scalar(), rows.scalar())
        engine.dispose()

    workers = PROCESSES * THREADS
    assert errors == []
    assert states == {"COMPLETE": workers}  # none left RUNNING, none lost
    assert counts == (workers * EPOCHS, workers * EPOCHS)  # every report and epoch row
    assert 0 < peak[0] <= POOL
