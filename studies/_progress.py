"""Reading a study back: counts, the best trials, and the tables the CLI prints."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import optuna
from rich.table import Table

from studies._study import finished_trials

TrialState = optuna.trial.TrialState


@dataclasses.dataclass(frozen=True)
class Counts:
    """How many trials a study has in each state, and its best value."""

    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int
    best: float | None
    best_trial: int | None

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


def count(study: optuna.Study) -> Counts:
    trials = study.get_trials(deepcopy=False)
    by_state = {state: 0 for state in TrialState}
    for trial in trials:
        by_state[trial.state] += 1
    done = finished_trials(study)
    return Counts(
        complete=by_state[TrialState.COMPLETE],
        pruned=by_state[TrialState.PRUNED],
        failed=by_state[TrialState.FAIL],
        running=by_state[TrialState.RUNNING],
        waiting=by_state[TrialState.WAITING],
        best=done[0].value if done else None,
        best_trial=done[0].number if done else None,
    )


def progress_line(counts: Counts, budget: int | None, started: float) -> str:
    """One line of live progress."""
    total = f"/{budget}" if budget else ""
    best = "-" if counts.best is None else f"{counts.best:.4f} (trial {counts.best_trial})"
    return (
        f"trials {counts.finished}{total} done: {counts.complete} complete, "
        f"{counts.pruned} pruned, {counts.failed} failed, {counts.running} running | best {best} | "
        f"{_duration(time.monotonic() - started)}"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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
    for column in ("#", "state", metric, "epochs", "stop", "diagnosis", "params"):
        table.add_column(column, overflow="fold")
    for trial in trials:
        value = (
            "-" if trial.value is None or not math.isfinite(trial.value) else f"{trial.value:.4f}"
        )
        attrs = trial.user_attrs
        table.add_row(
            str(trial.number),
            trial.state.name.lower(),
            value,
            str(attrs.get("epochs_run", "-")),
            str(attrs.get("stop_reason", "-")),
            ", ".join(attrs.get("diagnosis", [])) or "-",
            " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items()),
        )
    return table
