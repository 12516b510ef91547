"""`SearchSpace`: named parameters, validated as a whole, read from and written to dicts."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from search_space._conditions import condition_problems, dependency_order
from search_space._errors import ParamError, Problem, SpaceError, at, did_you_mean
from search_space._params import PARAM_TYPES, Categorical, Float, Int, Param, param_from_dict
from search_space._values import Scalar, show


class SearchSpace(Mapping[str, Param]):
    """Parameters by name; a mapping that iterates in dependency order.

    A parameter comes after those its condition names, otherwise in the declared order, so
    suggesting in iteration order always knows the values a condition needs.

    Args:
        params: The parameters by name (`TrainConfig` field names).
        fields: The names allowed, for parameters and for conditions on the base config; any
            name when None (then a condition may only name a parameter of the space).
        prefix: The key path that leads error messages.

    Raises:
        SpaceError: With every problem found.
    """

    def __init__(
        self,
        params: Mapping[str, Param],
        *,
        fields: Collection[str] | None = None,
        prefix: str = "space",
    ) -> None:
        problems = at(prefix, _space_problems(params, names=list(params), fields=fields))
        if problems:
            raise SpaceError(problems)
        self._params = {name: params[name] for name in dependency_order(params)[0]}
        self._prefix = prefix

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        fields: Collection[str] | None = None,
        prefix: str = "space",
    ) -> SearchSpace:
        """Reads a space: a table of parameter tables, as a study spec's ``[space]`` holds.

        Args:
            data: Parameter names mapped to parameter tables (see `param_from_dict`).
            fields: The names allowed (studies pass ``trainer.field_names()``).
            prefix: The key path that leads error messages.

        Raises:
            SpaceError: With every problem in every table, each led by its key path.
        """
        if not isinstance(data, Mapping):
            raise SpaceError([f"{prefix}: must be a table of parameters, got {show(data)}"])
        params: dict[str, Param] = {}
        problems: list[str] = []
        for name, table in data.items():
            try:
                params[name] = param_from_dict(table)
            except ParamError as exc:
                problems += at(f"{prefix}.{name}", exc.relative)
        problems += at(prefix, _space_problems(params, names=list(data), fields=fields))
        if problems:
            raise SpaceError(problems)
        return cls(params, fields=fields, prefix=prefix)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The TOML/JSON-ready form; `from_dict` reads it back to an equal space."""
        return {name: param.to_dict() for name, param in self.items()}

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, in dependency order."""
        return tuple(self._params)

    def grid(self) -> dict[str, list[Scalar]]:
        """Every value of each suggested parameter, for `optuna.samplers.GridSampler`.

        Categorical parameters give their (encoded) choices, int ranges every step; fixed
        parameters are left out, as they are never suggested.

        Raises:
            SpaceError: For float ranges and conditional parameters, which a grid cannot hold.
        """
        grid: dict[str, list[Scalar]] = {}
        problems: list[str] = []
        for name, param in self.items():
            path = f"{self._prefix}.{name}"
            if param.when is not None:
                problems.append(
                    f"{path}: grid search cannot follow conditions: GridSampler sets every "
                    "parameter in every trial; drop 'when' or use another sampler"
                )
            if isinstance(param, Float):
                problems.append(
                    f"{path}: grid search needs categorical or stepped int parameters, not a "
                    "float range; list the values as choices"
                )
            elif isinstance(param, Int):
                grid[name] = list(range(param.low, param.high + 1, param.step))
            elif isinstance(param, Categorical):
                grid[name] = list(param.encoded_choices)
        if problems:
            raise SpaceError(problems)
        return grid

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"SearchSpace({self._params!r})"


def _space_problems(
    params: Mapping[str, Param], *, names: list[str], fields: Collection[str] | None
) -> list[Problem]:
    """Problems of the space as a whole: names, parameter types and conditions."""
    problems: list[Problem] = []
    for name in names:
        if not isinstance(name, str) or not name:
            problems.append(("", f"parameter names must be non-empty strings, got {show(name)}"))
        elif fields is not None and name not in fields:
            hint = did_you_mean(name, fields)
            problems.append((name, f"'{name}' is not a TrainConfig field{hint}"))
    kinds = tuple(PARAM_TYPES.values())
    strays = [name for name, param in params.items() if not isinstance(param, kinds)]
    for name in strays:
        problems.append((name, f"must be a Float, Int, Categorical or Fixed, got {params[name]!r}"))
    if strays:  # conditions can only be read on parameters
        return problems
    return problems + condition_problems(params, names=names, fields=fields)
