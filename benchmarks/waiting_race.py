"""Several processes take the same waiting trials at once: how many are taken twice?

Each round enqueues 20 WAITING trials in a new study; 3 processes, released together by a
barrier, each walk the waiting trials and set them RUNNING, as Optuna's `ask` does. A trial
set RUNNING by two processes would be trained twice. Plain `RDBStorage` relies on
`SELECT ... FOR UPDATE`, which SQLite ignores; hpstudy's `WorkerStorage` decides with one
conditional `UPDATE`.

    .venv/bin/python benchmarks/waiting_race.py                 # 10 rounds, both storages, SQLite
    .venv/bin/python benchmarks/waiting_race.py --postgres      # the same on PostgreSQL too
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import uuid
from typing import Any

import optuna
import sqlalchemy as sa

from studies.storage import WorkerStorage, open_storage

TrialState = optuna.trial.TrialState
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def _pop(kind: str, url: str, name: str, barrier: Any, out: Any) -> None:
    storage = WorkerStorage(url) if kind == "WorkerStorage" else open_storage(url)
    study_id = storage.get_study_id_from_name(name)
    barrier.wait()
    taken = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                taken.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
    out.put(taken)


def race(kind: str, url: str, *, rounds: int, processes: int, waiting: int) -> list[int]:
    """Trials taken twice (or more) in each round."""
    context = multiprocessing.get_context("fork")
    twice = []
    for round_ in range(rounds):
        name = f"{kind}-{round_}-{uuid.uuid4().hex[:6]}"
        study = optuna.create_study(study_name=name, storage=open_storage(url))
        for value in range(waiting):
            study.enqueue_trial({"x": float(value)})
        barrier, out = context.Barrier(processes), context.Queue()
        workers = [
            context.Process(target=_pop, args=(kind, url, name, barrier, out))
            for _ in range(processes)
        ]
        for process in workers:
            process.start()
        taken = [number for _ in workers for number in out.get(timeout=120)]
        for process in workers:
            process.join()
        twice.append(len(taken) - len(set(taken)))
    return twice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--waiting", type=int, default=20)
    parser.add_argument("--postgres", action="store_true", help="also on 127.0.0.1:5432")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    urls = {"SQLite": f"sqlite:///{tempfile.mkdtemp()}/race.db"}
    admin = None
    if args.postgres:
        admin = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
        database = f"hpstudy_race_{uuid.uuid4().hex[:8]}"
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
        urls["PostgreSQL"] = f"{POSTGRES}/{database}"
    print(f"| database | storage | taken twice per round ({args.rounds} rounds) | total |")
    print("|---|---|---|---|")
    try:
        for backend, url in urls.items():
            for kind in ("RDBStorage", "WorkerStorage"):
                twice = race(
                    kind, url, rounds=args.rounds, processes=args.processes, waiting=args.waiting
                )
                print(f"| {backend} | {kind} | {' '.join(map(str, twice))} | {sum(twice)} |")
    finally:
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
