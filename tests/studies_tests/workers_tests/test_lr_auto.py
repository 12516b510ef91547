"""`[space.lr] auto = true` and `hpstudy lr-range`: bounds from a range test, per optimiser."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest

import studies
from search_space import suggest
from studies.cli import main
from studies.storage import StudyAttrs
from studies.workers import WorkerOptions, prepare_study, run_worker, searched_space
from studies.workers._lr_auto import as_config_params, ensure_ranges
from trainer import LRRange

SPEC = """\
[study]
name = "auto"
storage = "sqlite:///{db}"
n_trials = 4
seed = 0
sampler = {{ name = "random" }}

[train]
dataset = "digits"
hidden = [16]
epochs = 2
dev_fraction = 0.2
device = "cpu"

[space.lr]
auto = true
{extra}

[space.optimizer]
choices = ["sgd", "adam"]
"""


def write(folder: Path, extra: str = "") -> Path:
    path = folder / "auto.toml"
    path.write_text(textwrap.dedent(SPEC.format(db=folder / "s.db", extra=extra)))
    return path


def fake(optimizer: str, low: float, high: float) -> LRRange:
    return LRRange(optimizer, (1e-5, 1.0), (2.0, 1.0), low, high, low * 10, high * 3, None)


def test_auto_is_read_kept_and_written_back(tmp_path: Path) -> None:
    spec = studies.spec_of(write(tmp_path, "low = 1e-5\nhigh = 0.3"))
    assert spec.lr_auto
    assert spec.lr_bounds == (1e-5, 0.3)
    again = studies.StudySpec.from_dict(spec.to_dict())
    assert again.lr_auto and again.to_dict()["space"]["lr"]["auto"] is True


def test_auto_with_a_step_is_refused(tmp_path: Path) -> None:
    with pytest.raises(studies.SpecError, match="with auto = true the range test chooses"):
        studies.spec_of(write(tmp_path, "step = 0.1"))


def test_each_optimiser_searches_lr_inside_its_own_bounds(tmp_path: Path) -> None:
    spec = studies.spec_of(write(tmp_path))
    ranges = {"sgd": fake("sgd", 0.01, 0.5), "adam": fake("adam", 1e-4, 1e-2)}
    space = searched_space(spec, ranges)
    assert "lr" not in space and {"lr_sgd", "lr_adam"} <= set(space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        params = as_config_params(suggest(trial, space, base=spec.train.to_dict()))
        low, high = (0.01, 0.5) if params["optimizer"] == "sgd" else (1e-4, 1e-2)
        assert low <= params["lr"] <= high
        assert set(trial.params) == {"optimizer", f"lr_{params['optimizer']}"}
        study.tell(trial, 0.0)


def test_a_study_runs_the_range_test_once_and_its_trials_keep_inside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = studies.spec_of(write(tmp_path))
    study, _, _ = prepare_study(spec, echo=lambda _: None)
    ensure_ranges(spec, study, echo=lambda _: None)
    stored = StudyAttrs.of(optuna.load_study(study_name="auto", storage=spec.storage)).lr_range
    assert stored is not None and set(stored) == {"sgd", "adam"}

    def again(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the range test ran a second time")

    monkeypatch.setattr("studies.workers._lr_auto.run_range_tests", again)
    ensure_ranges(spec, optuna.load_study(study_name="auto", storage=spec.storage))
    run_worker("auto", spec.storage, options=WorkerOptions(flush_interval=0))
    for trial in optuna.load_study(study_name="auto", storage=spec.storage).trials:
        optimizer = trial.params["optimizer"]
        bounds = stored[optimizer]
        assert bounds.low <= trial.user_attrs["config"]["lr"] <= bounds.high
        assert bounds.low >= 1e-6 and bounds.high <= 1.0  # inside auto's default range


def test_lr_range_writes_a_picture_and_says_the_bounds(tmp_path: Path, capsys: Any) -> None:
    picture = tmp_path / "range.png"
    code = main(["lr-range", str(write(tmp_path)), "-o", str(picture), "--steps", "60"])
    assert code == 0
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "lr range test, sgd:" in out and "lr range test, adam:" in out
    assert main(["lr-range", str(write(tmp_path)), "-o", str(tmp_path / "x.jpg")]) == 2
