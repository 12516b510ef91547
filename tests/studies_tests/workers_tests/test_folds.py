"""A k-fold study on digits: each trial's networks, its merged curve and pruning, the exports
(the ensemble of the fold networks, kept and trained again; one network retrained on the whole
training split), reproduce, and what plan says."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

import studies
from studies import ParameterError
from studies.cli import main
from studies.results import reproduce
from studies.spec import SpecError, StudySpec
from studies.storage import EpochStore, TrialAttrs, create_engine, create_or_resume, open_storage
from studies.workers import WorkerOptions, run_worker, trial_note
from studies.workers._plan import Plan
from trainer import EpochResult, TrainConfig, load_data, read_config_file

NAME = "folds"
FOLDS, EPOCHS = 3, 4
GOOD = [{"lr": 0.05, "optimizer": "adam"}, {"lr": 0.02, "optimizer": "adam"}]
HOPELESS = {"lr": 1e-6, "optimizer": "sgd"}  # learns nothing: the median pruner stops it
TrialState = optuna.trial.TrialState


def spec_dict(**train: Any) -> dict[str, Any]:
    return {
        "study": {
            "name": NAME,
            "n_trials": 3,
            "seed": 5,
            "sampler": {"name": "random"},
            "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
        },
        "train": {
            "dataset": "digits",
            "hidden": [16],
            "epochs": EPOCHS,
            "device": "cpu",
            "dropout": 0.1,
            "folds": FOLDS,
            **train,
        },
        "space": {
            "lr": {"low": 1e-6, "high": 0.1, "log": True},
            "optimizer": {"choices": ["sgd", "adam"]},
        },
    }


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Three enqueued trials of a 3-fold study, run by an hpstudy worker on one thread."""
    import torch

    url = f"sqlite:///{tmp_path_factory.mktemp('folds') / 'study.db'}"
    spec = StudySpec.from_dict(spec_dict(), source="test").replace(storage=url)
    study = create_or_resume(spec, open_storage(url))
    for params in [*GOOD, HOPELESS]:
        study.enqueue_trial(params)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_worker(NAME, url, options=WorkerOptions(flush_interval=0))
    finally:
        torch.set_num_threads(threads)
    return url


@pytest.fixture(scope="module")
def study(study_url: str) -> optuna.Study:
    return optuna.load_study(study_name=NAME, storage=study_url)


def rows(url: str, study: optuna.Study, number: int) -> list[EpochResult]:
    storage = optuna.storages.RDBStorage(url)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    engine = create_engine(url)
    try:
        return EpochStore(engine).epochs(trial_id)
    finally:
        engine.dispose()


def test_a_trials_value_is_the_mean_of_its_folds(study: optuna.Study) -> None:
    for trial in study.trials[:2]:
        folds = TrialAttrs.of(trial).folds
        assert trial.state == TrialState.COMPLETE and folds is not None
        assert folds["folds"] == FOLDS and len(folds["values"]) == FOLDS
        assert trial.value == pytest.approx(statistics.fmean(folds["values"]))
        assert folds["std"] == pytest.approx(statistics.pstdev(folds["values"]))


def test_one_epoch_row_and_one_report_per_lock_step_round(
    study_url: str, study: optuna.Study
) -> None:
    for trial in study.trials:
        stored = rows(study_url, study, trial.number)
        assert {r.epoch + 1: r.dev_loss for r in stored} == pytest.approx(trial.intermediate_values)


def test_the_hopeless_trial_is_pruned_before_its_last_epoch(study: optuna.Study) -> None:
    trial = study.trials[2]
    assert trial.state == TrialState.PRUNED
    assert trial.user_attrs["epochs_run"] < EPOCHS


def test_the_trials_table_shows_each_folds_value(
    study_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["trials", NAME, "--storage", study_url]) == 0
    out = capsys.readouterr().out
    assert "folds" in out and "±" in out


