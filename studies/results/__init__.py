"""Reading a study back: the best trials, export, reproduce, `hpstudy train` and the report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studies._lazy import lazy_exports
from studies.results._files import check_output
from studies.results._read import FINISHED, OpenStudy, open_study, trial_config
from studies.results._tables import trials_table

if TYPE_CHECKING:  # see __getattr__
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
    from studies.results._train import cpu_threads, format_epoch, parse_overrides, train_file

# These load torch, plotly or matplotlib: on first use only, so `hpstudy status` starts quickly.
_LAZY = {
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
    "parse_overrides": "studies.results._train",
    "train_file": "studies.results._train",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "FINISHED",
    "TOLERANCE",
    "Comparison",
    "OpenStudy",
    "Reproduction",
    "check_output",
    "compare_curves",
    "cpu_threads",
    "export_best",
    "export_trial",
    "format_epoch",
    "open_study",
    "parse_overrides",
    "provenance",
    "render_report",
    "reproduce",
    "reproduce_trial",
    "train_file",
    "trial_config",
    "trials_table",
    "versions",
    "write_report",
]
