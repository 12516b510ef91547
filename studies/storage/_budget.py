"""The trial budget, shared by every worker of a study.

A worker claims a slot before it asks Optuna for a new trial; the claim is one atomic
`UPDATE ... WHERE claimed < budget`, so N workers on one database never start more trials
than the budget, whatever their timing. A trial that fails by an exception gives its slot
back; a trial re-queued after its worker died keeps it (the retry carries the claim). Each
call is one short transaction, retried on a lock conflict.
"""

from __future__ import annotations

import optuna
import sqlalchemy as sa

from studies.storage._locks import retry_locked
from studies.storage._tables import BUDGET, ensure_tables

TrialState = optuna.trial.TrialState
# Trials that hold a claim: finished ones, running ones, and those waiting to be retried.
CLAIMING_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)


class Budget:
    """Claims against a study's budget of trials."""

    def __init__(self, engine: sa.Engine, study_id: int) -> None:
        self.engine = engine
        self.study_id = study_id
        ensure_tables(engine)

    def reconcile(self, study: optuna.Study) -> int:
        """Resets the count to the trials that hold a claim; returns it.

        Called when `hpstudy run` starts, it drops the claims of workers that died between a
        claim and their first write.
        """
        held = len(study.get_trials(deepcopy=False, states=CLAIMING_STATES))

        def write() -> None:
            with self.engine.begin() as connection:
                connection.execute(
                    BUDGET.update().where(BUDGET.c.study_id == self.study_id).values(claimed=held)
                )

        if not self._create(held):
            retry_locked(write)
        return held

    def ensure(self, study: optuna.Study) -> None:
        """Creates the study's row, counting the claims already held, when it is missing."""
        with self.engine.connect() as connection:
            exists = connection.execute(
                sa.select(BUDGET.c.study_id).where(BUDGET.c.study_id == self.study_id)
            ).first()
        if exists is None:
            self._create(len(study.get_trials(deepcopy=False, states=CLAIMING_STATES)))

    def _create(self, claimed: int) -> bool:
        """Inserts the study's row; False when it exists (another worker may have been first)."""

        def write() -> None:
            with self.engine.begin() as connection:
                connection.execute(BUDGET.insert().values(study_id=self.study_id, claimed=claimed))

        try:
            retry_locked(write)
        except sa.exc.IntegrityError:
            return False
        return True

    def claim(self, n_trials: int) -> bool:
        """Takes one slot; False when all `n_trials` are taken."""

        def write() -> int:
            with self.engine.begin() as connection:
                return connection.execute(
                    BUDGET.update()
                    .where((BUDGET.c.study_id == self.study_id) & (BUDGET.c.claimed < n_trials))
                    .values(claimed=BUDGET.c.claimed + 1)
                ).rowcount

        return bool(retry_locked(write))

    def release(self) -> None:
        """Gives one slot back."""

        def write() -> None:
            with self.engine.begin() as connection:
                connection.execute(
                    BUDGET.update()
                    .where((BUDGET.c.study_id == self.study_id) & (BUDGET.c.claimed > 0))
                    .values(claimed=BUDGET.c.claimed - 1)
                )

        retry_locked(write)

    def claimed(self) -> int:
        with self.engine.connect() as connection:
            value = connection.execute(
                sa.select(BUDGET.c.claimed).where(BUDGET.c.study_id == self.study_id)
            ).scalar()
        return int(value or 0)
