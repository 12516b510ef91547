"""Writes that may wait a moment: kept in memory under a key, written in batches.

A worker's per-epoch writes (intermediate values, user attributes, epoch rows, the newest
checkpoint) need not reach the database before the next epoch starts. `WriteBehind` keeps them
and writes each key's batch from one thread every `interval` seconds, or at once on `flush`.

A failed batch is one of two kinds. A transient failure (a lock conflict, a lost connection)
committed nothing and will pass later: the items go back, before any newer ones, for the next
round. Anything else is a refusal (the trial was finished by another process, the row is
invalid): retrying cannot help, so the items are dropped, logged once, handed to `on_refused`,
and raised once by the `flush` that met them. A refusal is never raised again later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

import sqlalchemy as sa

from studies.storage._locks import is_lock_error

_log = logging.getLogger("hpstudy.storage")

FLUSH_INTERVAL = 1.0  # seconds a buffered write may wait before the thread writes it

Write = Callable[[list[Any]], None]
Entry = tuple[Hashable, tuple[Write, list[Any]]]


# A connection refused, dropped or timed out before the server answered; PgBouncer's own
# errors too (a client that waited query_wait_timeout for a server connection is dropped).
CONNECTION_MESSAGES = (
    "server closed the connection",
    "connection refused",
    "too many clients",
    "query_wait_timeout",
    "no more connections allowed",
    "terminating connection",
)


def is_transient(exc: BaseException) -> bool:
    """True for a failure that committed nothing and may pass: a lock or a lost connection.

    The whole chain of causes counts: Optuna wraps a driver's error in StorageInternalError.
    """
    if is_lock_error(exc):
        return True
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa.exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, sa.exc.OperationalError) and any(
            m in str(current).lower() for m in CONNECTION_MESSAGES
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


class WriteBehind:
    """Writes kept in memory under a key and written in batches, by a thread or on demand.

    Each key has one write function that receives the key's pending items, oldest first;
    `replace=True` keeps only the newest item (a checkpoint supersedes the one before).

    Args:
        interval: seconds between the thread's rounds; 0 writes every item as it is submitted.
        on_refused: called with (key, error) when a batch is refused and dropped.
    """

    def __init__(
        self,
        interval: float = FLUSH_INTERVAL,
        *,
        on_refused: Callable[[Hashable, BaseException], None] | None = None,
    ) -> None:
        self.interval = interval
        self.on_refused = on_refused
        self._pending: dict[Hashable, tuple[Write, list[Any]]] = {}
        self._lock = threading.Lock()  # guards _pending
        self._writing = threading.RLock()  # one flush at a time keeps each key's order
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0  # batches written (one transaction each), for benchmarks and logs

    def submit(self, key: Hashable, item: Any, write: Write, *, replace: bool = False) -> None:
        """Queues `item` under `key`; with interval 0 it is written at once.

        Raises:
            Exception: with interval 0 only, what `flush` raises.
        """
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

        Every matched key is tried, whatever happens to the others.

        Raises:
            Exception: the first failure: a refusal (its items are dropped) or a transient
                error that outlasted the write's own retries (its items stay pending).
        """
        first: BaseException | None = None
        with self._writing:
            for entry in self._take(match):
                error = self._write(entry)
                if first is None and error is not None:
                    first = error
        if first is not None:
            raise first

    def close(self) -> None:
        """Stops the thread and writes everything still pending.

        Raises:
            Exception: as `flush`.
        """
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _take(self, match: Callable[[Hashable], bool] | None) -> list[Entry]:
        with self._lock:
            keys = [k for k in self._pending if match is None or match(k)]
            return [(k, self._pending.pop(k)) for k in keys]

    def _write(self, entry: Entry) -> BaseException | None:
        """Writes one key's batch; returns the error it met, after putting back or dropping."""
        key, (write, items) = entry
        try:
            write(items)
            self.batches += 1
        except Exception as exc:
            if is_transient(exc):
                self._put_back(entry)
            else:
                _log.warning("dropped %d buffered write(s) for %s: %s", len(items), key, exc)
                if self.on_refused is not None:
                    self.on_refused(key, exc)
            return exc
        return None

    def _put_back(self, entry: Entry) -> None:
        key, (write, items) = entry
        with self._lock:
            _, newer = self._pending.setdefault(key, (write, []))
            newer[:0] = items

    def _run(self) -> None:
        while not self._closed.wait(self.interval):
            with self._writing:
                for entry in self._take(None):
                    self._write(entry)  # the thread never dies; a refusal is logged
