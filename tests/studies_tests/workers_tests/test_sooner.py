"""Reaching a good configuration sooner: warm starts, a target, and the budget planner."""

from __future__ import annotations

import multiprocessing
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest

import studies
from studies import ParameterError, StudyError
from studies.cli import main
from studies.storage import open_storage
from studies.workers import WorkerOptions, prepare_study, run_worker
from studies.workers._plan import expected_epochs, parse_budget, plan
from studies.workers._warm import warm_start_points

TrialState = optuna.trial.TrialState


def digits(folder: Path, *, study: str = "", n_trials: int = 4, epochs: int = 4) -> Path:
    path = folder / "digits.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [study]
            name = "sooner"
            storage = "sqlite:///{folder / "s.db"}"
            n_trials = {n_trials}
            seed = 0
            sampler = {{ name = "random" }}
            """
        )
        + textwrap.dedent(study)
        + textwrap.dedent(
            f"""
            [train]
            dataset = "digits"
            hidden = [16]
            epochs = {epochs}
            dev_fraction = 0.2
            device = "cpu"

            [space.lr]
            low = 1e-4
            high = 0.5
            log = true

            [space.optimizer]
            choices = ["sgd", "adam"]

            [space.momentum]
            low = 0.0
            high = 0.99
            when = {{ optimizer = ["sgd"] }}
            """
        )
    )
    return path


def work(spec: studies.StudySpec) -> None:
    run_worker(spec.name, spec.storage, options=WorkerOptions(flush_interval=0))


# Warm starts --------------------------------------------------------------------------------

ENQUEUE = 'enqueue = [{ lr = 0.01, optimizer = "adam" }, { optimizer = "sgd", momentum = 0.5 }]\n'


def test_enqueued_points_run_first_and_once_however_often_the_study_resumes(
    tmp_path: Path,
) -> None:
    spec = studies.spec_of(digits(tmp_path, study=ENQUEUE))
    for _ in range(3):  # three `hpstudy run` of the same study
        prepare_study(spec, echo=lambda _: None, points=warm_start_points(spec))
    work(spec)
    study = optuna.load_study(study_name="sooner", storage=spec.storage)
    first, second = study.trials[0], study.trials[1]
    assert (first.params["lr"], first.params["optimizer"]) == (0.01, "adam")
    assert (second.params["optimizer"], second.params["momentum"]) == ("sgd", 0.5)
    assert "lr" in second.params  # the point left it out: the sampler drew it
    assert len(study.trials) == 4  # the two warm starts hold two of the four slots
    warm = [t for t in study.trials if "warm_start" in t.user_attrs]
    assert len(warm) == 2


def _prepare(path: str, barrier: Any) -> None:
    spec = studies.spec_of(path)
    points = warm_start_points(spec)
    barrier.wait()
    prepare_study(spec, echo=lambda _: None, points=points)


@pytest.mark.slow
def test_runs_started_at_the_same_moment_enqueue_each_point_once(tmp_path: Path) -> None:
    path = digits(tmp_path, study=ENQUEUE)
    studies.spec_of(path)
    prepare_study(studies.spec_of(path), echo=lambda _: None)  # the study exists
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    runs = [context.Process(target=_prepare, args=(str(path), barrier)) for _ in range(4)]
    for process in runs:
        process.start()
    for process in runs:
        process.join(timeout=120)
        assert process.exitcode == 0
    study = optuna.load_study(study_name="sooner", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 2


def test_a_point_outside_the_space_is_reported_not_dropped(tmp_path: Path) -> None:
    bad = 'enqueue = [{ lr = 3.0, optimizer = "adam" }, { optimizer = "rmsprop" }]\n'
    with pytest.raises(studies.SpecError) as info:
        studies.spec_of(digits(tmp_path, study=bad))
    message = str(info.value)
    assert "study.enqueue[0].lr: 3.0 is outside [0.0001, 0.5]" in message
    assert "study.enqueue[1].optimizer: 'rmsprop' is not one of the choices" in message


def test_an_exported_config_and_another_study_warm_start_a_new_study(tmp_path: Path) -> None:
    # no pruning: all three of the old study's trials complete
    old = studies.spec_of(digits(tmp_path, study='pruner = "none"\n', n_trials=3, epochs=2))
    prepare_study(old, echo=lambda _: None)
    work(old)
    exported = studies.export("sooner", storage=old.storage, output=tmp_path / "best.toml")
    best = optuna.load_study(study_name="sooner", storage=old.storage).best_trial

    new_folder = tmp_path / "new"
    new_folder.mkdir()
    new = studies.spec_of(digits(new_folder, n_trials=5, epochs=2), name="warmed")
    points = warm_start_points(new, [str(exported), f"sooner@{old.storage}"])
    assert len(points) == 1 + 3  # the export, and the old study's three complete trials
    assert points[0][0] == {k: best.params[k] for k in points[0][0]}
    assert points[0][1] == str(exported)
    prepare_study(new, echo=lambda _: None, points=points)
    study = optuna.load_study(study_name="warmed", storage=new.storage)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 3  # the export = a trial


def test_a_warm_start_outside_the_new_space_says_which_value_and_where(tmp_path: Path) -> None:
    config = tmp_path / "old.toml"
    config.write_text('[train]\ndataset = "digits"\noptimizer = "adam"\nlr = 0.9\n')
    spec = studies.spec_of(digits(tmp_path))
    with pytest.raises(StudyError, match=rf"{config}: lr: 0\.9 is outside \[0\.0001, 0\.5\]"):
        warm_start_points(spec, [str(config)])
    with pytest.raises(StudyError, match="neither a config file"):
        warm_start_points(spec, [str(tmp_path / "missing.toml")])


def test_a_warm_start_study_may_be_named_by_an_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = studies.spec_of(digits(tmp_path))
    prepare_study(spec, echo=lambda _: None)  # a study with no complete trial yet
    monkeypatch.setenv("OLD_DB", spec.storage)
    with pytest.raises(
        ParameterError, match=r"`warm_start=sooner@env:OLD_DB`: the study has no complete trial"
    ):
        warm_start_points(spec, ["sooner@env:OLD_DB"])


# A target -----------------------------------------------------------------------------------

TARGET = 'metric = "dev_accuracy"\ntarget = { dev_accuracy = 0.5 }\n'


def test_no_trial_starts_once_an_epoch_reached_the_target(tmp_path: Path, capsys: Any) -> None:
    spec = studies.spec_of(digits(tmp_path, study=TARGET + ENQUEUE, n_trials=8))
    prepare_study(spec, echo=lambda _: None, points=warm_start_points(spec))
    work(spec)
    study = optuna.load_study(study_name="sooner", storage=spec.storage)
    # adam at lr 0.01 passes 50% at once; the second warm start never starts
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.WAITING]
    assert main(["status", "sooner", "--storage", spec.storage]) == 0
    shown = capsys.readouterr().out
    assert "target dev_accuracy reached by trial 0 at epoch 0" in shown

    rerun = studies.run(digits(tmp_path, study=TARGET, n_trials=8), progress=False)
    assert len(rerun.trials) == 2  # run again: the target is met, no workers start


def test_a_raised_target_lets_the_study_go_on(tmp_path: Path) -> None:
    spec = studies.spec_of(digits(tmp_path, study=TARGET + ENQUEUE, n_trials=3))
    prepare_study(spec, echo=lambda _: None, points=warm_start_points(spec))
    work(spec)
    raised = studies.spec_of(
        digits(tmp_path, study='metric = "dev_accuracy"\ntarget = { dev_accuracy = 0.999 }\n'),
        n_trials=3,
    )
    prepare_study(raised, echo=lambda _: None)
    work(raised)
    study = optuna.load_study(study_name="sooner", storage=spec.storage)
    assert len(study.trials) == 3


def test_a_target_of_another_task_is_refused(tmp_path: Path) -> None:
    with pytest.raises(studies.SpecError, match="records dev_loss, dev_accuracy, not dev_rmse"):
        studies.spec_of(digits(tmp_path, study="target = { dev_rmse = 3.0 }\n"))


# The budget planner -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800.0), ("1.5h", 5400.0), ("90s", 90.0), ("600", 600.0)]
)
def test_budgets_parse(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0"])
def test_bad_budgets_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_budget(text)


def test_successive_halving_expects_fewer_epochs_than_no_pruning() -> None:
    halving = {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3}
    # 15 epochs: the step is the epochs trained, so rungs decide after 1, 3 and 9 epochs;
    # 2/3 stop at the first, 2/9 at the second, 2/27 at the third, 1/27 run all 15.
    assert expected_epochs(halving, 15) == pytest.approx(
        2 / 3 * 1 + 2 / 9 * 3 + 2 / 27 * 9 + 1 / 27 * 15
    )
    assert expected_epochs({"name": "none"}, 15) == 15


def test_the_extrapolate_pruner_is_planned_between_halving_and_no_pruning() -> None:
    halving = {"name": "successive_halving", "min_resource": 1, "reduction_factor": 3}
    forecast = {"name": "extrapolate", "min_resource": 1, "reduction_factor": 3}
    assert expected_epochs(halving, 15) < expected_epochs(forecast, 15) < 15
    assert expected_epochs(forecast, 15) == pytest.approx(7.5)  # half, as measured


def test_the_median_pruner_stops_after_its_warm_up_epochs() -> None:
    median = {"name": "median", "n_warmup_steps": 3}
    assert expected_epochs(median, 15) == pytest.approx((15 + 3) / 2)
    assert expected_epochs({"name": "median"}, 15) == pytest.approx((15 + 1) / 2)


def test_plan_times_a_probe_and_counts_what_fits(tmp_path: Path, capsys: Any) -> None:
    spec = studies.spec_of(digits(tmp_path, epochs=10))
    fits = plan(spec, budget=600, workers=2)
    assert fits.epoch_seconds > 0
    assert fits.epochs == int((600 - 15) * 2 // fits.epoch_seconds)
    assert fits.trials_unpruned == fits.epochs // 10
    assert main(["plan", str(tmp_path / "digits.toml"), "--budget", "10m", "--workers", "2"]) == 0
    shown = capsys.readouterr().out
    assert "a probe epoch of 'sooner'" in shown and "trials of 10 epochs without pruning" in shown
    assert fits.train_seconds > 0 and fits.dev_seconds > 0
    assert "one dev evaluation" in shown
    assert main(["plan", str(tmp_path / "digits.toml"), "--budget", "soon"]) == 2


def test_open_storage_is_fine_after_a_plan(tmp_path: Path) -> None:
    # the planner trains in this process; it leaves no study behind
    spec = studies.spec_of(digits(tmp_path))
    plan(spec, budget=60, workers=1)
    assert not (tmp_path / "s.db").exists() or not optuna.get_all_study_summaries(
        open_storage(spec.storage)
    )
