"""Pareto dominance: the one implementation the study's front and successive halving use,
checked against Optuna's own front (`Study.best_trials`) on random points."""

from __future__ import annotations

import math
import random

import optuna
import pytest

from studies.spec import as_losses, dominates, non_dominated, pareto_ranks

DIRECTIONS = ["minimize", "maximize"]


def optuna_front(points: list[tuple[float, ...]], directions: list[str]) -> list[int]:
    """The indices of `points` on Optuna's Pareto front of a study holding them as trials."""
    study = optuna.create_study(directions=directions)
    study.add_trials([optuna.trial.create_trial(values=list(p)) for p in points])
    return sorted(t.number for t in study.best_trials)


def optuna_ranks(points: list[tuple[float, ...]], directions: list[str]) -> list[int]:
    """Non-dominated sorting by Optuna's front alone: peel off the front, rank by rank."""
    ranks = [-1] * len(points)
    remaining = list(range(len(points)))
    rank = 0
    while remaining:
        front = optuna_front([points[i] for i in remaining], directions)
        for position in front:
            ranks[remaining[position]] = rank
        remaining = [i for k, i in enumerate(remaining) if k not in set(front)]
        rank += 1
    return ranks


def random_points(rng: random.Random, objectives: int, *, ties: bool) -> list[tuple[float, ...]]:
    """Up to 40 points; with `ties`, values from a small set, so equal points and equal
    coordinates are common."""
    draw = (lambda: float(rng.randint(0, 4))) if ties else (lambda: rng.uniform(-1.0, 1.0))
    return [tuple(draw() for _ in range(objectives)) for _ in range(rng.randint(1, 40))]


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_the_front_is_optunas_front(seed: int, ties: bool) -> None:
    rng = random.Random(seed)
    objectives = rng.randint(1, 3)
    directions = [rng.choice(DIRECTIONS) for _ in range(objectives)]
    points = random_points(rng, objectives, ties=ties)
    assert non_dominated(points, directions) == optuna_front(points, directions)


@pytest.mark.parametrize("seed", range(10))
def test_the_ranks_peel_optunas_fronts(seed: int) -> None:
    rng = random.Random(seed)
    directions = [rng.choice(DIRECTIONS) for _ in range(2)]
    points = random_points(rng, 2, ties=seed % 2 == 0)
    assert pareto_ranks(points, directions) == optuna_ranks(points, directions)


def test_a_maximised_objective_is_compared_by_its_negative() -> None:
    assert dominates((1.0, 5.0), (2.0, 4.0), ["minimize", "maximize"])
    assert not dominates((1.0, 4.0), (2.0, 5.0), ["minimize", "maximize"])
    assert dominates((1.0, 4.0), (2.0, 5.0))  # without directions: losses


def test_an_equal_point_dominates_nothing_and_both_stay_on_the_front() -> None:
    assert not dominates((1.0, 2.0), (1.0, 2.0))
    assert non_dominated([(1.0, 2.0), (1.0, 2.0), (2.0, 3.0)]) == [0, 1]


def test_a_missing_or_non_finite_value_is_the_worst_loss() -> None:
    assert as_losses([None, math.nan, 2.0], ["maximize", "minimize", "maximize"]) == (
        math.inf,
        math.inf,
        -2.0,
    )


def test_an_unknown_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="'minimize' or 'maximize', got 'up'"):
        as_losses([1.0], ["up"])
