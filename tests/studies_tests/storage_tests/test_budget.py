"""The shared trial budget: atomic claims, releases, and reconciling with the study."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest

from studies.storage import Budget, create_engine, ensure_tables, open_storage


def claims_from_threads(url: str, *, threads: int, budget: int) -> int:
    """Every thread claims through its own engine until the budget says no; total claims."""
    engine = create_engine(url)
    Budget(engine, study_id=1).reconcile(optuna.create_study())
    granted = []
    lock = threading.Lock()

    def claim_all() -> None:
        own = create_engine(url)
        mine = 0
        while Budget(own, study_id=1).claim(budget):
            mine += 1
        own.dispose()
        with lock:
            granted.append(mine)

    workers = [threading.Thread(target=claim_all) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert Budget(engine, study_id=1).claimed() == budget
    engine.dispose()
    return sum(granted)


def test_parallel_claims_never_exceed_the_budget_on_sqlite(tmp_path: Path) -> None:
    assert claims_from_threads(f"sqlite:///{tmp_path / 'b.db'}", threads=8, budget=40) == 40


@pytest.mark.slow
def test_parallel_claims_never_exceed_the_budget_on_postgresql(postgres_url: str) -> None:
    assert claims_from_threads(postgres_url, threads=8, budget=40) == 40


def ensure_from_threads(url: str) -> int:
    """Workers joining a study at once each make sure its row exists; the count it holds."""
    engine = create_engine(url)
    Budget(engine, study_id=1)  # creates the tables
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def join() -> None:
        own = create_engine(url)
        start.wait()
        try:
            Budget(own, study_id=1).ensure(optuna.create_study())
        except BaseException as exc:
            errors.append(exc)
        own.dispose()

    threads = [threading.Thread(target=join) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    claimed = Budget(engine, study_id=1).claimed()
    engine.dispose()
    return claimed


def test_workers_that_join_at_once_create_the_budget_row_once(tmp_path: Path) -> None:
    assert ensure_from_threads(f"sqlite:///{tmp_path / 'b.db'}") == 0


@pytest.mark.slow
def test_workers_that_join_at_once_create_the_budget_row_once_on_postgresql(
    postgres_url: str,
) -> None:
    assert ensure_from_threads(postgres_url) == 0


def test_ensure_keeps_an_existing_count(tmp_path: Path) -> None:
    budget = Budget(create_engine(f"sqlite:///{tmp_path / 'b.db'}"), study_id=1)
    budget.ensure(optuna.create_study())
    assert budget.claim(5)
    budget.ensure(optuna.create_study())
    assert budget.claimed() == 1


def test_release_gives_a_slot_back(tmp_path: Path) -> None:
    budget = Budget(create_engine(f"sqlite:///{tmp_path / 'b.db'}"), study_id=1)
    budget.reconcile(optuna.create_study())
    assert budget.claim(1)
    assert not budget.claim(1)
    budget.release()
    assert budget.claim(1)


def test_reconcile_counts_the_trials_that_hold_a_slot(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = optuna.create_study(storage=open_storage(url))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)  # complete: they count
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)  # failed: gives its slot back
    study.ask()  # running: counts
    study.enqueue_trial({"x": 0.5})  # waiting to run: counts
    budget = Budget(create_engine(url), study_id=1)
    assert budget.reconcile(study) == 4
    assert budget.claimed() == 4


@pytest.mark.slow
def test_workers_that_start_at_once_create_the_tables_once_on_postgresql(
    postgres_url: str,
) -> None:
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def create_tables() -> None:
        engine = create_engine(postgres_url)
        start.wait()
        try:
            ensure_tables(engine)
        except BaseException as exc:
            errors.append(exc)
        engine.dispose()

    threads = [threading.Thread(target=create_tables) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
