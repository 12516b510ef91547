"""Keeping the per-epoch path of a trial free of database writes and of most reads.

With many workers on one SQLite file every write waits for the single write lock, and every
read of the study (the pruner's look at the finished trials) costs a query. A worker therefore
keeps the writes that may wait a moment in memory (`WriteBehind`: intermediate values, user
attributes, epoch rows, the newest checkpoint) and writes them in batches from a thread, and
it reads the other trials at most every `refresh` seconds (`BufferedStorage`). What must not
wait is written at once: everything a trial reported is in the database before its final
state is.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Container, Hashable, Sequence
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from studies._locks import StorageWrapper, is_lock_error, retry_locked
from studies._metrics import EpochStore
from trainer import EpochResult

_log = logging.getLogger("hpstudy.buffer")

FLUSH_INTERVAL = 1.0  # seconds a buffered write may wait before the flusher writes it
REFRESH = 1.0  # seconds a worker's view of the other trials may lag behind the database

Write = Callable[[list[Any]], None]


class WriteBehind:
    """Writes kept in memory under a key and written in batches, by a thread or on demand.

    Each key has one write function that receives the key's pending items, oldest first;
    `replace=True` keeps only the newest item (a checkpoint supersedes the one before).
    """

    def __init__(self, interval: float = FLUSH_INTERVAL) -> None:
        self.interval = interval
        self._pending: dict[Hashable, tuple[Write, list[Any]]] = {}
        self._lock = threading.Lock()  # guards _pending
        self._writing = threading.RLock()  # one flush at a time keeps each key's order
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, key: Hashable, item: Any, write: Write, *, replace: bool = False) -> None:
        """Queues `item` under `key`; with interval 0 it is written at once."""
        with self._lock:
            _, items = self._pending.setdefault(key, (write, []))
            if replace:
                items.clear()
            items.append(item)
        if self.interval <= 0:
            self.flush(lambda k: k == key)
        elif self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hpstudy-flush", daemon=True)
            self._thread.start()

    def pending(self, key: Hashable) -> list[Any]:
        with self._lock:
            entry = self._pending.get(key)
            return list(entry[1]) if entry else []

    def discard(self, key: Hashable) -> None:
        """Drops what `key` has pending (its subject is gone), after a flush in progress."""
        with self._writing, self._lock:
            self._pending.pop(key, None)

    def flush(self, match: Callable[[Hashable], bool] | None = None) -> None:
        """Writes the pending items of every key (or of those `match` accepts) now.

        Raises:
            Exception: what a write raised; that key's items and the rest stay pending.
        """
        with self._writing:
            taken = self._take(match)
            for index, (_, (write, items)) in enumerate(taken):
                try:
                    write(items)
                except BaseException:
                    self._put_back(taken[index:])
                    raise

    def _take(
        self, match: Callable[[Hashable], bool] | None
    ) -> list[tuple[Hashable, tuple[Write, list[Any]]]]:
        with self._lock:
            keys = [k for k in self._pending if match is None or match(k)]
            return [(k, self._pending.pop(k)) for k in keys]

    def _put_back(self, entries: list[tuple[Hashable, tuple[Write, list[Any]]]]) -> None:
        with self._lock:
            for key, (write, items) in entries:
                _, newer = self._pending.setdefault(key, (write, []))
                newer[:0] = items

    def _run(self) -> None:
        while not self._closed.wait(self.interval):
            with self._writing:
                for key, (write, items) in self._take(None):
                    try:
                        write(items)
                    except Exception as exc:  # the flusher never dies
                        if is_lock_error(exc):
                            self._put_back([(key, (write, items))])  # the next round retries
                        else:  # e.g. the trial was failed by another worker meanwhile
                            _log.warning("dropped buffered writes for %s: %s", key, exc)

    def close(self) -> None:
        """Stops the thread and writes everything still pending."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()


