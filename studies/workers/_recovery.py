"""Re-queueing trials that did not finish: their worker died, or was stopped.

`requeue` is Optuna's `RetryHeartbeatStaleTrialCallback` with one difference: the attributes
that describe how the failed run ended are not inherited, so a retry that waits or runs does
not look finished. Retries keep the params and carry the `failed_trial` / `retry_history`
system attributes like Optuna's; `failed_trial` names their chain, its seed and its checkpoint.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from studies.storage import (
    WORKER_DIED,
    TrialAttrs,
    retry_history,
    retry_system_attrs,
    user_attrs_without_outcome,
    worker_of,
)

MAX_RETRY = 3  # times a dead worker's trial is re-queued


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def requeue(study: optuna.Study, trial: FrozenTrial, *, max_retry: int | None) -> bool:
    """Adds a WAITING copy of the failed `trial`; False when it was retried `max_retry` times."""
    if max_retry is not None and len(retry_history(trial)) > max_retry:
        return False
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=user_attrs_without_outcome(trial.user_attrs),
            system_attrs=retry_system_attrs(trial),
        )
    )
    return True


class RequeueStale:
    """The heartbeat-stale callback of a worker's storage: re-queue, or give the slot back."""

    def __init__(self, max_retry: int | None) -> None:
        self.max_retry = max_retry
        self.on_dropped: Callable[[FrozenTrial], None] | None = None  # set by the worker

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not requeue(study, trial, max_retry=self.max_retry) and self.on_dropped:
            self.on_dropped(trial)


def recover_dead_workers(
    study: optuna.Study, storage: optuna.storages.BaseStorage, *, max_retry: int | None
) -> list[int]:
    """Fails and re-queues the RUNNING trials of workers on this machine that are gone.

    Heartbeats find such trials too, but only after the grace period and only while some
    worker asks for trials; `hpstudy run` calls this when it starts and after it stopped its
    workers, so a re-run picks them up at once.

    Returns:
        The numbers of the trials failed.
    """
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = worker_of(trial)
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, TrialAttrs.key("fail_reason"), WORKER_DIED)
            if not storage.set_trial_state_values(trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # it finished, or someone else failed it, meanwhile
        requeue(study, storage.get_trial(trial_id), max_retry=max_retry)
        failed.append(trial.number)
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
