"""An ablation study read back: its table of cells, kept with the study."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import optuna

from studies._errors import StudyError
from studies.analysis import CellRow, ablation_table
from studies.spec import REPEAT, AblationTable
from studies.storage import TrialAttrs, write_study_attrs


def ablation_rows(study: optuna.Study, factors: Sequence[str]) -> list[CellRow]:
    """The ablation's table from its complete trials, best cell first.

    Raises:
        StudyError: when no trial of the ablation has completed.
    """
    runs: dict[tuple[Any, ...], dict[int, float]] = {}
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for trial in study.get_trials(deepcopy=False, states=states):
        config = TrialAttrs.of(trial).config or {}
        cell = tuple(config.get(f, trial.params.get(f)) for f in factors)
        cell = tuple(tuple(v) if isinstance(v, list) else v for v in cell)
        # A pruned run of an ablation (which prunes nothing) is one that diverged.
        value = trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None
        runs.setdefault(cell, {})[int(trial.params[REPEAT])] = (
            math.nan if value is None else float(value)
        )
    if not any(math.isfinite(v) for values in runs.values() for v in values.values()):
        raise StudyError(f"ablation '{study.study_name}' has no complete run yet")
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    rows = ablation_table(runs, maximize=maximize)
    write_study_attrs(study, ablation=AblationTable(tuple(factors), tuple(rows)))
    return rows
