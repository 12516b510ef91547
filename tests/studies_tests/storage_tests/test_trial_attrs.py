"""`StopReason`: the strings every earlier study stored, written and read back as members."""

from __future__ import annotations

import optuna
import pytest

from studies.storage import (
    StopReason,
    TrialAttrs,
    chain_root,
    is_retry,
    retry_history,
    retry_system_attrs,
    worker_of,
    write_attrs,
)
from trainer import Status

# What the previous version stored as a trial's stop_reason, as bare strings.
STORED_BEFORE = {
    "COMPLETED": "completed",
    "EARLY_STOPPED": "early_stopped",
    "DIVERGED": "diverged",
    "PRUNED": "pruned",
    "FAILED": "failed",
    "INTERRUPTED": "interrupted",
}


@pytest.mark.parametrize("reason", list(StopReason), ids=lambda r: r.name)
def test_each_stop_reason_is_the_string_stored_before(reason: StopReason) -> None:
    assert reason == reason.value == STORED_BEFORE[reason.name]


def test_every_string_stored_before_is_a_stop_reason() -> None:
    assert {r.name for r in StopReason} == set(STORED_BEFORE)


@pytest.mark.parametrize("status", [s for s in Status if s != Status.RUNNING], ids=str)
def test_each_way_the_trainer_ends_a_run_is_a_stop_reason(status: Status) -> None:
    assert StopReason.of(status) == status.value


def test_a_running_status_is_no_stop_reason() -> None:
    with pytest.raises(ValueError, match="running"):
        StopReason.of(Status.RUNNING)


@pytest.mark.parametrize("reason", list(StopReason), ids=lambda r: r.name)
def test_a_stop_reason_is_stored_as_its_plain_string_and_read_as_its_member(
    reason: StopReason,
) -> None:
    study = optuna.create_study()
    trial = study.ask()
    write_attrs(trial, stop_reason=reason)
    study.tell(trial, 1.0)
    stored = study.trials[0].user_attrs["stop_reason"]
    assert type(stored) is str and stored == STORED_BEFORE[reason.name]
    assert TrialAttrs.of(study.trials[0]).stop_reason is reason


def test_a_stop_reason_this_version_does_not_know_reads_as_its_string() -> None:
    trial = optuna.trial.create_trial(value=1.0, user_attrs={"stop_reason": "budget_spent"})
    assert TrialAttrs.of(trial).stop_reason == "budget_spent"


def retried_twice() -> optuna.trial.FrozenTrial:
    """Trial 7, the third of a chain that began at trial 2 (Optuna's retry attributes)."""
    return optuna.trial.create_trial(
        state=optuna.trial.TrialState.FAIL,
        system_attrs={"failed_trial": 2, "retry_history": [2, 5], "hpstudy:worker": "h:1"},
    )


def test_a_retry_names_its_chain_as_optunas_callback_does() -> None:
    trial = retried_twice()
    trial.number = 7
    assert is_retry(trial) and chain_root(trial) == 2 and worker_of(trial) == "h:1"
    assert retry_history(trial) == [2, 5, 7]
    assert retry_system_attrs(trial) == {"failed_trial": 2, "retry_history": [2, 5, 7]}


def test_a_first_trial_is_its_own_chain() -> None:
    trial = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)
    trial.number = 4
    assert not is_retry(trial) and chain_root(trial) == 4 and worker_of(trial) == ""
    assert retry_system_attrs(trial) == {"failed_trial": 4, "retry_history": [4]}


def test_a_trial_attribute_key_is_its_field_name_and_a_typo_is_refused() -> None:
    assert TrialAttrs.key("measured") == "measured"
    with pytest.raises(KeyError, match="'measure' is not a TrialAttrs field"):
        TrialAttrs.key("measure")
