"""`hpstudy copy`: move a study to another database, e.g. from SQLite to PostgreSQL.

Optuna's `copy_study` carries the study, its attributes and its trials; the project's own
tables follow: rows keyed by a trial get the new trial's id, rows keyed by the study get the
new study's id, and rows keyed by neither (artifacts, named by their unique ids) are copied
where the target lacks them. Trial numbers are kept, so checkpoints (keyed by the root trial
number) still find their retry chains.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna
import sqlalchemy as sa

from studies._errors import StudyError
from studies.storage._budget import Budget
from studies.storage._secrets import strip_stored_passwords
from studies.storage._study import load_study
from studies.storage._tables import BUDGET, METADATA, ensure_tables
from studies.storage._urls import create_engine, open_storage, redact, resolve_storage


@dataclasses.dataclass(frozen=True)
class CopyReport:
    trials: int
    rows: dict[str, int]  # project table -> rows copied


def copy_study(name: str, source_url: str, target_url: str) -> CopyReport:
    """Copies study `name` with its trials and project rows from one database to another.

    Either URL may be `env:NAME`. The copy holds no database password, even when the source
    study still does (one stored by an earlier hpstudy).

    Raises:
        StudyError: for an unknown study, one that still has running trials, or a target
            that already holds a study of that name.
    """
    source_url, target_url = resolve_storage(source_url), resolve_storage(target_url)
    source = open_storage(source_url)
    target = open_storage(target_url)
    study = load_study(source, name, url=source_url)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if running:
        raise StudyError(
            f"study '{name}' has {len(running)} running trial(s); stop its workers first "
            f"(Ctrl-C re-queues their trials, which are then copied as waiting)"
        )
    try:
        optuna.copy_study(from_study_name=name, from_storage=source, to_storage=target)
    except optuna.exceptions.DuplicatedStudyError:
        raise StudyError(
            f"{redact(target_url)} already has a study named '{name}'; delete it there first "
            f"(optuna delete-study --study-name {name} --storage ...)"
        ) from None
    strip_stored_passwords(target, name)
    copied = load_study(target, name, url=target_url)
    ids = (source.get_study_id_from_name(name), target.get_study_id_from_name(name))
    trial_ids = {
        source.get_trial_id_from_study_id_trial_number(ids[0], t.number): (
            target.get_trial_id_from_study_id_trial_number(ids[1], t.number)
        )
        for t in study.get_trials(deepcopy=False)
    }
    from_engine, to_engine = create_engine(source_url), create_engine(target_url)
    try:
        ensure_tables(from_engine)
        ensure_tables(to_engine)
        rows = {
            table.name: _copy_rows(table, from_engine, to_engine, ids, trial_ids)
            for table in METADATA.sorted_tables
            if table is not BUDGET
        }
        Budget(to_engine, ids[1]).reconcile(copied)
    finally:
        from_engine.dispose()
        to_engine.dispose()
    return CopyReport(trials=len(trial_ids), rows=rows)


def _copy_rows(
    table: sa.Table,
    source: sa.Engine,
    target: sa.Engine,
    study_ids: tuple[int, int],
    trial_ids: dict[int, int],
) -> int:
    columns = table.columns.keys()
    query = sa.select(table)
    if "trial_id" in columns:
        query = query.where(table.c.trial_id.in_(list(trial_ids)))
    elif "study_id" in columns:
        query = query.where(table.c.study_id == study_ids[0])
    with source.connect() as connection:
        rows: list[dict[str, Any]] = [dict(r) for r in connection.execute(query).mappings()]
    if "trial_id" in columns:
        rows = [{**r, "trial_id": trial_ids[r["trial_id"]]} for r in rows]
    elif "study_id" in columns:
        rows = [{**r, "study_id": study_ids[1]} for r in rows]
    else:  # keyed by its own unique id: copy what the target lacks
        key = table.primary_key.columns.values()[0]
        with target.connect() as connection:
            present = set(connection.execute(sa.select(key)).scalars())
        rows = [r for r in rows if r[key.name] not in present]
    if rows:
        with target.begin() as connection:
            for start in range(0, len(rows), 500):  # bounded statements for big studies
                connection.execute(table.insert(), rows[start : start + 500])
    return len(rows)
