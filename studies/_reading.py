"""hpstudy from Python: reading studies back (status, trials, report, reproduce, copy, ...).

These never train, except `reproduce`, and never create a database that is not there.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from studies._api import Echo
from studies._errors import user_errors
from studies.results import (
    StudyRow,
    StudyStatus,
    TrialRows,
    best_trial,
    open_study,
    serve,
    study_status,
    trial_rows,
)
from studies.results import list_studies as _list_studies
from studies.spec import builtin_specs, load_spec
from studies.storage import CopyReport, copy_study
from trainer import EpochResult

if TYPE_CHECKING:
    from studies.results import Reproduction


@dataclasses.dataclass(frozen=True)
class SpecRow:
    """One built-in spec."""

    name: str
    path: Path
    n_trials: int | None  # its trial budget
    epochs: int  # epochs per trial, at most
    metric: str  # several objectives: their names, " vs " between them
    searches: tuple[str, ...]  # the parameters its space samples
    description: str


@user_errors
def status(name: str, *, storage: str | None = None) -> StudyStatus:
    """Where study `name` stands: trials by state, budget, best value, target, best trials.

    Args:
        storage: a database URL or `env:NAME`; None: $HPSTUDY_STORAGE, else sqlite:///hpstudy.db.

    Raises:
        StudyError: for a missing database or an unknown study.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return study_status(name, storage)


@user_errors
def trials(name: str, *, storage: str | None = None, limit: int | None = None) -> TrialRows:
    """The trials of study `name`, best complete ones first, then the others by number.

    Each row holds the value, epochs trained, why training stopped, where it ran, the
    learning-curve diagnosis and the sampled parameters.

    Raises:
        StudyError: for a missing database or an unknown study.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return trial_rows(open_study(name, storage).study, limit=limit)


@user_errors
def epochs(name: str, *, trial: int | None = None, storage: str | None = None) -> list[EpochResult]:
    """The learning curve of study `name`'s best trial (or trial `trial`): one
    `trainer.EpochResult` per epoch, oldest first, with train and dev loss and metrics,
    learning rate, gradient norms and seconds (as `hpstudy report` draws them). A study with
    `[train] fractions` also has the points scored inside the first epoch, each before the
    whole epoch 0 and marked by its `fraction` (< 1; `partial` is true); `epochs_trained`
    (epoch + fraction) places every result on one axis.

    Raises:
        StudyError: for a missing database, an unknown study or trial, or no finished trial.
    """
    opened = open_study(name, storage)
    number = best_trial(opened.study, trial).number
    return opened.epochs([number], partials=True)[number]


@user_errors
def list_studies(storage: str | None = None) -> tuple[str, list[StudyRow]]:
    """The studies of a database: its URL (without a password) and one row per study.

    Raises:
        StudyError: for a missing database or one that cannot be reached.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return _list_studies(storage)


def specs() -> list[SpecRow]:
    """The built-in study specs, by name (`hpstudy run NAME` runs one)."""
    rows = []
    for name, path in sorted(builtin_specs().items()):
        spec = load_spec(str(path))
        rows.append(
            SpecRow(
                name=name,
                path=path,
                n_trials=spec.n_trials,
                epochs=spec.train.epochs,
                metric=" vs ".join(spec.directions),
                searches=tuple(spec.space.names),
                description=spec.description,
            )
        )
    return rows


@user_errors
def copy(name: str, *, source: str, target: str) -> CopyReport:
    """Copies study `name` with its trials, epochs and checkpoints to another database.

    Either URL may be `env:NAME`. The copy holds no database password.

    Raises:
        StudyError: for an unknown study, one with running trials, or a target that already
            holds a study of that name.
    """
    return copy_study(name, source, target)


@user_errors
def report(name: str, *, storage: str | None = None, output: str | Path = "report.html") -> Path:
    """Writes one self-contained HTML page about study `name` (it opens offline).

    Returns:
        The page written.
    """
    from studies.results import write_report

    return Path(write_report(name, url=storage, output=output))


@user_errors
def reproduce(
    name: str, *, storage: str | None = None, trial: int | None = None, echo: Echo = print
) -> Reproduction:
    """Trains the best trial of `name` (or trial `trial`) again from its stored config and
    seed, compares the learning curves, and scores the test split.

    Returns:
        The comparison (`.comparison.equal`) and the test scores.
    """
    from studies.results import reproduce as reproduce_study

    return reproduce_study(name, url=storage, number=trial, echo=echo)


@user_errors
def dashboard(
    storage: str | None = None, *, host: str = "127.0.0.1", port: int = 8080, echo: Echo = print
) -> None:
    """Serves optuna-dashboard on a study database, with hpstudy's curves, until interrupted.

    Args:
        host: the address to listen on; the default is this machine only (it has no login).

    Raises:
        StudyError: for a missing or unreachable database, or an address it cannot listen on.
    """
    serve(storage, host=host, port=port, echo=echo)
