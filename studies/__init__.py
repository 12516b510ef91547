"""The study service: every `hpstudy` command is one of these functions.

    import studies
    study = studies.run("digits-mlp", workers=2)        # a built-in, a TOML path or a dict
    print(studies.status("digits-mlp").counts)
    studies.export("digits-mlp", output="best.toml")
    fit, scores = studies.train("best.toml", test=True)

The command line parses its flags, calls one of these and prints what it returns; a user
error is a `studies.UserError` with the message the command prints.

The package is built in layers, each importing only the layers below it:

    cli -> studies (this API) -> results -> workers -> kept -> storage, analysis -> spec

`spec` reads and checks study specs; `storage` keeps studies, trials and the project's own tables
in one database; `analysis` reads learning curves; `kept` keeps a script's own model factory
and data in the study's database; `workers` trains trials in worker processes;
`results` reads a study back (export, reproduce, report); `cli` is the `hpstudy` command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from studies._api import export, load, run, spec_of, train, worker
from studies._errors import ParameterError, StudyError, UserError
from studies._lazy import lazy_exports
from studies._reading import (
    SpecRow,
    copy,
    dashboard,
    epochs,
    list_studies,
    report,
    reproduce,
    specs,
    status,
    trials,
)
from studies._tools import AblationResult, ablate, fetch, learning_curve, lr_range, plan
from studies.analysis import CellRow
from studies.results import StudyRow, StudyStatus, TrialRow, TrialRows
from studies.spec import (
    DEFAULT_STORAGE,
    PRUNERS,
    SAMPLERS,
    STORAGE_ENV,
    Ablation,
    SpecError,
    StudySpec,
    Target,
    builtin_specs,
    load_spec,
)
from studies.storage import CopyReport, StopReason, StudyAttrs, TrialAttrs, public_url, redact
from studies.workers import Counts

if TYPE_CHECKING:  # at run time these load on first use: see __getattr__ below
    from studies.results import Reproduction
    from studies.workers import Plan, WorkerSummary, worker_process

# Their modules import torch, which takes seconds; commands that only read specs and studies
# (hpstudy specs, status, trials) never need them.
_LAZY = {
    "Reproduction": "studies.results",
    "Plan": "studies.workers",
    "WorkerSummary": "studies.workers",
    "worker_process": "studies.workers",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "DEFAULT_STORAGE",
    "PRUNERS",
    "SAMPLERS",
    "STORAGE_ENV",
    "Ablation",
    "AblationResult",
    "CellRow",
    "CopyReport",
    "Counts",
    "ParameterError",
    "Plan",
    "Reproduction",
    "SpecError",
    "SpecRow",
    "StopReason",
    "StudyAttrs",
    "StudyError",
    "StudyRow",
    "StudySpec",
    "StudyStatus",
    "Target",
    "TrialAttrs",
    "TrialRow",
    "TrialRows",
    "UserError",
    "WorkerSummary",
    "ablate",
    "builtin_specs",
    "copy",
    "dashboard",
    "epochs",
    "export",
    "fetch",
    "learning_curve",
    "list_studies",
    "load",
    "load_spec",
    "lr_range",
    "plan",
    "public_url",
    "redact",
    "report",
    "reproduce",
    "run",
    "spec_of",
    "specs",
    "status",
    "train",
    "trials",
    "worker",
    "worker_process",
]
