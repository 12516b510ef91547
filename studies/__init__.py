"""The study service: specs, storage, the Optuna objective, workers, export and dashboard."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from studies._diagnosis import LABELS, Diagnosis, Thresholds, diagnose
from studies._errors import StudyError, UserError
from studies._metrics import EpochStore
from studies._objective import Objective, Reporter, store_diagnosis, trial_seed
from studies._samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from studies._spec import DEFAULT_STORAGE, SpecError, StudySpec, builtin_specs, load_spec
from studies._storage import create_engine, open_storage
from studies._study import best_trial, create_or_resume, finished_trials, load_study, stored_spec

if TYPE_CHECKING:  # at run time these load on first use: see __getattr__ below
    from studies._artifacts import DatabaseArtifactStore
    from studies._copy import copy_study
    from studies._curves import plot_learning_curves
    from studies._dashboard import TrialPublisher
    from studies._export import export_best, export_trial
    from studies._report import write_report
    from studies._reproduce import reproduce
    from studies._runner import run_study
    from studies._worker import WorkerOptions, WorkerSummary, run_worker

# The runner and the worker import torch, which takes seconds; commands that only read specs
# and studies (hpstudy specs, status, trials) never need them.
_LAZY = {
    "DatabaseArtifactStore": "studies._artifacts",
    "TrialPublisher": "studies._dashboard",
    "copy_study": "studies._copy",
    "export_best": "studies._export",
    "export_trial": "studies._export",
    "plot_learning_curves": "studies._curves",
    "reproduce": "studies._reproduce",
    "write_report": "studies._report",
    "run_study": "studies._runner",
    "WorkerOptions": "studies._worker",
    "WorkerSummary": "studies._worker",
    "run_worker": "studies._worker",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = globals()[name] = getattr(importlib.import_module(_LAZY[name]), name)
        return value
    raise AttributeError(f"module 'studies' has no attribute {name!r}")


__all__ = [
    "DEFAULT_STORAGE",
    "LABELS",
    "PRUNERS",
    "SAMPLERS",
    "DatabaseArtifactStore",
    "Diagnosis",
    "EpochStore",
    "Objective",
    "Reporter",
    "SpecError",
    "StudyError",
    "StudySpec",
    "Thresholds",
    "TrialPublisher",
    "UserError",
    "WorkerOptions",
    "WorkerSummary",
    "best_trial",
    "builtin_specs",
    "copy_study",
    "create_engine",
    "create_or_resume",
    "diagnose",
    "export_best",
    "export_trial",
    "finished_trials",
    "load_spec",
    "load_study",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "plot_learning_curves",
    "reproduce",
    "run_study",
    "run_worker",
    "store_diagnosis",
    "stored_spec",
    "trial_seed",
    "write_report",
]
