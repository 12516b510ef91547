"""What `WorkerStorage` promises beyond Optuna's contract suite, each on a real database.

Several processes taking the same waiting trials, writes the database refuses, a view read
before a state change, this process reading its own writes, and how late another process sees
a report. Concurrency is tested with real processes released by a barrier, over many rounds.
"""

from __future__ import annotations

import multiprocessing
import pickle
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial

from studies.storage import WorkerStorage, open_storage
from studies.storage import _optuna as optuna_internals

TrialState = optuna.trial.TrialState
POPPERS = 3  # processes racing for the same waiting trials
WAITING = 20  # waiting trials per round
ROUNDS = 5


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'worker.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'worker.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
def worker_storage() -> Iterator[Callable[..., WorkerStorage]]:
    opened: list[WorkerStorage] = []

    def make(url: str, **kwargs: Any) -> WorkerStorage:
        opened.append(WorkerStorage(url, **kwargs))
        return opened[-1]

    yield make
    for storage in opened:
        storage.close()


def poll(condition: Callable[[], bool], *, timeout: float) -> float:
    """Seconds until `condition` holds (checked every 10 ms); raises after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not seen within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - start


# Several processes pop the same waiting trials -------------------------------------------


def _pop_all(url: str, study_name: str, barrier: Any, out: Any) -> None:
    storage = WorkerStorage(url)
    study_id = storage.get_study_id_from_name(study_name)
    barrier.wait()
    taken = []
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                taken.append(trial.number)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass
    storage.close()
    out.put(taken)


def _race(url: str, study_name: str) -> list[int]:
    study = optuna.create_study(study_name=study_name, storage=open_storage(url))
    for value in range(WAITING):
        study.enqueue_trial({"x": float(value)})
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(POPPERS), context.Queue()
    poppers = [
        context.Process(target=_pop_all, args=(url, study_name, barrier, out))
        for _ in range(POPPERS)
    ]
    for process in poppers:
        process.start()
    taken = [number for _ in poppers for number in out.get(timeout=120)]
    for process in poppers:
        process.join(timeout=60)
        assert process.exitcode == 0
    return taken


@pytest.mark.slow
def test_no_waiting_trial_is_taken_twice_by_racing_processes(any_url: str) -> None:
    for round_ in range(ROUNDS):
        taken = _race(any_url, f"race-{round_}")
        assert sorted(taken) == list(range(WAITING)), f"round {round_}: {sorted(taken)}"


# Writes the database refuses ----------------------------------------------------------------


def test_a_report_refused_after_another_process_failed_the_trial_is_dropped_once(
    sqlite_url: str, worker_storage: Callable[..., WorkerStorage]
) -> None:
    storage = worker_storage(sqlite_url, flush_interval=3600)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.report(0.5, 0)
    other = open_storage(sqlite_url)  # another worker fails it, e.g. as stale
    other.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    trial.report(0.4, 1)

    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.flush()  # refused and dropped: the trial is not ours any more
    storage.flush()  # ... and never raised again
    assert storage.writes.pending((trial._trial_id, "optuna")) == []
    seen = storage.get_trial(trial._trial_id)
    assert seen.state == TrialState.FAIL
    assert seen.intermediate_values == {}  # not the refused values
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, [0.4])
    storage.close()  # nothing left to raise


def test_closing_with_a_refused_write_pending_drops_it_without_failing(sqlite_url: str) -> None:
    storage = WorkerStorage(sqlite_url, flush_interval=3600)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.report(0.5, 0)
    open_storage(sqlite_url).set_trial_state_values(trial._trial_id, TrialState.FAIL)
    storage.close()  # the pending report is refused: logged, not raised
    assert open_storage(sqlite_url).get_trial(trial._trial_id).intermediate_values == {}


def test_a_write_to_a_trial_this_process_finished_is_refused_at_once(
    sqlite_url: str, worker_storage: Callable[..., WorkerStorage]
) -> None:
    storage = worker_storage(sqlite_url, flush_interval=3600)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_intermediate_value(trial._trial_id, 0, 0.5)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial._trial_id, "late", True)


# A view read before this process changed a trial ----------------------------------------


def test_a_view_read_before_a_state_change_never_hides_it(
    sqlite_url: str, worker_storage: Callable[..., WorkerStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = worker_storage(sqlite_url, flush_interval=3600, refresh=0.05)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    study.get_trials()  # the first view
    time.sleep(0.1)  # ... is due for a refresh

    read_done, finished = threading.Event(), threading.Event()
    read = optuna_internals.read_trials

    def slow_read(*args: Any, **kwargs: Any) -> Any:
        trials = read(*args, **kwargs)  # sees the trial RUNNING
        read_done.set()
        finished.wait(10)  # installs its view only after the trial finished
        return trials

    monkeypatch.setattr(optuna_internals, "read_trials", slow_read)
    study.get_trials()  # starts the refresh in the background
    assert read_done.wait(10)
    study.tell(trial, 1.0)
    finished.set()
    monkeypatch.setattr(optuna_internals, "read_trials", read)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # whenever the old read lands, the trial stays COMPLETE
        assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE]
        time.sleep(0.01)


# Reading one's own writes -------------------------------------------------------------------


@pytest.mark.parametrize("refresh", [0.0, 3600.0])
def test_get_all_trials_shows_this_processs_writes_at_once(
    sqlite_url: str, worker_storage: Callable[..., WorkerStorage], refresh: float
) -> None:
    storage = worker_storage(sqlite_url, flush_interval=3600, refresh=refresh)
    study = optuna.create_study(storage=storage, study_name="s")
    done = study.ask()
    study.tell(done, 2.0)
    study.get_trials()  # a view exists before the writes below
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    trial.report(0.5, 0)
    trial.set_user_attr("note", "mine")
    [seen] = [t for t in study.get_trials(deepcopy=False) if t.number == trial.number]
    assert seen.state == TrialState.RUNNING
    assert seen.intermediate_values == {0: 0.5}
    assert seen.user_attrs == {"note": "mine"}
    assert set(seen.params) == {"x"}
    study.tell(trial, 0.5)
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {done.number: TrialState.COMPLETE, trial.number: TrialState.COMPLETE}


def test_reports_reach_the_database_before_the_trials_state(
    sqlite_url: str, worker_storage: Callable[..., WorkerStorage]
) -> None:
    storage = worker_storage(sqlite_url, flush_interval=3600)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.report(0.5, 0)
    trial.set_user_attr("note", "kept")
    other = open_storage(sqlite_url)
    assert other.get_trial(trial._trial_id).intermediate_values == {}  # still in memory
    study.tell(trial, 0.5)
    stored = other.get_trial(trial._trial_id)
    assert stored.intermediate_values == {0: 0.5}
    assert stored.user_attrs == {"note": "kept"}
    assert stored.state == TrialState.COMPLETE


# How late another process sees a write --------------------------------------------------------

FLUSH = 0.2  # seconds, the flush interval of the tests below
SLACK = 2.0  # seconds for one write or read on a busy CI machine


def test_another_process_sees_a_report_within_the_flush_interval(
    any_url: str, worker_storage: Callable[..., WorkerStorage]
) -> None:
    storage = worker_storage(any_url, flush_interval=FLUSH)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    other = open_storage(any_url)
    trial.report(0.5, 0)
    took = poll(lambda: bool(other.get_trial(trial._trial_id).intermediate_values), timeout=30)
    assert took <= FLUSH + SLACK


def test_this_process_sees_another_processs_trial_within_the_refresh(
    any_url: str, worker_storage: Callable[..., WorkerStorage]
) -> None:
    storage = worker_storage(any_url, refresh=FLUSH)
    study = optuna.create_study(storage=storage, study_name="s")
    assert study.get_trials() == []
    other = optuna.load_study(study_name="s", storage=open_storage(any_url))
    other.tell(other.ask(), 1.0)
    took = poll(lambda: len(study.get_trials()) == 1, timeout=30)
    assert took <= FLUSH + SLACK


# Studies, pickling, lock conflicts ---------------------------------------------------------


def test_a_deleted_studys_trials_do_not_appear_in_a_new_study_with_its_id(
    sqlite_url: str, worker_storage: Callable[..., WorkerStorage]
) -> None:
    storage = worker_storage(sqlite_url, refresh=3600)
    old = optuna.create_study(storage=storage, study_name="old")
    old.tell(old.ask(), 1.0)
    assert len(old.get_trials()) == 1
    old_id = storage.get_study_id_from_name("old")
    optuna.delete_study(study_name="old", storage=storage)
    new = optuna.create_study(storage=storage, study_name="new")
    assert storage.get_study_id_from_name("new") == old_id  # SQLite gives the id again
    assert new.get_trials() == []


def test_a_pickled_storage_flushes_and_its_copy_reads_the_study(
    sqlite_url: str, worker_storage: Callable[..., WorkerStorage]
) -> None:
    storage = worker_storage(sqlite_url, flush_interval=3600)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.report(0.5, 0)
    copy = pickle.loads(pickle.dumps(storage))
    try:
        assert copy.get_trial(trial._trial_id).intermediate_values == {0: 0.5}
    finally:
        copy.close()


def test_a_tell_survives_a_real_sqlite_lock_held_past_the_busy_timeout(
    tmp_path: Path, worker_storage: Callable[..., WorkerStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("studies.storage._urls.SQLITE_BUSY_TIMEOUT", 0.01)
    storage = worker_storage(f"sqlite:///{tmp_path / 'locked.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    holder = sqlite3.connect(tmp_path / "locked.db", check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a moment
    threading.Timer(0.5, holder.commit).start()
    study.tell(trial, 1.0)
    holder.close()
    assert study.trials[0].state == TrialState.COMPLETE
    assert storage.retries >= 1  # without the retry, tell would have failed


# How the view's cost grows ------------------------------------------------------------------


def _study_of(url: str, n: int) -> int:
    """A study of `n` finished trials, written in bulk; returns its id."""
    rdb = open_storage(url)
    study_id = optuna.create_study(storage=rdb, study_name="big")._study_id
    rdb.engine.dispose()
    with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
        connection.executemany(
            "INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) "
            "VALUES (?, ?, 'COMPLETE', '2026-01-01 00:00:00', '2026-01-01 00:00:01')",
            [(number, study_id) for number in range(n)],
        )
        connection.execute(
            "INSERT INTO trial_values (trial_id, objective, value, value_type) "
            "SELECT trial_id, 0, 1.0, 'FINITE' FROM trials"
        )
    return study_id


def _trials_merged_per_report(storage: WorkerStorage, study_id: int) -> int:
    """Trials the storage merges anew over 30 reports on a trial running here, each followed by
    a pruner's reads of the study (all trials, the COMPLETE ones)."""
    trial_id = storage.create_new_trial(study_id)
    storage.get_all_trials(study_id, deepcopy=False)
    merged = 0
    newest = storage._newest

    def counting(*args: Any) -> FrozenTrial | None:
        nonlocal merged
        merged += 1
        return newest(*args)

    storage._newest = counting  # type: ignore[method-assign]
    for step in range(30):
        storage.set_trial_intermediate_value(trial_id, step, 1.0)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        done = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        assert trials[-1].intermediate_values[step] == 1.0
        assert len(done) == len(trials) - 1
    return merged


