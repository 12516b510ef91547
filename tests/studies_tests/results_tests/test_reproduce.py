"""`hpstudy reproduce`: a stored trial trained again gives its dev curve back, then the test set."""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from studies import StudyError
from studies.cli import main
from studies.results import TOLERANCE, compare_curves, reproduce
from studies.spec import StudySpec
from studies.storage import create_or_resume, open_storage
from studies.workers import WorkerOptions, run_worker
from trainer import EpochResult

NAME = "tiny"


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A finished two-trial digits study, made by an hpstudy worker."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reproduce') / 'study.db'}"
    spec = StudySpec.from_dict(
        {
            "study": {"name": NAME, "n_trials": 2, "seed": 4, "sampler": {"name": "random"}},
            "train": {"dataset": "digits", "hidden": [16], "epochs": 3, "device": "cpu"},
            "space": {
                "lr": {"low": 0.01, "high": 0.5, "log": True},
                "dropout": {"low": 0.1, "high": 0.3},  # random masks: the seed must fix them
            },
        },
        source="test",
    ).replace(storage=url)
    create_or_resume(spec, open_storage(url))
    run_worker(NAME, url, options=WorkerOptions(flush_interval=0))
    return url


def curve(*values: float) -> list[EpochResult]:
    return [
        EpochResult(i, v, 1 - v / 3, v, 1 - v / 3, 0.1, {}, {}, 0.01) for i, v in enumerate(values)
    ]


def test_equal_curves_differ_by_nothing() -> None:
    comparison = compare_curves(curve(2.0, 1.0), curve(2.0, 1.0))
    assert comparison.max_abs_difference == 0.0
    assert comparison.equal


def test_the_largest_difference_and_where_it_is() -> None:
    comparison = compare_curves(curve(2.0, 1.0), curve(2.0, 1.3))
    assert comparison.max_abs_difference == pytest.approx(0.3)
    assert comparison.where == "dev_loss at epoch 1"
    assert not comparison.equal


def test_a_diverged_epoch_matches_a_diverged_epoch() -> None:
    assert compare_curves(curve(2.0, math.nan), curve(2.0, math.nan)).equal
    assert not compare_curves(curve(2.0, math.nan), curve(2.0, 1.0)).equal


def test_only_the_stored_epochs_are_compared_and_all_must_be_there() -> None:
    assert compare_curves(curve(2.0), curve(2.0, 1.0)).equal  # a pruned trial's stored part
    assert compare_curves(curve(2.0, 1.0), curve(2.0)).max_abs_difference == math.inf


def test_the_best_trial_is_reproduced_within_the_tolerance(study_url: str) -> None:
    lines: list[str] = []
    outcome = reproduce(NAME, url=study_url, echo=lines.append)
    assert outcome.comparison.epochs == 3
    assert outcome.comparison.max_abs_difference <= TOLERANCE
    assert outcome.test_loss is not None and math.isfinite(outcome.test_loss)
    assert outcome.test_accuracy is not None and 0.0 <= outcome.test_accuracy <= 1.0
    assert outcome.test_examples == 359  # digits' fixed test split
    assert any("reproduced" in line and "max abs difference" in line for line in lines)


def test_the_cli_reports_the_comparison_and_the_test_set(
    study_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reproduce", NAME, "--storage", study_url, "--trial", "1"]) == 0
    out = capsys.readouterr().out
    assert "training trial 1 again" in out
    # The trial's own count, so that its numbers come back.
    count = (
        optuna.load_study(study_name=NAME, storage=study_url).trials[1].user_attrs["torch_threads"]
    )
    assert f"on cpu with {count} torch thread" in out
    assert f"tolerance {TOLERANCE:g}: reproduced" in out
    assert "test loss" in out and "(359 examples)" in out


def test_an_unknown_trial_number(study_url: str) -> None:
    with pytest.raises(StudyError, match="has no trial 7"):
        reproduce(NAME, url=study_url, number=7)


def test_an_unknown_study(study_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "other", "--storage", study_url]) == 2
    err = capsys.readouterr().err
    assert "no study named 'other'" in err and "Traceback" not in err


def test_a_missing_database(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="no study database at"):
        reproduce(NAME, url=f"sqlite:///{tmp_path / 'none.db'}")


def test_a_difference_inside_the_first_epoch_says_where() -> None:
    stored = [EpochResult(0, 2.0, 0.3, 2.0, 0.3, 0.1, {}, {}, 0.01, fraction=0.25), *curve(1.0)]
    new = [EpochResult(0, 2.0, 0.3, 2.5, 0.3, 0.1, {}, {}, 0.01, fraction=0.25), *curve(1.0)]
    assert compare_curves(stored, new).where == "dev_loss at epoch 0 (0.25 of it)"


def test_a_trial_with_fractions_is_reproduced_point_by_point(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    spec = StudySpec.from_dict(
        {
            "study": {"name": "f", "n_trials": 1, "seed": 4, "sampler": {"name": "random"}},
            "train": {
                "dataset": "digits",
                "hidden": [16],
                "epochs": 2,
                "device": "cpu",
                "fractions": [0.25, 0.5],
            },
            "space": {"lr": {"low": 0.01, "high": 0.5, "log": True}},
        },
        source="test",
    ).replace(storage=url)
    create_or_resume(spec, open_storage(url))
    run_worker("f", url, options=WorkerOptions(flush_interval=0))
    outcome = reproduce("f", url=url, echo=lambda _line: None)
    assert outcome.comparison.epochs == 4  # two points inside the first epoch, two epochs
    assert outcome.comparison.max_abs_difference <= TOLERANCE


def test_a_trial_that_pretrains_is_reproduced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    spec = StudySpec.from_dict(
        {
            "study": {"name": "p", "n_trials": 1, "seed": 4, "sampler": {"name": "random"}},
            "train": {
                "dataset": "digits",
                "hidden": [16, 8],
                "epochs": 2,
                "device": "cpu",
                "labels": 100,
                "pretrain_epochs": 2,
                "dropout": 0.1,
            },
            "space": {"lr": {"low": 0.01, "high": 0.5, "log": True}},
        },
        source="test",
    ).replace(storage=url)
    create_or_resume(spec, open_storage(url))
    run_worker("p", url, options=WorkerOptions(flush_interval=0))
    outcome = reproduce("p", url=url, echo=lambda _line: None)
    assert outcome.comparison.epochs == 2
    assert outcome.comparison.max_abs_difference == 0.0  # pre-trained again to the same weights
