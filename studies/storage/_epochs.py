"""Per-epoch metrics of every trial, in the project's own table."""

from __future__ import annotations

import json
import math
from typing import Any

import sqlalchemy as sa

from studies.storage._locks import retry_locked
from studies.storage._tables import EPOCHS, PARTIAL_EPOCHS, ensure_tables
from studies.storage._trial_attrs import TrialAttrs
from studies.storage._write_behind import Write, WriteBehind
from trainer import EpochResult  # a record only: it loads without torch

# Optuna's own tables: the study a trial belongs to, and a trial's user attributes (only the
# columns read).
_OPTUNA_TRIALS = sa.table("trials", sa.column("trial_id"), sa.column("study_id"))
_OPTUNA_USER_ATTRS = sa.table(
    "trial_user_attributes", sa.column("trial_id"), sa.column("key"), sa.column("value_json")
)
_FLOATS = (
    "train_loss",
    "train_accuracy",
    "dev_loss",
    "dev_accuracy",
    "dev_rmse",
    "dev_r2",
    "lr",
    "seconds",
)


class EpochStore:
    """Writes and reads the rows of `hpstudy_epochs`; one short transaction per write."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        ensure_tables(engine)

    def add(self, trial_id: int, result: EpochResult) -> None:
        """Stores one epoch of a trial, or a point inside its first epoch (replacing an
        earlier row for the same epoch and fraction)."""
        self.add_many(trial_id, [result])

    def add_many(self, trial_id: int, results: list[EpochResult]) -> None:
        """Stores epochs of a trial in one short transaction, retried on a lock conflict."""
        whole: list[dict[str, Any]] = []
        partial: list[dict[str, Any]] = []
        for result in results:
            row: dict[str, Any] = result.to_dict()
            for key in _FLOATS:
                row[key] = row[key] if math.isfinite(row[key]) else None
            row["grad_norm_mean"] = _finite(row["grad_norm_mean"])
            row["grad_norm_max"] = _finite(row["grad_norm_max"])
            if result.partial:
                partial.append({"trial_id": trial_id, **row})
            else:
                del row["fraction"]  # a whole epoch's is 1
                whole.append({"trial_id": trial_id, **row})
        if not results:
            return

        def write() -> None:
            with self.engine.begin() as connection:
                if whole:
                    connection.execute(
                        EPOCHS.delete().where(
                            (EPOCHS.c.trial_id == trial_id)
                            & EPOCHS.c.epoch.in_([row["epoch"] for row in whole])
                        )
                    )
                    connection.execute(EPOCHS.insert(), whole)
                for row in partial:
                    connection.execute(
                        PARTIAL_EPOCHS.delete().where(
                            (PARTIAL_EPOCHS.c.trial_id == trial_id)
                            & (PARTIAL_EPOCHS.c.epoch == row["epoch"])
                            & (PARTIAL_EPOCHS.c.fraction == row["fraction"])
                        )
                    )
                if partial:
                    connection.execute(PARTIAL_EPOCHS.insert(), partial)

        retry_locked(write)

    def epochs(self, trial_id: int, *, partials: bool = False) -> list[EpochResult]:
        """The stored epochs of a trial, oldest first.

        Values that were not finite come back as NaN (a gradient norm too); an epoch stored
        before its end time was recorded has `finished_at` 0.

        Args:
            trial_id: Optuna's id of the trial.
            partials: also the points scored inside the first epoch (`fraction` < 1), each
                before the whole epoch it lies in.
        """
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(EPOCHS).where(EPOCHS.c.trial_id == trial_id).order_by(EPOCHS.c.epoch)
            ).mappings()
            found = [_record(row) for row in rows]
            if partials:
                rows = connection.execute(
                    sa.select(PARTIAL_EPOCHS).where(PARTIAL_EPOCHS.c.trial_id == trial_id)
                ).mappings()
                found += [_record(row) for row in rows]
        return sorted(found, key=lambda e: (e.epoch, e.fraction))

    def values_at(
        self, study_id: int, epoch: int, metric: str, *, fraction: float = 1.0
    ) -> dict[int, float]:
        """`metric` at `epoch` of every trial of the study that has stored that epoch, by
        trial id (NaN where it was not finite); with `fraction` < 1, at that point inside the
        epoch (the trials of a study share their fractions: the same split, the same points)."""
        table = EPOCHS if fraction >= 1.0 else PARTIAL_EPOCHS
        where = (_OPTUNA_TRIALS.c.study_id == study_id) & (table.c.epoch == epoch)
        if fraction < 1.0:
            # the same computation gives the same float; the margin is for a database's rounding
            where &= table.c.fraction.between(fraction - 1e-9, fraction + 1e-9)
        column = table.c[metric]
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(table.c.trial_id, column)
                .join(_OPTUNA_TRIALS, _OPTUNA_TRIALS.c.trial_id == table.c.trial_id)
                .where(where)
            )
            return {int(t): math.nan if v is None else float(v) for t, v in rows}

    def measured(self, study_id: int) -> dict[int, dict[str, float]]:
        """The `measured` user attribute (a network's params, flops, ...) of every trial of
        the study that has one, by trial id."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(_OPTUNA_USER_ATTRS.c.trial_id, _OPTUNA_USER_ATTRS.c.value_json)
                .join(_OPTUNA_TRIALS, _OPTUNA_TRIALS.c.trial_id == _OPTUNA_USER_ATTRS.c.trial_id)
                .where(
                    (_OPTUNA_TRIALS.c.study_id == study_id)
                    & (_OPTUNA_USER_ATTRS.c.key == TrialAttrs.key("measured"))
                )
            )
            return {int(t): dict(json.loads(v)) for t, v in rows if v}

    def counts(self, trial_ids: list[int]) -> dict[int, int]:
        """Whole epochs stored per trial."""
        if not trial_ids:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(EPOCHS.c.trial_id, sa.func.count())
                .where(EPOCHS.c.trial_id.in_(trial_ids))
                .group_by(EPOCHS.c.trial_id)
            )
            return {int(trial_id): int(n) for trial_id, n in rows}


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def _record(row: Any) -> EpochResult:
    """A stored row as the record it was written from: NULL (not finite) back to NaN."""
    values = {k: v for k, v in row.items() if k != "trial_id"}  # a whole epoch has no fraction
    for key in _FLOATS:
        values[key] = math.nan if values[key] is None else float(values[key])
    for key in ("grad_norm_mean", "grad_norm_max"):
        values[key] = {k: math.nan if v is None else float(v) for k, v in values[key].items()}
    values["finished_at"] = float(values["finished_at"] or 0.0)
    return EpochResult.from_dict(values)


class BufferedEpochStore(EpochStore):
    """An `EpochStore` whose rows wait in `writes` and reach the table in batches.

    Rows are keyed `(trial_id, "epochs")`, so a `WorkerStorage` writes them before the trial's
    state changes.
    """

    def __init__(self, engine: Any, writes: WriteBehind) -> None:
        super().__init__(engine)
        self.writes = writes

    def add(self, trial_id: int, result: EpochResult) -> None:
        self.writes.submit((trial_id, "epochs"), result, self._rows(trial_id))

    def _rows(self, trial_id: int) -> Write:
        def write(results: list[EpochResult]) -> None:
            # a replayed epoch (or point inside one) replaces the earlier
            latest = {(r.epoch, r.fraction): r for r in results}
            self.add_many(trial_id, list(latest.values()))

        return write