def test_a_report_merges_only_its_trial_in_a_study_of_50_or_5000_trials(
    tmp_path: Path, worker_storage: Callable[..., WorkerStorage]
) -> None:
    # Every report changes what get_all_trials returns; rebuilding the merged list (every
    # trial of the study, sorted) per report made a report's cost grow with the study: 20x
    # from 50 to 5000 trials. Counted, not timed: the reported trial alone is merged again.
    merged = {}
    for n in (50, 5000):
        url = f"sqlite:///{tmp_path / f'{n}.db'}"
        study_id = _study_of(url, n)
        storage = worker_storage(url, refresh=3600, flush_interval=3600)
        assert len(storage.get_all_trials(study_id, deepcopy=False)) == n
        merged[n] = _trials_merged_per_report(storage, study_id)
    assert merged == {50: 30, 5000: 30}


def test_a_refresh_reads_what_changed_into_the_view(
    any_url: str, worker_storage: Callable[..., WorkerStorage]
) -> None:
    storage = worker_storage(any_url, refresh=0)
    study = optuna.create_study(storage=storage, study_name="s")
    other = optuna.load_study(study_name="s", storage=open_storage(any_url))
    running = [other.ask() for _ in range(3)]
    other.tell(other.ask(), 1.0)
    before = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert [t.state for t in before.values()] == [TrialState.RUNNING] * 3 + [TrialState.COMPLETE]
    other.tell(running[1], 2.0)
    other.tell(other.ask(), 3.0)
    after = study.get_trials(deepcopy=False)
    assert [(t.number, t.state, t.values) for t in after] == [
        (0, TrialState.RUNNING, None),
        (1, TrialState.COMPLETE, [2.0]),
        (2, TrialState.RUNNING, None),
        (3, TrialState.COMPLETE, [1.0]),
        (4, TrialState.COMPLETE, [3.0]),
    ]
    assert after[3] is before[3]  # a finished trial is not read again
