"""The study service: specs, storage, the Optuna objective, workers, export and dashboard."""

from __future__ import annotations

from studies._diagnosis import LABELS, Diagnosis, Thresholds, diagnose
from studies._errors import StudyError, UserError
from studies._metrics import EpochStore
from studies._objective import Objective, Reporter, store_diagnosis, trial_seed
from studies._runner import run_study
from studies._samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from studies._spec import DEFAULT_STORAGE, SpecError, StudySpec, builtin_specs, load_spec
from studies._storage import create_engine, open_storage
from studies._study import best_trial, create_or_resume, finished_trials, load_study, stored_spec
from studies._worker import WorkerOptions, WorkerSummary, run_worker

__all__ = [
    "DEFAULT_STORAGE",
    "LABELS",
    "PRUNERS",
    "SAMPLERS",
    "Diagnosis",
    "EpochStore",
    "Objective",
    "Reporter",
    "SpecError",
    "StudyError",
    "StudySpec",
    "Thresholds",
    "UserError",
    "WorkerOptions",
    "WorkerSummary",
    "best_trial",
    "builtin_specs",
    "create_engine",
    "create_or_resume",
    "diagnose",
    "finished_trials",
    "load_spec",
    "load_study",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "run_study",
    "run_worker",
    "store_diagnosis",
    "stored_spec",
    "trial_seed",
]
