"""Conditions (``when``): which parameters they name, the order they impose, and when they hold."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from search_space._errors import Problem, did_you_mean
from search_space._names import grouped_problem, split
from search_space._params import Categorical, Fixed, Param
from search_space._values import Value, same, show


def dependency_order(params: Mapping[str, Param]) -> tuple[list[str], list[list[str]]]:
    """The names, each after the parameters its condition names, and any cycles found.

    Apart from that constraint the declared order is kept.
    """
    order: list[str] = []
    cycles: list[list[str]] = []
    path: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in path:
            cycles.append([*path[path.index(name) :], name])
            return
        path.append(name)
        for parent in params[name].when or {}:
            if parent in params:
                visit(parent)
        path.pop()
        order.append(name)

    for name in params:
        visit(name)
    return order, cycles


def condition_problems(
    params: Mapping[str, Param],
    *,
    names: Collection[str],
    fields: Collection[str] | None,
    groups: Collection[str] = (),
) -> list[Problem]:
    """What is wrong with the conditions, relative to the space (``"momentum.when"``, ...).

    Args:
        params: The parameters that were built.
        names: All declared names, including those whose table had problems of its own.
        fields: The names a condition may take from the base config, if any.
        groups: Fields whose entries (``model_args.depth``) a condition may name even when the
            space does not search them: the base config may hold them.
    """
    problems: list[Problem] = []
    for name, param in params.items():
        for parent, allowed in (param.when or {}).items():
            if parent in params:
                problems += _value_problems(name, parent, params[parent], allowed)
            elif parent not in names and not _in_base(parent, fields, groups):
                hint = did_you_mean(parent, [*names, *(fields or ())])
                what = f"condition on unknown parameter '{parent}'{hint}"
                problems.append((f"{name}.when", what))
    for cycle in dependency_order(params)[1]:
        problems.append((f"{cycle[0]}.when", "conditions form a cycle: " + " -> ".join(cycle)))
    return problems


def _in_base(name: str, fields: Collection[str] | None, groups: Collection[str]) -> bool:
    """Whether the base config may hold `name`: a field, or an entry of a group."""
    parts = split(name)
    if parts is not None:
        return parts[0] in groups and grouped_problem(name, groups) is None
    return fields is not None and name in fields


def is_active(param: Param, known: Mapping[str, Any]) -> bool:
    """Whether every name in ``param``'s condition has one of its values in ``known``."""
    return all(
        parent in known and any(same(known[parent], value) for value in allowed)
        for parent, allowed in (param.when or {}).items()
    )


def _value_problems(
    name: str, parent_name: str, parent: Param, allowed: Collection[Value]
) -> list[Problem]:
    """Condition values that a categorical or fixed parameter can never take."""
    if isinstance(parent, Categorical):
        takes = tuple(parent.choices)
    elif isinstance(parent, Fixed):
        takes = (parent.value,)
    else:
        return []
    where, listed = f"{name}.when.{parent_name}", ", ".join(show(value) for value in takes)
    return [
        (where, f"{show(value)} is not a choice of '{parent_name}' ({listed})")
        for value in allowed
        if not any(same(value, option) for option in takes)
    ]
