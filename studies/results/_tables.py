"""A study's trials as rows: what `hpstudy trials` and `status` print, as plain records."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import optuna

from studies.storage import TrialAttrs, finished_trials

TrialState = optuna.trial.TrialState


@dataclasses.dataclass(frozen=True)
class TrialRow:
    """One trial as the tables show it."""

    number: int
    state: str  # "complete", "pruned", "fail", "running", "waiting"
    value: float | None  # the objective; None when unfinished or not finite
    epochs: int | None  # epochs trained
    stop: str | None  # why training stopped
    where: str | None  # host/device it trained on
    diagnosis: tuple[str, ...]  # labels of its learning curves
    params: dict[str, Any]  # the sampled values
    folds: dict[str, Any] | None = None  # a trial of several networks: each one's value, std


@dataclasses.dataclass(frozen=True)
class TrialRows:
    """A study's trials, best complete ones first, then the others by number."""

    study: str
    metric: str
    rows: tuple[TrialRow, ...]

    @property
    def crossed(self) -> bool:
        """Whether any trial trained several networks (folds, repeats)."""
        return any(row.folds for row in self.rows)


def trial_rows(
    study: optuna.Study,
    *,
    limit: int | None = None,
    states: tuple[TrialState, ...] | None = None,
) -> TrialRows:
    """The trials of `study`, best complete ones first, at most `limit`."""
    trials = study.get_trials(deepcopy=False, states=states)
    rank = {t.number: i for i, t in enumerate(finished_trials(study))}
    trials = sorted(trials, key=lambda t: (rank.get(t.number, len(rank)), t.number))
    if limit is not None:
        trials = trials[:limit]
    rows = []
    for trial in trials:
        attrs = TrialAttrs.of(trial)
        finite = trial.value is not None and math.isfinite(trial.value)
        rows.append(
            TrialRow(
                number=trial.number,
                state=trial.state.name.lower(),
                value=trial.value if finite else None,
                epochs=attrs.epochs_run,
                stop=attrs.stop_reason,
                where=attrs.where,
                diagnosis=tuple(attrs.diagnosis),
                params=dict(trial.params),
                folds=attrs.folds,
            )
        )
    metric = (study.metric_names or ["value"])[0]
    return TrialRows(study=study.study_name, metric=metric, rows=tuple(rows))
