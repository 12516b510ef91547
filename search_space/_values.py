"""The values a parameter can take, and how they are shown to Optuna and to people.

A value is a scalar (str, int, float, bool) or a list of ints such as hidden layer sizes. Optuna's
categorical choices cannot be lists, so a list is handed to it as a string ("300-100") that reads
well on the dashboard, and turned back into a tuple of ints after the suggest call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeAlias

Scalar: TypeAlias = str | int | float | bool
Value: TypeAlias = Scalar | Sequence[int]  # lists are stored (and returned) as tuples

# How an empty list (e.g. no hidden layers, no milestones) appears to Optuna.
EMPTY_LIST = "none"


def is_whole(value: Any) -> bool:
    """Whether ``value`` is an int (TOML's integers), not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a finite int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_value(value: Any) -> bool:
    """Whether ``value`` can be a choice, a fixed value or a condition value."""
    if isinstance(value, list | tuple):
        return all(is_whole(item) for item in value)
    return isinstance(value, str | int | float)  # bool is an int


def normalise(value: Any) -> Any:
    """Lists (as TOML and JSON give them) become tuples, so values compare and hash alike."""
    return tuple(value) if isinstance(value, list | tuple) else value


def encode(value: Value) -> Scalar:
    """The form Optuna sees: a list of ints becomes ``"300-100"``; scalars are unchanged."""
    if isinstance(value, str | int | float):
        return value
    return "-".join(str(item) for item in value) or EMPTY_LIST


def same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from numbers (Python has ``True == 1``)."""
    return isinstance(a, bool) is isinstance(b, bool) and normalise(a) == normalise(b)


def show(value: Any) -> str:
    """A value as it would be written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(show(item) for item in value) + "]"
    return repr(value)
