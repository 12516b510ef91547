"""The public API is the service: what `studies` exports, and the one error class it raises."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import studies
from studies.cli import COMMANDS
from trainer import ConfigError

# Internals the facade once exported: reachable from their layers, not from `studies`.
INTERNALS = (
    "Objective",
    "Reporter",
    "WorkerOptions",
    "create_engine",
    "create_or_resume",
    "open_storage",
    "run_study",
    "run_worker",
    "store_diagnosis",
    "trial_seed",
    "EpochStore",
    "export_best",
    "write_report",
)


@pytest.mark.parametrize("name", studies.__all__)
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(studies, name) is not None


@pytest.mark.parametrize("name", INTERNALS)
def test_the_facade_does_not_export_internals(name: str) -> None:
    assert name not in studies.__all__


@pytest.mark.parametrize("name", [n for n in studies.__all__ if n.islower()])
def test_every_public_function_is_documented_with_keyword_only_options(name: str) -> None:
    function = getattr(studies, name)
    assert inspect.getdoc(function), f"studies.{name} has no docstring"
    params = list(inspect.signature(function).parameters.values())
    positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty]
    optional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty]
    assert len(positional) <= 2 and len(optional) <= 1, (
        f"studies.{name}{inspect.signature(function)}"
    )


def test_every_command_has_a_public_function() -> None:
    function = {"studies": "list_studies", "lr-range": "lr_range"}
    missing = [
        c.name
        for c in COMMANDS
        if function.get(c.name, c.name.replace("-", "_")) not in studies.__all__
    ]
    assert not missing


def test_user_error_is_a_class_above_hpstudy_s_own_errors() -> None:
    assert isinstance(studies.UserError, type)
    assert issubclass(studies.StudyError, studies.UserError)
    assert issubclass(studies.SpecError, studies.UserError)


def test_a_bad_config_file_raises_a_user_error_from_train(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('dataset = "digits"\noptimizer = "adamax"\n')
    with pytest.raises(studies.UserError, match="adamax") as caught:
        studies.train(path)
    assert isinstance(caught.value, ConfigError)


def test_status_trials_and_list_read_a_study_as_records(tmp_path: Path) -> None:
    import optuna

    url = f"sqlite:///{tmp_path / 'h.db'}"
    study = optuna.create_study(study_name="plain", storage=url)
    study.add_trial(
        optuna.trial.create_trial(
            value=0.25,
            params={"x": 1.0},
            distributions={"x": optuna.distributions.FloatDistribution(0, 2)},
        )
    )
    study.add_trial(
        optuna.trial.create_trial(
            value=0.5,
            params={"x": 2.0},
            distributions={"x": optuna.distributions.FloatDistribution(0, 2)},
        )
    )
    status = studies.status("plain", storage=url)
    assert (status.counts.complete, status.counts.best, status.budget) == (2, 0.25, None)
    assert [row.value for row in studies.trials("plain", storage=url).rows] == [0.25, 0.5]
    shown, rows = studies.list_studies(url)
    assert [(r.name, r.trials) for r in rows] == [("plain", 2)] and shown.endswith("h.db")
