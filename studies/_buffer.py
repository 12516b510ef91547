"""Keeping the per-epoch path of a trial free of database writes and of most reads.

With many workers on one SQLite file every write waits for the single write lock, and every
read of the study (the pruner's look at the finished trials) costs a query. A worker therefore
keeps the writes that may wait a moment in memory (`WriteBehind`: intermediate values, epoch
rows, the newest checkpoint) and writes them in batches from a thread, and it reads the other
trials at most every `refresh` seconds (`BufferedStorage`). What must not wait is written at
once: everything a trial reported is in the database before its final state is.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Container, Hashable, Sequence
from typing import Any

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from studies._locks import StorageWrapper, is_lock_error
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
    """A worker's Optuna storage: reported values wait in `writes`; reads may lag `refresh`.

    A trial's pending intermediate values are written before its state changes, so a finished
    trial is complete in the database. The view of the study is read again after this worker
    changes a trial's state, and otherwise at most every `refresh` seconds.
    """

    def __init__(
        self, inner: BaseStorage, *, writes: WriteBehind, refresh: float = REFRESH
    ) -> None:
        super().__init__(inner)
        self.writes = writes
        self.refresh = refresh
        self._views: dict[int, tuple[float, list[FrozenTrial]]] = {}
        self._views_lock = threading.Lock()

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self.writes.submit((trial_id, "values"), (step, intermediate_value), self._values(trial_id))

    def _values(self, trial_id: int) -> Write:
        def write(items: list[tuple[int, float]]) -> None:
            for step, value in dict(items).items():  # the last value of a step wins
                self.inner.set_trial_intermediate_value(trial_id, step, value)

        return write

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        self.writes.flush(lambda key: isinstance(key, tuple) and key[0] == trial_id)
        changed = self.inner.set_trial_state_values(trial_id, state, values)
        self._forget_views()
        return changed

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = self.inner.create_new_trial(study_id, template_trial)
        self._forget_views()
        return trial_id

    def get_trial(self, trial_id: int) -> FrozenTrial:
        trial = self.inner.get_trial(trial_id)
        pending = self.writes.pending((trial_id, "values"))
        if pending:
            trial = copy.copy(trial)
            trial.intermediate_values = {**trial.intermediate_values, **dict(pending)}
        return trial

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        now = time.monotonic()
        with self._views_lock:
            view = self._views.get(study_id)
        if view is None or now - view[0] >= self.refresh:
            view = (now, self.inner.get_all_trials(study_id, deepcopy=False))
            with self._views_lock:
                self._views[study_id] = view
        trials = [t for t in view[1] if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def _forget_views(self) -> None:
        with self._views_lock:
            self._views.clear()


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
