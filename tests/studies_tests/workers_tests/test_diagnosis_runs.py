"""The diagnosis on real short runs made to show each problem, and where its labels appear.

Each run is a few epochs on scikit-learn's digits (well under a second on a CPU). The
configurations are the lecture's textbook causes: sigmoid layers stacked deep with a poor
initialisation starve the first layers of gradient; a big unregularised net on a few dozen
examples memorises them; a huge learning rate blows the loss up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from studies.analysis import Diagnosis, diagnose
from studies.cli import main
from studies.spec import StudySpec
from studies.storage import create_or_resume, open_storage
from studies.workers import WorkerOptions, run_worker
from trainer import TrainConfig, fit

DIGITS = {"dataset": "digits", "dev_fraction": 0.2, "device": "cpu"}
VANISHING = {
    **DIGITS,
    "hidden": [32] * 6,
    "activation": "sigmoid",
    "init": "default",  # torch's uniform(±1/sqrt(fan_in)): small weights times sigmoid' <= 1/4
    "lr": 0.01,
    "epochs": 2,
    "train_size": 256,
}
OVERFITTING = {
    **DIGITS,
    "hidden": [256, 256],
    "optimizer": "adam",
    "lr": 0.003,
    "epochs": 15,
    "train_size": 60,  # six examples a class; no dropout, weight decay or early stopping
    "batch_size": 16,
}
DIVERGING = {**DIGITS, "hidden": [64], "lr": 100.0, "epochs": 3, "train_size": 256}


def run(values: dict[str, Any]) -> Diagnosis:
    result = fit(TrainConfig.from_dict(values))
    return diagnose([e.to_dict() for e in result.epochs], diverged=result.status == "diverged")


def test_a_deep_sigmoid_net_with_poor_init_has_vanishing_gradients() -> None:
    diagnosis = run(VANISHING)
    assert "vanishing_gradients" in diagnosis.labels
    assert diagnosis.numbers["grad_ratio_first_last_log10"] <= -2


def test_the_same_depth_with_relu_and_he_init_has_healthy_gradients() -> None:
    diagnosis = run({**VANISHING, "activation": "relu", "init": "he_normal"})
    assert "vanishing_gradients" not in diagnosis.labels


def test_a_big_unregularised_net_on_few_samples_overfits() -> None:
    diagnosis = run(OVERFITTING)
    assert "overfitting" in diagnosis.labels
    assert diagnosis.numbers["best_epoch"] < diagnosis.numbers["epochs"] - 1
    assert diagnosis.numbers["gap_final"] > diagnosis.numbers["gap_at_best"]


def test_a_huge_learning_rate_diverges() -> None:
    diagnosis = run(DIVERGING)
    assert "diverged" in diagnosis.labels
    assert "good_fit" not in diagnosis.labels


def test_the_trials_table_shows_the_labels_stored_on_each_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    spec = StudySpec.from_dict(
        {
            "study": {
                "name": "sick",
                "n_trials": 2,
                "sampler": {"name": "random"},
                "pruner": {"name": "none"},  # the diverging trial runs to its diagnosis
            },
            "train": {k: v for k, v in VANISHING.items() if k != "lr"},
            "space": {"lr": {"choices": [0.01, 100.0]}},
        },
        source="test",
    ).replace(storage=url)
    study = create_or_resume(spec, open_storage(url))
    study.enqueue_trial({"lr": 0.01})
    study.enqueue_trial({"lr": 100.0})
    run_worker("sick", url, options=WorkerOptions(flush_interval=0))
    assert main(["trials", "sick", "--storage", url]) == 0
    table = capsys.readouterr().out
    assert "vanishing_gradients" in table
    assert "diverged" in table


# "High" against the study: a plateau far below the study's best, far above chance -----------

GOOD = {**DIGITS, "hidden": [64], "optimizer": "adam", "lr": 0.01, "epochs": 12}
# three hidden units: curves that stay close together,
# well below chance (ln 10 = 2.30) but many times what the good run reaches
PLATEAU = {**DIGITS, "hidden": [3], "optimizer": "adam", "lr": 0.01, "epochs": 12}


def best_dev_loss(values: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
    result = fit(TrainConfig.from_dict(values))
    records = [e.to_dict() for e in result.epochs]
    return min(r["dev_loss"] for r in records), records


def test_a_plateau_far_above_the_studys_best_is_underfitting_against_the_study() -> None:
    reference, _ = best_dev_loss(GOOD)
    plateau, records = best_dev_loss(PLATEAU)
    assert plateau < 0.5 * 2.303  # not high against chance: the old rule says good fit
    assert "underfitting" not in diagnose(records).labels
    diagnosis = diagnose(records, reference_loss=reference)
    assert "underfitting" in diagnosis.labels
    assert diagnosis.numbers["dev_loss_vs_reference"] == pytest.approx(plateau / reference)
    assert "the study's best trial's" in diagnosis.note()


def test_the_good_run_itself_is_not_underfitting_against_the_study() -> None:
    reference, records = best_dev_loss(GOOD)
    assert "underfitting" not in diagnose(records, reference_loss=reference).labels


def test_a_single_run_says_it_is_judged_against_chance_only() -> None:
    _, records = best_dev_loss(GOOD)
    assert "against chance only" in diagnose(records).note()
