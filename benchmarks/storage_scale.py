"""The storage at hundreds of workers: connections, report cost, flushes, and the view's refresh.

**Workers.** Each simulated worker is a thread with its own `WorkerStorage` and its own engine
for the epoch rows (`BufferedEpochStore` on the storage's write-behind), as a worker process
has; the threads are spread over a few forked processes so that 2 cores run them in parallel.
A worker asks for a trial (RandomSampler), reports every epoch (`trial.report`, our epoch row,
`should_prune` with the median pruner) and tells; training is a sleep per epoch. Measured:
the server connections to the benchmark's database (peak of `pg_stat_activity`, sampled every
50 ms), the cost of one report (median, p99: report + epoch row + prune decision), the
write-behind's flush transactions per second, lock conflicts (retried) and errors (raised),
reports missing from the database afterwards, and trials left RUNNING.

Routes: `direct` (the default engines: a QueuePool per engine, straight to PostgreSQL),
`nullpool` (the same with SQLAlchemy's NullPool: a connection per checkout), `pgbouncer` (the
default engines through a PgBouncer in transaction mode, started here on a free port).

**The view's refresh.** A study of N finished trials (written in bulk by SQL); one worker's
`WorkerStorage` reads it once, then, 30 times, another process adds 10 trials and finishes 10
RUNNING ones and the worker reads the study again (`get_all_trials`, refresh=0): that is the
cost of a refresh. Also the cost of one report plus the prune decision's read on a trial
running in that worker (every report changes what `get_all_trials` returns).

    .venv/bin/python benchmarks/storage_scale.py --workers 64 256 1000 \\
        --via direct nullpool pgbouncer --json benchmarks/storage_scale.json
    .venv/bin/python benchmarks/storage_scale.py --workers --trials-in-study 10000 100000
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import multiprocessing as mp
import os
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

import studies.storage._urls as urls
from studies.storage import (
    BufferedEpochStore,
    create_engine,
    ensure_tables,
    open_storage,
)
from studies.storage._worker_storage import REFRESH, WorkerStorage
from trainer import EpochResult

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
ROUTES = ("direct", "nullpool", "pgbouncer")
STUDY = "scale"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- databases and PgBouncer ----------------------------------------------------------------------
def _admin() -> sa.Engine:
    return sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh database on the server; yields its name, drops it afterwards."""
    name = f"hpstudy_scale_{uuid.uuid4().hex[:8]}"
    admin = _admin()
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PGBOUNCER_INI = """\
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
max_client_conn = {clients}
query_wait_timeout = {wait}
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
"""


@contextlib.contextmanager
def pgbouncer(*, pool: int = 40, clients: int = 10000, wait: int = 0) -> Iterator[int]:
    """A PgBouncer in transaction mode in front of the local server; yields its port."""
    binary = pgbouncer_binary()
    if binary is None:
        raise SystemExit("pgbouncer is not installed: apt-get install -y pgbouncer")
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        Path(folder, "users.txt").write_text('"postgres" ""\n')
        ini = Path(folder, "pgbouncer.ini")
        settings = {"port": port, "folder": folder, "pool": pool, "clients": clients, "wait": wait}
        ini.write_text(PGBOUNCER_INI.format(**settings))
        os.chmod(folder, 0o755)
        user = ["-u", "postgres"] if os.geteuid() == 0 else []
        log = Path(folder, "pgbouncer.log")  # a file, not a pipe: a full pipe stops pgbouncer
        with log.open("wb") as sink:
            process = subprocess.Popen([binary, *user, str(ini)], stdout=sink, stderr=sink)
        try:
            deadline = time.monotonic() + 10
            while True:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)):
                    break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {log.read_text()}")
                time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait(10)


