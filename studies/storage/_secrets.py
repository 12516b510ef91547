"""Database passwords out of what a study stores.

hpstudy once stored the storage URL, password included, in the spec kept with the study, and
optuna-dashboard shows study attributes to anyone who opens it. Now only URLs without their
password are stored (`public_url`); `strip_stored_passwords` cleans a study made before that,
once: the study then records that it is clean (`StudyAttrs.passwords_stripped`), and later
runs read that one attribute instead of scanning every attribute of every trial again. It
rewrites Optuna's attribute rows directly, since Optuna refuses to change the attributes of a
finished trial.
"""

from __future__ import annotations

from typing import Any

import optuna
import sqlalchemy as sa

from studies.storage._optuna import models, rdb_session
from studies.storage._study_attrs import StoredStudy, StudyAttrs, write_study_attrs
from studies.storage._urls import strip_passwords

# A stored value that may hold "scheme://user:password@": what is worth parsing at all.
_MAY_HOLD = "%://%:%@%"
_STUDY_ATTRS: tuple[Any, ...] = (models.StudyUserAttributeModel, models.StudySystemAttributeModel)
_TRIAL_ATTRS: tuple[Any, ...] = (models.TrialUserAttributeModel, models.TrialSystemAttributeModel)


def strip_stored_passwords(storage: optuna.storages.RDBStorage, name: str) -> list[str]:
    """Removes every `scheme://user:password@`'s password from study `name`'s attributes and
    from those of its trials (user and system attributes alike), unless the study was cleaned
    before; marks it cleaned.

    Returns:
        What was changed ("hpstudy_spec", "trial 3 config"); empty when nothing held a
        password, the study was cleaned before, or there is no such study.
    """
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return []
    if StudyAttrs.read(storage, study_id, "passwords_stripped").passwords_stripped:
        return []  # hpstudy stores no password since; an old study is cleaned only once
    changed = []
    with rdb_session(storage) as session:
        for model in _STUDY_ATTRS:
            rows = session.scalars(
                sa.select(model).where(model.study_id == study_id, model.value_json.like(_MAY_HOLD))
            )
            changed += [row.key for row in rows if _strip(row)]
        for model in _TRIAL_ATTRS:
            trial = models.TrialModel
            pairs = session.execute(
                sa.select(model, trial.number)
                .join(trial, model.trial_id == trial.trial_id)
                .where(trial.study_id == study_id, model.value_json.like(_MAY_HOLD))
            )
            changed += [f"trial {number} {row.key}" for row, number in pairs if _strip(row)]
    write_study_attrs(StoredStudy(storage, study_id), passwords_stripped=True)
    return changed


def _strip(row: Any) -> bool:
    """Strips passwords from one attribute row's JSON text; whether it held any."""
    clean = strip_passwords(row.value_json)
    if clean == row.value_json:
        return False
    row.value_json = clean
    return True
