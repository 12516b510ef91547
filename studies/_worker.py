"""One study worker: claims a slot of the budget, runs a trial, repeats.

`hpstudy run --workers N` starts N of these as processes; `hpstudy worker NAME --storage URL`
starts one on any machine that reaches the database.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Sequence

import optuna

from studies._budget import Budget
from studies._errors import StudyError
from studies._metrics import EpochStore
from studies._objective import Objective, TrialFinisher, store_diagnosis
from studies._samplers import make_pruner, make_sampler
from studies._storage import GRACE_PERIOD, HEARTBEAT_INTERVAL, create_engine, open_storage
from studies._study import load_study, stored_spec

_log = logging.getLogger("hpstudy.worker")

TrialState = optuna.trial.TrialState
MAX_CONSECUTIVE_FAILURES = 5  # a worker whose trials keep failing stops: it is a bug, not bad luck
IDLE_POLL = 2.0  # seconds between looks at a study whose budget is claimed but not settled


@dataclasses.dataclass
class WorkerOptions:
    """How a worker runs; the study's own settings come from its stored spec."""

    index: int = 0  # distinguishes the workers' sampler seeds
    timeout: float | None = None  # seconds after which no new trial starts
    heartbeat_interval: int = HEARTBEAT_INTERVAL
    grace_period: int = GRACE_PERIOD
    finishers: Sequence[TrialFinisher] = ()  # extra per-trial hooks (pictures, notes)


@dataclasses.dataclass
class WorkerSummary:
    trials: int = 0  # trials this worker ran
    failed: int = 0  # of which failed by an exception


def worker_seed(study_seed: int, index: int) -> int:
    """Each worker's sampler gets its own stream, repeatable for a given study seed."""
    return study_seed + 7919 * index


def run_worker(
    name: str,
    url: str,
    *,
    options: WorkerOptions | None = None,
    stop: threading.Event | None = None,
) -> WorkerSummary:
    """Runs trials of study `name` until its budget is reached, the timeout passes, or `stop`.

    Raises:
        StudyError: for an unknown study, an unreachable storage, or a worker whose trials
            fail again and again.
    """
    options = options or WorkerOptions()
    stop = stop or threading.Event()
    storage = open_storage(
        url, heartbeat_interval=options.heartbeat_interval, grace_period=options.grace_period
    )
    spec = stored_spec(storage, name, url=url)
    study = load_study(
        storage,
        name,
        url=url,
        sampler=make_sampler(
            spec.sampler, seed=worker_seed(spec.seed, options.index), space=spec.space
        ),
        pruner=make_pruner(spec.pruner),
    )
    engine = create_engine(url)
    budget = Budget(engine, storage.get_study_id_from_name(name))
    budget.ensure(study)
    objective = Objective(
        spec,
        EpochStore(engine),
        storage,
        finishers=[store_diagnosis, *options.finishers],
    )
    deadline = None if options.timeout is None else time.monotonic() + options.timeout
    summary = WorkerSummary()
    failures_in_a_row = 0

    def settle(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Gives back the slots that the finished trial does not keep."""
        nonlocal failures_in_a_row
        if "failed_trial" in trial.system_attrs:
            budget.release()  # a retry carries its original's slot; ours was extra
        if trial.state == TrialState.FAIL:
            budget.release()
            failures_in_a_row += 1
            summary.failed += 1
        else:
            failures_in_a_row = 0

    try:
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if spec.n_trials is not None and not budget.claim(spec.n_trials):
                if not _unsettled(study):
                    break
                # Others still run trials; one may die and be re-queued for us to take.
                optuna.storages.fail_stale_trials(study)
                stop.wait(IDLE_POLL)
                continue
            study.optimize(objective, n_trials=1, catch=(Exception,), callbacks=[settle])
            summary.trials += 1
            if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                raise StudyError(
                    f"{failures_in_a_row} trials in a row failed; the worker stops. The "
                    f"reasons are in the trials' fail_reason (hpstudy trials {name})."
                )
    finally:
        engine.dispose()
    return summary


def _unsettled(study: optuna.Study) -> bool:
    """True while some trial runs or waits to be retried."""
    states = (TrialState.RUNNING, TrialState.WAITING)
    return bool(study.get_trials(deepcopy=False, states=states))
