"""Parallel workers on one study database: hpstudy's workers against plain Optuna on SQLite.

Each worker is a process. Training is replaced by a short sleep per epoch (20 epochs a trial),
so what is measured is the study machinery: for hpstudy the real worker loop, `Objective`,
`Reporter`, epoch table, checkpoints and storage stack (`run_worker` with `trainer.fit`
swapped for the sleep); for plain Optuna `study.optimize` on a default `sqlite:///` URL with
`trial.report` + `trial.should_prune()`. Both use TPE and the median pruner.

Reported per run: trials/s (from the moment all workers are ready to the last trial's end),
the median and p99 cost of one epoch report (for hpstudy the whole `Reporter` call: epoch row,
report and prune decision; for Optuna report + should_prune), lock errors (hpstudy: storage
calls that met a lock conflict and were retried; Optuna: exceptions), and trials left RUNNING
or WAITING ("stuck") or missing ("lost") once every worker has exited.

    .venv/bin/python benchmarks/parallel_storage.py         # every mode, W = 1, 2, 4, 8, 16
    .venv/bin/python benchmarks/parallel_storage.py --workers 8 16 --modes optuna-sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import queue
import statistics
import sys
import tempfile
import time
import types
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa

import studies.workers._objective
import studies.workers._worker
import trainer
from search_space import suggest
from studies import load_spec
from studies.storage import create_or_resume, open_storage
from studies.workers import WorkerOptions, run_worker
from trainer import EpochResult, Status

EPOCHS = 20
PRUNER = {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 3}
MODES = ("optuna-sqlite", "hpstudy-sqlite", "hpstudy-postgres")
# Plain Optuna through its gRPC storage proxy in front of the SQLite file (needs grpcio): an
# alternative that was measured, not a default mode.
OPTIONAL_MODES = ("optuna-grpc",)
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def dev_loss(params: dict[str, Any], epoch: int, number: int) -> float:
    """A learning curve whose level depends on lr, so the pruner has something to prune."""
    level = abs(math.log10(params.get("lr", 0.01)) + 2.0) + 0.1 * (number % 7)
    return level + 2.0 / (1.0 + epoch)


_NO_DATA = types.SimpleNamespace(identity={"dataset": "none"})  # the fake fit needs no data


def _no_picture(*_args: Any) -> None:
    pass


# -- hpstudy: the real worker, with `trainer.fit` swapped for a sleep per epoch ---------------
def _fake_fit(sleep: float, costs: list[float]) -> Callable[..., Any]:
    def fit(config: Any, data: Any, *, on_epoch: Any, checkpoint: Any = None) -> Any:
        import torch

        from trainer import FitResult

        saved = checkpoint.load() if checkpoint is not None else None
        epochs: list[EpochResult] = [
            EpochResult.from_dict(e) for e in (saved or {}).get("epochs", [])
        ]
        for result in epochs:
            on_epoch(result)
        params = {"lr": config.lr}
        for epoch in range(len(epochs), EPOCHS):
            time.sleep(sleep)
            loss = dev_loss(params, epoch, int(config.seed))
            result = EpochResult(
                epoch=epoch,
                train_loss=loss,
                train_accuracy=0.5,
                dev_loss=loss,
                dev_accuracy=0.5,
                lr=config.lr,
                grad_norm_mean={"0.weight": 1.0},
                grad_norm_max={"0.weight": 2.0},
                seconds=sleep,
            )
            epochs.append(result)
            if checkpoint is not None:
                checkpoint.save({"epochs": [e.to_dict() for e in epochs], "w": torch.zeros(64)})
            tic = time.perf_counter()
            try:
                on_epoch(result)
            finally:
                costs.append(time.perf_counter() - tic)
        best = min(range(len(epochs)), key=lambda i: epochs[i].dev_loss)
        return FitResult(Status.COMPLETED, epochs, best, torch.nn.Identity(), 0.0)

    return fit


def _hpstudy_worker(
    url: str, name: str, index: int, sleep: float, ready: Any, go: Any, out: Any
) -> None:
    costs: list[float] = []
    fake = _fake_fit(sleep, costs)
    for module in (trainer, studies.workers._objective):  # however the objective reaches them
        if hasattr(module, "fit"):
            module.fit = fake  # type: ignore[attr-defined]
        if hasattr(module, "load_data"):
            module.load_data = lambda config: _NO_DATA  # type: ignore[attr-defined]
    # The learning-curve picture (matplotlib, about a second of CPU a trial) measures
    # matplotlib, not storage; it is left out.
    studies.workers._worker.TrialPublisher = lambda store: _no_picture  # type: ignore[attr-defined]
    ready.put(index)
    go.wait()
    summary = run_worker(name, url, options=WorkerOptions(index=index))
    if summary.trials and not costs:
        raise RuntimeError("the objective trained for real: the fake fit was not swapped in")
    out.put({"costs": costs, "lock_errors": summary.lock_retries, "errors": 0})


def _hpstudy_setup(url: str, name: str, n_trials: int) -> None:
    spec = load_spec("digits-mlp").replace(
        name=name, storage=url, n_trials=n_trials, pruner=dict(PRUNER)
    )
    storage = open_storage(url)
    create_or_resume(spec, storage)
    storage.engine.dispose()


# -- plain Optuna on a default sqlite:/// URL ---------------------------------------------------
def _optuna_worker(
    url: str, name: str, index: int, sleep: float, ready: Any, go: Any, out: Any
) -> None:
    space = load_spec("digits-mlp").space
    costs: list[float] = []
    errors = {"lock": 0, "other": 0}

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        best = math.inf
        for epoch in range(EPOCHS):
            time.sleep(sleep)
            loss = dev_loss(params, epoch, trial.number)
            best = min(best, loss)
            tic = time.perf_counter()
            try:
                trial.report(loss, epoch)
                prune = trial.should_prune()
            except Exception as exc:
                errors["lock" if "locked" in str(exc) else "other"] += 1
                raise
            finally:
                costs.append(time.perf_counter() - tic)
            if prune:
                raise optuna.TrialPruned()
        return best

    storage: Any = url
    if url.startswith("grpc://"):
        host, port = url.removeprefix("grpc://").split(":")
        storage = optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=index, constant_liar=True),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3),
    )
    ready.put(index)
    go.wait()
    done = 0
    while done < out_trials[0]:
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,))
        except Exception as exc:  # e.g. a lock error in tell -> AssertionError
            errors[
                "lock" if "locked" in repr(exc) or isinstance(exc, AssertionError) else "other"
            ] += 1
        done += 1
    out.put({"costs": costs, "lock_errors": errors["lock"], "errors": errors["other"]})


out_trials = [0]  # trials per plain-Optuna worker, set before the workers fork


def _optuna_setup(url: str, name: str, n_trials: int) -> None:
    optuna.create_study(study_name=name, storage=url)


def _grpc_proxy(url: str, port: int) -> None:
    optuna.storages.run_grpc_proxy_server(
        optuna.storages.get_storage(url), host="127.0.0.1", port=port
    )


@contextlib.contextmanager
def grpc_proxy(url: str) -> Iterator[str]:
    """A proxy process in front of `url`; yields its grpc:// address."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = mp.get_context("fork").Process(target=_grpc_proxy, args=(url, port), daemon=True)
    server.start()
    optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port).wait_server_ready(timeout=60)
    try:
        yield f"grpc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.join()