class ConnectionWatch:
    """Samples the server connections to one database (pg_stat_activity) in a thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.peak = 0
        self._stop = threading.Event()
        self._engine = _admin()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()

    def _run(self) -> None:
        query = sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name")
        with self._engine.connect() as connection:
            while not self._stop.wait(0.05):
                now = int(connection.execute(query, {"name": self.name}).scalar() or 0)
                self.peak = max(self.peak, now)

    def commits(self) -> int:
        query = sa.text("SELECT xact_commit FROM pg_stat_database WHERE datname = :name")
        with self._engine.connect() as connection:
            return int(connection.execute(query, {"name": self.name}).scalar() or 0)


# -- the workers ----------------------------------------------------------------------------------
def _use_nullpool() -> None:
    """Every engine hpstudy makes from here on opens a connection per checkout."""
    plain = urls.engine_kwargs

    def kwargs(url: str) -> dict[str, object]:
        return {**plain(url), "poolclass": NullPool}

    urls.engine_kwargs = kwargs  # type: ignore[assignment]


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


def _worker(url: str, index: int, args: Any, ready: Any, go: Any, out: Any) -> None:
    """One simulated worker: its own storage and engine, a few trials of a few epochs."""
    result: dict[str, Any] = {"costs": [], "reports": 0, "retries": 0, "batches": 0}
    result["errors"] = []
    storage = engine = study = None
    try:
        storage = WorkerStorage(url, heartbeat_interval=10, grace_period=60, refresh=args.refresh)
        engine = create_engine(url)
        epochs = BufferedEpochStore(engine, storage.writes)
        study = optuna.load_study(
            study_name=STUDY,
            storage=storage,
            sampler=optuna.samplers.RandomSampler(seed=index),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
        )
    except Exception as exc:
        result["errors"].append(f"start: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    ready.put(index)
    go.wait()
    try:
        if study is None:
            return
        for _ in range(args.trials_per_worker):
            trial = study.ask()
            storage.record_heartbeat(trial._trial_id)
            lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
            pruned = False
            for epoch in range(args.epochs):
                time.sleep(args.sleep)
                loss = abs(lr - 0.01) + 1.0 / (1 + epoch)
                tic = time.perf_counter()
                trial.report(loss, epoch)
                epochs.add(trial._trial_id, _epoch(epoch, loss))
                pruned = trial.should_prune()
                result["costs"].append(time.perf_counter() - tic)
                result["reports"] += 1
                if pruned:
                    break
            state = optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE
            study.tell(trial, None if pruned else loss, state=state)
    except Exception as exc:
        result["errors"].append(f"run: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        if storage is not None:
            try:
                storage.close()
            except Exception as exc:
                result["errors"].append(f"close: {type(exc).__name__}: {exc}")
            result["retries"] = storage.retries
            result["batches"] = storage.writes.batches
        if engine is not None:
            engine.dispose()
        out.put(result)


def _process(
    url: str, first: int, count: int, args: Any, begin: Any, ready: Any, go: Any, out: Any
) -> None:
    begin.wait()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    threading.stack_size(512 * 1024)
    if args.via == "nullpool":
        _use_nullpool()
    local: queue.Queue[Any] = queue.Queue()
    threads = [
        threading.Thread(target=_worker, args=(url, first + i, args, ready, go, local))
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results = [local.get() for _ in threads]
    out.put(
        {
            "costs": [c for r in results for c in r["costs"]],
            **{k: sum(r[k] for r in results) for k in ("reports", "retries", "batches")},
            "errors": [e for r in results for e in r["errors"]],
        }
    )


def run_workers(workers: int, args: Any) -> dict[str, Any]:
    """One run: `workers` simulated workers on a fresh database through `args.via`."""
    with database() as name, contextlib.ExitStack() as stack:
        direct = f"{POSTGRES}/{name}"
        rdb = open_storage(direct)
        optuna.create_study(study_name=STUDY, storage=rdb)
        rdb.engine.dispose()
        engine = create_engine(direct)
        ensure_tables(engine)
        engine.dispose()
        url = direct
        if args.via == "pgbouncer":
            port = stack.enter_context(pgbouncer(pool=args.pool_size, wait=args.query_wait))
            url = f"postgresql://postgres@127.0.0.1:{port}/{name}"
        processes = min(args.processes, workers)
        context = mp.get_context("fork")
        begin, ready, go, out = context.Event(), context.Queue(), context.Event(), context.Queue()
        shares = [workers // processes + (i < workers % processes) for i in range(processes)]
        starts = [sum(shares[:i]) for i in range(processes)]
        procs = [
            context.Process(target=_process, args=(url, s, n, args, begin, ready, go, out))
            for s, n in zip(starts, shares, strict=True)
        ]
        for process in procs:
            process.start()  # before the watch's thread: a fork copies no running thread
        watch = stack.enter_context(ConnectionWatch(name))
        commits_before = watch.commits()
        tic = time.perf_counter()
        begin.set()
        for _ in range(workers):
            ready.get(timeout=args.timeout)
        startup = time.perf_counter() - tic
        started = time.perf_counter()
        go.set()
        parts = [out.get(timeout=args.timeout) for _ in procs]
        seconds = time.perf_counter() - started
        for process in procs:
            process.join()
        commits = watch.commits() - commits_before
        peak = watch.peak
        counts = _count(direct)
    costs = [c for p in parts for c in p["costs"]]
    errors = [e for p in parts for e in p["errors"]]
    reports = sum(p["reports"] for p in parts)
    return {
        "via": args.via,
        "workers": workers,
        "processes": processes,
        "refresh_s": args.refresh,
        "pgbouncer_query_wait_s": args.query_wait if args.via == "pgbouncer" else None,
        "trials_per_worker": args.trials_per_worker,
        "epochs": args.epochs,
        "server_connections_peak": peak,
        "report_median_ms": 1000 * statistics.median(costs) if costs else None,
        "report_p99_ms": 1000 * percentile(costs, 0.99) if costs else None,
        "reports": reports,
        "flushes": sum(p["batches"] for p in parts),
        "flushes_per_s": sum(p["batches"] for p in parts) / seconds,
        "commits_per_s": commits / seconds,
        "lock_retries": sum(p["retries"] for p in parts),
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "values_in_db": counts["values"],
        "epoch_rows_in_db": counts["epochs"],
        "lost_reports": reports - counts["values"],
        "lost_epoch_rows": reports - counts["epochs"],
        "running_left": counts["RUNNING"],
        "finished": counts["COMPLETE"] + counts["PRUNED"],
        "startup_s": startup,
        "seconds": seconds,
        "exit_codes": [p.exitcode for p in procs],
    }


def _count(url: str) -> dict[str, int]:
    """Trials per state, intermediate values and epoch rows, read back directly."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        states = dict(
            connection.execute(sa.text("SELECT state, count(*) FROM trials GROUP BY state")).all()
        )
        values = connection.execute(sa.text("SELECT count(*) FROM trial_intermediate_values"))
        epochs = connection.execute(sa.text("SELECT count(*) FROM hpstudy_epochs"))
        counts = {"values": int(values.scalar() or 0), "epochs": int(epochs.scalar() or 0)}
    engine.dispose()
    for state in optuna.trial.TrialState:
        counts[state.name] = int(states.get(state.name, 0))
    return counts


