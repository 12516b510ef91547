"""Samplers and pruners by name, with their arguments checked against Optuna's constructors."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from search_space import SearchSpace
from studies.spec._extrapolating import ExtrapolatingPruner


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, minus its `study.stop()` when the grid is used up.

    That call works only inside `study.optimize`; hpstudy's workers ask and tell themselves,
    and the study's budget (checked against the grid's size in the spec) ends the study.
    """

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to do: the budget, not the sampler, ends a grid study."""


SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "qmc": optuna.samplers.QMCSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "gp": optuna.samplers.GPSampler,  # Gaussian process: few trials, continuous parameters
    "nsgaii": optuna.samplers.NSGAIISampler,  # genetic: several objectives, many trials
    "grid": GridSampler,
}

# Our defaults differ from Optuna's where parallel workers and conditional spaces need it:
# multivariate TPE with groups models the conditional parameters jointly, and the constant
# liar keeps concurrent workers from sampling the same point.
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {
    "tpe": {"multivariate": True, "group": True, "constant_liar": True},
}

PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "median": optuna.pruners.MedianPruner,
    "percentile": optuna.pruners.PercentilePruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    # forecasts each trial's final value from its curve at halving's rungs (issue 28)
    "extrapolate": ExtrapolatingPruner,
    "none": optuna.pruners.NopPruner,
}

# The pruner of a study that names none, and of every built-in spec: asynchronous successive
# halving judging from the first epoch, a third kept at each rung. Chosen by issue 28's
# search simulations on tuning seeds 0-19 (benchmarks/hpobench, RESULTS.md "Choosing the
# default search"): 189 epochs to a top-1% configuration against 308 with min_resource 2 and
# slower still with Optuna's median pruner, Hyperband or learning-curve forecasts.
DEFAULT_PRUNER: dict[str, Any] = {
    "name": "successive_halving",
    "min_resource": 1,
    "reduction_factor": 3,
}

# Arguments that are not plain values in a spec file, or that hpstudy sets itself.
_NOT_FROM_SPEC = {
    "seed",
    "search_space",
    "gamma",
    "weights",
    "constraints_func",
    "independent_sampler",
    "source_trials",
    "x0",
    # NSGA-II's strategies and crossover are objects, not values a spec file holds
    "crossover",
    "elite_population_selection_strategy",
    "child_generation_strategy",
    "after_trial_strategy",
}


def _arguments(factory: Callable[..., Any]) -> list[str]:
    return [
        name
        for name in inspect.signature(factory).parameters
        if name not in _NOT_FROM_SPEC and name not in ("self", "args", "kwargs")
    ]


def _check(
    entry: Mapping[str, Any], registry: Mapping[str, Callable[..., Any]], prefix: str
) -> list[str]:
    name = str(entry.get("name"))
    if name not in registry:
        return [f"{prefix}.name: '{name}' is unknown; choose one of: {', '.join(registry)}"]
    known = _arguments(registry[name])
    problems = []
    for key in entry:
        if key != "name" and key not in known:
            allowed = ", ".join(known) or "none"
            problems.append(
                f"{prefix}.{key}: not an argument of the {name} "
                f"{prefix.split('.')[-1]} (it takes: {allowed})"
            )
    if name == "percentile" and "percentile" not in entry:
        problems.append(f"{prefix}.percentile: required for the percentile pruner, e.g. 25.0")
    if not problems:
        try:
            _build(entry, registry, seed=0, space=None)
        except (TypeError, ValueError) as exc:
            problems.append(f"{prefix}: {exc}")
    return problems


def check_sampler(entry: Mapping[str, Any], *, prefix: str = "study.sampler") -> list[str]:
    """Problems with a sampler entry ({"name": ..., **arguments}); empty when it is fine."""
    return _check(entry, SAMPLERS, prefix)


def check_pruner(entry: Mapping[str, Any], *, prefix: str = "study.pruner") -> list[str]:
    """Problems with a pruner entry; empty when it is fine."""
    return _check(entry, PRUNERS, prefix)


def _build(
    entry: Mapping[str, Any],
    registry: Mapping[str, Callable[..., Any]],
    *,
    seed: int | None,
    space: SearchSpace | None,
) -> Any:
    name = str(entry["name"])
    defaults = SAMPLER_DEFAULTS.get(name, {}) if registry is SAMPLERS else {}
    kwargs = {**defaults, **{k: v for k, v in entry.items() if k != "name"}}
    if registry is SAMPLERS:
        if name == "grid":
            kwargs["search_space"] = space.grid() if space is not None else {"x": [0]}
        if name != "grid" or seed is not None:
            kwargs["seed"] = seed
    with warnings.catch_warnings():
        # Optuna notes that `group` and `constant_liar` are experimental. hpstudy chose them,
        # so the note is noise to a user; a choice the user makes in the spec keeps its notes.
        for argument in defaults:
            warnings.filterwarnings(
                "ignore",
                message=f"Argument ``{argument}`` is an experimental feature",
                category=optuna.exceptions.ExperimentalWarning,
            )
        return registry[name](**kwargs)


def make_sampler(
    entry: Mapping[str, Any], *, seed: int | None, space: SearchSpace
) -> optuna.samplers.BaseSampler:
    """The sampler of a spec. Each worker passes its own seed, so workers do not sample alike."""
    sampler: optuna.samplers.BaseSampler = _build(entry, SAMPLERS, seed=seed, space=space)
    return sampler


def make_pruner(entry: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The pruner of a spec."""
    pruner: optuna.pruners.BasePruner = _build(entry, PRUNERS, seed=None, space=None)
    return pruner
