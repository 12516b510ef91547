"""The tables of trials that the CLI prints."""

from __future__ import annotations

import math
from typing import Any

import optuna
from rich.table import Table

from studies.storage import TrialAttrs, finished_trials

TrialState = optuna.trial.TrialState


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "-".join(str(v) for v in value)
    return str(value)


def trials_table(
    study: optuna.Study,
    *,
    limit: int | None = None,
    states: tuple[TrialState, ...] | None = None,
    title: str | None = None,
) -> Table:
    """A table of trials, best complete ones first, then the others by number."""
    trials = study.get_trials(deepcopy=False, states=states)
    done = finished_trials(study)
    rank = {t.number: i for i, t in enumerate(done)}
    trials = sorted(trials, key=lambda t: (rank.get(t.number, len(rank)), t.number))
    if limit is not None:
        trials = trials[:limit]
    metric = (study.metric_names or ["value"])[0]
    table = Table(title=title, title_justify="left")
    # a trial of several networks (folds, repeats): their spread and each one's value
    crossed = any(TrialAttrs.of(t).folds for t in trials)
    columns = ("#", "state", metric, "epochs", "stop", "where", "diagnosis", "params")
    for column in columns[:3] + (("folds",) if crossed else ()) + columns[3:]:
        table.add_column(column, overflow="fold")
    for trial in trials:
        value = (
            "-" if trial.value is None or not math.isfinite(trial.value) else f"{trial.value:.4f}"
        )
        attrs = TrialAttrs.of(trial)
        spread = (_folds_cell(attrs.folds),) if crossed else ()
        table.add_row(
            str(trial.number),
            trial.state.name.lower(),
            value,
            *spread,
            _or_dash(attrs.epochs_run),
            _or_dash(attrs.stop_reason),
            attrs.where or "-",
            ", ".join(attrs.diagnosis) or "-",
            " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items()),
        )
    return table


def _folds_cell(folds: dict[str, Any] | None) -> str:
    """ "± 0.0082: 0.1100 0.1300 0.1200" (the standard deviation, then each network's value)."""
    if not folds:
        return "-"
    return f"± {folds['std']:.4f}: " + " ".join(f"{v:.4f}" for v in folds["values"])


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)