# -- the view's refresh ---------------------------------------------------------------------------
def _fill(url: str, n: int) -> int:
    """A study of `n` finished trials (one param, one value, 3 intermediate values each)."""
    rdb = open_storage(url)
    study = optuna.create_study(study_name=STUDY, storage=rdb)
    distribution = json.dumps(
        {"name": "FloatDistribution", "attributes": {"low": 0.0001, "high": 1.0, "log": True}}
    )
    with rdb.engine.begin() as connection:
        sid = {"sid": study._study_id}
        connection.execute(
            sa.text(
                "INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) "
                "SELECT g, :sid, 'COMPLETE', now(), now() FROM generate_series(0, :n - 1) g"
            ),
            {**sid, "n": n},
        )
        connection.execute(
            sa.text(
                "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)"
                " SELECT trial_id, 'lr', random(), :d FROM trials WHERE study_id = :sid"
            ),
            {**sid, "d": distribution},
        )
        connection.execute(
            sa.text(
                "INSERT INTO trial_values (trial_id, objective, value, value_type) "
                "SELECT trial_id, 0, random(), 'FINITE' FROM trials WHERE study_id = :sid"
            ),
            sid,
        )
        connection.execute(
            sa.text(
                "INSERT INTO trial_intermediate_values "
                "(trial_id, step, intermediate_value, intermediate_value_type) "
                "SELECT trial_id, s, random(), 'FINITE' FROM trials, generate_series(0, 2) s "
                "WHERE study_id = :sid"
            ),
            sid,
        )
    rdb.engine.dispose()
    return int(study._study_id)


