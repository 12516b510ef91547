"""The plain-Optuna peer's processes share one study: each must survive creating it together."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from benchmarks import plain_optuna_trainer
from benchmarks.plain_optuna_trainer import create_shared_study


def test_a_lost_race_for_the_schema_is_tried_again(monkeypatch, tmp_path) -> None:
    real, calls = optuna.create_study, []

    def racing(**kwargs):
        calls.append(kwargs)
        if len(calls) < 3:
            raise sa.exc.IntegrityError("INSERT INTO alembic_version", {}, Exception("UNIQUE"))
        return real(**kwargs)

    monkeypatch.setattr(plain_optuna_trainer.optuna, "create_study", racing)
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = create_shared_study(study_name="plain", storage=url, direction="minimize")
    assert study.study_name == "plain" and len(calls) == 3


def test_an_error_that_lasts_is_raised(monkeypatch) -> None:
    def locked(**kwargs):
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(plain_optuna_trainer.optuna, "create_study", locked)
    monkeypatch.setattr(plain_optuna_trainer.time, "sleep", lambda seconds: None)
    with pytest.raises(sa.exc.OperationalError):
        create_shared_study(attempts=3, study_name="plain", storage="sqlite://")


def _create(url: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    try:
        create_shared_study(study_name="plain", storage=url, load_if_exists=True)
        results.put("ok")
    except Exception as error:  # the test reports what went wrong
        results.put(repr(error))


def test_processes_started_together_on_a_new_file_all_get_the_study(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    url = f"sqlite:///{tmp_path / 'new.db'}"
    processes = [context.Process(target=_create, args=(url, barrier, results)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [results.get(timeout=5) for _ in processes] == ["ok"] * 4
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["plain"]
