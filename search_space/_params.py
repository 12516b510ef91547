"""The parameter types: small frozen value objects, each with ``to_dict`` and ``from_dict``.

Each validates itself on construction and raises `SpaceError` listing every problem, so a
parameter that exists is one Optuna can sample.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeAlias, TypeVar

from search_space._errors import ParamError, Problem, did_you_mean
from search_space._values import (
    Scalar,
    Value,
    encode,
    is_number,
    is_value,
    is_whole,
    normalise,
    show,
)

# A condition: other parameters' names mapped to the values under which a parameter is active.
# A group's entries may be named flat ("model_args.depth") or nested ({"model_args": {"depth":
# [3]}}); both are stored flat.
Condition: TypeAlias = Mapping[str, Sequence[Value] | Mapping[str, Sequence[Value]]]

_A_VALUE = "a string, number, boolean or list of whole numbers"
_VALUES = "strings, numbers, booleans or lists of whole numbers"


@dataclasses.dataclass(frozen=True)
class Float:
    """A float from ``[low, high]``.

    Args:
        low: The smallest value.
        high: The largest value; above ``low``.
        log: Sample on a log scale; needs ``low > 0``.
        step: Only values ``low + k * step``; must divide ``high - low``. Not with ``log``.
        when: The condition under which the parameter is active, e.g.
            ``{"optimizer": ["sgd", "rmsprop"]}``; every name given must hold.
    """

    type: ClassVar[str] = "float"

    low: float
    high: float
    _: dataclasses.KW_ONLY
    log: bool = False
    step: float | None = None
    when: Condition | None = None

    def __post_init__(self) -> None:
        _check(
            _range_problems(self.low, self.high, self.log, whole=False)
            + _float_step_problems(self)
            + _when_problems(self.when)
        )
        _set(self, low=float(self.low), high=float(self.high), when=_normalise_when(self.when))
        if self.step is not None:
            _set(self, step=float(self.step))

    def to_dict(self) -> dict[str, Any]:
        """The TOML/JSON-ready form; `from_dict` reads it back."""
        return _table(self, low=self.low, high=self.high, log=self.log or None, step=self.step)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Float:
        """Reads the form `to_dict` writes (``type`` may be left out)."""
        return _build(cls, data)


@dataclasses.dataclass(frozen=True)
class Int:
    """An int from ``[low, high]``.

    Args:
        low: The smallest value.
        high: The largest value; above ``low``.
        log: Sample on a log scale; needs ``low > 0`` and ``step == 1``.
        step: Only values ``low + k * step``; must divide ``high - low``.
        when: The condition under which the parameter is active (see `Float`).
    """

    type: ClassVar[str] = "int"

    low: int
    high: int
    _: dataclasses.KW_ONLY
    log: bool = False
    step: int = 1
    when: Condition | None = None

    def __post_init__(self) -> None:
        _check(
            _range_problems(self.low, self.high, self.log, whole=True)
            + _int_step_problems(self)
            + _when_problems(self.when)
        )
        _set(self, when=_normalise_when(self.when))

    def to_dict(self) -> dict[str, Any]:
        """The TOML/JSON-ready form; `from_dict` reads it back."""
        step = None if self.step == 1 else self.step
        return _table(self, low=self.low, high=self.high, log=self.log or None, step=step)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Int:
        """Reads the form `to_dict` writes (``type`` may be left out)."""
        return _build(cls, data)


@dataclasses.dataclass(frozen=True)
class Categorical:
    """One of a list of choices.

    Args:
        choices: Strings, numbers, booleans, or lists of ints (e.g. hidden layer sizes
            ``[[300, 100], [500, 300]]``), stored as tuples. Optuna sees a list as a string
            such as ``"300-100"`` (`encoded_choices`); `decode` turns it back.
        when: The condition under which the parameter is active (see `Float`).
    """

    type: ClassVar[str] = "categorical"

    choices: Sequence[Value]
    _: dataclasses.KW_ONLY
    when: Condition | None = None

    def __post_init__(self) -> None:
        _check(_choices_problems(self.choices) + _when_problems(self.when))
        choices = tuple(normalise(choice) for choice in self.choices)
        _set(self, choices=choices, when=_normalise_when(self.when))

    @property
    def encoded_choices(self) -> tuple[Scalar, ...]:
        """The choices as `optuna.trial.Trial.suggest_categorical` takes them."""
        return tuple(encode(choice) for choice in self.choices)

    def decode(self, encoded: object) -> Value:
        """The choice behind one of `encoded_choices`.

        Raises:
            ValueError: When ``encoded`` is not one of them.
        """
        return self.choices[self.encoded_choices.index(encoded)]

    def to_dict(self) -> dict[str, Any]:
        """The TOML/JSON-ready form; `from_dict` reads it back."""
        return _table(self, choices=[_plain(choice) for choice in self.choices])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Categorical:
        """Reads the form `to_dict` writes (``type`` may be left out)."""
        return _build(cls, data)


@dataclasses.dataclass(frozen=True)
class Fixed:
    """A value that is not searched: it goes into the parameters without a suggest call.

    Args:
        value: A string, number, boolean or list of ints (stored as a tuple).
        when: The condition under which the parameter is active (see `Float`).
    """

    type: ClassVar[str] = "fixed"

    value: Value
    _: dataclasses.KW_ONLY
    when: Condition | None = None

    def __post_init__(self) -> None:
        problems = _when_problems(self.when)
        if not is_value(self.value):
            problems.insert(0, ("", f"value must be {_A_VALUE}, got {show(self.value)}"))
        _check(problems)
        _set(self, value=normalise(self.value), when=_normalise_when(self.when))

    def to_dict(self) -> dict[str, Any]:
        """The TOML/JSON-ready form; `from_dict` reads it back."""
        return _table(self, value=_plain(self.value))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fixed:
        """Reads the form `to_dict` writes (``type`` may be left out)."""
        return _build(cls, data)


Param: TypeAlias = Float | Int | Categorical | Fixed

# The parameter types by the name a table's ``type`` key gives.
PARAM_TYPES: dict[str, type[Param]] = {cls.type: cls for cls in (Float, Int, Categorical, Fixed)}

_P = TypeVar("_P", bound=Param)


def param_from_dict(data: Mapping[str, Any]) -> Param:
    """Builds the parameter a table describes.

    ``type`` may be left out when the keys tell it: ``choices`` gives a categorical, ``value`` a
    fixed value, ``low``/``high`` that are both ints an int range, and other bounds a float range.

    Raises:
        SpaceError: With every problem in the table.
    """
    if not isinstance(data, Mapping):
        raise ParamError([("", f"must be a table, got {show(data)}")])
    if "type" in data:
        name = data["type"]
        if not isinstance(name, str) or name not in PARAM_TYPES:
            known = ", ".join(PARAM_TYPES)
            hint = did_you_mean(str(name), PARAM_TYPES)
            raise ParamError([("type", f"{show(name)} is unknown{hint}; choose one of: {known}")])
        return _build(PARAM_TYPES[name], data)
    return _build(_infer_type(data), data)


def _infer_type(data: Mapping[str, Any]) -> type[Param]:
    found = [key for key in ("choices", "value") if key in data]
    if "low" in data or "high" in data:
        found.append("low/high")
    if not found:
        raise ParamError([("", "cannot tell the type: give low and high, choices or value")])
    if len(found) > 1:
        given = " and ".join(found)
        raise ParamError([("", f"cannot tell the type from both {given}; set type")])
    if found == ["choices"]:
        return Categorical
    if found == ["value"]:
        return Fixed
    return Int if is_whole(data.get("low")) and is_whole(data.get("high")) else Float


def _build(cls: type[_P], data: Mapping[str, Any]) -> _P:
    """Checks a table's keys against ``cls``'s fields, then constructs it, with all problems."""
    if not isinstance(data, Mapping):
        raise ParamError([("", f"must be a table, got {show(data)}")])
    problems: list[Problem] = []
    if "type" in data and data["type"] != cls.type:
        problems.append(("type", f"is {show(data['type'])}, expected '{cls.type}'"))
    fields = {field.name: field for field in dataclasses.fields(cls)}
    for key in data:
        if key != "type" and key not in fields:
            problems.append(("", f"unknown key '{key}'{did_you_mean(str(key), fields)}"))
    missing = [
        name
        for name, field in fields.items()
        if field.default is dataclasses.MISSING and name not in data
    ]
    problems += [("", f"missing key '{name}'") for name in missing]
    param = None
    if not missing:
        try:
            param = cls(**{key: value for key, value in data.items() if key in fields})
        except ParamError as exc:
            problems += exc.relative
    if param is None or problems:
        raise ParamError(problems)
    return param


# --- checks: each returns the problems it finds, relative to the parameter ---


def _check(problems: list[Problem]) -> None:
    if problems:
        raise ParamError(problems)


def _range_problems(low: Any, high: Any, log: Any, *, whole: bool) -> list[Problem]:
    valid, kind = (is_whole, "a whole number") if whole else (is_number, "a finite number")
    problems = [
        ("", f"{name} must be {kind}, got {show(bound)}")
        for name, bound in (("low", low), ("high", high))
        if not valid(bound)
    ]
    if not isinstance(log, bool):
        problems.append(("", f"log must be true or false, got {show(log)}"))
    if problems:
        return problems
    if not low < high:
        hint = "; for a single value use a fixed parameter (value = ...)" if low == high else ""
        problems.append(("", f"low ({low}) must be below high ({high}){hint}"))
    if log and low <= 0:
        problems.append(("", "a log range must have low > 0"))
    return problems


def _float_step_problems(param: Float) -> list[Problem]:
    step = param.step
    if step is None:
        return []
    if not (is_number(step) and step > 0):
        return [("", f"step must be a positive number, got {show(step)}")]
    if param.log is True:
        return [("", "step cannot be combined with log")]
    if is_number(param.low) and is_number(param.high) and param.low < param.high:
        steps = (param.high - param.low) / step
        if not math.isclose(steps, round(steps), rel_tol=1e-9, abs_tol=1e-9):
            return [("", f"step ({step}) must divide high - low ({param.high - param.low})")]
    return []


def _int_step_problems(param: Int) -> list[Problem]:
    step = param.step
    if not (is_whole(step) and step >= 1):
        return [("", f"step must be a whole number >= 1, got {show(step)}")]
    if param.log is True and step != 1:
        return [("", "step cannot be combined with log (leave step at 1)")]
    if is_whole(param.low) and is_whole(param.high) and (param.high - param.low) % step:
        return [("", f"step ({step}) must divide high - low ({param.high - param.low})")]
    return []


def _choices_problems(choices: Any) -> list[Problem]:
    if isinstance(choices, str) or not isinstance(choices, Sequence):
        return [("", f"choices must be a list, got {show(choices)}")]
    if not choices:
        return [("", "choices is empty")]
    problems = [
        ("", f"choices[{i}] must be {_A_VALUE}, got {show(choice)}")
        for i, choice in enumerate(choices)
        if not is_value(choice)
    ]
    if problems:
        return problems
    # Optuna finds a choice by `==`, so 1, 1.0 and True (and a list and its string) would clash.
    encoded = [encode(normalise(choice)) for choice in choices]
    return [
        ("", f"choices has a duplicate: {show(choices[i])}")
        for i, value in enumerate(encoded)
        if value in encoded[:i]
    ]


def _when_problems(when: Any) -> list[Problem]:
    if when is None:
        return []
    if not isinstance(when, Mapping):
        return [("when", f"must be a table of parameter = [values], got {show(when)}")]
    if not when:
        return [("when", "is empty; leave it out for a parameter that is always active")]
    problems: list[Problem] = []
    for name, values in when.items():
        if not isinstance(name, str):
            problems.append(("when", f"parameter names must be strings, got {show(name)}"))
        elif isinstance(values, Mapping):
            problems += _group_when_problems(name, values)
        else:
            problems += _values_problems(f"when.{name}", values)
    return problems


def _group_when_problems(group: str, entries: Mapping[Any, Any]) -> list[Problem]:
    """A nested condition, ``{model_args = {depth = [3]}}``: each entry as a flat name."""
    if not entries:
        return [(f"when.{group}", "is empty; name the entries the condition is on")]
    problems: list[Problem] = []
    for key, values in entries.items():
        if not isinstance(key, str) or isinstance(values, Mapping):
            problems.append((f"when.{group}", f"must map entry names to [values], got {show(key)}"))
        else:
            problems += _values_problems(f"when.{group}.{key}", values)
    return problems


def _values_problems(where: str, values: Any) -> list[Problem]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        return [(where, f"must be a list of values, got {show(values)}")]
    if not values:
        return [(where, "is empty, so the parameter could never be active")]
    return [
        (where, f"values must be {_VALUES}, got {show(value)}")
        for value in values
        if not is_value(value)
    ]


# --- helpers ---


def _normalise_when(when: Condition | None) -> dict[str, tuple[Value, ...]] | None:
    """The condition with nested group entries as flat names and its lists as tuples."""
    if when is None:
        return None
    flat: dict[str, tuple[Value, ...]] = {}
    for name, values in when.items():
        if isinstance(values, Mapping):
            flat.update(
                (f"{name}.{key}", tuple(normalise(v) for v in entry))
                for key, entry in values.items()
            )
        else:
            flat[name] = tuple(normalise(value) for value in values)
    return flat


def _set(param: Param, **values: Any) -> None:
    """Stores normalised values on a frozen parameter (only from ``__post_init__``)."""
    for name, value in values.items():
        object.__setattr__(param, name, value)


def _plain(value: Value) -> Any:
    return value if isinstance(value, str | int | float) else list(value)


def _table(param: Param, **items: Any) -> dict[str, Any]:
    """``type``, the given items that are not None, and ``when`` when there is one."""
    table: dict[str, Any] = {"type": param.type}
    table.update((key, value) for key, value in items.items() if value is not None)
    if param.when is not None:
        table["when"] = {name: [_plain(v) for v in values] for name, values in param.when.items()}
    return table
