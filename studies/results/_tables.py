"""A study's trials as rows: what `hpstudy trials` and `status` print, as plain records."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import optuna

from studies.storage import TrialAttrs, feasible, finished_trials, pareto_front

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
    values: tuple[float | None, ...] = ()  # each objective's value (`value` is the first's)
    front: bool = False  # on the Pareto front (one objective: the best feasible trial)
    feasible: bool = True  # meets the study's constraints (as far as they are known)
    measured: dict[str, float] = dataclasses.field(default_factory=dict)  # params, latency_ms...
    # an enqueued configuration's origin: "study NAME #N" (a prior), a warm start's source
    source: str | None = None


@dataclasses.dataclass(frozen=True)
class TrialRows:
    """A study's trials, best complete ones first, then the others by number."""

    study: str
    metric: str  # the first objective
    rows: tuple[TrialRow, ...]
    objectives: tuple[str, ...] = ()  # every objective, in order (the first is `metric`)

    @property
    def several(self) -> bool:
        """Whether the study has several objectives (a front, not one best trial)."""
        return len(self.objectives) > 1

    @property
    def constrained(self) -> bool:
        """Whether any trial breaks a constraint."""
        return not all(row.feasible for row in self.rows)

    @property
    def sourced(self) -> bool:
        """Whether any trial was enqueued (a prior, a warm start): the table says from where."""
        return any(row.source for row in self.rows)

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
    front = {t.number for t in pareto_front(study)}
    rows = []
    for trial in trials:
        attrs = TrialAttrs.of(trial)
        values = tuple(
            v if v is not None and math.isfinite(v) else None for v in trial.values or ()
        )
        rows.append(
            TrialRow(
                number=trial.number,
                state=trial.state.name.lower(),
                value=values[0] if values else None,
                epochs=attrs.epochs_run,
                stop=attrs.stop_reason,
                where=attrs.where,
                diagnosis=tuple(attrs.diagnosis),
                params=dict(trial.params),
                folds=attrs.folds,
                values=values,
                front=trial.number in front,
                feasible=feasible(trial),
                measured=dict(attrs.measured or {}),
                source=attrs.source,
            )
        )
    names = tuple(study.metric_names or [f"value{i}" for i in range(len(study.directions))])
    if len(names) == 1 and study.metric_names is None:
        names = ("value",)
    return TrialRows(study=study.study_name, metric=names[0], rows=tuple(rows), objectives=names)
