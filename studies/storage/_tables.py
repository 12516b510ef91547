"""The project's own tables, beside Optuna's in the same database.

`hpstudy_epochs` holds one row per trial and epoch, keyed to Optuna's `trials.trial_id`;
`hpstudy_partial_epochs` one per trial and scored point inside its first epoch.
`hpstudy_budget` holds, per study, how many trials have been claimed against its budget, so
that parallel workers start exactly as many trials as the spec asks for.
`hpstudy_checkpoints` holds the training state of unfinished trials, so that a trial re-queued
after its worker died resumes on any machine that reaches the database.
`hpstudy_artifacts` holds the bytes of Optuna artifacts (the learning-curve pictures), so that
workers on several machines and the dashboard share them through the one database.
`hpstudy_enqueued` records the known configurations put in a study's queue, so each is tried
once however often the study is resumed; `hpstudy_target` records the first epoch that
reached a study's target; `hpstudy_weights` indexes the kept weights of the best trials.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

METADATA = sa.MetaData()


def _metric_columns() -> list[sa.Column[Any]]:
    """The columns of an `EpochResult`'s metrics, shared by the two epoch tables."""
    return [
        sa.Column("train_loss", sa.Float),  # NULL when not finite (a diverged epoch)
        sa.Column("train_accuracy", sa.Float),
        sa.Column("dev_loss", sa.Float),
        sa.Column("dev_accuracy", sa.Float),  # NULL for a regression
        sa.Column("dev_rmse", sa.Float),  # regression only, in the target's units
        sa.Column("dev_r2", sa.Float),  # regression only
        sa.Column("lr", sa.Float),
        sa.Column("grad_norm_mean", sa.JSON),  # weight layer -> mean gradient L2 norm per step
        sa.Column("grad_norm_max", sa.JSON),  # weight layer -> largest gradient L2 norm
        sa.Column("seconds", sa.Float),
        sa.Column("finished_at", sa.Float),  # Unix seconds at the end of the epoch
    ]


EPOCHS = sa.Table(
    "hpstudy_epochs",
    METADATA,
    sa.Column("trial_id", sa.Integer, primary_key=True),  # Optuna's trials.trial_id
    sa.Column("epoch", sa.Integer, primary_key=True),  # from 0
    *_metric_columns(),
)

# The points inside the first epoch (`TrainConfig.fractions`): a table of their own, keyed by
# the fraction too, so that they never replace each other or the whole epoch, and so that a
# database of an older hpstudy (whose `hpstudy_epochs` is keyed by trial and epoch) gains
# them by a CREATE TABLE, with nothing to migrate.
PARTIAL_EPOCHS = sa.Table(
    "hpstudy_partial_epochs",
    METADATA,
    sa.Column("trial_id", sa.Integer, primary_key=True),  # Optuna's trials.trial_id
    sa.Column("epoch", sa.Integer, primary_key=True),  # the epoch it lies in: 0
    # the share of the training split trained on when it was scored, in (0, 1)
    sa.Column("fraction", sa.Float, primary_key=True),
    *_metric_columns(),
)

BUDGET = sa.Table(
    "hpstudy_budget",
    METADATA,
    sa.Column("study_id", sa.Integer, primary_key=True),  # Optuna's studies.study_id
    sa.Column("claimed", sa.Integer, nullable=False),  # trials started or to be retried
)

CHECKPOINTS = sa.Table(
    "hpstudy_checkpoints",
    METADATA,
    sa.Column("study_id", sa.Integer, primary_key=True),  # Optuna's studies.study_id
    sa.Column("root_trial", sa.Integer, primary_key=True),  # first trial number of a retry chain
    sa.Column("epochs", sa.Integer, nullable=False),  # finished epochs the state holds
    sa.Column("state", sa.LargeBinary, nullable=False),  # `torch.save` bytes of the run's state
    sa.Column("saved", sa.DateTime, nullable=False),  # UTC, when it was written
)

ARTIFACTS = sa.Table(
    "hpstudy_artifacts",
    METADATA,
    sa.Column("artifact_id", sa.String(64), primary_key=True),  # Optuna's artifact id (a UUID)
    sa.Column("content", sa.LargeBinary, nullable=False),  # the file's bytes (tens of kB)
)


ENQUEUED = sa.Table(
    "hpstudy_enqueued",
    METADATA,
    sa.Column("study_id", sa.Integer, primary_key=True),  # Optuna's studies.study_id
    sa.Column("key", sa.String(64), primary_key=True),  # hash of the enqueued values
    sa.Column("source", sa.String(500), nullable=False),  # where they came from
)

TARGETS = sa.Table(
    "hpstudy_target",
    METADATA,
    sa.Column("study_id", sa.Integer, primary_key=True),  # Optuna's studies.study_id
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("value", sa.Float, nullable=False),  # what the epoch reached
    sa.Column("trial", sa.Integer, nullable=False),  # the trial number
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("reached_at", sa.Float, nullable=False),  # Unix seconds
)


WEIGHTS = sa.Table(
    "hpstudy_weights",
    METADATA,
    sa.Column("study_id", sa.Integer, primary_key=True),  # Optuna's studies.study_id
    sa.Column("trial", sa.Integer, primary_key=True),  # the trial number
    sa.Column("value", sa.Float, nullable=False),  # its objective value, to rank by
    sa.Column("artifact_id", sa.String(64), nullable=False),  # the weights in hpstudy_artifacts
)


def ensure_tables(engine: sa.Engine) -> None:
    """Creates the project's tables where they are missing (idempotent, safe in parallel).

    A table made by an older hpstudy gains the nullable columns added since.
    """
    for _ in range(len(METADATA.tables)):
        try:
            METADATA.create_all(engine)
            break
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            # Workers creating the tables at once: the loser of one table's race finds it
            # there, and goes on with the tables after it.
            if "already exists" not in str(exc):
                raise
        except sa.exc.IntegrityError:
            pass  # PostgreSQL's catalog race between concurrent CREATE TABLEs
    else:
        METADATA.create_all(engine)
    _add_missing_columns(engine)


def _add_missing_columns(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    for table in METADATA.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present or not column.nullable:
                continue
            kind = column.type.compile(dialect=engine.dialect)
            statement = f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'
            try:
                with engine.begin() as connection:
                    connection.execute(sa.text(statement))
            except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
                if "duplicate column" not in str(exc) and "already exists" not in str(exc):
                    raise  # another worker added it first: fine; anything else is not
