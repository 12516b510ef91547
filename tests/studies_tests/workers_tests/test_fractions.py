"""A study whose lowest rungs lie inside the first epoch (`[train] fractions`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from studies import load_spec
from studies.storage import EpochStore, create_engine, create_or_resume, open_storage
from studies.workers import report_step, run_worker
from trainer import EpochResult

TrialState = optuna.trial.TrialState


def result(epoch: int, fraction: float = 1.0) -> EpochResult:
    return EpochResult(
        epoch=epoch,
        train_loss=1.0,
        train_accuracy=0.5,
        dev_loss=1.0,
        dev_accuracy=0.5,
        lr=0.1,
        grad_norm_mean={},
        grad_norm_max={},
        seconds=0.1,
        fraction=fraction,
    )


def test_without_fractions_the_step_is_the_epochs_trained() -> None:
    assert [report_step(result(e)) for e in range(3)] == [1, 2, 3]


def test_with_fractions_the_step_counts_the_smallest_fraction() -> None:
    fractions = (1 / 9, 1 / 3)
    at = [result(0, 20 / 180), result(0, 60 / 180), result(0), result(1), result(2)]
    assert [report_step(r, fractions) for r in at] == [1, 3, 9, 18, 27]


@pytest.fixture(scope="module")
def halved(
    tmp_path_factory: pytest.TempPathFactory, digits_spec: Callable[..., Path]
) -> tuple[optuna.Study, str]:
    import torch

    folder = tmp_path_factory.mktemp("fractions")
    path = digits_spec(
        folder,
        name="fractions",
        n_trials=2,
        epochs=2,
        pruner='{ name = "successive_halving", min_resource = 1, reduction_factor = 3 }',
    )
    fractions = "dev_fraction = 0.2\nfractions = [0.111, 0.333]\n"
    path.write_text(path.read_text().replace("dev_fraction = 0.2\n", fractions))
    spec = load_spec(str(path))
    study = create_or_resume(spec, open_storage(spec.storage))
    study.enqueue_trial({"lr": 0.01, "optimizer": "adam"})
    study.enqueue_trial({"lr": 1e-6, "optimizer": "sgd", "momentum": 0.0})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_worker(spec.name, spec.storage)
    finally:
        torch.set_num_threads(threads)
    return optuna.load_study(study_name=spec.name, storage=spec.storage), spec.storage


def test_a_trial_reports_inside_the_first_epoch(halved: tuple[optuna.Study, str]) -> None:
    study, _ = halved
    good = study.trials[0]
    assert good.state == TrialState.COMPLETE
    assert sorted(good.intermediate_values) == [1, 3, 9, 18]
    assert good.user_attrs["epochs_run"] == 2


def test_a_hopeless_trial_stops_at_a_ninth_of_an_epoch(halved: tuple[optuna.Study, str]) -> None:
    study, url = halved
    good, hopeless = study.trials
    assert hopeless.state == TrialState.PRUNED
    assert sorted(hopeless.intermediate_values) == [1]
    assert hopeless.user_attrs["epochs_run"] == 0
    seconds = hopeless.user_attrs["measured"]["train_seconds"]
    assert 0 < seconds < good.user_attrs["measured"]["train_seconds"] / 5
    storage = open_storage(url)
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, hopeless.number)
    engine = create_engine(url)
    try:
        stored = EpochStore(engine).epochs(trial_id, partials=True)
    finally:
        engine.dispose()
    assert [round(r.fraction, 2) for r in stored] == [0.11]


def test_the_api_reads_back_the_points_inside_the_first_epoch(
    halved: tuple[optuna.Study, str],
) -> None:
    import studies

    study, url = halved
    curve = studies.epochs(study.study_name, trial=0, storage=url)
    assert [(r.epoch, round(r.fraction, 2)) for r in curve] == [
        (0, 0.11),
        (0, 0.33),
        (0, 1.0),
        (1, 1.0),
    ]


def test_two_objectives_and_folds_halve_inside_the_first_epoch(tmp_path: Path) -> None:
    import textwrap

    import studies

    path = tmp_path / "pair.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [study]
            name = "pair"
            storage = "sqlite:///{tmp_path / "p.db"}"
            objectives = {{ dev_loss = "min", params = "min" }}
            n_trials = 2
            seed = 1
            sampler = {{ name = "random" }}
            pruner = {{ name = "successive_halving", min_resource = 1, reduction_factor = 3 }}
            enqueue = [{{ lr = 0.01 }}, {{ lr = 1e-6 }}]

            [train]
            dataset = "digits"
            optimizer = "adam"
            hidden = [32]
            epochs = 2
            folds = 2
            fractions = [0.1111, 0.3333]

            [space.lr]
            low = 1e-6
            high = 0.1
            log = true
            """
        )
    )
    studies.run(str(path), workers=1, progress=False)
    study = optuna.load_study(study_name="pair", storage=f"sqlite:///{tmp_path / 'p.db'}")
    good, hopeless = study.trials
    assert good.state == TrialState.COMPLETE and good.user_attrs["epochs_run"] == 2
    # the same network, so only the loss decides: worse at 1/9 of an epoch, it stops there
    assert hopeless.state == TrialState.PRUNED and hopeless.user_attrs["epochs_run"] == 0
    curve = studies.epochs("pair", trial=0, storage=f"sqlite:///{tmp_path / 'p.db'}")
    assert [round(r.epochs_trained, 2) for r in curve] == [0.11, 0.33, 1.0, 2.0]


def test_auto_fractions_are_chosen_once_and_trained_with(tmp_path: Path) -> None:
    import textwrap

    import studies
    from studies.storage import StudyAttrs, TrialAttrs

    path = tmp_path / "auto.toml"
    url = f"sqlite:///{tmp_path / 'a.db'}"
    path.write_text(
        textwrap.dedent(
            f"""\
            [study]
            name = "auto"
            storage = "{url}"
            n_trials = 1
            pruner = {{ name = "successive_halving", min_resource = 1, reduction_factor = 3 }}

            [train]
            dataset = "digits"
            hidden = [16]
            epochs = 1
            fractions = "auto"

            [space.lr]
            low = 0.001
            high = 0.1
            log = true
            """
        )
    )
    lines: list[str] = []
    studies.run(str(path), workers=1, progress=False, echo=lines.append)
    study = optuna.load_study(study_name="auto", storage=url)
    chosen = StudyAttrs.of(study).fractions
    assert chosen is not None  # () too is a choice: the dev evaluation was too dear
    assert any(line.startswith("fractions = auto: ") for line in lines)
    (trial,) = study.trials
    config = TrialAttrs.of(trial).config
    assert config is not None and config["fractions"] == list(chosen)
    curve = studies.epochs("auto", trial=0, storage=url)
    assert [r.fraction for r in curve if r.partial] == pytest.approx(list(chosen), abs=0.01)
