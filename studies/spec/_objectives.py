"""Objectives and constraints of a study: `[study] objectives`, `constraints`, `latency_batch`.

A study optimises one learning metric (`metric`), or several objectives at once:

    objectives = { dev_accuracy = "max", params = "min" }
    constraints = { params = "<= 50000" }

An objective is a metric the task records (its value is the best epoch's, as for `metric`) or
a property measured on the trained network (`MEASURES`). A constraint bounds an objective or
a measured property; a trial that breaks one is infeasible: kept and shown, never on the
Pareto front, never exported as best.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from studies._errors import did_you_mean
from trainer import MONITORS, metric_direction

# Properties of the trained network recorded on every trial (`trainer.measure` measures
# them), each with the direction that makes sense for it.
MEASURES = {
    "params": "minimize",  # trainable parameters
    "latency_ms": "minimize",  # median forward of one batch of `latency_batch` examples
    "flops": "minimize",  # floating-point operations of one example's forward
    "train_seconds": "minimize",  # wall time of the training run
    "model_bytes": "minimize",  # the bytes of the network's weights and buffers
}
LATENCY_BATCH = 1  # examples in the batch whose forward time is `latency_ms`
# Samplers that use a trial's constraint values (Optuna's `Trial.set_constraint`); the
# others would sample as if every trial were feasible.
CONSTRAINED_SAMPLERS = ("tpe", "nsgaii", "gp")
# Samplers that cannot optimise several objectives at once.
SINGLE_OBJECTIVE_SAMPLERS = ("cmaes",)
# The pruner hpstudy runs itself in a multi-objective study (Optuna refuses `trial.report`
# there), and the one that does nothing.
MULTI_OBJECTIVE_PRUNERS = ("successive_halving", "none")
_DIRECTIONS = {"min": "minimize", "minimize": "minimize", "max": "maximize", "maximize": "maximize"}
_OPERATORS = ("<=", ">=")
_BOUND = re.compile(r"\s*(<=|>=|<|>|==|=)\s*([-+0-9.eE]+)\s*")
_CONDITION = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>|==|=)\s*([-+0-9.eE]+)\s*")


def quantity_direction(name: str) -> str:
    """ "minimize" or "maximize": the direction of a metric or a measured property."""
    return MEASURES[name] if name in MEASURES else metric_direction(name)


def known_quantities() -> tuple[str, ...]:
    """Every name an objective may take: the learning metrics, then the measured properties."""
    return (*MONITORS, *MEASURES)


@dataclasses.dataclass(frozen=True)
class Constraint:
    """A bound on one quantity of a trial: `params <= 50000`."""

    name: str  # an objective or a measured property
    operator: str  # "<=" or ">="
    bound: float

    def violation(self, value: float) -> float:
        """How far `value` breaks the bound (Optuna's convention: <= 0 is feasible)."""
        if not math.isfinite(value):
            return math.inf
        return value - self.bound if self.operator == "<=" else self.bound - value

    def holds(self, value: float) -> bool:
        return self.violation(value) <= 0.0

    @property
    def expression(self) -> str:
        """The spec's form of the bound: "<= 50000"."""
        bound = int(self.bound) if self.bound.is_integer() else self.bound
        return f"{self.operator} {bound!r}"

    def __str__(self) -> str:
        return f"{self.name} {self.expression}"


def parse_bound(name: str, text: Any) -> Constraint | str:
    """The constraint `name <text>` ("<= 50000"), or a problem naming the fix."""
    example = f'{name} = "<= 50000"' if name == "params" else f'{name} = "<= 2"'
    if not isinstance(text, str):
        return f"study.constraints.{name}: a bound as a string, e.g. {example}; got {text!r}"
    found = _BOUND.fullmatch(text)
    return (
        _constraint(name, found.group(1), found.group(2), text, example)
        if found
        else (
            f"study.constraints.{name}: '{text}' is not a bound; write '<= number' or "
            f"'>= number', e.g. {example}"
        )
    )


def parse_condition(text: str) -> list[Constraint] | str:
    """Conditions such as "params<=50000, latency_ms<=2", or a problem naming the fix."""
    found: list[Constraint] = []
    for part in text.split(","):
        match = _CONDITION.fullmatch(part)
        if match is None:
            return (
                f"'{part.strip()}' is not a condition; write NAME<=NUMBER or NAME>=NUMBER, "
                f'e.g. "params<=50000"'
            )
        name, operator, number = match.groups()
        parsed = _constraint(name, operator, number, part.strip(), f"{name}<=NUMBER")
        if isinstance(parsed, str):
            return parsed.partition(": ")[2]
        found.append(parsed)
    return found


def _constraint(name: str, operator: str, number: str, text: str, example: str) -> Constraint | str:
    if operator not in _OPERATORS:
        return (
            f"study.constraints.{name}: '{text}' uses '{operator}'; a bound is '<=' or '>=' "
            f"(e.g. {example})"
        )
    try:
        bound = float(number)
    except ValueError:
        bound = math.nan
    if not math.isfinite(bound):
        return f"study.constraints.{name}: '{text}' does not end in a finite number"
    return Constraint(name, operator, bound)


@dataclasses.dataclass(frozen=True)
class Objectives:
    """A study's objectives (name -> direction, in order) and constraints, once checked."""

    directions: dict[str, str]  # empty: the study's single `metric`
    constraints: tuple[Constraint, ...] = ()
    latency_batch: int = LATENCY_BATCH

    @property
    def metric(self) -> str | None:
        """The first learning metric among the objectives (model selection and pruning use
        it), or None when they name none."""
        return next((name for name in self.directions if name in MONITORS), None)

    @property
    def measured_needed(self) -> bool:
        """Whether an objective or a constraint is a measured property."""
        return any(name in MEASURES for name in [*self.directions, *self.names_bounded])

    @property
    def names_bounded(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.constraints)

    def to_dict(self, *, metric: str, direction: str) -> dict[str, Any]:
        """The `[study]` keys that `read_objectives` reads back (with `metric` for one)."""
        out: dict[str, Any] = (
            {"objectives": {name: d[:3] for name, d in self.directions.items()}}
            if self.directions
            else {"metric": metric, "direction": direction}
        )
        if self.constraints:
            out["constraints"] = {c.name: c.expression for c in self.constraints}
        if self.latency_batch != LATENCY_BATCH:
            out["latency_batch"] = self.latency_batch
        return out


def read_objectives(
    study: Mapping[str, Any], problems: list[str], *, task_metrics: tuple[str, ...] | None = None
) -> Objectives:
    """`[study] objectives`, `constraints` and `latency_batch`, adding a problem for each
    bad entry to `problems`.

    Args:
        task_metrics: the learning metrics the spec's task records (None: not known here).
    """
    directions = _read_directions(study, problems, task_metrics)
    names = set(directions) | {study.get("metric", "dev_loss")}
    constraints = _read_constraints(study.get("constraints"), names, problems)
    batch = study.get("latency_batch", LATENCY_BATCH)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        problems.append(f"study.latency_batch: examples per timed forward, >= 1; got {batch!r}")
        batch = LATENCY_BATCH
    found = Objectives(directions, constraints, batch)
    problems += _combination_problems(study, found)
    return found


def _read_directions(
    study: Mapping[str, Any], problems: list[str], task_metrics: tuple[str, ...] | None
) -> dict[str, str]:
    table = study.get("objectives")
    if table is None:
        return {}
    if not isinstance(table, dict) or not table:
        problems.append(
            f"study.objectives: a table of names and directions, e.g. objectives = "
            f'{{ dev_accuracy = "max", params = "min" }}; got {table!r}'
        )
        return {}
    if "metric" in study:
        problems.append(
            "study.objectives and study.metric are both given; objectives lists every "
            "metric a study optimises: leave metric out (or objectives, for one metric)"
        )
    known = known_quantities()
    directions: dict[str, str] = {}
    for name, given in table.items():
        if name not in known:
            problems.append(
                f"study.objectives.{name}: unknown{did_you_mean(name, known)}; choose "
                f"among the metrics ({', '.join(MONITORS)}) and the measured properties "
                f"({', '.join(MEASURES)})"
            )
            continue
        if task_metrics is not None and name in MONITORS and name not in task_metrics:
            problems.append(
                f"study.objectives.{name}: this task records {', '.join(task_metrics)}, not {name}"
            )
            continue
        natural = quantity_direction(name)
        direction = _DIRECTIONS.get(given) if isinstance(given, str) else None
        if direction is None:
            problems.append(f'study.objectives.{name}: "min" or "max", got {given!r}')
        elif direction != natural:
            problems.append(
                f"study.objectives.{name}: {name} is always {natural}d, not {direction}d; "
                f'write {name} = "{natural[:3]}"'
            )
        else:
            directions[name] = direction
    return directions


def _read_constraints(
    table: Any, objectives: set[str], problems: list[str]
) -> tuple[Constraint, ...]:
    if table is None:
        return ()
    if not isinstance(table, dict) or not table:
        problems.append(
            f'study.constraints: a table of bounds, e.g. constraints = {{ params = "<= 50000" '
            f"}}; got {table!r}"
        )
        return ()
    allowed = sorted(objectives | set(MEASURES))
    found = []
    for name, text in table.items():
        if name not in allowed:
            problems.append(
                f"study.constraints.{name}: a constraint bounds an objective, the study's "
                f"metric or a measured property{did_you_mean(name, allowed)}; choose one of: "
                f"{', '.join(allowed)}"
            )
            continue
        parsed = parse_bound(name, text)
        if isinstance(parsed, str):
            problems.append(parsed)
        else:
            found.append(parsed)
    return tuple(found)


def _combination_problems(study: Mapping[str, Any], objectives: Objectives) -> list[str]:
    """A sampler that ignores constraints, or cannot take several objectives, is refused; so
    are an Optuna pruner and an ablation (which compares one metric) with several."""
    sampler = study.get("sampler", "tpe")
    name = sampler.get("name", "tpe") if isinstance(sampler, dict) else sampler
    problems = []
    if objectives.constraints and name not in CONSTRAINED_SAMPLERS:
        problems.append(
            f"study.sampler: the {name} sampler ignores constraints and would search as if "
            f"every trial were feasible; use one of: {', '.join(CONSTRAINED_SAMPLERS)}"
        )
    if len(objectives.directions) > 1 and name in SINGLE_OBJECTIVE_SAMPLERS:
        problems.append(
            f"study.sampler: the {name} sampler optimises one objective; with several use "
            f"tpe, nsgaii, gp or random"
        )
    pruner = study.get("pruner")
    pruner_name = pruner.get("name") if isinstance(pruner, dict) else pruner
    if (
        len(objectives.directions) > 1
        and pruner_name is not None
        and pruner_name not in MULTI_OBJECTIVE_PRUNERS
    ):
        problems.append(
            f"study.pruner: Optuna's pruners judge one objective; a study of several is "
            f"pruned by hpstudy's own successive halving on Pareto fronts: use "
            f'pruner = "successive_halving" (the default) or "none", not {pruner_name!r}'
        )
    if len(objectives.directions) > 1 and study.get("ablation") is not None:
        problems.append(
            "study.ablation: an ablation compares its cells on one metric; give it one "
            "(study.metric) instead of several objectives"
        )
    return problems
