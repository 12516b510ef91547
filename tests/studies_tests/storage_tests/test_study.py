"""The study database is Optuna's own: plain Optuna and its CLI read it; the spec travels in it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pytest

from studies import StudyError, load_spec
from studies.storage import create_or_resume, finished_trials, open_storage, stored_spec

if TYPE_CHECKING:
    from conftest import FinishedStudy

OPTUNA_CLI = Path(sys.executable).parent / "optuna"


def test_plain_optuna_loads_the_study(digits_study: FinishedStudy) -> None:
    study = optuna.load_study(study_name=digits_study.spec.name, storage=digits_study.url)
    assert len(study.trials) == len(digits_study.study.trials)
    assert study.best_trial.number == finished_trials(digits_study.study)[0].number
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.metric_names == ["dev_loss"]


def test_the_optuna_cli_reads_the_best_trial(digits_study: FinishedStudy) -> None:
    name, url = digits_study.spec.name, digits_study.url
    out = subprocess.run(
        [str(OPTUNA_CLI), "best-trial", "--study-name", name, "--storage", url, "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    best = json.loads(out)
    expected = finished_trials(digits_study.study)[0]
    assert best["number"] == expected.number
    assert best["value"] == {"dev_loss": pytest.approx(expected.value)}  # named by the metric


def test_the_spec_is_stored_with_the_study(digits_study: FinishedStudy) -> None:
    storage = open_storage(digits_study.url)
    stored = stored_spec(storage, digits_study.spec.name)
    assert stored.to_dict() == digits_study.spec.to_dict()


def test_a_changed_space_is_refused_on_resume(
    tmp_path: Path, digits_spec: Callable[..., Path]
) -> None:
    spec = load_spec(str(digits_spec(tmp_path)))
    storage = open_storage(spec.storage)
    create_or_resume(spec, storage)
    narrower = spec.to_dict()
    narrower["space"]["lr"]["high"] = 1.0
    changed = type(spec).from_dict(narrower)
    with pytest.raises(StudyError, match=r"different \[space\]"):
        create_or_resume(changed, storage)


def test_a_changed_budget_is_taken_over_on_resume(
    tmp_path: Path, digits_spec: Callable[..., Path]
) -> None:
    spec = load_spec(str(digits_spec(tmp_path, n_trials=2)))
    storage = open_storage(spec.storage)
    create_or_resume(spec, storage)
    create_or_resume(spec.replace(n_trials=9), storage)
    assert stored_spec(storage, spec.name).n_trials == 9


def test_among_tied_best_values_a_diverged_trial_comes_last() -> None:
    import optuna

    from studies.storage import finished_trials

    study = optuna.create_study()
    for number, labels in enumerate((["diverged"], ["good_fit"], ["overfitting"])):
        study.add_trial(optuna.trial.create_trial(value=0.0, user_attrs={"diagnosis": labels}))
        assert study.trials[number].number == number
    study.add_trial(optuna.trial.create_trial(value=-1.0, user_attrs={"diagnosis": ["diverged"]}))
    assert [t.number for t in finished_trials(study)] == [3, 1, 2, 0]
