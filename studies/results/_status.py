"""A study's state in a few numbers (`hpstudy status`), and the studies of a database."""

from __future__ import annotations

import dataclasses
import datetime

import optuna

from studies._errors import StudyError
from studies.results._read import open_database, open_study
from studies.results._tables import TrialRows, trial_rows
from studies.spec import StudySpec
from studies.storage import redact, stored_spec
from studies.workers import Counts, count, describe_reached, study_start, target_reached

BEST_ROWS = 5  # best trials a status shows


@dataclasses.dataclass(frozen=True)
class StudyStatus:
    """Where a study stands."""

    name: str
    storage: str  # its database, without a password
    metric: str  # the first objective
    direction: str  # "minimize" or "maximize": the first objective's
    budget: int | None  # the spec's trial budget; None: none set, or not made by hpstudy
    counts: Counts  # trials by state, and the best
    target: str  # whether and when the study's target was reached, as a sentence
    best: TrialRows  # the best few trials (several objectives: the front, all of it)
    directions: dict[str, str] = dataclasses.field(default_factory=dict)  # every objective
    constraints: tuple[str, ...] = ()  # the spec's bounds, e.g. "params <= 50000"


@dataclasses.dataclass(frozen=True)
class StudyRow:
    """One study of a database."""

    name: str
    trials: int
    best: float | None
    direction: str
    started: datetime.datetime | None


def study_status(name: str, url: str | None = None) -> StudyStatus:
    """Counts, budget, target and best trials of study `name`.

    Raises:
        StudyError: for a missing database or an unknown study.
    """
    opened = open_study(name, url)
    study = opened.study
    try:
        spec = stored_spec(opened.storage, name, url=opened.url)
    except StudyError:  # a study hpstudy did not make: no budget, no target
        spec = None
    counts = count(study)
    rows = trial_rows(study, limit=counts.front or BEST_ROWS)
    directions = [d.name.lower() for d in study.directions]
    return StudyStatus(
        name=study.study_name,
        storage=redact(opened.url),
        metric=rows.objectives[0],
        direction=directions[0],
        budget=None if spec is None else spec.n_trials,
        counts=counts,
        target=_target_line(spec, opened.storage, study),
        best=rows,
        directions=dict(zip(rows.objectives, directions, strict=False)),
        constraints=() if spec is None else tuple(map(str, spec.objectives.constraints)),
    )


def _target_line(
    spec: StudySpec | None, storage: optuna.storages.BaseStorage, study: optuna.Study
) -> str:
    """Whether and when the study's target was reached."""
    if spec is None or not spec.target:
        return "no target (set study.target, e.g. target = { dev_accuracy = 0.98 })"
    reached = target_reached(spec, storage)
    if reached is None:
        return f"target {spec.target.metric} {spec.target.value:g}: not reached yet"
    return describe_reached(reached, started=study_start(study))


def list_studies(url: str | None = None) -> tuple[str, list[StudyRow]]:
    """The database (without a password) and its studies, by name.

    Raises:
        StudyError: for a missing database or one that cannot be reached.
    """
    url, storage = open_database(url)
    summaries = optuna.get_all_study_summaries(storage)
    rows = []
    for summary in sorted(summaries, key=lambda s: s.study_name):
        best = summary.best_trial
        rows.append(
            StudyRow(
                name=summary.study_name,
                trials=summary.n_trials,
                best=None if best is None else best.values[0],
                direction=" and ".join(d.name.lower() for d in summary.directions),
                started=summary.datetime_start,
            )
        )
    return redact(url), rows
