"""Transient lock errors, and retrying the writes that meet them.

SQLite answers "database is locked" without waiting for its busy timeout when a transaction
that has read must become a writer after another connection wrote (a stale WAL snapshot), and
PostgreSQL aborts one side of a deadlock or of a serialization conflict. Either way nothing was
committed, so the write can be tried again. Optuna retries none of these: a lock error on the
final state write of `tell` leaves the trial RUNNING. `retry_locked` retries a whole
transaction; `WorkerStorage` runs every call through it, and the project's own tables too.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

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
