"""Grouped parameter names: ``model_args.width`` is the entry ``width`` of the field ``model_args``.

A group is a `TrainConfig` field that holds a table (its model factory's keyword arguments), so
each of its entries can be searched like a field of its own. A spec writes them as a nested
table, ``[space.model_args.width]``; inside the package, in Optuna and in what `suggest`
returns they carry the flat name ``"model_args.width"``; `nest` turns such flat values back
into the nested update of a config.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from search_space._errors import did_you_mean

# The fields whose entries are parameters (the default of `SearchSpace`'s ``groups``).
GROUPS = ("model_args",)


def split(name: str) -> tuple[str, str] | None:
    """``("model_args", "width")`` for ``"model_args.width"``; None for a name without a dot."""
    group, dot, key = name.partition(".")
    return (group, key) if dot else None


def grouped_problem(name: str, groups: Collection[str]) -> str | None:
    """Why a dotted name is not an entry of a group (None when it is one)."""
    parts = split(name)
    if parts is None:
        return None
    group, key = parts
    if group not in groups:
        known = ", ".join(groups) or "none"
        return (
            f"'{name}' names an entry of '{group}', which is not a table of entries"
            f"{did_you_mean(group, groups)} (tables: {known})"
        )
    if not key.isidentifier():
        return f"'{key}' in '{name}' is not a parameter name a factory could take"
    return None


def flatten(values: Mapping[str, Any]) -> dict[str, Any]:
    """Tables inside `values` become dotted names: {"model_args": {"depth": 3}} gives
    {"model_args": {...}, "model_args.depth": 3} (the table itself is kept)."""
    flat = dict(values)
    for name, value in values.items():
        if isinstance(value, Mapping):
            flat.update((f"{name}.{key}", item) for key, item in value.items())
    return flat


def nest(params: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Flat parameters as the nested update of a config dict.

    Each group's entries are merged over the group's table in `base`, so an update replaces
    the whole table without losing the entries the space does not search.

    Example:
        >>> nest({"lr": 0.1, "model_args.width": 64}, base={"model_args": {"depth": 2}})
        {'lr': 0.1, 'model_args': {'depth': 2, 'width': 64}}
    """
    out: dict[str, Any] = {}
    for name, value in params.items():
        parts = split(name)
        if parts is None:
            out[name] = value
            continue
        group, key = parts
        if group not in out:
            out[group] = dict((base or {}).get(group) or {})
        out[group][key] = value
    return out
