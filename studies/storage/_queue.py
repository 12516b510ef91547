"""Known configurations at the head of a study's queue, and the target that ends a study.

`enqueue_once` puts a configuration in the queue once per study: its values' hash is claimed in
`hpstudy_enqueued` first, so two `hpstudy run` started at the same moment, or a study resumed
ten times, enqueue it once; the worker storage then hands each waiting trial to one worker.
`claim_once` is the same claim for a step done once per study (its priors).

`TargetRecord` records the first epoch whose metric reached the study's target (a
`studies.spec.Target`), in one insert that only one worker can win; workers start no new
trial once it is there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

import optuna
import sqlalchemy as sa

from studies.spec import Target as SpecTarget
from studies.storage._locks import retry_locked
from studies.storage._tables import ENQUEUED, TARGETS, ensure_tables
from studies.storage._trial_attrs import TrialAttrs


def enqueue_once(
    study: optuna.Study,
    engine: sa.Engine,
    study_id: int,
    params: dict[str, Any],
    *,
    source: str,
    prior: Mapping[str, Any] | None = None,
) -> bool:
    """Enqueues `params` (encoded for Optuna) unless this study enqueued them before.

    Args:
        source: where they came from, kept as the trial's `warm_start`.
        prior: the earlier study's trial they came from, kept as the trial's `prior` in
            place of `source`.

    Returns:
        True when this call put them in the queue.
    """
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:64]
    if not claim_once(engine, study_id, key, source=source):
        return False
    attrs = {"prior": dict(prior)} if prior is not None else {"warm_start": source}
    study.enqueue_trial(params, user_attrs={TrialAttrs.key(k): v for k, v in attrs.items()})
    return True


def claim_once(engine: sa.Engine, study_id: int, key: str, *, source: str = "") -> bool:
    """Claims `key` (at most 64 characters) for the study; True for the one call that did.

    Any number of processes may race for it, on SQLite or PostgreSQL: the primary key lets
    one insert win.
    """
    ensure_tables(engine)

    def claim() -> None:
        with engine.begin() as connection:
            connection.execute(
                ENQUEUED.insert().values(study_id=study_id, key=key[:64], source=source[:500])
            )

    try:
        retry_locked(claim)
    except sa.exc.IntegrityError:
        return False
    return True


def is_warm_start(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the trial was enqueued by hpstudy: a warm start or a prior."""
    return TrialAttrs.of(trial).source is not None


@dataclasses.dataclass(frozen=True)
class Reached:
    """The first epoch that reached a study's target."""

    metric: str
    value: float
    trial: int
    epoch: int
    reached_at: float  # Unix seconds


class TargetRecord:
    """A study's target, and the record of the epoch that reached it."""

    def __init__(self, engine: sa.Engine, study_id: int, target: SpecTarget) -> None:
        self.engine, self.study_id, self.target = engine, study_id, target
        self.metric, self.value = target.metric, target.value
        ensure_tables(engine)

    def met_by(self, value: float) -> bool:
        return self.target.met_by(value)

    def record(self, trial: int, epoch: int, value: float) -> bool:
        """Records the epoch that reached the target; False when another was first."""

        def write() -> None:
            with self.engine.begin() as connection:
                connection.execute(
                    TARGETS.insert().values(
                        study_id=self.study_id,
                        metric=self.metric,
                        value=value,
                        trial=trial,
                        epoch=epoch,
                        reached_at=time.time(),
                    )
                )

        try:
            retry_locked(write)
        except sa.exc.IntegrityError:
            return False
        return True

    def reached(self) -> Reached | None:
        """The record, when it meets this target (a target raised since is not reached)."""
        found = reached_target(self.engine, self.study_id)
        if found is None or found.metric != self.metric or not self.met_by(found.value):
            return None
        return found

    def forget(self) -> None:
        """Drops a record that no longer meets the target, so a new epoch can be recorded."""
        if reached_target(self.engine, self.study_id) is not None and self.reached() is None:

            def delete() -> None:
                with self.engine.begin() as connection:
                    connection.execute(TARGETS.delete().where(TARGETS.c.study_id == self.study_id))

            retry_locked(delete)


def reached_target(engine: sa.Engine, study_id: int) -> Reached | None:
    """The recorded epoch that reached study `study_id`'s target, if any."""
    ensure_tables(engine)
    with engine.connect() as connection:
        row = connection.execute(sa.select(TARGETS).where(TARGETS.c.study_id == study_id)).first()
    if row is None:
        return None
    return Reached(row.metric, row.value, row.trial, row.epoch, row.reached_at)
