"""Which trial a reading takes, and errors that name the parameter that chooses another."""

from __future__ import annotations

import optuna
import pytest

from studies import ParameterError
from studies.results import best_trial, picked_trial


@pytest.fixture
def study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    made = optuna.create_study(study_name="s")
    for value in (0.5, 0.2, 0.9):
        made.add_trial(optuna.trial.create_trial(value=value))
    return made


def test_the_best_is_the_lowest_complete_trial(study: optuna.Study) -> None:
    assert best_trial(study).number == 1
    assert best_trial(study, 2).number == 2


def test_a_study_without_a_finished_trial_says_to_choose_one_with_trial() -> None:
    empty = optuna.create_study(study_name="empty")
    with pytest.raises(ParameterError, match="no finished trial") as caught:
        best_trial(empty)
    assert caught.value.parameters == ["trial"]


def test_two_objectives_ask_for_a_trial_of_the_front() -> None:
    two = optuna.create_study(study_name="two", directions=["minimize", "minimize"])
    two.add_trial(optuna.trial.create_trial(values=[1.0, 2.0]))
    with pytest.raises(ParameterError, match="no single best trial") as caught:
        best_trial(two)
    assert caught.value.worded({"trial": "--trial"}).count("--trial N") == 1


def test_a_pick_naming_nothing_the_trials_hold_names_pick(study: optuna.Study) -> None:
    with pytest.raises(ParameterError, match="neither an objective") as caught:
        picked_trial(study, "size<=3")
    assert caught.value.parameters == ["pick"]
