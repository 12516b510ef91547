"""`hpstudy reproduce`: trains a stored trial again and checks that its dev curve comes back.

A trial's config holds its seed, which fixes the initial weights, dropout masks and batch
order; the data split has its own fixed seed. On a CPU with the same torch the rerun then
computes the same numbers up to floating-point summation order (thread count), far inside
`TOLERANCE`. On a GPU, cuDNN's non-deterministic kernels can exceed it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna

from studies._errors import StudyError
from studies.results._read import open_study, trial_config
from studies.results._train import cpu_threads, format_epoch
from studies.storage import TrialAttrs, best_trial
from trainer import EpochResult, evaluate, fit, load_data

TOLERANCE = 1e-4  # largest |stored - new| of a dev loss or accuracy that counts as the same
COMPARED = ("dev_loss", "dev_accuracy")


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
    test_loss: float | None  # None when the data set has no test split
    test_accuracy: float | None
    test_examples: int


def compare_curves(
    stored: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
) -> Comparison:
    """Compares the dev curves epoch by epoch; NaN matches NaN (a diverged epoch).

    Raises:
        ValueError: when nothing is stored.
    """
    if not stored:
        raise ValueError("the stored curve is empty")
    worst, where = 0.0, f"{COMPARED[0]} at epoch 0"
    for i, old in enumerate(stored):
        for key in COMPARED:
            a = float(old[key])
            b = float(new[i][key]) if i < len(new) else math.nan
            if math.isnan(a) and math.isnan(b):
                continue
            difference = abs(a - b) if math.isfinite(a) and math.isfinite(b) else math.inf
            if difference > worst:
                worst, where = difference, f"{key} at epoch {i}"
    return Comparison(epochs=len(stored), max_abs_difference=worst, where=where)


def reproduce_trial(
    trial: optuna.trial.FrozenTrial,
    stored: Sequence[Mapping[str, Any]],
    *,
    echo: Callable[[str], None] = print,
) -> Reproduction:
    """Trains `trial`'s config again, compares the dev curve, and scores the test split.

    A pruned trial is trained for all its epochs; its stored ones are compared.

    Raises:
        StudyError: for a trial without stored config or epochs.
    """
    config = trial_config(trial)
    if not stored:
        raise StudyError(f"trial {trial.number} has no stored epochs to compare with")
    data = load_data(config, with_test=True)
    threads = TrialAttrs.of(trial).torch_threads
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
        result = fit(config, data, on_epoch=on_epoch)
    comparison = compare_curves(stored, [e.to_dict() for e in new])
    test_loss = test_accuracy = None
    examples = 0
    if data.x_test is not None and data.y_test is not None and result.best is not None:
        test_loss, test_accuracy = evaluate(result.model, data.x_test, data.y_test)
        examples = len(data.y_test)
    return Reproduction(trial.number, comparison, test_loss, test_accuracy, examples)


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
    trial_config(trial)  # refuses an unfinished trial before anything is read
    stored = opened.epochs([trial.number])[trial.number]
    outcome = reproduce_trial(trial, stored, echo=echo)
    c = outcome.comparison
    verdict = "reproduced" if c.equal else "NOT reproduced"
    where = f" ({c.where})" if c.max_abs_difference > 0 else ""
    echo(
        f"dev curve (loss and accuracy): {c.epochs} stored epochs compared, max abs difference "
        f"{c.max_abs_difference:.3g}{where}; tolerance {c.tolerance:g}: {verdict}"
    )
    if outcome.test_loss is None or outcome.test_accuracy is None:
        echo("no test score: the data set has no test split, or no epoch had a finite loss")
    else:
        echo(
            f"test loss {outcome.test_loss:.4f}, test accuracy "
            f"{100 * outcome.test_accuracy:.2f}% ({outcome.test_examples} examples)"
        )
    return outcome