def measure_refresh(n: int, args: Any) -> dict[str, Any]:
    """The cost of refreshing one worker's view of a study of `n` trials, and of a report."""
    with database() as name:
        url = f"{POSTGRES}/{name}"
        study_id = _fill(url, n)
        other = open_storage(url)
        running = [other.create_new_trial(study_id) for _ in range(10)]
        storage = WorkerStorage(url, refresh=0, flush_interval=1.0)
        tic = time.perf_counter()
        storage.get_all_trials(study_id, deepcopy=False)
        first = time.perf_counter() - tic
        mine = storage.create_new_trial(study_id)
        refresh, report = [], []
        for round_ in range(args.rounds):
            # Another worker: 10 trials finish, 10 new ones start.
            for trial_id in running:
                other.set_trial_state_values(trial_id, optuna.trial.TrialState.COMPLETE, [1.0])
            running = [other.create_new_trial(study_id) for _ in range(10)]
            tic = time.perf_counter()
            trials = storage.get_all_trials(study_id, deepcopy=False)
            refresh.append(time.perf_counter() - tic)
            # This worker's report and its pruner's read, without a database read between.
            storage.refresh = 3600.0
            tic = time.perf_counter()
            storage.set_trial_intermediate_value(mine, round_, 1.0)
            storage.get_all_trials(
                study_id, deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
            )
            report.append(time.perf_counter() - tic)
            storage.refresh = 0
        expected = n + 10 * (args.rounds + 1) + 1
        if len(trials) != expected:
            raise RuntimeError(f"the view has {len(trials)} trials, the study {expected}")
        storage.close()
        other.engine.dispose()
    return {
        "trials_in_study": n,
        "first_read_s": first,
        "refresh_median_ms": 1000 * statistics.median(refresh),
        "refresh_p90_ms": 1000 * percentile(refresh, 0.9),
        "report_and_read_median_ms": 1000 * statistics.median(report),
        "rounds": args.rounds,
    }


def main() -> None:
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1 PID: where it hangs
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="*", default=[64, 256, 1000])
    parser.add_argument("--via", nargs="+", default=["pgbouncer"], choices=ROUTES)
    parser.add_argument("--trials-in-study", type=int, nargs="*", default=[])
    parser.add_argument("--trials-per-worker", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.2, help="seconds per fake epoch")
    parser.add_argument(
        "--refresh", type=float, default=REFRESH, help="seconds a worker's view may lag"
    )
    parser.add_argument("--processes", type=int, default=4, help="processes the threads use")
    parser.add_argument("--pool-size", type=int, default=40, help="PgBouncer's server pool")
    parser.add_argument(
        "--query-wait",
        type=int,
        default=0,
        help="PgBouncer's query_wait_timeout in seconds (0: wait as long as it takes)",
    )
    parser.add_argument("--rounds", type=int, default=30, help="refreshes measured per size")
    parser.add_argument("--timeout", type=float, default=600, help="seconds before giving up")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"# {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    rows: list[dict[str, Any]] = []
    routes = list(args.via)
    for workers in args.workers:
        for via in routes:
            args.via = via
            row = run_workers(workers, args)
            rows.append(row)
            print(json.dumps({k: _round(v) for k, v in row.items()}), flush=True)
    for n in args.trials_in_study:
        row = measure_refresh(n, args)
        rows.append(row)
        print(json.dumps({k: _round(v) for k, v in row.items()}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def _round(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


if __name__ == "__main__":
    sys.exit(main())
