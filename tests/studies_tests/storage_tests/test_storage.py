"""Lock retries, write-behind, the project's tables, checkpoints, and `hpstudy copy`.

The worker storage itself is tested in test_worker_storage.py and, against Optuna's own
contract suite, in test_worker_storage_contract.py.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
import torch

from studies.storage import (
    BufferedEpochStore,
    Checkpoints,
    CheckpointTable,
    EpochStore,
    TrialCheckpoint,
    WriteBehind,
    create_engine,
    is_lock_error,
    open_storage,
    retry_locked,
    store_heartbeat,
    stored_heartbeat,
)
from trainer import EpochResult

TrialState = optuna.trial.TrialState


def epoch(number: int, loss: float = 1.0, fraction: float = 1.0) -> EpochResult:
    return EpochResult(
        fraction=fraction,
        epoch=number,
        train_loss=loss,
        train_accuracy=0.5,
        dev_loss=loss,
        dev_accuracy=0.5,
        lr=0.1,
        grad_norm_mean={"0.weight": 1.0},
        grad_norm_max={"0.weight": 2.0},
        seconds=0.01,
    )


# Lock errors and their retry --------------------------------------------------------------


def locked() -> Exception:
    cause = sqlite3.OperationalError("database is locked")
    wrapped = sa.exc.OperationalError("UPDATE trials ...", {}, cause)
    try:
        raise optuna.exceptions.StorageInternalError("commit failed") from wrapped
    except optuna.exceptions.StorageInternalError as exc:
        return exc


def test_lock_errors_are_found_through_wrappers() -> None:
    assert is_lock_error(locked())
    assert is_lock_error(sqlite3.OperationalError("database is locked"))
    assert is_lock_error(RuntimeError("ERROR: deadlock detected"))
    assert not is_lock_error(sqlite3.OperationalError("no such table: trials"))
    assert not is_lock_error(ValueError("database is fine"))


def test_retry_locked_retries_lock_errors_until_the_call_succeeds() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise locked()
        return "done"

    assert retry_locked(flaky) == "done"
    assert len(calls) == 3


def test_retry_locked_raises_other_errors_at_once() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad value")

    with pytest.raises(ValueError):
        retry_locked(broken)
    assert len(calls) == 1


def test_retry_locked_gives_up_after_its_attempts() -> None:
    with pytest.raises(optuna.exceptions.StorageInternalError):
        retry_locked(lambda: (_ for _ in ()).throw(locked()), attempts=3)


# Write-behind ------------------------------------------------------------------------------


def test_write_behind_writes_in_order_and_keeps_only_the_newest_when_replacing() -> None:
    written: list[Any] = []
    writes = WriteBehind(interval=60)
    writes.submit("a", 1, written.extend)
    writes.submit("a", 2, written.extend)
    writes.submit("b", "old", written.append, replace=True)
    writes.submit("b", "new", lambda items: written.append(items), replace=True)
    writes.flush()
    assert written == [1, 2, ["new"]]
    writes.close()


def test_write_behind_keeps_items_whose_write_met_a_lock_for_the_next_round() -> None:
    writes = WriteBehind(interval=60)

    def fail(items: list[int]) -> None:
        raise locked()

    writes.submit("a", 1, fail)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        writes.flush()
    assert writes.pending("a") == [1]
    writes.discard("a")
    writes.close()


def test_write_behind_keeps_items_whose_connection_was_dropped_by_pgbouncer() -> None:
    # Measured at 1000 workers: PgBouncer dropped clients that waited query_wait_timeout for a
    # server connection; Optuna wraps that in StorageInternalError, and the reports were lost.
    writes = WriteBehind(interval=60)

    def fail(items: list[int]) -> None:
        try:
            raise sa.exc.OperationalError(
                "INSERT", {}, Exception("server closed the connection: ERROR: query_wait_timeout")
            )
        except sa.exc.OperationalError as exc:
            raise optuna.exceptions.StorageInternalError("during the commit") from exc

    writes.submit("a", 1, fail)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        writes.flush()
    assert writes.pending("a") == [1]
    writes.discard("a")
    writes.close()


def test_write_behind_drops_a_refused_write_and_raises_it_only_once() -> None:
    refused: list[Any] = []
    writes = WriteBehind(interval=60, on_refused=lambda key, exc: refused.append((key, exc)))

    def refuse(items: list[int]) -> None:
        raise optuna.exceptions.UpdateFinishedTrialError("trial 3 has finished")

    writes.submit("a", 1, refuse)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        writes.flush()
    assert writes.pending("a") == []
    assert [key for key, _ in refused] == ["a"]
    writes.flush()  # nothing left to raise
    writes.close()


def test_write_behind_thread_flushes_by_itself() -> None:
    written: list[int] = []
    writes = WriteBehind(interval=0.05)
    writes.submit("a", 1, written.extend)
    deadline = time.monotonic() + 5
    while not written and time.monotonic() < deadline:
        time.sleep(0.01)
    assert written == [1]
    writes.close()


def test_buffered_epoch_store_writes_rows_when_flushed(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'e.db'}")
    writes = WriteBehind(interval=60)
    store = BufferedEpochStore(engine, writes)
    store.add(7, epoch(0))
    store.add(7, epoch(1))
    store.add(7, epoch(1, loss=0.5))  # a replayed epoch replaces the earlier row
    assert EpochStore(engine).counts([7]) == {}
    writes.flush()
    rows = EpochStore(engine).epochs(7)
    assert rows == [epoch(0), epoch(1, loss=0.5)]
    writes.close()


def test_points_inside_the_first_epoch_keep_their_own_rows(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'e.db'}")
    store = EpochStore(engine)
    third = 80 / 240
    store.add_many(7, [epoch(0, 3.0, 27 / 240), epoch(0, 2.0, third), epoch(0), epoch(1)])
    store.add(7, epoch(0, 1.5, third))  # a replayed point replaces its earlier row only
    assert store.epochs(7) == [epoch(0), epoch(1)]  # whole epochs, as before
    assert store.epochs(7, partials=True) == [
        epoch(0, 3.0, 27 / 240),
        epoch(0, 1.5, third),
        epoch(0),
        epoch(1),
    ]
    assert store.counts([7]) == {7: 2}


def test_the_buffer_keeps_points_inside_an_epoch_apart(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'e.db'}")
    writes = WriteBehind(interval=60)
    store = BufferedEpochStore(engine, writes)
    for result in (epoch(0, 3.0, 0.25), epoch(0, 2.0, 0.5), epoch(0)):
        store.add(7, result)
    writes.flush()
    assert [r.fraction for r in EpochStore(engine).epochs(7, partials=True)] == [0.25, 0.5, 1.0]
    writes.close()


def test_values_at_a_point_inside_the_first_epoch(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="v")
    study.optimize(lambda t: 0.0, n_trials=2)
    engine = create_engine(url)
    store = EpochStore(engine)
    ids = [storage.get_trial_id_from_study_id_trial_number(1, n) for n in (0, 1)]
    store.add_many(ids[0], [epoch(0, 3.0, 1 / 9), epoch(0, 1.0)])
    store.add_many(ids[1], [epoch(0, 4.0, 1 / 9)])
    at = store.values_at(1, 0, "dev_loss", fraction=1 / 9)
    assert at == {ids[0]: 3.0, ids[1]: 4.0}
    assert store.values_at(1, 0, "dev_loss") == {ids[0]: 1.0}
    engine.dispose()


def test_a_database_of_an_older_hpstudy_gains_the_table_of_partial_points(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # hpstudy_epochs as an older hpstudy made it
        connection.execute(
            sa.text(
                "CREATE TABLE hpstudy_epochs (trial_id INTEGER, epoch INTEGER, train_loss FLOAT,"
                " PRIMARY KEY (trial_id, epoch))"
            )
        )
    store = EpochStore(engine)
    store.add_many(7, [epoch(0, 2.0, 0.5), epoch(0)])
    assert [r.fraction for r in store.epochs(7, partials=True)] == [0.5, 1.0]


# Heartbeat settings -------------------------------------------------------------------------


def test_heartbeat_settings_are_kept_with_the_study(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'h.db'}")
    study_id = storage.create_new_study([optuna.study.StudyDirection.MINIMIZE], "h")
    assert stored_heartbeat(storage, study_id) == (10, 60)
    store_heartbeat(storage, study_id, interval=1, grace=3)
    assert stored_heartbeat(storage, study_id) == (1, 3)


# Checkpoints --------------------------------------------------------------------------------


def test_trial_checkpoint_round_trips_a_torch_state_and_reports_the_resume(
    tmp_path: Path,
) -> None:
    table = CheckpointTable(sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}"), study_id=1)
    resumed: list[int] = []
    store = TrialCheckpoint(table, root=4, on_resume=resumed.append)
    assert store.load() is None
    state = {"epochs": [{}, {}], "model": {"w": torch.arange(3.0)}}
    store.save(state)
    loaded = store.load()
    assert loaded is not None
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0))
    assert resumed == [2]


def test_trial_checkpoint_coalesces_saves_that_come_faster_than_its_interval(
    tmp_path: Path,
) -> None:
    table = CheckpointTable(sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}"), study_id=1)
    writes = WriteBehind(interval=60)
    store = TrialCheckpoint(table, root=0, writes=writes, min_interval=60)
    store.save({"epochs": [{}]})  # the first save is written at once
    store.save({"epochs": [{}, {}]})
    store.save({"epochs": [{}, {}, {}]})
    assert table.load(0) is not None and table.load(0)[0] == 1  # type: ignore[index]
    writes.flush()
    assert table.load(0)[0] == 3  # type: ignore[index]
    writes.close()


def test_checkpoints_of_finished_chains_are_pruned(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="p")
    running = study.ask()
    study.tell(study.ask(), 1.0)
    engine = sa.create_engine(url)
    checkpoints = Checkpoints(engine, storage.get_study_id_from_name("p"))
    checkpoints.table.save(running.number, 1, b"x")
    checkpoints.table.save(1, 1, b"y")  # trial 1 finished: its checkpoint is an orphan
    assert checkpoints.prune(study) == [1]
    assert checkpoints.table.roots() == [running.number]


@pytest.mark.slow
def test_checkpoint_table_on_postgresql(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    table = CheckpointTable(engine, study_id=1)
    table.save(2, 5, b"\x00state")
    table.save(2, 6, b"\x00newer")
    assert table.load(2) == (6, b"\x00newer")
    engine.dispose()


# hpstudy copy -------------------------------------------------------------------------------


def make_study_with_rows(url: str) -> None:
    """A finished trial with two epoch rows and a point inside the first, and a waiting retry
    with a checkpoint."""
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name="moved")
    study.set_user_attr("hpstudy_spec", "{}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    study.enqueue_trial({"x": 0.5}, user_attrs={"root_trial": 1})
    engine = create_engine(url)
    store = EpochStore(engine)
    trial_id = storage.get_trial_id_from_study_id_trial_number(1, 1)
    store.add_many(trial_id, [epoch(0, fraction=0.5), epoch(0), epoch(1)])
    CheckpointTable(engine, study_id=1).save(1, 2, b"state")
    engine.dispose()


def run_copy(source: str, target: str) -> int:
    from studies.cli import main

    return main(["copy", "moved", "--from", source, "--to", target])


def check_copied(url: str) -> None:
    storage = open_storage(url)
    study = optuna.load_study(study_name="moved", storage=storage)
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.WAITING,
    ]
    assert study.user_attrs["hpstudy_spec"] == "{}"
    study_id = storage.get_study_id_from_name("moved")
    engine = create_engine(url)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, 1)
    stored = EpochStore(engine).epochs(trial_id, partials=True)
    assert [(r.epoch, r.fraction) for r in stored] == [(0, 0.5), (0, 1.0), (1, 1.0)]
    assert CheckpointTable(engine, study_id).load(1) == (2, b"state")
    from studies.storage import Budget

    assert Budget(engine, study_id).claimed() == 3
    engine.dispose()


def test_copy_moves_a_study_with_its_project_rows(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    make_study_with_rows(source)
    optuna.create_study(storage=target, study_name="other")  # ids differ in the target
    assert run_copy(source, target) == 0
    check_copied(target)
    assert run_copy(source, target) == 2  # the target has it now: refused, nothing doubled


def test_copy_refuses_a_study_with_running_trials(tmp_path: Path) -> None:
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    make_study_with_rows(source)
    optuna.load_study(study_name="moved", storage=source).ask()
    assert run_copy(source, target) == 2


@pytest.mark.slow
def test_copy_moves_a_sqlite_study_to_postgresql(tmp_path: Path, postgres_url: str) -> None:
    source = f"sqlite:///{tmp_path / 'a.db'}"
    make_study_with_rows(source)
    assert run_copy(source, postgres_url) == 0
    check_copied(postgres_url)
