"""Pareto dominance over a study's objectives, in one place.

A point is one trial's objective values, in the study's order; `directions` says of each
whether it is minimised or maximised ("minimize", "maximize", as `StudySpec.directions`).
Every comparison turns values into losses first (`as_losses`: the value, negated where it is
maximised), so the sign is handled here and nowhere else. Without `directions` the points
are losses already.

Pure functions of numbers, kept in the lowest layer: the storage (a study's front) and the
workers (successive halving on Pareto ranks) both use them, and storage may not import the
analysis layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Point = Sequence[float]


def as_losses(values: Sequence[float | None], directions: Sequence[str]) -> tuple[float, ...]:
    """The values as losses (smaller is better): negated where maximised; inf where a value
    is missing or not finite, so that every finite point dominates such a one.

    Raises:
        ValueError: for a direction that is neither "minimize" nor "maximize", or a number
            of values that is not the number of directions.
    """
    bad = [d for d in directions if d not in ("minimize", "maximize")]
    if bad:
        raise ValueError(f"a direction is 'minimize' or 'maximize', got {bad[0]!r}")
    return tuple(
        (-v if d == "maximize" else v) if v is not None and math.isfinite(v) else math.inf
        for d, v in zip(directions, values, strict=True)
    )


def dominates(a: Point, b: Point, directions: Sequence[str] | None = None) -> bool:
    """Whether `a` is nowhere worse than `b` and somewhere better."""
    if directions is not None:
        a, b = as_losses(a, directions), as_losses(b, directions)
    pairs = list(zip(a, b, strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def pareto_ranks(points: Sequence[Point], directions: Sequence[str] | None = None) -> list[int]:
    """Each point's front in non-dominated sorting: 0 where no point dominates it, 1 where
    only points of front 0 do, and so on. Equal points share a front."""
    if directions is not None:
        points = [as_losses(p, directions) for p in points]
    ranks = [-1] * len(points)
    remaining = set(range(len(points)))
    rank = 0
    while remaining:
        front = {
            i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining)
        }
        for i in front:
            ranks[i] = rank
        remaining -= front
        rank += 1
    return ranks


def non_dominated(points: Sequence[Point], directions: Sequence[str] | None = None) -> list[int]:
    """The indices of the points no other point dominates, in their order."""
    if directions is not None:
        points = [as_losses(p, directions) for p in points]
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)]
