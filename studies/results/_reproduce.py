"""`hpstudy reproduce`: trains a stored trial again and checks that its dev curve comes back.

A trial's config holds its seed, which fixes the initial weights, dropout masks and batch
order; the data split has its own fixed seed. On a CPU with the same torch the rerun then
computes the same numbers up to floating-point summation order (thread count), far inside
`TOLERANCE`. On a GPU, cuDNN's non-deterministic kernels can exceed it.

A trial of several networks (folds, repeats) trains all of them again in lock-step and compares
their merged curve (what the trial stored); its test score is their `Ensemble`'s (the mean of
their predictions), as its ensemble export scores.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import optuna

from studies._errors import StudyError
from studies.kept import restore_kept
from studies.results._pick import best_trial
from studies.results._read import open_study, trial_config
from studies.results._train import check_user_code, cpu_threads, format_epoch, format_scores
from studies.storage import TrialAttrs, local_transfer
from studies.workers import folds_text
from trainer import EpochResult, Evaluation, cross_fit, ensemble_of, evaluate, fit, load_data

if TYPE_CHECKING:
    from torch.nn import Module

TOLERANCE = 1e-4  # largest |stored - new| of a dev loss or accuracy that counts as the same
COMPARED = ("dev_loss", "dev_accuracy", "dev_rmse")  # NaN where the task has no such metric


@dataclasses.dataclass(frozen=True)
class Comparison:
    """How far a new dev curve lies from the stored one."""

    epochs: int  # epochs compared: the stored ones
    max_abs_difference: float  # over COMPARED and those epochs; inf when a value is missing
    where: str  # the metric and epoch of the largest difference
    tolerance: float = TOLERANCE

    @property
    def equal(self) -> bool:
        return self.max_abs_difference <= self.tolerance


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """The outcome of `reproduce_trial`."""

    trial: int
    comparison: Comparison
    test: Evaluation | None  # None when the data set has no test split
    test_examples: int
    task: str = "classification"

    @property
    def test_loss(self) -> float | None:
        return None if self.test is None else self.test.loss

    @property
    def test_accuracy(self) -> float | None:
        return None if self.test is None else self.test.accuracy


def compare_curves(stored: Sequence[EpochResult], new: Sequence[EpochResult]) -> Comparison:
    """Compares the dev curves epoch by epoch (and point by point inside the first epoch,
    with `fractions`); NaN matches NaN (a diverged epoch).

    Raises:
        ValueError: when nothing is stored.
    """
    if not stored:
        raise ValueError("the stored curve is empty")
    worst, where = 0.0, f"{COMPARED[0]} at epoch 0"
    for i, old in enumerate(stored):
        for key in COMPARED:
            a = old.metric(key)
            b = new[i].metric(key) if i < len(new) else math.nan
            if math.isnan(a) and math.isnan(b):
                continue
            difference = abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf
            if difference > worst:
                inside = f" ({old.fraction:.3g} of it)" if old.partial else ""
                worst, where = difference, f"{key} at epoch {old.epoch}{inside}"
    return Comparison(epochs=len(stored), max_abs_difference=worst, where=where)


def reproduce_trial(
    trial: optuna.trial.FrozenTrial,
    stored: Sequence[EpochResult],
    *,
    search_path: Sequence[str] = (),
    echo: Callable[[str], None] = print,
) -> Reproduction:
    """Trains `trial`'s config again, compares the dev curve, and scores the test split.

    A pruned trial is trained for all its epochs; its stored ones are compared. The trial's
    feature statistics and model code are used again (a changed model file is reported).

    Raises:
        StudyError: for a trial without stored config or epochs.
    """
    config = trial_config(trial)
    if not stored:
        raise StudyError(f"trial {trial.number} has no stored epochs to compare with")
    attrs = TrialAttrs.of(trial)
    check_user_code(config, attrs.model, search_path, echo=echo, when=f"trial {trial.number} ran")
    data = load_data(
        config, with_test=True, standardization=attrs.standardization, search_path=search_path
    )
    threads = attrs.torch_threads
    new: list[EpochResult] = []

    def on_epoch(result: EpochResult) -> None:
        new.append(result)
        echo(format_epoch(result, config.epochs))

    # The trial's own thread count, so that the summation order and the numbers are its own.
    with cpu_threads(data.x_train.device, threads if isinstance(threads, int) else None) as where:
        echo(
            f"training trial {trial.number} again: seed {config.seed}, up to {config.epochs} "
            f"epochs on {where}; the trial stored {len(stored)}"
        )
        trained, _ = local_transfer(config)  # init_from = "study@url": its kept weights
        if config.folds * config.repeats > 1:  # every fold again, in the trial's lock-step
            crossed = cross_fit(trained, data, on_epoch=on_epoch, search_path=search_path)
            whole = all(m.best is not None for m in crossed.members)
            models: list[Module] = [ensemble_of(crossed)] if whole else []
            if attrs.folds:
                echo(f"the trial's networks: {folds_text(attrs.folds)}")
                echo(f"trained again:        {folds_text(crossed.summary(attrs.folds['metric']))}")
        else:
            result = fit(trained, data, on_epoch=on_epoch, search_path=search_path)
            models = [result.model] if result.best is not None else []
    comparison = compare_curves(stored, new)
    test = None
    examples = 0
    if data.x_test is not None and data.y_test is not None and models:
        test = evaluate(
            models[0], data.x_test, data.y_test, task=config.task, target_std=data.target_std
        )
        examples = len(data.y_test)
    return Reproduction(trial.number, comparison, test, examples, config.task)


def reproduce(
    name: str,
    *,
    url: str | None = None,
    number: int | None = None,
    echo: Callable[[str], None] = print,
) -> Reproduction:
    """Reproduces the best complete trial of study `name`, or its trial `number`, and reports.

    Raises:
        StudyError: for an unknown study or trial, or a study with no finished trial.
    """
    opened = open_study(name, url)
    trial = best_trial(opened.study, number)
    config = trial_config(trial)  # refuses an unfinished trial before anything is read
    restore_kept(opened.url, config, study=name)  # a factory or data kept with the study
    stored = opened.epochs([trial.number], partials=True)[trial.number]
    outcome = reproduce_trial(trial, stored, search_path=opened.search_path(trial), echo=echo)
    c = outcome.comparison
    verdict = "reproduced" if c.equal else "NOT reproduced"
    where = f" ({c.where})" if c.max_abs_difference > 0 else ""
    echo(
        f"dev curve ({', '.join(COMPARED)}): {c.epochs} stored epochs compared, max abs difference "
        f"{c.max_abs_difference:.3g}{where}; tolerance {c.tolerance:g}: {verdict}"
    )
    if outcome.test is None:
        echo("no test score: the data set has no test split, or no epoch had a finite loss")
    else:
        scores = format_scores(outcome.test, "test", outcome.task)
        echo(f"{scores} ({outcome.test_examples} examples)")
    return outcome
