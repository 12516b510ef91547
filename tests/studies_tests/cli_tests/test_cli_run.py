"""`hpstudy run` end to end: real worker processes, resuming, and specs that fail up front."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest

from studies.cli import main  # the console script's entry point

NAME = "resume"


@dataclasses.dataclass(frozen=True)
class Runs:
    url: str
    outputs: list[subprocess.CompletedProcess[str]]  # first (3 trials), second (5), third (5)
    first_trials: list[dict[str, Any]]  # the trials after the first run, as plain values


def hpstudy(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HPSTUDY_THREADS": "1"}  # two threads crawl on a busy 2-core box
    return subprocess.run(
        [sys.executable, "-m", "studies", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def snapshot(url: str) -> list[dict[str, Any]]:
    study = optuna.load_study(study_name=NAME, storage=url)
    return [
        {
            "number": t.number,
            "state": t.state,
            "params": t.params,
            "value": t.value,
            "end": t.datetime_complete,
            "values": t.intermediate_values,
        }
        for t in study.trials
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, digits_spec: Callable[..., Path]) -> Runs:
    folder = tmp_path_factory.mktemp("resume")
    path = str(digits_spec(folder, name=NAME, n_trials=3, epochs=2))
    url = f"sqlite:///{folder / 's.db'}"
    first = hpstudy("run", path)
    assert first.returncode == 0, first.stderr
    first_trials = snapshot(url)
    second = hpstudy("run", path, "--n-trials", "5")
    third = hpstudy("run", path, "--n-trials", "5")
    return Runs(url, [first, second, third], first_trials)


@pytest.mark.slow
def test_a_second_run_adds_trials_up_to_the_new_budget(runs: Runs) -> None:
    trials = snapshot(runs.url)
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4]
    assert all(t["state"].is_finished() for t in trials)


@pytest.mark.slow
def test_a_second_run_leaves_the_first_runs_trials_alone(runs: Runs) -> None:
    assert snapshot(runs.url)[:3] == runs.first_trials
    assert len(runs.first_trials) == 3


@pytest.mark.slow
def test_a_run_at_its_budget_starts_nothing(runs: Runs) -> None:
    third = runs.outputs[2]
    assert third.returncode == 0
    assert "already has its 5 trials" in third.stdout
    assert len(snapshot(runs.url)) == 5


@pytest.mark.slow
def test_a_run_shows_progress_then_the_best_trials(runs: Runs) -> None:
    out = runs.outputs[0].stdout
    assert "trials 3/3 done" in out
    assert out.index("trials 3/3 done") < out.index(f"best trials of '{NAME}'")


@pytest.mark.slow
def test_a_run_prints_no_optuna_log_lines_or_experimental_warnings(runs: Runs) -> None:
    for done in runs.outputs:
        text = done.stdout + done.stderr
        assert "A new study created" not in text and "Using an existing study" not in text
        assert "ExperimentalWarning" not in text


@pytest.mark.slow
def test_the_next_steps_are_aligned(runs: Runs) -> None:
    lines = runs.outputs[1].stdout.split("next:\n", 1)[1].splitlines()
    steps = [line for line in lines if line.startswith("  hpstudy ")]
    assert len(steps) >= 3
    columns = {len(line) - len(line.split("   ")[-1].lstrip()) for line in steps}
    assert len(columns) == 1, steps


def test_a_bad_spec_fails_before_anything_runs(
    tmp_path: Path, digits_spec: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = digits_spec(tmp_path, pruner='{ name = "median", warmup = 1 }')
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "study.pruner.warmup" in err
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "hpstudy-logs").exists()


def test_a_bad_spec_adds_no_study_to_an_existing_database(
    tmp_path: Path, digits_spec: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="other", storage=url)
    path = digits_spec(tmp_path, name="bad", epochs=0)
    assert main(["run", str(path)]) == 2
    assert "train.epochs" in capsys.readouterr().err
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["other"]


def test_a_bad_override_fails_before_anything_runs(
    tmp_path: Path, digits_spec: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = digits_spec(tmp_path)
    assert main(["run", str(path), "--set", "optimizer=adamax", "--n-trials", "0"]) == 2
    err = capsys.readouterr().err
    assert "--set optimizer=adamax" in err and "train.optimizer" in err
    assert "study.n_trials" in err
    assert not (tmp_path / "s.db").exists()


def test_a_seed_override_reseeds_the_sampler_and_the_trials(
    tmp_path: Path, digits_spec: Callable[..., Path]
) -> None:
    from studies.storage import SPEC_ATTR
    from studies.workers import trial_seed

    path = digits_spec(tmp_path, name="seeded", n_trials=1, epochs=1)
    done = hpstudy("run", str(path), "--seed", "7")
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="seeded", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert json.loads(study.user_attrs[SPEC_ATTR])["study"]["seed"] == 7
    assert study.trials[0].user_attrs["seed"] == trial_seed(7, 0) != trial_seed(0, 0)