def test_the_dashboard_note_names_the_folds(study: optuna.Study) -> None:
    from studies.analysis import Diagnosis

    folds = TrialAttrs.of(study.trials[0]).folds
    note = trial_note(
        0, [], "completed", None, Diagnosis.from_dict({"labels": [], "numbers": {}}), folds=folds
    )
    assert f"{FOLDS} fold(s) x 1 seed: dev_loss" in note


def test_the_retrained_export_trains_one_network_for_the_scaled_median_best_epoch(
    study_url: str, study: optuna.Study, tmp_path: Path
) -> None:
    path = studies.export(
        NAME, storage=study_url, output=tmp_path / "best.toml", trial=0, refit="retrain"
    )
    config = TrainConfig.load(path)
    folds = TrialAttrs.of(study.trials[0]).folds
    assert folds is not None
    best = sorted(e + 1 for e in folds["best_epochs"])
    assert (config.folds, config.dev_fraction, config.patience) == (1, 0.0, 0)
    # the median, times the whole split's rows over a fold's training rows (about 3/2)
    assert config.epochs == math.ceil(best[len(best) // 2] * 1.5 - 0.01)
    about = read_config_file(path)["provenance"]["folds"]
    assert about["values"] == folds["values"] and about["export"] == "retrain"
    assert "curves" not in about  # they stay in the study


def test_the_default_export_keeps_the_folds_and_scores_their_ensemble(
    study_url: str, study: optuna.Study, tmp_path: Path
) -> None:
    path = studies.export(NAME, storage=study_url, output=tmp_path / "best.toml", trial=0)
    config = TrainConfig.load(path)
    assert config.folds == FOLDS and config.to_dict() == study.trials[0].user_attrs["config"]
    assert read_config_file(path)["provenance"]["folds"]["export"] == "ensemble"
    lines: list[str] = []
    result, scores = studies.train(path, test=True, echo=lines.append)
    assert result is not None and len(result.epochs) == EPOCHS
    assert f"training {FOLDS} networks" in lines[0] and "the ensemble of 3 networks" in lines[-1]
    assert scores["test_accuracy"] > 0.5


def test_the_kept_ensemble_scores_as_the_ensemble_trained_again(
    study_url: str, tmp_path: Path
) -> None:
    path = studies.export(
        NAME, storage=study_url, output=tmp_path / "e.toml", trial=0, weights=tmp_path / "e.pt"
    )
    _, trained = studies.train(path, test=True, echo=lambda _line: None)
    _, kept = studies.train(path, test=True, weights=tmp_path / "e.pt", echo=lambda _line: None)
    assert kept == pytest.approx(trained, abs=1e-6)


def test_a_retrained_export_refuses_weights_naming_refit(study_url: str, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"refit='ensemble' \(--refit ensemble\)"):
        studies.export(
            NAME,
            storage=study_url,
            output=tmp_path / "r.toml",
            trial=0,
            refit="retrain",
            weights=tmp_path / "r.pt",
        )


def test_an_unknown_refit_is_refused_naming_it(study_url: str, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"refit must be one of 'ensemble', 'retrain'"):
        studies.export(NAME, storage=study_url, output=tmp_path / "x.toml", refit="average")


def test_the_cli_refit_flag_exports_a_retrained_network(
    study_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.toml"
    args = ["export", NAME, "--storage", study_url, "--trial", "0", "-o", str(out)]
    assert main([*args, "--refit", "retrain"]) == 0
    assert TrainConfig.load(out).folds == 1
    with pytest.raises(SystemExit):
        main([*args, "--refit", "average"])
    assert "--refit: invalid choice: 'average'" in capsys.readouterr().err


def test_a_pruned_fold_trial_retrains_for_its_mean_curves_best_epoch(
    study_url: str, study: optuna.Study, tmp_path: Path
) -> None:
    path = studies.export(
        NAME, storage=study_url, output=tmp_path / "pruned.toml", trial=2, refit="retrain"
    )
    config = TrainConfig.load(path)
    assert config.folds == 1 and config.epochs == study.trials[2].user_attrs["best_epoch"] + 1


def test_train_test_of_a_retrained_export_fits_the_whole_training_split(
    study_url: str, study: optuna.Study, tmp_path: Path
) -> None:
    path = studies.export(
        NAME, storage=study_url, output=tmp_path / "best.toml", trial=0, refit="retrain"
    )
    lines: list[str] = []
    result, scores = studies.train(path, test=True, echo=lines.append)
    pool = load_data(TrainConfig(dataset="digits", device="cpu", folds=FOLDS))
    assert result is not None and result.status == "completed"
    assert f"{len(pool.y_train)} train / 0 dev examples" in lines[0]
    assert scores["test_accuracy"] > 0.5


def test_the_trials_stored_curves_hold_each_folds_dev_loss(study: optuna.Study) -> None:
    folds = TrialAttrs.of(study.trials[0]).folds
    assert folds is not None and len(folds["curves"]) == FOLDS
    merged = study.trials[0].intermediate_values
    for epoch in range(EPOCHS):
        mean = statistics.fmean(c[epoch] for c in folds["curves"])
        assert mean == pytest.approx(merged[epoch + 1], abs=1e-5)


def test_weights_without_a_dev_split_are_scored_on_the_test_split_only(tmp_path: Path) -> None:
    import torch

    config = TrainConfig(dataset="digits", hidden=[16], epochs=1, dev_fraction=0.0, device="cpu")
    config.save(tmp_path / "all.toml")
    result, _ = studies.train(tmp_path / "all.toml", echo=lambda _line: None)
    assert result is not None
    torch.save(result.model.state_dict(), tmp_path / "w.pt")
    lines: list[str] = []
    _, scores = studies.train(
        tmp_path / "all.toml", test=True, weights=tmp_path / "w.pt", echo=lines.append
    )
    assert "no dev split to score" in lines[0] and "test_accuracy" in scores


def test_reproduce_trains_the_folds_again(study_url: str) -> None:
    lines: list[str] = []
    outcome = reproduce(NAME, url=study_url, number=0, echo=lines.append)
    assert outcome.comparison.equal
    assert any(line.startswith("trained again:") for line in lines)


def test_an_interrupted_fold_trial_resumes_every_fold_from_the_study_database(
    tmp_path: Path,
) -> None:
    import sqlalchemy as sa

    from studies.storage import CheckpointTable, TrialCheckpoint
    from trainer import cross_fit

    config = TrainConfig(dataset="digits", hidden=[16], epochs=3, folds=FOLDS, device="cpu")
    data = load_data(config)
    whole = cross_fit(config, data)
    table = CheckpointTable(sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}"), study_id=1)

    def interrupt(e: Any) -> None:
        if e.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cross_fit(config, data, on_epoch=interrupt, checkpoint=TrialCheckpoint(table, root=0))
    resumed_from: list[int] = []
    store = TrialCheckpoint(table, root=0, on_resume=resumed_from.append)
    again = cross_fit(config, data, checkpoint=store)
    assert resumed_from == [2]  # both rounds were saved, for every fold
    assert again.values("dev_loss") == whole.values("dev_loss")


def test_a_study_needs_a_dev_split_or_folds() -> None:
    with pytest.raises(SpecError, match=r"train\.dev_fraction: 0 leaves no dev split"):
        StudySpec.from_dict(spec_dict(folds=1, dev_fraction=0.0), source="test")


def test_folds_cannot_be_searched() -> None:
    spec = spec_dict()
    spec["space"]["folds"] = {"choices": [3, 5]}
    with pytest.raises(SpecError, match=r"space\.folds: cannot be searched"):
        StudySpec.from_dict(spec, source="test")


def test_more_folds_than_a_class_has_rows_fails_before_the_study_starts(tmp_path: Path) -> None:
    import numpy as np

    from studies.workers import preflight

    x = np.random.default_rng(0).normal(size=(23, 4)).astype(np.float32)
    np.savez(tmp_path / "small.npz", x_train=x, y_train=np.array([0] * 20 + [1] * 3))
    spec = spec_dict(dataset=str(tmp_path / "small.npz"), folds=5)
    with pytest.raises(SpecError, match=r"train\.folds: folds = 5 is more than class 1"):
        preflight(StudySpec.from_dict(spec, source="test"))


def test_plan_says_folds_and_repeats_multiply_the_cost() -> None:
    spec = StudySpec.from_dict(spec_dict(repeats=2), source="test")
    plan = Plan(
        epoch_seconds=6.0, threads=1, budget=600.0, workers=1, epochs=100, max_epochs=EPOCHS,
        epochs_per_trial=EPOCHS, pruner="none", networks=FOLDS * 2,
    )  # fmt: skip
    assert any("folds x repeats = 3 x 2 networks, 6 times the cost" in x for x in plan.lines(spec))


def test_plan_probes_one_network_and_counts_every_fold() -> None:
    from studies.workers._plan import plan

    spec = StudySpec.from_dict(spec_dict(), source="test")
    planned = plan(spec, budget=600.0, workers=1)
    assert planned.networks == FOLDS and planned.epoch_seconds > 0


@pytest.mark.slow
def test_a_five_fold_study_with_two_workers_records_prunes_exports_and_retrains(
    tmp_path: Path,
) -> None:
    spec = spec_dict(folds=5)
    spec["study"].update(n_trials=6, storage=f"sqlite:///{tmp_path / 's.db'}")
    spec["study"]["pruner"] = {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0}
    spec["space"]["lr"] = {"low": 1e-7, "high": 0.1, "log": True}  # some trials learn nothing
    path = tmp_path / "five.toml"
    import tomli_w

    path.write_text(tomli_w.dumps(spec))
    env = {"HPSTUDY_THREADS": "1"}
    hpstudy = [sys.executable, "-m", "studies"]
    run = subprocess.run(
        [*hpstudy, "run", str(path), "--workers", "2"],
        capture_output=True, text=True, env={**_env(), **env}, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    study = optuna.load_study(study_name=NAME, storage=spec["study"]["storage"])
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert complete and all(len(TrialAttrs.of(t).folds["values"]) == 5 for t in complete)
    assert any(t.state == TrialState.PRUNED for t in study.trials)
    best = studies.export(NAME, storage=spec["study"]["storage"], output=tmp_path / "b.toml")
    _, scores = studies.train(best, test=True, echo=lambda _line: None)
    assert math.isfinite(scores["test_loss"])


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def test_the_learning_curve_picture_draws_each_folds_dev_loss(study: optuna.Study) -> None:
    from studies.analysis import plot_learning_curves
    from trainer import EpochResult

    folds = TrialAttrs.of(study.trials[0]).folds
    assert folds is not None
    epochs = [EpochResult.from_dict(e) for e in _merged(folds["curves"])]
    alone = plot_learning_curves(epochs)
    drawn = plot_learning_curves(epochs, folds=folds["curves"])
    assert drawn.startswith(b"\x89PNG") and drawn != alone


def _merged(curves: list[list[float]]) -> list[dict[str, Any]]:
    return [
        {"epoch": i, "train_loss": 1.0, "train_accuracy": 0.5, "dev_loss": statistics.fmean(c[i]
         for c in curves), "dev_accuracy": 0.5, "lr": 0.1, "grad_norm_mean": {},
         "grad_norm_max": {}, "seconds": 1.0, "finished_at": 0.0}
        for i in range(len(curves[0]))
    ]  # fmt: skip


def test_a_spec_of_ten_folds_and_repeats_is_accepted() -> None:
    spec = StudySpec.from_dict(spec_dict(folds=10, repeats=2), source="test")
    assert (spec.train.folds, spec.train.repeats) == (10, 2)
