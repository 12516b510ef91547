"""`suggest`: one ``trial.suggest_*`` call per active parameter of a search space."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.trial import BaseTrial

from search_space._conditions import is_active
from search_space._errors import SpaceError
from search_space._names import flatten
from search_space._params import Categorical, Fixed, Float, Int, Param
from search_space._space import SearchSpace
from search_space._values import normalise


def suggest(
    trial: BaseTrial, space: SearchSpace, *, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Draws the active parameters of ``space`` from ``trial``.

    Parameters are drawn in the space's dependency order. A condition reads the value drawn in
    this trial, or, for a name that has none (not in the space, or inactive), the value in
    ``base``: the config the parameters will be laid over (a group's entries included:
    ``base["model_args"]["depth"]`` answers a condition on ``model_args.depth``). Inactive
    parameters are skipped, so the same space works with `optuna.trial.FixedTrial` and with
    ``study.ask()``.

    Args:
        trial: The trial to draw from.
        space: The search space.
        base: Config values that conditions may name, e.g. ``TrainConfig.to_dict()``.

    Returns:
        The active parameters by name; list choices come back as tuples of ints, and fixed
        parameters are included without a suggest call. Group entries keep their flat names
        (``"model_args.width"``); `nest` turns them into a config update.

    Raises:
        SpaceError: When a condition names a value neither the space nor ``base`` has.
    """
    known = {name: normalise(value) for name, value in flatten(base or {}).items()}
    missing = [
        f"'{name}' is conditional on '{parent}', which is neither in the space nor in base"
        for name, param in space.items()
        for parent in param.when or {}
        if parent not in space and parent not in known
    ]
    if missing:
        raise SpaceError(missing)
    params: dict[str, Any] = {}
    for name, param in space.items():
        if is_active(param, known):
            params[name] = known[name] = _suggest_one(trial, name, param)
    return params


def _suggest_one(trial: BaseTrial, name: str, param: Param) -> Any:
    if isinstance(param, Float):
        return trial.suggest_float(name, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, Int):
        return trial.suggest_int(name, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, Categorical):
        return param.decode(trial.suggest_categorical(name, param.encoded_choices))
    if isinstance(param, Fixed):
        return param.value
    raise TypeError(f"not a parameter: {param!r}")