# -- one run -------------------------------------------------------------------------------------
@contextlib.contextmanager
def database(mode: str, folder: Path) -> Iterator[str]:
    if not mode.endswith("postgres"):
        yield f"sqlite:///{folder / f'{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"hpstudy_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run(
    mode: str, workers: int, *, trials_per_worker: int, sleep: float, folder: Path
) -> dict[str, Any]:
    n_trials = workers * trials_per_worker
    name = f"bench-{mode}-{workers}"
    hpstudy = mode.startswith("hpstudy")
    with database(mode, folder) as url:
        (_hpstudy_setup if hpstudy else _optuna_setup)(url, name, n_trials)
        with contextlib.ExitStack() as stack:
            address = stack.enter_context(grpc_proxy(url)) if mode == "optuna-grpc" else url
            results, seconds, exit_codes = _run_workers(
                hpstudy, address, name, workers, trials_per_worker, sleep
            )
        counts = _count(url, name)
    costs = sorted(c for r in results for c in r["costs"])
    finished = counts["COMPLETE"] + counts["PRUNED"]
    return {
        "mode": mode,
        "workers": workers,
        "trials": finished,
        "trials_per_s": finished / seconds,
        "report_median_ms": 1000 * statistics.median(costs),
        "report_p99_ms": 1000 * costs[min(len(costs) - 1, int(0.99 * len(costs)))],
        "reports": len(costs),
        "lock_errors": sum(r["lock_errors"] for r in results),
        "errors": sum(r["errors"] for r in results) + counts["FAIL"],
        "stuck": counts["RUNNING"] + counts["WAITING"],
        "lost": n_trials - finished,
        "values_in_db": counts["values"],
        "seconds": seconds,
        "exit_codes": exit_codes,
    }


