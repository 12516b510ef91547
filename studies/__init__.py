"""The study service: `run`, `load`, `export` and `train` from Python, as `hpstudy` does them.

    import studies
    study = studies.run("digits-mlp", workers=2)        # a built-in, a TOML path or a dict
    studies.export("digits-mlp", output="best.toml")

The package is built in layers, each importing only the layers below it:

    cli -> results -> workers -> storage, analysis -> spec

`spec` reads and checks study specs; `storage` keeps studies, trials and the project's own tables
in one database; `analysis` reads learning curves; `workers` trains trials in worker processes;
`results` reads a study back (export, reproduce, report); `cli` is the `hpstudy` command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studies._api import export, load, run, spec_of, train
from studies._errors import StudyError, UserError
from studies._lazy import lazy_exports
from studies.analysis import LABELS, Diagnosis, Thresholds, diagnose
from studies.spec import (
    DEFAULT_STORAGE,
    PRUNERS,
    SAMPLERS,
    STORAGE_ENV,
    SpecError,
    StudySpec,
    builtin_specs,
    load_spec,
    make_pruner,
    make_sampler,
)
from studies.storage import (
    EpochStore,
    TrialAttrs,
    best_trial,
    create_engine,
    create_or_resume,
    finished_trials,
    load_study,
    open_storage,
    public_url,
    resolve_storage,
    stored_spec,
)

if TYPE_CHECKING:  # at run time these load on first use: see __getattr__ below
    from studies.results import export_best, export_trial, reproduce, write_report
    from studies.workers import (
        Objective,
        Reporter,
        WorkerOptions,
        WorkerSummary,
        run_study,
        run_worker,
        store_diagnosis,
        trial_seed,
    )

# The runner and the worker import torch, which takes seconds; commands that only read specs
# and studies (hpstudy specs, status, trials) never need them.
_LAZY = {
    "export_best": "studies.results",
    "export_trial": "studies.results",
    "reproduce": "studies.results",
    "write_report": "studies.results",
    "Objective": "studies.workers",
    "Reporter": "studies.workers",
    "WorkerOptions": "studies.workers",
    "WorkerSummary": "studies.workers",
    "run_study": "studies.workers",
    "run_worker": "studies.workers",
    "store_diagnosis": "studies.workers",
    "trial_seed": "studies.workers",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "DEFAULT_STORAGE",
    "LABELS",
    "PRUNERS",
    "SAMPLERS",
    "STORAGE_ENV",
    "Diagnosis",
    "EpochStore",
    "Objective",
    "Reporter",
    "SpecError",
    "StudyError",
    "StudySpec",
    "Thresholds",
    "TrialAttrs",
    "UserError",
    "WorkerOptions",
    "WorkerSummary",
    "best_trial",
    "builtin_specs",
    "create_engine",
    "create_or_resume",
    "diagnose",
    "export",
    "export_best",
    "export_trial",
    "finished_trials",
    "load",
    "load_spec",
    "load_study",
    "make_pruner",
    "make_sampler",
    "open_storage",
    "public_url",
    "reproduce",
    "resolve_storage",
    "run",
    "run_study",
    "run_worker",
    "spec_of",
    "store_diagnosis",
    "stored_spec",
    "train",
    "trial_seed",
    "write_report",
]
