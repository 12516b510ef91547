"""A running study's progress: trials per state, the best value, one line to print."""

from __future__ import annotations

import dataclasses
import time

import optuna

from studies.storage import finished_trials, pareto_front

TrialState = optuna.trial.TrialState


@dataclasses.dataclass(frozen=True)
class Counts:
    """How many trials a study has in each state, and its best value."""

    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int
    best: float | None  # several objectives: the first objective's, on the front
    best_trial: int | None
    front: int | None = None  # several objectives: trials on the Pareto front

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
        best=done[0].values[0] if done else None,
        best_trial=done[0].number if done else None,
        front=len(pareto_front(study)) if len(study.directions) > 1 else None,
    )


def progress_line(counts: Counts, budget: int | None, started: float) -> str:
    """One line of live progress."""
    total = f"/{budget}" if budget else ""
    best = "-" if counts.best is None else f"{counts.best:.4f} (trial {counts.best_trial})"
    if counts.front is not None:
        best = f"front {counts.front} trials"
    return (
        f"trials {counts.finished}{total} done: {counts.complete} complete, "
        f"{counts.pruned} pruned, {counts.failed} failed, {counts.running} running | best {best} | "
        f"{format_duration(time.monotonic() - started)}"
    )


def format_duration(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
