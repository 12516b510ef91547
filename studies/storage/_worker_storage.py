"""`WorkerStorage`: the one storage a worker process writes and reads through."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Container, Hashable, Iterable, Sequence
from typing import Any, TypeVar

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from studies.storage import _optuna
from studies.storage._locks import ATTEMPTS, retry_locked
from studies.storage._urls import open_storage
from studies.storage._write_behind import FLUSH_INTERVAL, WriteBehind

_log = logging.getLogger("hpstudy.storage")

T = TypeVar("T")
REFRESH = 1.0  # seconds this process's view of other processes' trials may lag
StaleCallback = Callable[[optuna.Study, FrozenTrial], None]


@dataclasses.dataclass
class _View:
    """The trials of one study as read from the database at `started` (monotonic seconds).

    A refresh changes it in place, under the storage's lock, with only the trials it read:
    its cost grows with what changed since the last refresh, not with the study.
    """

    trials: dict[int, FrozenTrial]  # trial id -> trial; each trial never changed once stored
    unfinished: set[int]  # ids read again by every refresh
    last_finished: int  # ids above it are read again by every refresh
    started: float


@dataclasses.dataclass
class _Merged:
    """The view with this process's newer knowledge over it, ordered by trial number."""

    trials: list[FrozenTrial]
    position: dict[int, int]  # trial id -> index in `trials`
    # states -> the trials in them, in order; dropped when a trial in or entering them changes
    by_states: dict[frozenset[TrialState], list[FrozenTrial]] = dataclasses.field(
        default_factory=dict
    )


@dataclasses.dataclass(frozen=True)
class _Local:
    """What this process knows of a trial it wrote, newer than any view read before `since`."""

    trial: FrozenTrial  # never changed once stored: a write stores a new copy
    study_id: int
    since: float
    running_here: bool  # RUNNING in this process: its buffered writes exist only here


