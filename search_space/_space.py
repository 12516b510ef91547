"""`SearchSpace`: named parameters, validated as a whole, read from and written to dicts."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from search_space._conditions import condition_problems, dependency_order
from search_space._errors import ParamError, Problem, SpaceError, at, did_you_mean
from search_space._names import GROUPS, grouped_problem, nest, split
from search_space._params import PARAM_TYPES, Categorical, Float, Int, Param, param_from_dict
from search_space._values import Scalar, show


class SearchSpace(Mapping[str, Param]):
    """Parameters by name; a mapping that iterates in dependency order.

    A parameter comes after those its condition names, otherwise in the declared order, so
    suggesting in iteration order always knows the values a condition needs.

    The entries of a group field (``model_args``: a model factory's keyword arguments) are
    parameters of their own, named ``"model_args.width"`` here, in Optuna and in what `suggest`
    returns (`nest` turns them back into a config update), and written as nested tables,
    ``[space.model_args.width]``, in a spec and by `to_dict`. Conditions may name them, flat
    (``when = {"model_args.depth" = [3]}``) or nested (``when = {model_args = {depth = [3]}}``),
    whether they are in the space or only in the base config.

    Args:
        params: The parameters by name (`TrainConfig` field names, or ``group.entry``).
        fields: The names allowed, for parameters and for conditions on the base config; any
            name when None (then a condition may only name a parameter of the space).
        prefix: The key path that leads error messages.
        groups: The fields whose entries are parameters; a group must also be in `fields`
            (when given). Any entry name is allowed under a group.

    Raises:
        SpaceError: With every problem found.
    """

    def __init__(
        self,
        params: Mapping[str, Param],
        *,
        fields: Collection[str] | None = None,
        prefix: str = "space",
        groups: Collection[str] = GROUPS,
    ) -> None:
        groups = _known_groups(groups, fields)
        problems = at(
            prefix, _space_problems(params, names=list(params), fields=fields, groups=groups)
        )
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
        groups: Collection[str] = GROUPS,
    ) -> SearchSpace:
        """Reads a space: a table of parameter tables, as a study spec's ``[space]`` holds.

        Args:
            data: Parameter names mapped to parameter tables (see `param_from_dict`); a group
                maps to a table of its entries' parameter tables (``[space.model_args.width]``).
            fields: The names allowed (studies pass ``trainer.field_names()``).
            prefix: The key path that leads error messages.
            groups: The fields whose entries are parameters (see `SearchSpace`).

        Raises:
            SpaceError: With every problem in every table, each led by its key path.
        """
        if not isinstance(data, Mapping):
            raise SpaceError([f"{prefix}: must be a table of parameters, got {show(data)}"])
        known_groups = _known_groups(groups, fields)
        tables, problems = _flat_tables(data, known_groups, prefix)
        params: dict[str, Param] = {}
        for name, table in tables.items():
            try:
                params[name] = param_from_dict(table)
            except ParamError as exc:
                problems += at(f"{prefix}.{name}", exc.relative)
        problems += at(
            prefix, _space_problems(params, names=list(tables), fields=fields, groups=known_groups)
        )
        if problems:
            raise SpaceError(problems)
        return cls(params, fields=fields, prefix=prefix, groups=groups)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The TOML/JSON-ready form, group entries nested; `from_dict` reads it back to an
        equal space."""
        return nest({name: param.to_dict() for name, param in self.items()})

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


def _known_groups(groups: Collection[str], fields: Collection[str] | None) -> tuple[str, ...]:
    """The groups that are fields (all of them without `fields`)."""
    return tuple(g for g in groups if fields is None or g in fields)


def _flat_tables(
    data: Mapping[str, Any], groups: Collection[str], prefix: str
) -> tuple[dict[str, Any], list[str]]:
    """The parameter tables by flat name: a group's table of entries becomes group.entry."""
    tables: dict[str, Any] = {}
    problems: list[str] = []
    for name, table in data.items():
        if name not in groups:
            tables[name] = table
        elif not isinstance(table, Mapping) or not table:
            problems.append(
                f"{prefix}.{name}: must be a table of parameters, one per entry, e.g. "
                f"[{prefix}.{name}.width]; got {show(table)}"
            )
        else:
            for key, entry in table.items():
                if isinstance(entry, Mapping):
                    tables[f"{name}.{key}"] = entry
                else:
                    problems.append(
                        f"{prefix}.{name}.{key}: must be a table, got {show(entry)}; {name} "
                        f"holds one parameter table per entry, e.g. [{prefix}.{name}.width]"
                    )
    return tables, problems


def _name_problem(name: str, fields: Collection[str] | None, groups: Collection[str]) -> str | None:
    """Why `name` cannot be a parameter: not a field, a group itself, or a bad group entry."""
    if name in groups:
        return f"'{name}' is a table: search its entries, e.g. [space.{name}.width]"
    parts = split(name)
    if parts is not None and (fields is not None or parts[0] in groups):
        return grouped_problem(name, groups)
    if fields is not None and name not in fields:
        return f"'{name}' is not a TrainConfig field{did_you_mean(name, fields)}"
    return None


def _space_problems(
    params: Mapping[str, Param],
    *,
    names: list[str],
    fields: Collection[str] | None,
    groups: Collection[str],
) -> list[Problem]:
    """Problems of the space as a whole: names, parameter types and conditions."""
    problems: list[Problem] = []
    for name in names:
        if not isinstance(name, str) or not name:
            problems.append(("", f"parameter names must be non-empty strings, got {show(name)}"))
            continue
        problem = _name_problem(name, fields, groups)
        if problem:
            problems.append((name, problem))
    kinds = tuple(PARAM_TYPES.values())
    strays = [name for name, param in params.items() if not isinstance(param, kinds)]
    for name in strays:
        problems.append((name, f"must be a Float, Int, Categorical or Fixed, got {params[name]!r}"))
    if strays:  # conditions can only be read on parameters
        return problems
    return problems + condition_problems(params, names=names, fields=fields, groups=groups)
