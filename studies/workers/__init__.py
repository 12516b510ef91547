"""Running a study: the objective and its reporter, workers and their start-up, the pool and
its backends, the runner, and recovery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studies._lazy import lazy_exports
from studies.workers._halving import EpochHalving, pareto_ranks, promotable
from studies.workers._lr_auto import run_range_tests, searched_space
from studies.workers._progress import Counts, count, progress_line
from studies.workers._recovery import MAX_RETRY, RequeueStale, recover_dead_workers, requeue
from studies.workers._signals import Interrupted, Stop

if TYPE_CHECKING:  # these import torch: see __getattr__
    from studies.workers._ablate import ablation_spec
    from studies.workers._objective import (
        Objective,
        Reporter,
        TrialFinisher,
        report_step,
        store_diagnosis,
        trial_seed,
    )
    from studies.workers._plan import Plan, parse_budget, plan
    from studies.workers._pool import WorkerOutcome, WorkerPool
    from studies.workers._preflight import preflight, user_code
    from studies.workers._processes import threads_per_worker, worker_command, worker_env
    from studies.workers._publish import CURVES_FILENAME, TrialPublisher, folds_text, trial_note
    from studies.workers._runner import (
        describe_reached,
        prepare_study,
        run_study,
        study_start,
        target_reached,
    )
    from studies.workers._startup import start_worker, worker_process
    from studies.workers._worker import WorkerOptions, WorkerSummary, run_worker

# The objective, the worker and the runner load on first use, so that reading a study's
# progress never waits for torch.
_LAZY = {
    "ablation_spec": "studies.workers._ablate",
    "Plan": "studies.workers._plan",
    "parse_budget": "studies.workers._plan",
    "plan": "studies.workers._plan",
    "Objective": "studies.workers._objective",
    "Reporter": "studies.workers._objective",
    "report_step": "studies.workers._objective",
    "TrialFinisher": "studies.workers._objective",
    "store_diagnosis": "studies.workers._objective",
    "trial_seed": "studies.workers._objective",
    "CURVES_FILENAME": "studies.workers._publish",
    "TrialPublisher": "studies.workers._publish",
    "trial_note": "studies.workers._publish",
    "folds_text": "studies.workers._publish",
    "preflight": "studies.workers._preflight",
    "user_code": "studies.workers._preflight",
    "prepare_study": "studies.workers._runner",
    "describe_reached": "studies.workers._runner",
    "run_study": "studies.workers._runner",
    "study_start": "studies.workers._runner",
    "target_reached": "studies.workers._runner",
    "threads_per_worker": "studies.workers._processes",
    "worker_command": "studies.workers._processes",
    "worker_env": "studies.workers._processes",
    "WorkerOutcome": "studies.workers._pool",
    "WorkerPool": "studies.workers._pool",
    "start_worker": "studies.workers._startup",
    "worker_process": "studies.workers._startup",
    "WorkerOptions": "studies.workers._worker",
    "WorkerSummary": "studies.workers._worker",
    "run_worker": "studies.workers._worker",
}


__getattr__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "CURVES_FILENAME",
    "MAX_RETRY",
    "Counts",
    "EpochHalving",
    "Interrupted",
    "Objective",
    "Plan",
    "Reporter",
    "RequeueStale",
    "Stop",
    "TrialFinisher",
    "TrialPublisher",
    "WorkerOptions",
    "WorkerOutcome",
    "WorkerPool",
    "WorkerSummary",
    "ablation_spec",
    "count",
    "describe_reached",
    "folds_text",
    "pareto_ranks",
    "parse_budget",
    "plan",
    "preflight",
    "prepare_study",
    "progress_line",
    "promotable",
    "recover_dead_workers",
    "report_step",
    "requeue",
    "run_range_tests",
    "run_study",
    "run_worker",
    "searched_space",
    "start_worker",
    "store_diagnosis",
    "study_start",
    "target_reached",
    "threads_per_worker",
    "trial_note",
    "trial_seed",
    "user_code",
    "worker_command",
    "worker_env",
    "worker_process",
]