class WorkerStorage(BaseStorage, _optuna.BaseHeartbeat):
    """Optuna's `RDBStorage` with write-behind, lock retries and a view, for one worker process.

    **What is durable when**

    - Study writes, new trials, parameters, system attributes and every state change are
      written through: durable when the call returns.
    - While a trial is RUNNING in this process, its intermediate values and user attributes
      are kept in memory and written in one transaction per trial by a background thread at
      most `flush_interval` seconds later (plus the time of that write). All of them are
      written before the trial's state changes, and at `flush()` and `close()`. A process that
      dies loses at most the last `flush_interval` seconds of such reports; its trial is then
      failed by the heartbeat anyway.
    - `writes` is the same write-behind, open to the project's own rows (epochs,
      checkpoints): rows keyed `(trial_id, ...)` are written before that trial's state changes.

    **What this process reads back at once**

    Everything it wrote, through every read: `get_trial`, `get_all_trials` and the rest see
    this process's params, attributes, intermediate values and state changes at once, buffered
    or not.

    **What another process sees, and how late**

    Written-through changes at once; buffered ones within `flush_interval` seconds plus one
    write. This process sees the other processes' trials through a view that is read again in
    the background once it is `refresh` seconds old (the old view answers meanwhile), so they
    reach its reads within `refresh` seconds plus one read, and `refresh=0` reads on every
    call. A view read before this process changed a trial never hides that change.

    **Atomic state changes**

    A state change is one conditional update: of several processes that take the same WAITING
    trial, exactly one gets it (the others get False), on SQLite as on PostgreSQL; finishing a
    trial that another process finished first raises `UpdateFinishedTrialError`.

    **Refused writes**

    A buffered write that the database refuses (the trial was failed by another process as
    stale, or deleted) is dropped, logged once and never retried: reads show the trial as the
    database has it, and the trial's next state change raises `UpdateFinishedTrialError`.

    **Lock conflicts** (SQLite's busy or stale snapshot, PostgreSQL's deadlock or
    serialization failure) commit nothing; every call is retried for about 20 s.

    **Pickling** flushes the pending writes; the copy opens its own connections with the same
    settings (its stale-trial callback must pickle too).

    Args:
        url: the database, any SQLAlchemy URL Optuna accepts.
        heartbeat_interval: seconds between a running trial's heartbeats; None: no heartbeats.
        grace_period: seconds of silence after which a running trial counts as dead.
        stale_trial_callback: called with each trial this process fails as stale.
        flush_interval: seconds buffered writes may wait; 0 writes them as they come.
        refresh: seconds the view of other processes' trials may lag; 0 reads every time.
        attempts: tries of a call that meets lock conflicts before its error is raised.
    """

    def __init__(
        self,
        url: str,
        *,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        stale_trial_callback: StaleCallback | None = None,
        flush_interval: float = FLUSH_INTERVAL,
        refresh: float = REFRESH,
        attempts: int = ATTEMPTS,
    ) -> None:
        self._settings: dict[str, Any] = {
            "url": url,
            "heartbeat_interval": heartbeat_interval,
            "grace_period": grace_period,
            "stale_trial_callback": stale_trial_callback,
            "flush_interval": flush_interval,
            "refresh": refresh,
            "attempts": attempts,
        }
        self._open()

    def _open(self) -> None:
        settings = self._settings
        self.url: str = settings["url"]
        self.refresh: float = settings["refresh"]
        self.attempts: int = settings["attempts"]
        self._rdb = open_storage(
            self.url,
            heartbeat_interval=settings["heartbeat_interval"],
            grace_period=settings["grace_period"],
            stale_trial_callback=settings["stale_trial_callback"],
        )
        self.writes = WriteBehind(settings["flush_interval"], on_refused=self._refused)
        self.retries = 0  # lock conflicts met and retried, for benchmarks and logs
        self._lock = threading.RLock()  # guards everything below; never held across a query
        self._views: dict[int, _View] = {}
        self._refreshing: set[int] = set()
        self._local: dict[int, _Local] = {}
        self._ids: dict[tuple[int, int], int] = {}  # (study id, trial number) -> trial id
        self._studies: dict[int, tuple[str, list[StudyDirection]]] = {}
        self._merged: dict[int, _Merged] = {}
        self._dirty: dict[int, set[int]] = {}  # study id -> trial ids `_merged` may have wrong

    def __getstate__(self) -> dict[str, Any]:
        self.flush()
        return {"_settings": self._settings}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._settings = state["_settings"]
        self._open()

    # --- the write-behind ---------------------------------------------------------------

    def flush(self) -> None:
        """Writes every buffered write now.

        Raises:
            Exception: the first refusal or lasting failure (see `WriteBehind.flush`).
        """
        self.writes.flush()

    def close(self) -> None:
        """Writes what is buffered, stops the thread and closes the connections.

        A buffered write refused now (its trial was finished by another process meanwhile)
        is logged and dropped, as the thread would have: closing does not fail on it.
        """
        try:
            self.writes.close()
        except (UpdateFinishedTrialError, KeyError) as exc:
            _log.warning("closing the worker storage: a write was refused: %s", exc)
        finally:
            self._rdb.engine.dispose()

    def _retry(self, call: Callable[[], T]) -> T:
        return retry_locked(call, attempts=self.attempts, on_retry=self._count)

    def _count(self, _exc: BaseException) -> None:
        self.retries += 1

    def _buffer(self, trial_id: int, kind: str, key: Any, value: Any) -> None:
        self.writes.submit(
            (trial_id, "optuna"), (kind, key, value), lambda items: self._write(trial_id, items)
        )

    def _write(self, trial_id: int, items: list[tuple[str, Any, Any]]) -> None:
        values = {step: v for kind, step, v in items if kind == "value"}
        attrs = {key: v for kind, key, v in items if kind == "user"}
        self._retry(lambda: _optuna.write_trial_batch(self._rdb, trial_id, values, attrs))

    def _refused(self, key: Hashable, _exc: BaseException) -> None:
        """A trial's buffered writes were refused: forget what only this process believed."""
        if isinstance(key, tuple) and key and isinstance(key[0], int):
            trial_id = key[0]
            with self._lock:
                local = self._local.get(trial_id)
                if local is not None and local.running_here:
                    del self._local[trial_id]
                    self._touch(local.study_id, trial_id)
            for kind in ("optuna", "epochs"):
                if key != (trial_id, kind):
                    self.writes.discard((trial_id, kind))

    # --- what this process knows of trials ----------------------------------------------

    def _remember(self, trial: FrozenTrial, study_id: int, *, running_here: bool) -> None:
        with self._lock:
            self._local[trial._trial_id] = _Local(trial, study_id, time.monotonic(), running_here)
            self._ids[(study_id, trial.number)] = trial._trial_id
            self._touch(study_id, trial._trial_id)

    def _change(self, trial_id: int, change: Callable[[FrozenTrial], None]) -> bool:
        """Applies `change` to a copy of a trial RUNNING here; False when it is not."""
        with self._lock:
            local = self._local.get(trial_id)
            if local is None or not local.running_here:
                return False
            trial = copy.copy(local.trial)
            change(trial)
            self._local[trial_id] = dataclasses.replace(local, trial=trial, since=time.monotonic())
            self._touch(local.study_id, trial_id)
            return True

    def _touch(self, study_id: int, trial_id: int) -> None:
        """Marks a trial whose merged value may have changed (the caller holds the lock)."""
        self._dirty.setdefault(study_id, set()).add(trial_id)

    def _reread(self, trial_id: int, study_id: int | None = None) -> None:
        """Reads a trial this process wrote through, so its reads show the write at once."""
        trial = self._retry(lambda: self._rdb.get_trial(trial_id))
        with self._lock:
            local = self._local.get(trial_id)
            known = study_id if study_id is not None else local.study_id if local else None
        if known is None:
            known = self._retry(lambda: _optuna.trial_study_id(self._rdb, trial_id))
        running = trial.state == TrialState.RUNNING and local is not None and local.running_here
        self._remember(trial, known, running_here=running)

    # --- studies ------------------------------------------------------------------------

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        study_id = self._retry(lambda: self._rdb.create_new_study(directions, study_name))
        self._forget_study(study_id)
        return study_id

    def delete_study(self, study_id: int) -> None:
        self._retry(lambda: self._rdb.delete_study(study_id))
        self._forget_study(study_id)

    def _forget_study(self, study_id: int) -> None:
        """Drops everything known of a study id (SQLite gives a deleted study's id again)."""
        with self._lock:
            self._views.pop(study_id, None)
            self._merged.pop(study_id, None)
            self._dirty.pop(study_id, None)
            self._studies.pop(study_id, None)
            gone = [tid for tid, local in self._local.items() if local.study_id == study_id]
            for trial_id in gone:
                del self._local[trial_id]
            self._ids = {key: tid for key, tid in self._ids.items() if key[0] != study_id}
        for trial_id in gone:
            self.writes.discard((trial_id, "optuna"))

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._retry(lambda: self._rdb.set_study_user_attr(study_id, key, value))

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._retry(lambda: self._rdb.set_study_system_attr(study_id, key, value))

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._retry(lambda: self._rdb.get_study_id_from_name(study_name))

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._study(study_id)[0]

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return list(self._study(study_id)[1])

    def _study(self, study_id: int) -> tuple[str, list[StudyDirection]]:
        """A study's name and directions, which never change, read once."""
        with self._lock:
            known = self._studies.get(study_id)
        if known is None:
            name = self._retry(lambda: self._rdb.get_study_name_from_id(study_id))
            directions = self._retry(lambda: self._rdb.get_study_directions(study_id))
            known = (name, directions)
            with self._lock:
                self._studies[study_id] = known
        return known

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._retry(lambda: self._rdb.get_study_user_attrs(study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._retry(lambda: self._rdb.get_study_system_attrs(study_id))

    def get_all_studies(self) -> list[_optuna.FrozenStudy]:
        return self._retry(self._rdb.get_all_studies)

    # --- trial writes -------------------------------------------------------------------

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial = self._retry(lambda: _optuna.create_trial(self._rdb, study_id, template_trial))
        self._remember(trial, study_id, running_here=trial.state == TrialState.RUNNING)
        return trial._trial_id

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        # Written through: the database checks the distribution against the study's others.
        self._retry(
            lambda: self._rdb.set_trial_param(
                trial_id, param_name, param_value_internal, distribution
            )
        )

        value = distribution.to_external_repr(param_value_internal)

        def change(trial: FrozenTrial) -> None:
            trial.params = {**trial.params, param_name: value}
            trial.distributions = {**trial.distributions, param_name: distribution}

        if not self._change(trial_id, change):
            self._reread(trial_id)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        def change(trial: FrozenTrial) -> None:
            trial.intermediate_values = {**trial.intermediate_values, step: intermediate_value}

        self._set_buffered(
            trial_id,
            change,
            ("value", step, intermediate_value),
            "intermediate value",
            lambda: self._rdb.set_trial_intermediate_value(trial_id, step, intermediate_value),
        )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        json.dumps(value)  # not JSON: refused now, as RDBStorage does, not at the flush

        def change(trial: FrozenTrial) -> None:
            trial.user_attrs = {**trial.user_attrs, key: value}

        self._set_buffered(
            trial_id,
            change,
            ("user", key, value),
            "user attribute",
            lambda: self._rdb.set_trial_user_attr(trial_id, key, value),
        )

    def _set_buffered(
        self,
        trial_id: int,
        change: Callable[[FrozenTrial], None],
        row: tuple[str, Any, Any],
        what: str,
        through: Callable[[], None],
    ) -> None:
        """A write to a trial this process runs: `change` applied to its copy at once and
        `row` (kind, key, value) buffered. Any other trial's write goes `through` to the
        database, refused at once where this process knows the trial has finished (its `what`
        cannot change)."""
        if self._change(trial_id, change):
            self._buffer(trial_id, *row)
            return
        with self._lock:
            local = self._local.get(trial_id)
        if local is not None and local.trial.state.is_finished():
            raise UpdateFinishedTrialError(
                f"trial {local.trial.number} has finished; its {what} cannot change"
            )
        self._retry(through)
        self._reread(trial_id)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._retry(lambda: self._rdb.set_trial_system_attr(trial_id, key, value))

        def change(trial: FrozenTrial) -> None:
            trial.system_attrs = {**trial.system_attrs, key: value}

        if not self._change(trial_id, change):
            self._reread(trial_id)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        # 1. Everything the trial reported reaches the database before its new state does.
        try:
            self.writes.flush(lambda key: isinstance(key, tuple) and key[:1] == (trial_id,))
        except Exception as exc:
            if not isinstance(exc, (UpdateFinishedTrialError, KeyError)):
                raise
            # Refused: another process finished it; the state write below says so.
        # 2. One conditional update decides.
        changed, study_id = self._retry(
            lambda: _optuna.set_trial_state(self._rdb, trial_id, state, values)
        )
        if changed:
            trial = self._retry(lambda: self._rdb.get_trial(trial_id))
            self._remember(trial, study_id, running_here=state == TrialState.RUNNING)
        return changed

    # --- trial reads --------------------------------------------------------------------

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        with self._lock:
            known = self._ids.get((study_id, trial_number))
        if known is not None:
            return known
        return self._retry(
            lambda: self._rdb.get_trial_id_from_study_id_trial_number(study_id, trial_number)
        )

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            local = self._local.get(trial_id)
            view = self._views.get(local.study_id) if local else None
            seen = view.trials.get(trial_id) if view else None
        if local is not None and not (
            local.running_here and seen is not None and seen.state.is_finished()
        ):
            return copy.deepcopy(local.trial)  # callers (optuna.Trial) change what they get
        return self._retry(lambda: self._rdb.get_trial(trial_id))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        trials = self._merge(study_id, self._current_view(study_id), states)
        return copy.deepcopy(trials) if deepcopy else trials

    def _merge(
        self, study_id: int, view: _View, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        """The view with this process's newer knowledge over it, by trial number; a new list.

        Kept between calls and brought up to date with only the trials changed since (by a
        refresh or by this process), so a report does not sort the whole study again; the
        trials in given states are kept too, so a pruner's read after a report (which changes
        only a RUNNING trial) does not filter the whole study again.
        """
        with self._lock:
            if self._views.get(study_id) is not view:  # the study was forgotten meanwhile
                self._merged.pop(study_id, None)
            merged = self._merged.get(study_id)
            dirty = self._dirty.pop(study_id, set())
            if merged is not None and dirty:
                merged = self._update(merged, study_id, view, dirty)
            if merged is None:
                ids = set(view.trials)
                ids.update(tid for tid, local in self._local.items() if local.study_id == study_id)
                known = (self._newest(study_id, view, tid) for tid in ids)
                trials = sorted((t for t in known if t is not None), key=lambda t: t.number)
                merged = _Merged(trials, {t._trial_id: i for i, t in enumerate(trials)})
            if self._views.get(study_id) is view:
                self._merged[study_id] = merged
            if states is None:
                return list(merged.trials)
            if not isinstance(states, Iterable):
                return [t for t in merged.trials if t.state in states]
            key = frozenset(states)
            chosen = merged.by_states.get(key)
            if chosen is None:
                chosen = merged.by_states[key] = [t for t in merged.trials if t.state in key]
            return list(chosen)

    def _update(
        self, merged: _Merged, study_id: int, view: _View, dirty: set[int]
    ) -> _Merged | None:
        """`merged` with the `dirty` trials replaced or added; None: build it again."""
        added: list[FrozenTrial] = []
        for trial_id in dirty:
            trial = self._newest(study_id, view, trial_id)
            index = merged.position.get(trial_id)
            if trial is None:
                if index is not None:
                    return None  # a trial went away (refused before any read): rare
            elif index is not None:
                self._forget_states(merged, merged.trials[index], trial)
                merged.trials[index] = trial  # a trial's number never changes
            else:
                self._forget_states(merged, trial)
                added.append(trial)
        if not added:
            return merged
        added.sort(key=lambda t: t.number)
        last = merged.trials[-1].number if merged.trials else -1
        if added[0].number < last:
            return None  # a trial older than the newest known arrived late: sort again
        for trial in added:
            merged.position[trial._trial_id] = len(merged.trials)
            merged.trials.append(trial)
        return merged

    @staticmethod
    def _forget_states(merged: _Merged, *trials: FrozenTrial) -> None:
        """Drops the kept lists of the states these versions of a trial are in."""
        changed = {t.state for t in trials}
        for key in [key for key in merged.by_states if not key.isdisjoint(changed)]:
            del merged.by_states[key]

    def _newest(self, study_id: int, view: _View, trial_id: int) -> FrozenTrial | None:
        """What this process knows newest of a trial: its own write, or the view's read."""
        seen = view.trials.get(trial_id)
        local = self._local.get(trial_id)
        if local is None or local.study_id != study_id:
            return seen
        if local.running_here:
            if seen is None or not seen.state.is_finished():  # else: failed as stale
                return local.trial
            return seen
        if seen is None or local.since >= view.started:
            return local.trial
        return seen

    def _current_view(self, study_id: int) -> _View:
        with self._lock:
            view = self._views.get(study_id)
            due = view is not None and time.monotonic() - view.started >= self.refresh
            background = due and self.refresh > 0 and study_id not in self._refreshing
            if background:
                self._refreshing.add(study_id)
        if view is None or self.refresh <= 0:
            return self._read_view(study_id)
        if background:
            threading.Thread(
                target=self._refresh_quietly, args=(study_id,), name="hpstudy-view", daemon=True
            ).start()
        return view

    def _refresh_quietly(self, study_id: int) -> None:
        try:
            self._read_view(study_id)
        except Exception as exc:  # the old view serves on; the next look tries again
            _log.debug("refreshing the view of study %d failed: %s", study_id, exc)
        finally:
            with self._lock:
                self._refreshing.discard(study_id)

    def _read_view(self, study_id: int) -> _View:
        """Reads the new and unfinished trials of a study into its view, in place."""
        started = time.monotonic()
        with self._lock:
            base = self._views.get(study_id)
            unfinished = set(base.unfinished) if base else set()
            after = base.last_finished if base else -1
        read = self._retry(
            lambda: _optuna.read_trials(self._rdb, study_id, unfinished=unfinished, after=after)
        )
        with self._lock:
            view = self._views.get(study_id)
            if view is not None and view.started > started:
                return view  # a newer read was installed meanwhile
            if view is None:
                view = self._views[study_id] = _View({}, set(), -1, started)
            view.started = started
            for trial in read:
                view.trials[trial._trial_id] = trial
                self._ids[(study_id, trial.number)] = trial._trial_id
                self._touch(study_id, trial._trial_id)
                if trial.state.is_finished():
                    view.unfinished.discard(trial._trial_id)
                    view.last_finished = max(view.last_finished, trial._trial_id)
                else:
                    view.unfinished.add(trial._trial_id)
            # What this process wrote before this read began is in it now.
            for trial_id, local in list(self._local.items()):
                if local.study_id == study_id:
                    self._touch(study_id, trial_id)  # `started` moved: what is newest may too
                    if not local.running_here and local.since < started:
                        del self._local[trial_id]
        return view

    def remove_session(self) -> None:
        self._rdb.remove_session()

    # --- heartbeats ---------------------------------------------------------------------

    def record_heartbeat(self, trial_id: int) -> None:
        self._retry(lambda: self._rdb.record_heartbeat(trial_id))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self._retry(lambda: self._rdb._get_stale_trial_ids(study_id))

    def get_heartbeat_interval(self) -> int | None:
        return self._rdb.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self._rdb.get_heartbeat_stale_trial_callback()
