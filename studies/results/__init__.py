"""Reading a study back: the best trials, export, reproduce, `hpstudy train` and the report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studies._lazy import lazy_exports
from studies.results._dashboard import serve
from studies.results._files import check_output
from studies.results._pick import best_trial, front_choice, picked_trial
from studies.results._read import FINISHED, OpenStudy, open_database, open_study, trial_config
from studies.results._status import StudyRow, StudyStatus, list_studies, study_status
from studies.results._tables import TrialRow, TrialRows, trial_rows

if TYPE_CHECKING:  # see __getattr__
    from studies.results._ablation import ablation_rows
    from studies.results._export import export_best, export_trial, provenance, versions
    from studies.results._report import render_report, write_report
    from studies.results._reproduce import (
        TOLERANCE,
        Comparison,
        Reproduction,
        compare_curves,
        reproduce,
        reproduce_trial,
    )
    from studies.results._size_curve import learning_curve
    from studies.results._train import cpu_threads, format_epoch, train_file

# These load torch, plotly or matplotlib: on first use only, so `hpstudy status` starts quickly.
_LAZY = {
    "ablation_rows": "studies.results._ablation",
    "learning_curve": "studies.results._size_curve",
    "export_best": "studies.results._export",
    "export_trial": "studies.results._export",
    "provenance": "studies.results._export",
    "versions": "studies.results._export",
    "render_report": "studies.results._report",
    "write_report": "studies.results._report",
    "TOLERANCE": "studies.results._reproduce",
    "Comparison": "studies.results._reproduce",
    "Reproduction": "studies.results._reproduce",
    "compare_curves": "studies.results._reproduce",
    "reproduce": "studies.results._reproduce",
    "reproduce_trial": "studies.results._reproduce",
    "cpu_threads": "studies.results._train",
    "format_epoch": "studies.results._train",
    "train_file": "studies.results._train",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "FINISHED",
    "TOLERANCE",
    "Comparison",
    "OpenStudy",
    "Reproduction",
    "StudyRow",
    "StudyStatus",
    "TrialRow",
    "TrialRows",
    "ablation_rows",
    "best_trial",
    "check_output",
    "compare_curves",
    "cpu_threads",
    "export_best",
    "export_trial",
    "format_epoch",
    "front_choice",
    "learning_curve",
    "list_studies",
    "open_database",
    "open_study",
    "picked_trial",
    "provenance",
    "render_report",
    "reproduce",
    "reproduce_trial",
    "serve",
    "study_status",
    "train_file",
    "trial_config",
    "trial_rows",
    "versions",
    "write_report",
]
