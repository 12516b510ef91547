"""The objective and its reporter, read back from a real study on digits (see conftest.py)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import optuna
import pytest

from studies.storage import EpochStore, create_engine
from studies.workers import store_diagnosis, trial_seed
from trainer import EpochResult, TrainConfig

if TYPE_CHECKING:
    from conftest import FinishedStudy

TrialState = optuna.trial.TrialState


def epoch_rows(finished: FinishedStudy) -> dict[int, list[EpochResult]]:
    """The stored epoch rows of every trial, by trial number."""
    storage = optuna.storages.RDBStorage(finished.url)
    study_id = storage.get_study_id_from_name(finished.spec.name)
    engine = create_engine(finished.url)
    try:
        store = EpochStore(engine)
        return {
            t.number: store.epochs(
                storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            )
            for t in finished.study.trials
        }
    finally:
        engine.dispose()


def test_the_hopeless_learning_rate_is_pruned_early(digits_study: FinishedStudy) -> None:
    trial = digits_study.study.trials[digits_study.hopeless]
    assert trial.params["lr"] == pytest.approx(1e-6)
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["stop_reason"] == "pruned"
    assert trial.user_attrs["epochs_run"] < digits_study.epochs


def test_the_trials_that_learn_complete(digits_study: FinishedStudy) -> None:
    states = [t.state for t in digits_study.study.trials[: digits_study.hopeless]]
    assert states == [TrialState.COMPLETE] * digits_study.hopeless
    assert all(t.user_attrs["stop_reason"] == "completed" for t in digits_study.study.trials[:3])


def test_a_diverged_trial_ends_pruned_with_its_reason(digits_study: FinishedStudy) -> None:
    trial = digits_study.study.trials[digits_study.diverging]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["stop_reason"] == "diverged"
    assert "diverged" in trial.user_attrs["diagnosis"]
    assert all(math.isfinite(v) for v in trial.intermediate_values.values())


def test_epoch_rows_match_the_intermediate_values(digits_study: FinishedStudy) -> None:
    rows = epoch_rows(digits_study)
    for trial in digits_study.study.trials:
        finite = {  # reported at the epochs trained: epoch + 1
            r.epoch + 1: r.dev_loss for r in rows[trial.number] if math.isfinite(r.dev_loss)
        }
        assert finite == pytest.approx(trial.intermediate_values), trial.number
        assert len(rows[trial.number]) == trial.user_attrs["epochs_run"]


def test_a_diverged_epoch_is_stored_without_its_numbers(digits_study: FinishedStudy) -> None:
    last = epoch_rows(digits_study)[digits_study.diverging][-1]
    assert math.isnan(last.dev_loss) and math.isnan(last.train_loss)


def test_the_value_is_the_best_epochs_dev_loss(digits_study: FinishedStudy) -> None:
    rows = epoch_rows(digits_study)
    for trial in digits_study.study.get_trials(states=(TrialState.COMPLETE,)):
        best = min(rows[trial.number], key=lambda r: r.dev_loss)
        assert trial.value == pytest.approx(best.dev_loss)
        assert trial.user_attrs["best_epoch"] == best.epoch


@pytest.mark.parametrize("attr", ["seed", "stop_reason", "best_epoch", "epochs_run", "diagnosis"])
def test_every_finished_trial_has_its_user_attribute(
    digits_study: FinishedStudy, attr: str
) -> None:
    assert all(attr in t.user_attrs for t in digits_study.study.trials)


def test_each_trial_trains_with_its_own_repeatable_seed(digits_study: FinishedStudy) -> None:
    for trial in digits_study.study.trials:
        seed = trial_seed(digits_study.spec.seed, trial.number)
        assert trial.user_attrs["seed"] == seed
        assert trial.user_attrs["config"]["seed"] == seed


def test_the_stored_config_is_the_base_with_the_sampled_values(
    digits_study: FinishedStudy,
) -> None:
    trial = digits_study.study.trials[0]
    config = trial.user_attrs["config"]
    assert config["lr"] == trial.params["lr"] and config["optimizer"] == "adam"
    assert config["hidden"] == [32] and config["epochs"] == digits_study.epochs


@pytest.mark.parametrize(("classes", "underfits"), [(2, True), (10, False)])
def test_the_diagnosis_reads_chance_level_from_the_data_sets_classes(
    classes: int, underfits: bool
) -> None:
    # A loss of 0.45 is most of ln 2 = 0.69 (a two-class model near chance), but a small part
    # of ln 10 = 2.30.
    trial = optuna.trial.FixedTrial({})
    trial.set_user_attr("data", {"classes": classes})
    epochs = [
        EpochResult(e, 0.45, 0.8, 0.45, 0.8, 0.1, {"fc1.weight": 1.0}, {"fc1.weight": 1.0}, 1.0)
        for e in range(3)
    ]
    store_diagnosis(trial, TrainConfig(dataset="digits"), epochs, "completed")
    assert ("underfitting" in trial.user_attrs["diagnosis"]) is underfits
