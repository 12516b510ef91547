"""Transient lock errors, and retrying the writes that meet them.

SQLite answers "database is locked" without waiting for its busy timeout when a transaction
that has read must become a writer after another connection wrote (a stale WAL snapshot), and
PostgreSQL aborts one side of a deadlock or of a serialization conflict. Either way nothing was
committed, so the write can be tried again. Optuna retries none of these: a lock error on the
final state write of `tell` leaves the trial RUNNING. `LockRetryStorage` retries every storage
call; `retry_locked` does the same for the project's own tables.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Container, Sequence
from typing import Any, TypeVar

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.study._frozen import FrozenStudy
from optuna.study._study_direction import StudyDirection
from optuna.trial import FrozenTrial, TrialState

_log = logging.getLogger("hpstudy.locks")

T = TypeVar("T")
LOCK_MESSAGES = (
    "database is locked",  # SQLite: busy, or a stale snapshot that must not wait
    "database table is locked",
    "database schema is locked",
    "deadlock detected",  # PostgreSQL 40P01
    "could not serialize access",  # PostgreSQL 40001
    "could not obtain lock",  # PostgreSQL 55P03
)
ATTEMPTS = 30  # tries before the error is raised after all (about 20 s of backing off)
FIRST_DELAY = 0.01  # seconds before the first retry; doubled each time, with jitter
MAX_DELAY = 1.0


def is_lock_error(exc: BaseException) -> bool:
    """True for a transient lock conflict anywhere in `exc`'s chain of causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(m in str(current).lower() for m in LOCK_MESSAGES):
            return True
        orig = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's
        if isinstance(orig, BaseException):
            current = orig
        else:
            current = current.__cause__ or current.__context__
    return False


def retry_locked(
    call: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Calls `call`, again after a short, growing pause whenever it fails with a lock error.

    `call` must be a whole transaction: a lock error means it committed nothing.

    Raises:
        Exception: the last lock error after `attempts` tries, or any other error at once.
    """
    delay = FIRST_DELAY
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts or not is_lock_error(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
            _log.debug("lock conflict (attempt %d), retrying: %s", attempt, exc)
            time.sleep(delay * (0.5 + random.random()))
            delay = min(2 * delay, MAX_DELAY)
    raise AssertionError("unreachable")


class StorageWrapper(BaseStorage, BaseHeartbeat):
    """An Optuna storage that hands every call to `inner` through `_call`.

    Subclasses change what they need; heartbeats pass through, so `fail_stale_trials` and
    the heartbeat of a running trial keep working.
    """

    def __init__(self, inner: BaseStorage) -> None:
        self.inner = inner

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return method(*args, **kwargs)

    # Studies.
    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return self._call(self.inner.create_new_study, directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self._call(self.inner.delete_study, study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call(self.inner.set_study_user_attr, study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call(self.inner.set_study_system_attr, study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._call(self.inner.get_study_id_from_name, study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._call(self.inner.get_study_name_from_id, study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._call(self.inner.get_study_directions, study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call(self.inner.get_study_user_attrs, study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._call(self.inner.get_study_system_attrs, study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._call(self.inner.get_all_studies)

    # Trials.
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._call(self.inner.create_new_trial, study_id, template_trial)

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: optuna.distributions.BaseDistribution,
    ) -> None:
        self._call(
            self.inner.set_trial_param, trial_id, param_name, param_value_internal, distribution
        )

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        return self._call(self.inner.set_trial_state_values, trial_id, state, values)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self._call(self.inner.set_trial_intermediate_value, trial_id, step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call(self.inner.set_trial_user_attr, trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call(self.inner.set_trial_system_attr, trial_id, key, value)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._call(
            self.inner.get_trial_id_from_study_id_trial_number, study_id, trial_number
        )

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._call(self.inner.get_trial, trial_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        return self._call(self.inner.get_all_trials, study_id, deepcopy, states)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._call(self.inner.get_best_trial, study_id)

    def remove_session(self) -> None:
        self.inner.remove_session()

    # Heartbeats.
    def record_heartbeat(self, trial_id: int) -> None:
        assert isinstance(self.inner, BaseHeartbeat)
        self._call(self.inner.record_heartbeat, trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        assert isinstance(self.inner, BaseHeartbeat)
        return self._call(self.inner._get_stale_trial_ids, study_id)

    def get_heartbeat_interval(self) -> int | None:
        if not isinstance(self.inner, BaseHeartbeat):
            return None
        return self.inner.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        if not isinstance(self.inner, BaseHeartbeat):
            return None
        return self.inner.get_heartbeat_stale_trial_callback()


class LockRetryStorage(StorageWrapper):
    """Retries every storage call that fails with a transient lock error.

    Writes are safe to repeat: a lock error means the transaction committed nothing, and a
    state write that finds its own state already stored counts as done.
    """

    def __init__(self, inner: BaseStorage, *, attempts: int = ATTEMPTS) -> None:
        super().__init__(inner)
        self.attempts = attempts
        self.retries = 0  # lock errors met and retried, for benchmarks and logs

    def _count(self, _exc: BaseException) -> None:
        self.retries += 1

    def _call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return retry_locked(
            lambda: method(*args, **kwargs), attempts=self.attempts, on_retry=self._count
        )

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        retried = False

        def write() -> bool:
            nonlocal retried
            try:
                return self.inner.set_trial_state_values(trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                # A retry after an attempt that did commit (possible only when a server's
                # reply was lost) finds its own state there.
                if retried and self.inner.get_trial(trial_id).state == state:
                    return True
                raise

        def count(exc: BaseException) -> None:
            nonlocal retried
            retried = True
            self._count(exc)

        return retry_locked(write, attempts=self.attempts, on_retry=count)
