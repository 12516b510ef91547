"""The Pareto front of a study: its feasible complete trials that no other one dominates.

A single-objective study's "front" is its best feasible trial, so readers need not ask how
many objectives a study has. A trial is feasible when every constraint value Optuna stored
for it (`Trial.set_constraint`) is <= 0; a study without constraints has only feasible trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from studies.spec import as_losses, non_dominated


def feasible(trial: FrozenTrial) -> bool:
    """Whether the trial meets all its constraints (none stored: yes)."""
    return all(value <= 0.0 for value in trial.constraints.values())


def directions(study: optuna.Study) -> tuple[str, ...]:
    """The study's directions as a spec writes them: "minimize" or "maximize" each."""
    return tuple(d.name.lower() for d in study.directions)


def losses(trial: FrozenTrial, directions: Sequence[str]) -> tuple[float, ...]:
    """The trial's objective values as losses (inf where missing or not finite)."""
    values = list(trial.values or [])[: len(directions)]
    return as_losses(values + [None] * (len(directions) - len(values)), directions)


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible complete trials no other feasible complete trial dominates, by the first
    objective (best first), then number. Equal trials are all on it."""
    ways = directions(study)
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if feasible(t) and all(math.isfinite(x) for x in losses(t, ways))
    ]
    front = [done[i] for i in non_dominated([losses(t, ways) for t in done])]
    return sorted(front, key=lambda t: (losses(t, ways), t.number))
