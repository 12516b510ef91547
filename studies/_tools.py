"""hpstudy from Python: the tools around a search (plan, lr-range, ablate, learning-curve).

Each trains networks on this machine, as the matching `hpstudy` command does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from studies._api import Echo, SpecLike, spec_of
from studies._errors import ParameterError, user_errors

if TYPE_CHECKING:
    from studies.analysis import CellRow
    from studies.workers import Plan
    from trainer import LRRange


@dataclasses.dataclass(frozen=True)
class AblationResult:
    """An ablation's outcome: one row per cell of factor values, best first."""

    study: str  # the ablation's own study (NAME-ablation-...), kept in the same database
    base: str  # the spec it ablates
    factors: tuple[str, ...]
    repeats: int  # seeds per cell
    metric: str
    rows: tuple[CellRow, ...]

    @property
    def worse(self) -> tuple[CellRow, ...]:
        """The cells significantly worse than the best (paired t-test, Holm-corrected, 5%)."""
        return tuple(row for row in self.rows if row.worse)


@user_errors
def plan(spec: SpecLike, *, budget: float | str, workers: int = 1) -> Plan:
    """Times a probe epoch here and says what fits in `budget` with `workers` workers.

    Args:
        budget: seconds, or a duration such as "30m", "1.5h" or "900".

    Returns:
        The plan: epochs and trials the budget holds; `plan.lines(spec)` says it in words.

    Raises:
        ParameterError: for a budget that is not a duration, or fewer than one worker.
    """
    from studies.workers import parse_budget
    from studies.workers import plan as plan_budget

    if isinstance(budget, str):
        try:
            budget = parse_budget(budget)
        except ValueError:
            raise ParameterError(
                f"`budget` takes a duration such as 30m, 1.5h or 900 (seconds), got '{budget}'"
            ) from None
    if workers < 1:
        raise ParameterError(f"`workers` must be at least 1, got {workers}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return plan_budget(spec_of(spec), budget=budget, workers=workers)


@user_errors
def lr_range(
    spec: SpecLike, *, steps: int = 300, output: str | Path | None = "lr-range.png"
) -> dict[str, LRRange]:
    """The learning-rate range test of each optimiser the spec searches, on one sample of
    its space: the loss against a growing learning rate, and the bounds worth searching.

    Args:
        steps: training steps per optimiser (at least 20).
        output: where to draw the curves (.png); None draws nothing.

    Returns:
        The range found per optimiser.
    """
    from studies.analysis import plot_lr_ranges
    from studies.results import check_output
    from studies.workers import run_range_tests

    if steps < 20:
        raise ParameterError(f"`steps` must be at least 20, got {steps}")
    path = None if output is None else check_output(output, (".png",))
    checked = spec_of(spec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ranges = run_range_tests(checked, steps=steps)
    if path is not None:
        title = f"learning-rate range test: {checked.name}"
        path.write_bytes(plot_lr_ranges(ranges, title=title))
    return ranges


@user_errors
def ablate(
    spec: SpecLike,
    *,
    factors: Sequence[str],
    repeats: int = 5,
    workers: int = 1,
    storage: str | None = None,
    output: str | Path | None = None,
    echo: Echo = print,
) -> AblationResult:
    """Trains every combination of the categorical `factors` with `repeats` seeds each, as a
    study of its own, and tells which cells are significantly worse than the best.

    Args:
        output: also draw the table here (.png).
        echo: where the run's progress goes.

    Raises:
        SpecError: for an unknown or non-categorical factor, or fewer than two repeats.
    """
    from studies.results import ablation_rows, check_output
    from studies.workers import ablation_spec, run_study

    if output is not None:
        check_output(output, (".png",))
    base = spec_of(spec, storage=storage)
    ablation = ablation_spec(base, list(factors), repeats)
    cells = ablation.n_trials or 0
    echo(
        f"ablation of {', '.join(factors)} in '{base.name}': {cells // repeats} cells x "
        f"{repeats} seeds = {cells} runs, as study '{ablation.name}'"
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = run_study(ablation, workers=workers, echo=echo)
    rows = ablation_rows(study, factors)
    if output is not None:
        from studies.analysis import plot_ablation

        Path(output).write_bytes(plot_ablation(rows, factors, ablation.metric))
    return AblationResult(
        study=ablation.name,
        base=base.name,
        factors=tuple(factors),
        repeats=repeats,
        metric=ablation.metric,
        rows=tuple(rows),
    )


@user_errors
def learning_curve(
    name: str,
    *,
    storage: str | None = None,
    trial: int | None = None,
    sizes: Sequence[float] = (0.05, 0.1, 0.2, 0.4, 0.7, 1.0),
    repeats: int = 3,
    output: str | Path | None = None,
    echo: Echo = print,
) -> tuple[str, str]:
    """Trains the best trial of `name` (or trial `trial`) on growing shares of its training
    data, the dev set fixed, and reads the curves: under- or overfitting.

    Args:
        sizes: shares of the training split, in (0, 1].
        repeats: seeds per size.
        output: also draw the curves here (.png); they are kept with the study too.

    Returns:
        (label, sentence): underfitting, overfitting or good_fit, and what it means.
    """
    from studies.results import check_output
    from studies.results import learning_curve as size_curve

    if output is not None:
        check_output(output, (".png",))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return size_curve(
        name, url=storage, number=trial, sizes=sizes, repeats=repeats, output=output, echo=echo
    )


@user_errors
def fetch(dataset: str = "mnist", *, data_dir: str | Path = "data") -> Path:
    """Downloads a built-in data set into `data_dir` (checked by MD5); returns its folder.

    Raises:
        ParameterError: for a data set other than "mnist".
        DataUnavailableError: when no mirror could be reached.
    """
    from trainer import fetch_mnist

    if dataset != "mnist":
        raise ParameterError(
            f"`dataset` must be 'mnist', the one built-in data set to fetch; got '{dataset}'"
        )
    return fetch_mnist(data_dir)