def _run_workers(
    hpstudy: bool, url: str, name: str, workers: int, trials_per_worker: int, sleep: float
) -> tuple[list[dict[str, Any]], float, list[int | None]]:
    """Forks the workers, starts them together, and collects what each measured."""
    out_trials[0] = trials_per_worker
    context = mp.get_context("fork")
    ready, go, out = context.Queue(), context.Event(), context.Queue()
    target = _hpstudy_worker if hpstudy else _optuna_worker
    processes = [
        context.Process(target=target, args=(url, name, i, sleep, ready, go, out))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=300)
    started = time.perf_counter()
    go.set()
    results: list[dict[str, Any]] = []
    while len(results) < workers:
        try:
            results.append(out.get(timeout=5))
        except queue.Empty:
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(
                    f"a worker died (exit codes {dead}); see its traceback"
                ) from None
    seconds = time.perf_counter() - started
    for process in processes:
        process.join()
    return results, seconds, [p.exitcode for p in processes]


def _count(url: str, name: str) -> dict[str, int]:
    """Trials per state and intermediate values, read back from the database."""
    storage = optuna.storages.RDBStorage(url)
    study = optuna.load_study(study_name=name, storage=storage)
    counts = {s.name: 0 for s in optuna.trial.TrialState}
    values = 0
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] += 1
        values += len(trial.intermediate_values)
    storage.engine.dispose()
    return {**counts, "values": values}


def main() -> None:
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument(
        "--modes", nargs="+", default=list(MODES), choices=[*MODES, *OPTIONAL_MODES]
    )
    parser.add_argument("--trials-per-worker", type=int, default=6)
    parser.add_argument("--sleep", type=float, default=0.02, help="seconds per fake epoch")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(
        f"# {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"sleep {args.sleep * 1000:.0f} ms/epoch, {EPOCHS} epochs/trial",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workers in args.workers:
            for mode in args.modes:
                row = run(
                    mode,
                    workers,
                    trials_per_worker=args.trials_per_worker,
                    sleep=args.sleep,
                    folder=Path(folder),
                )
                rows.append(row)
                print(
                    json.dumps(
                        {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}
                    ),
                    flush=True,
                )
    print()
    print("| W | mode | trials/s | report median ms | report p99 ms | lock errors | stuck | lost |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['workers']} | {row['mode']} | {row['trials_per_s']:.1f} | "
            f"{row['report_median_ms']:.2f} | {row['report_p99_ms']:.1f} | {row['lock_errors']} | "
            f"{row['stuck']} | {row['lost']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(main())
