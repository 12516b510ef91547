"""Training checkpoints in the study database, so a re-queued trial resumes on any machine.

A checkpoint belongs to a retry chain, not to one trial: it is keyed by the study and the
number of the chain's first trial (`chain_root`), so the retry of a trial whose worker died
finds the state its predecessor saved after its last finished epoch. It is deleted when the
chain ends (the trial completes, is pruned, or fails for good).

Saving is throttled: a state is written at once when the last write is `min_interval` seconds
old, else it waits in the worker's `WriteBehind` and the newer state replaces it. Slow epochs
(real training) are all saved as they finish; very fast ones cost at most one write a second.
"""

from __future__ import annotations

import datetime
import io
import time
from collections.abc import Callable
from typing import Any

import optuna
import sqlalchemy as sa

from studies.storage._locks import retry_locked
from studies.storage._tables import CHECKPOINTS, ensure_tables
from studies.storage._trial_attrs import chain_root, write_attrs
from studies.storage._write_behind import WriteBehind

MIN_INTERVAL = 1.0  # seconds between two checkpoint writes of one trial


class CheckpointTable:
    """Rows of `hpstudy_checkpoints` for one study; each call is one short transaction."""

    def __init__(self, engine: sa.Engine, study_id: int) -> None:
        self.engine = engine
        self.study_id = study_id
        ensure_tables(engine)

    def _key(self, root: int) -> Any:
        return (CHECKPOINTS.c.study_id == self.study_id) & (CHECKPOINTS.c.root_trial == root)

    def save(self, root: int, epochs: int, state: bytes) -> None:
        def write() -> None:
            with self.engine.begin() as connection:
                connection.execute(CHECKPOINTS.delete().where(self._key(root)))
                connection.execute(
                    CHECKPOINTS.insert().values(
                        study_id=self.study_id,
                        root_trial=root,
                        epochs=epochs,
                        state=state,
                        saved=datetime.datetime.now(datetime.UTC).replace(tzinfo=None),
                    )
                )

        retry_locked(write)

    def load(self, root: int) -> tuple[int, bytes] | None:
        """(finished epochs, state bytes) of chain `root`, or None."""

        def read() -> Any:
            with self.engine.connect() as connection:
                return connection.execute(
                    sa.select(CHECKPOINTS.c.epochs, CHECKPOINTS.c.state).where(self._key(root))
                ).first()

        row = retry_locked(read)
        return None if row is None else (int(row.epochs), bytes(row.state))

    def delete(self, root: int) -> None:
        def write() -> None:
            with self.engine.begin() as connection:
                connection.execute(CHECKPOINTS.delete().where(self._key(root)))

        retry_locked(write)

    def roots(self) -> list[int]:
        """The chains that have a checkpoint."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(CHECKPOINTS.c.root_trial).where(CHECKPOINTS.c.study_id == self.study_id)
            )
            return sorted(int(root) for (root,) in rows)


class TrialCheckpoint:
    """A `trainer.CheckpointStore` for one retry chain, kept in the study database."""

    def __init__(
        self,
        table: CheckpointTable,
        root: int,
        *,
        writes: WriteBehind | None = None,
        min_interval: float = MIN_INTERVAL,
        on_resume: Callable[[int], None] | None = None,
    ) -> None:
        self.table, self.root, self.writes = table, root, writes
        self.min_interval = min_interval
        self.on_resume = on_resume
        self._last_write = -float("inf")

    @property
    def key(self) -> tuple[str, int, int]:
        return ("checkpoint", self.table.study_id, self.root)

    def load(self) -> dict[str, Any] | None:
        saved = self.table.load(self.root)
        if saved is None:
            return None
        epochs, blob = saved
        import torch  # only a worker that trains gets here

        state: dict[str, Any] = torch.load(io.BytesIO(blob), weights_only=False)
        if self.on_resume is not None:
            self.on_resume(epochs)
        return state

    def save(self, state: dict[str, Any]) -> None:
        # Serialised now: the state holds the live model's tensors, which the next epoch changes.
        import torch

        buffer = io.BytesIO()
        torch.save(state, buffer)
        item = (len(state["epochs"]), buffer.getvalue())
        now = time.monotonic()
        if self.writes is None or now - self._last_write >= self.min_interval:
            if self.writes is not None:
                self.writes.discard(self.key)
            self._last_write = now
            self.table.save(self.root, *item)
        else:
            self.writes.submit(self.key, item, self._write_latest, replace=True)

    def _write_latest(self, items: list[tuple[int, bytes]]) -> None:
        self._last_write = time.monotonic()
        self.table.save(self.root, *items[-1])


class Checkpoints:
    """The checkpoints of one study, as a worker uses them."""

    def __init__(
        self,
        engine: sa.Engine,
        study_id: int,
        *,
        writes: WriteBehind | None = None,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        self.table = CheckpointTable(engine, study_id)
        self.writes = writes
        self.min_interval = min_interval

    def for_trial(self, trial: optuna.Trial, root: int) -> TrialCheckpoint:
        """The `CheckpointFactory` of `Objective`: a retry notes the epoch it resumed from."""
        return TrialCheckpoint(
            self.table,
            root,
            writes=self.writes,
            min_interval=self.min_interval,
            on_resume=lambda epochs: write_attrs(trial, resumed_from_epoch=epochs),
        )

    def _key(self, root: int) -> tuple[str, int, int]:
        return ("checkpoint", self.table.study_id, root)

    def keep(self, root: int) -> None:
        """Writes chain `root`'s newest state now (its trial was interrupted)."""
        if self.writes is not None:
            self.writes.flush(lambda key: key == self._key(root))

    def finish(self, root: int) -> None:
        """Drops chain `root`'s checkpoint: it has ended."""
        if self.writes is not None:
            self.writes.discard(self._key(root))
        self.table.delete(root)

    def prune(self, study: optuna.Study) -> list[int]:
        """Deletes the checkpoints of chains with no trial left running or waiting.

        Returns:
            The root trial numbers whose checkpoints were deleted.
        """
        states = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
        alive = {chain_root(t) for t in study.get_trials(deepcopy=False, states=states)}
        dead = [root for root in self.table.roots() if root not in alive]
        for root in dead:
            self.table.delete(root)
        return dead