class BufferedStorage(StorageWrapper):
    """A worker's Optuna storage: a trial's reports wait in `writes`; reads may lag `refresh`.

    Intermediate values and user attributes of a running trial are written in one batch per
    flush (one transaction when `rdb` is given), and always before the trial's state changes,
    so a finished trial is complete in the database. The view of the study is read again at
    once after this worker changes a trial's state (so its sampler sees its own trials), and
    otherwise in the background once it is `refresh` seconds old.
    """

    def __init__(
        self,
        inner: BaseStorage,
        *,
        writes: WriteBehind,
        refresh: float = REFRESH,
        rdb: RDBStorage | None = None,
    ) -> None:
        super().__init__(inner)
        self.writes = writes
        self.refresh = refresh
        self.rdb = rdb
        self._views: dict[int, tuple[float, list[FrozenTrial]]] = {}
        self._refreshing: set[int] = set()
        self._views_lock = threading.Lock()

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._buffer(trial_id, ("value", step, intermediate_value))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._buffer(trial_id, ("user", key, value))

    def _buffer(self, trial_id: int, item: tuple[str, Any, Any]) -> None:
        self.writes.submit((trial_id, "trial"), item, lambda items: self._write(trial_id, items))

    def _write(self, trial_id: int, items: list[tuple[str, Any, Any]]) -> None:
        values = {step: v for kind, step, v in items if kind == "value"}
        attrs = {key: v for kind, key, v in items if kind == "user"}
        if self.rdb is not None:
            retry_locked(lambda: write_trial_batch(self.rdb, trial_id, values, attrs))  # type: ignore[arg-type]
            return
        for step, value in values.items():
            self.inner.set_trial_intermediate_value(trial_id, step, value)
        for key, value in attrs.items():
            self.inner.set_trial_user_attr(trial_id, key, value)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        try:
            self.writes.flush(lambda key: key == (trial_id, "trial"))
        except UpdateFinishedTrialError:
            self.writes.discard((trial_id, "trial"))  # another worker failed it meanwhile
            raise
        changed = self.inner.set_trial_state_values(trial_id, state, values)
        self._forget_views()
        return changed

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = self.inner.create_new_trial(study_id, template_trial)
        self._forget_views()
        return trial_id

    def get_trial(self, trial_id: int) -> FrozenTrial:
        trial = self.inner.get_trial(trial_id)
        pending = self.writes.pending((trial_id, "trial"))
        if pending:
            trial = copy.copy(trial)
            trial.intermediate_values = {
                **trial.intermediate_values,
                **{step: v for kind, step, v in pending if kind == "value"},
            }
            trial.user_attrs = {
                **trial.user_attrs,
                **{key: v for kind, key, v in pending if kind == "user"},
            }
        return trial

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        with self._views_lock:
            view = self._views.get(study_id)
            stale = view is not None and time.monotonic() - view[0] >= self.refresh
            if stale and study_id not in self._refreshing:
                # An old view still answers now (a pruner's look at the finished trials);
                # a thread reads the new one, so no epoch waits for that read.
                self._refreshing.add(study_id)
                refresh = threading.Thread(
                    target=self._refresh_quietly, args=(study_id,), daemon=True
                )
                refresh.start()
        if view is None:
            view = self._refresh(study_id)
        trials = [t for t in view[1] if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def _refresh(self, study_id: int) -> tuple[float, list[FrozenTrial]]:
        try:
            view = (time.monotonic(), self.inner.get_all_trials(study_id, deepcopy=False))
            with self._views_lock:
                self._views[study_id] = view
            return view
        finally:
            with self._views_lock:
                self._refreshing.discard(study_id)

    def _refresh_quietly(self, study_id: int) -> None:
        try:
            self._refresh(study_id)
        except Exception as exc:  # the old view serves on; the next look tries again
            _log.debug("refreshing the view of study %d failed: %s", study_id, exc)

    def _forget_views(self) -> None:
        with self._views_lock:
            self._views.clear()


def write_trial_batch(
    rdb: RDBStorage, trial_id: int, values: dict[int, float], user_attrs: dict[str, Any]
) -> None:
    """Writes a trial's intermediate values and user attributes in one transaction.

    Uses `RDBStorage`'s own per-row helpers (private, but unchanged since Optuna 3), so the
    rows are exactly those its public setters write.
    """
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(rdb.scoped_session) as session:
        for step, value in values.items():
            rdb._set_trial_intermediate_value_without_commit(session, trial_id, step, value)
        for key, value in user_attrs.items():
            rdb._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, key, value
            )


class BufferedEpochStore(EpochStore):
    """An `EpochStore` whose rows wait in `writes` and reach the table in batches."""

    def __init__(self, engine: Any, writes: WriteBehind) -> None:
        super().__init__(engine)
        self.writes = writes

    def add(self, trial_id: int, result: EpochResult) -> None:
        self.writes.submit((trial_id, "epochs"), result, self._rows(trial_id))

    def _rows(self, trial_id: int) -> Write:
        def write(results: list[EpochResult]) -> None:
            latest = {r.epoch: r for r in results}  # a replayed epoch replaces the earlier
            self.add_many(trial_id, list(latest.values()))

        return write
