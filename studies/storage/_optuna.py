"""Every private Optuna name hpstudy relies on, in one place, checked on import.

Optuna's public storage API writes one value per transaction and cannot take a state change
conditionally. Two things a worker needs go below it, where measurement still justifies it:

- `set_trial_state`: a state change as ONE conditional `UPDATE ... WHERE state IN (...)`.
  `RDBStorage.set_trial_state_values` reads the row `FOR UPDATE` and then writes it, which
  SQLite ignores: three processes popping the same 20 WAITING trials at once took 2 to 18 of
  them twice. The row count of a conditional update decides on every backend.
- `write_trial_batch`: a trial's buffered intermediate values and user attributes in ONE
  transaction (one write lock on SQLite instead of one per value), with `RDBStorage`'s own
  per-row helpers, so the rows are exactly those its public setters write.
- `read_trials` / `create_trial`: reading only new and unfinished trials, and creating a trial
  without reading it back, as Optuna's own `_CachedStorage` does.
- `set_constraint_values`: a trial's constraint values as the list a sampler's
  `constraints_func` stores (system attribute "constraints"). Optuna 5 reads it as it reads
  `Trial.set_constraint`'s named keys (its samplers, `Study.best_trials`, its plots), and
  optuna-dashboard (0.21) reads only the list: its Pareto plot greys infeasible trials.
- `rdb_session` and `models`: Optuna's session and table models, for the rows no public call
  may change (`strip_stored_passwords` rewrites the attributes of finished trials).
- `BaseHeartbeat`, `FrozenStudy` and `ArtifactStore`: the base, return type and protocol the
  worker storage and the learning-curve publisher implement or take, which Optuna does not
  export.

Each is tested against a real `RDBStorage`
(tests/studies_tests/storage_tests/test_optuna_internals.py), and
`check_optuna` refuses an Optuna outside the range those tests ran on, naming the range.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.artifacts._protocol import ArtifactStore as ArtifactStore  # re-exported
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat as BaseHeartbeat  # re-exported
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study._frozen import FrozenStudy as FrozenStudy  # re-exported
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session

# The system attribute a sampler's `constraints_func` writes: one float per constraint,
# <= 0 where it holds (Optuna's `optuna.study._constrained_optimization._CONSTRAINTS_KEY`).
CONSTRAINTS_ATTR = "constraints"


def set_constraint_values(
    storage: optuna.storages.BaseStorage, trial_id: int, values: Sequence[float]
) -> None:
    """Stores a trial's constraint values as `constraints_func`'s results are stored."""
    storage.set_trial_system_attr(trial_id, CONSTRAINTS_ATTR, [float(v) for v in values])


# The Optuna releases these calls were checked on (see the module docstring): the floor is
# the oldest release on which they and a small study run; 6.0 may change them.
OPTUNA_FLOOR = (4, 9)
OPTUNA_CEILING = (6, 0)
_NEEDED = (
    (RDBStorage, "_set_trial_intermediate_value_without_commit"),
    (RDBStorage, "_set_trial_attr_without_commit"),
    (RDBStorage, "_get_trials"),
    (RDBStorage, "_create_new_trial"),
    (models, "TrialModel"),
    (models, "TrialValueModel"),
    (models, "TrialUserAttributeModel"),
    (models, "TrialSystemAttributeModel"),
    (models, "StudyUserAttributeModel"),
    (models, "StudySystemAttributeModel"),
)
UNFINISHED = (TrialState.RUNNING, TrialState.WAITING)
# The study/trial system attribute prefix of an artifact's metadata (optuna.artifacts and
# optuna-dashboard both read it; the dashboard deletes an artifact by setting it to null).
ARTIFACT_META_PREFIX = "artifacts:"


def _release(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def check_optuna(version: str = optuna.__version__) -> None:
    """Raises when this Optuna lacks a private call the worker storage uses.

    Raises:
        RuntimeError: naming the installed release and the supported range.
    """
    release = _release(version)
    missing = [f"{owner.__name__}.{name}" for owner, name in _NEEDED if not hasattr(owner, name)]
    if not OPTUNA_FLOOR <= release < OPTUNA_CEILING or missing:
        floor = ".".join(map(str, OPTUNA_FLOOR))
        ceiling = ".".join(map(str, OPTUNA_CEILING))
        lacking = f" (it lacks {', '.join(missing)})" if missing else ""
        raise RuntimeError(
            f"hpstudy's worker storage runs on Optuna >= {floor}, < {ceiling}; this is Optuna "
            f"{version}{lacking}. Install a release in that range: pip install "
            f"'optuna>={floor},<{ceiling}'"
        )


def rdb_session(rdb: RDBStorage) -> AbstractContextManager[Session]:
    """A session on Optuna's tables that commits when the block ends and rolls back when it
    raises, as `RDBStorage`'s own writes run."""
    return _create_scoped_session(rdb.scoped_session)


