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


def feasible(trial: FrozenTrial) -> bool:
    """Whether the trial meets all its constraints (none stored: yes)."""
    return all(value <= 0.0 for value in trial.constraints.values())


def signs(study: optuna.Study) -> tuple[float, ...]:
    """+1 for each minimised objective, -1 for each maximised one: `sign * value` is a loss."""
    return tuple(
        -1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions
    )


def losses(trial: FrozenTrial, sign: Sequence[float]) -> tuple[float, ...]:
    """The trial's objective values as losses (inf where missing or not finite)."""
    values = trial.values or []
    return tuple(
        s * v if v is not None and math.isfinite(v) else math.inf
        for s, v in zip(sign, values, strict=False)
    ) or tuple(math.inf for _ in sign)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether losses `a` are nowhere worse than `b` and somewhere better."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible complete trials no other feasible complete trial dominates, by the first
    objective (best first), then number. Equal trials are all on it."""
    sign = signs(study)
    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if feasible(t) and all(math.isfinite(x) for x in losses(t, sign))
    ]
    scored = [(losses(t, sign), t) for t in done]
    front = [t for mine, t in scored if not any(dominates(other, mine) for other, _ in scored)]
    return sorted(front, key=lambda t: (losses(t, sign), t.number))
