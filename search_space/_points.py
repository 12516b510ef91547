"""Known points of a space: values to try first, checked and encoded for `enqueue_trial`.

A warm start names values for some of a space's parameters (a configuration that is known to
work, perhaps partial). `encode_point` checks each against its parameter (a name the space
searches, a value inside its range or among its choices, a condition that holds) and returns
the values as Optuna's `enqueue_trial` takes them; every problem is reported, none dropped.

`project_point` is the lenient form, for a configuration found in another space (an earlier
study's trial): it keeps the values that are valid here and drops the others, which the
sampler then draws.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from search_space._conditions import is_active
from search_space._errors import Problem, SpaceError, at, did_you_mean
from search_space._names import GROUPS, flatten
from search_space._params import Categorical, Fixed, Float, Int, Param
from search_space._space import SearchSpace
from search_space._values import Scalar, encode, is_number, is_whole, normalise, same, show


def encode_point(
    space: SearchSpace,
    values: Mapping[str, Any],
    *,
    base: Mapping[str, Any] | None = None,
    prefix: str = "",
    partial: bool = True,
) -> dict[str, Scalar]:
    """The point's values for `optuna.Study.enqueue_trial`, checked against the space.

    Args:
        space: The search space.
        values: Parameter names (flat, "model_args.width", or nested tables) to values.
        base: The config the parameters are laid over; conditions read it for names the
            point and the space do not give.
        prefix: The key path that leads error messages, e.g. "study.enqueue[0]".
        partial: Allow parameters the point leaves out (the sampler draws them). With False,
            a point that names a non-searched field is not an error either: it is skipped
            (an exported config names every field).

    Raises:
        SpaceError: With every problem: unknown names, values outside a range or not among
            the choices, values of the wrong type, and values for parameters whose condition
            the point does not meet.
    """
    # A group's table ({"model_args": {...}}) is read through its entries' flat names.
    given = {
        name: normalise(value)
        for name, value in flatten(values).items()
        if not (name in GROUPS and isinstance(value, Mapping))
    }
    known = {name: normalise(value) for name, value in flatten(base or {}).items()}
    known.update(given)
    problems: list[Problem] = []
    if partial:
        for name in given:
            if name not in space:
                hint = did_you_mean(name, space.names)
                problems.append((name, f"'{name}' is not searched in this space{hint}"))
    encoded: dict[str, Scalar] = {}
    for name, param in space.items():
        if name not in given or isinstance(param, Fixed):
            continue
        if not is_active(param, known):
            if partial:
                condition = ", ".join(f"{k} in {list(v)}" for k, v in (param.when or {}).items())
                problems.append((name, f"is drawn only when {condition}, which this point is not"))
            continue
        problem = _value_problem(param, given[name])
        if problem:
            problems.append((name, problem))
        else:
            encoded[name] = encode(given[name])
    if problems:
        raise SpaceError(at(prefix, problems) if prefix else [f"{n}: {p}" for n, p in problems])
    return encoded


def project_point(
    space: SearchSpace,
    values: Mapping[str, Any],
    *,
    base: Mapping[str, Any] | None = None,
    only: Collection[str] | None = None,
) -> dict[str, Scalar]:
    """The values of `values` that are valid in `space`, encoded for `enqueue_trial`.

    A value is kept when the space searches its name, it lies in the range (on the step) or
    among the choices, and its parameter's condition holds for the values kept before it
    (in dependency order) or, for a name the space does not search, for `base`. A parameter
    whose condition names a dropped value is dropped too: the sampler draws both.

    Args:
        space: The search space.
        values: Parameter names (flat or nested tables) to values, e.g. an earlier config.
        base: The config the parameters are laid over, as for `encode_point`.
        only: Take only these names (flat) from `values`, e.g. those another study searched
            (its fixed values say nothing about where good values lie); None: every name.
    """
    given = {
        name: normalise(value)
        for name, value in flatten(values).items()
        if not (name in GROUPS and isinstance(value, Mapping)) and (only is None or name in only)
    }
    known = {
        name: normalise(value) for name, value in flatten(base or {}).items() if name not in space
    }
    kept: dict[str, Scalar] = {}
    for name, param in space.items():
        if not is_active(param, known):
            continue
        if isinstance(param, Fixed):  # not enqueued, but a condition may read it
            known[name] = normalise(param.value)
        elif name in given and _value_problem(param, given[name]) is None:
            known[name] = given[name]
            kept[name] = encode(given[name])
    return kept


def _value_problem(param: Param, value: Any) -> str | None:
    if isinstance(param, Categorical):
        if any(same(value, choice) for choice in param.choices):
            return None
        return f"{show(value)} is not one of the choices {[show(c) for c in param.choices]}"
    if isinstance(param, Int) and not is_whole(value):
        return f"must be a whole number, got {show(value)}"
    if isinstance(param, Float) and not is_number(value):
        return f"must be a number, got {show(value)}"
    assert isinstance(param, (Float, Int))
    if not (param.low <= value <= param.high) or (isinstance(value, float) and math.isnan(value)):
        return f"{show(value)} is outside [{param.low}, {param.high}]"
    if param.step is not None and not _on_step(value - param.low, param.step):
        return f"{show(value)} is not {param.low} plus a multiple of the step {param.step}"
    return None


def _on_step(offset: float, step: float) -> bool:
    multiple = offset / step
    return math.isclose(multiple, round(multiple), rel_tol=0.0, abs_tol=1e-9)