def set_trial_state(
    rdb: RDBStorage,
    trial_id: int,
    state: TrialState,
    values: Sequence[float] | None = None,
) -> tuple[bool, int]:
    """Changes a trial's state in one conditional update; values in the same transaction.

    RUNNING is taken from WAITING only; a finishing state from RUNNING or WAITING. Exactly one
    of several processes that race for the same change succeeds, on SQLite as on PostgreSQL.

    Returns:
        (changed, study id): changed is False when the trial was not WAITING (for RUNNING).

    Raises:
        KeyError: for an unknown trial.
        UpdateFinishedTrialError: when the trial has finished already.
    """
    trial = models.TrialModel
    allowed = (TrialState.WAITING,) if state == TrialState.RUNNING else UNFINISHED
    with rdb_session(rdb) as session:
        # The one statement that decides: its row count says whether this process won.
        result: sa.CursorResult[Any] = session.execute(  # type: ignore[assignment]
            sa.update(trial)
            .where(trial.trial_id == trial_id, trial.state.in_(allowed))
            .values(state=state)
            .execution_options(synchronize_session=False)
        )
        updated = result.rowcount
        row = session.get(trial, trial_id)
        if row is None:
            raise KeyError(f"no trial with trial_id {trial_id}")
        # Optuna's schema lets trials.study_id be NULL (typed `int | None` since Optuna 5.1);
        # a row without a study is a damaged database, not a trial to claim.
        if row.study_id is None:
            raise KeyError(f"trial {trial_id} belongs to no study")
        study_id = row.study_id
        if not updated:
            if row.state.is_finished():
                raise UpdateFinishedTrialError(
                    f"trial {trial_id} has finished ({row.state.name}) and cannot be updated"
                )
            return False, study_id
        # The model's own setters store the times as this Optuna release expects them.
        now = datetime.datetime.now()
        if state == TrialState.RUNNING:
            row.datetime_start = now
        if state.is_finished():
            row.datetime_complete = now
        for objective, value in enumerate(values or ()):
            _write_value(session, trial_id, objective, value)
    return True, study_id


def _write_value(session: Any, trial_id: int, objective: int, value: float) -> None:
    stored, kind = models.TrialValueModel.value_to_stored_repr(value)
    table = models.TrialValueModel
    session.execute(
        sa.delete(table).where(table.trial_id == trial_id, table.objective == objective)
    )
    session.execute(
        sa.insert(table).values(
            trial_id=trial_id, objective=objective, value=stored, value_type=kind
        )
    )


def write_trial_batch(
    rdb: RDBStorage, trial_id: int, values: dict[int, float], user_attrs: dict[str, Any]
) -> None:
    """Writes a trial's intermediate values and user attributes in one transaction.

    Raises:
        KeyError: for an unknown trial.
        UpdateFinishedTrialError: when the trial has finished (nothing is written).
    """
    with rdb_session(rdb) as session:
        for step, value in values.items():
            rdb._set_trial_intermediate_value_without_commit(session, trial_id, step, value)
        for key, value in user_attrs.items():
            rdb._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, key, value
            )


def read_trials(
    rdb: RDBStorage, study_id: int, *, unfinished: Iterable[int], after: int
) -> list[FrozenTrial]:
    """The trials of a study whose id is in `unfinished` or greater than `after`.

    Raises:
        KeyError: for an unknown study.
    """
    return rdb._get_trials(
        study_id, states=None, included_trial_ids=set(unfinished), trial_id_greater_than=after
    )


def trial_study_id(rdb: RDBStorage, trial_id: int) -> int:
    """The id of the study a trial belongs to.

    Raises:
        KeyError: for an unknown trial.
    """
    with rdb_session(rdb) as session:
        study_id = session.execute(
            sa.select(models.TrialModel.study_id).where(models.TrialModel.trial_id == trial_id)
        ).scalar()
    if study_id is None:
        raise KeyError(f"no trial with trial_id {trial_id}")
    return int(study_id)


def create_trial(rdb: RDBStorage, study_id: int, template: FrozenTrial | None) -> FrozenTrial:
    """Creates a trial (from `template` when given) and returns it as stored."""
    return rdb._create_new_trial(study_id, template)


check_optuna()
