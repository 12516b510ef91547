"""A practitioner's own network, data and task, end to end.

A model factory in a file beside the spec with its arguments searched (and conditions on them),
run by workers started in other folders; a CSV classification study and a regression study
through pruning, export, `train --test` and `reproduce`; user code that changed refused; and
every bad input refused up front with one message naming the spec file and the key, before any
study exists. Workers run in this process (`run_worker`) except where a separate process is
the point: the command line's messages and a worker joining from another folder.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
from sklearn.datasets import load_diabetes, load_wine

import studies
from studies import StudyError
from studies.results import export_best, reproduce, train_file
from studies.storage import CODE_ATTR, open_storage
from studies.workers import WorkerOptions, preflight, prepare_study, run_worker
from trainer import UserCodeError

TrialState = optuna.trial.TrialState

MODELS = """\
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def residual_mlp(input_shape, num_classes, width=32, depth=1, activation="relu", dropout=0.0):
    return Net(input_shape[0], num_classes, width, depth, ACTIVATIONS[activation], dropout)


class Net(nn.Module):
    def __init__(self, features, outputs, width, depth, act, dropout):
        super().__init__()
        self.inp = nn.Linear(features, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), act(), nn.Dropout(dropout))
            for _ in range(depth)
        )
        self.out = nn.Linear(width, outputs)

    def forward(self, x):
        h = self.inp(x.flatten(1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def not_a_module(input_shape, num_classes):
    return "a string"


def wrong_width(input_shape, num_classes):
    return nn.Linear(input_shape[0], num_classes + 3)
"""


def hpstudy(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HPSTUDY_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "studies", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, *, target: str = "label") -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([f"f{i}" for i in range(x.shape[1])] + [target])
        for row, label in zip(x, y, strict=True):
            writer.writerow([*row.tolist(), label])


def write_spec(
    folder: Path, name: str, train: str, space: str, study: str = "", db: Path | None = None
) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [study]
            name = "{name}"
            storage = "sqlite:///{db or folder / "study.db"}"
            seed = 0
            n_trials = 4
            sampler = {{ name = "random" }}
            pruner = {{ name = "median", n_startup_trials = 1, n_warmup_steps = 1 }}
            """
        )
        + textwrap.dedent(study)
        + "\n[train]\n"
        + textwrap.dedent(train)
        + "\n"
        + textwrap.dedent(space)
    )
    return path


def study_names(db: Path) -> list[str]:
    if not db.exists():
        return []
    storage = open_storage(f"sqlite:///{db}")
    return [s.study_name for s in optuna.get_all_study_summaries(storage)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's folder: models.py and a wine CSV beside the spec files."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "models.py").write_text(MODELS)
    wine = load_wine()
    write_csv(folder / "wine.csv", wine.data, wine.target)
    return folder


def start(spec_path: Path, **overrides: object) -> studies.StudySpec:
    """What `hpstudy run` does before its workers start: check, then create or resume."""
    spec = studies.spec_of(spec_path, **overrides)
    prepare_study(spec, echo=lambda _line: None, code=preflight(spec))
    return spec


def work(spec: studies.StudySpec) -> None:
    """One worker in this process until the budget is spent."""
    run_worker(spec.name, spec.storage, options=WorkerOptions(flush_interval=0))


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


# A user factory with model_args searched, run from other folders ---------------------------

WINE_FACTORY = """\
dataset = "wine.csv"
target = "label"
test_fraction = 0.2
standardize = true
model = "models.py:residual_mlp"
epochs = 3
batch_size = 16
optimizer = "adam"
lr = 0.01
device = "cpu"
"""
WINE_SPACE = """\
[space.model_args.width]
choices = [8, 16]

[space.model_args.depth]
low = 1
high = 2

[space.activation]
choices = ["relu", "tanh"]
when = { "model_args.depth" = [2] }

[space.dropout]
low = 0.0
high = 0.3
when = { "model_args.width" = [16] }
"""


def test_a_factory_beside_the_spec_with_searched_args_runs_from_another_folder(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_path = write_spec(project, "wine-own", WINE_FACTORY, WINE_SPACE)
    monkeypatch.chdir(tmp_path)  # neither models.py nor wine.csv is here
    spec = start(spec_path, n_trials=6)
    work(spec)

    study = optuna.load_study(study_name="wine-own", storage=spec.storage)
    assert len(finished(study)) == 6
    depths = set()
    for trial in finished(study):
        args = trial.user_attrs["config"]["model_args"]
        assert args["width"] == trial.params["model_args.width"]
        assert args["depth"] == trial.params["model_args.depth"]
        depths.add(args["depth"])
        # the conditions: activation drawn only with depth 2, dropout only with width 16
        assert ("activation" in trial.params) == (args["depth"] == 2)
        assert ("dropout" in trial.params) == (args["width"] == 16)
        assert trial.user_attrs["model"] == study.user_attrs[CODE_ATTR]["model"]
        assert trial.user_attrs["model"]["source"] == str(project / "models.py")
    assert depths == {1, 2}


@pytest.mark.slow  # a worker process of its own
def test_a_worker_process_started_in_another_folder_imports_the_factory_beside_the_spec(
    project: Path, tmp_path: Path
) -> None:
    spec = start(write_spec(project, "wine-join", WINE_FACTORY, WINE_SPACE), n_trials=2)
    elsewhere = tmp_path / "worker-folder"
    elsewhere.mkdir()
    joined = hpstudy("worker", spec.name, "--storage", spec.storage, cwd=elsewhere)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    assert "2 trials run, 0 failed" in joined.stdout
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    assert len(finished(study)) == 2


def test_a_run_or_a_worker_with_different_model_code_is_refused(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "shared.db"
    spec_path = write_spec(project, "wine-code", WINE_FACTORY, WINE_SPACE, db=db)
    spec = start(spec_path, n_trials=1)
    work(spec)
    with (project / "models.py").open("a") as file:
        file.write("\n# tuned since the study started\n")
    with pytest.raises(StudyError, match="differs from the code study 'wine-code' ran") as info:
        start(spec_path, n_trials=2)
    assert str(project / "models.py") in str(info.value)

    # Another machine: the spec's folder is not there, and its own models.py differs.
    project.rename(tmp_path / "away")
    machine = tmp_path / "machine-2"
    machine.mkdir()
    (machine / "models.py").write_text(MODELS + "\n# another copy\n")
    (machine / "wine.csv").write_text((tmp_path / "away" / "wine.csv").read_text())
    monkeypatch.chdir(machine)
    with pytest.raises(StudyError, match="differs from the code study 'wine-code' ran") as info:
        work(spec)
    assert str(machine / "models.py") in str(info.value)
    study = optuna.load_study(study_name="wine-code", storage=spec.storage)
    assert len(study.trials) == 1  # nothing ran with the other code


def test_train_says_when_the_model_file_changed_or_is_missing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = start(write_spec(project, "wine-changed", WINE_FACTORY, WINE_SPACE), n_trials=1)
    work(spec)
    monkeypatch.chdir(project)
    path, _ = export_best(spec.name, url=spec.storage, output="best.toml")
    with (project / "models.py").open("a") as file:
        file.write("\n# edited after the study\n")
    lines: list[str] = []
    train_file(str(path), overrides={"epochs": 1}, echo=lines.append)
    assert any("models.py has changed since the trial ran" in line for line in lines)
    (project / "models.py").unlink()
    with pytest.raises(UserCodeError) as info:
        train_file(str(path), overrides={"epochs": 1}, echo=lines.append)
    assert "models.py not found" in str(info.value)


# A CSV classification study and a regression study, end to end -----------------------------


def end_to_end(project: Path, spec_path: Path) -> tuple[list[str], list[str]]:
    """run, export, train --test and reproduce; returns what train and reproduce said."""
    spec = start(spec_path)
    work(spec)
    study = optuna.load_study(study_name=spec.name, storage=spec.storage)
    assert any(t.state == TrialState.PRUNED for t in study.trials), "the pruner never acted"
    path, _ = export_best(spec.name, url=spec.storage, output=project / "best.toml")
    trained: list[str] = []
    _, scores = train_file(str(path), test=True, echo=trained.append)
    assert scores
    reproduced: list[str] = []
    outcome = reproduce(spec.name, url=spec.storage, echo=reproduced.append)
    assert outcome.comparison.max_abs_difference == 0.0
    return trained, reproduced


def test_a_csv_classification_study_end_to_end(project: Path) -> None:
    spec_path = write_spec(
        project,
        "wine-csv",
        """\
        dataset = "wine.csv"
        target = "label"
        test_fraction = 0.2
        standardize = true
        hidden = [16]
        epochs = 6
        batch_size = 16
        optimizer = "adam"
        device = "cpu"
        """,
        """\
        [space.lr]
        low = 1e-5
        high = 0.05
        log = true
        """,
        study='metric = "dev_accuracy"\n',
    )
    trained, reproduced = end_to_end(project, spec_path)
    assert any("test accuracy" in line and "(36 examples)" in line for line in trained)
    assert "[standardization]" in (project / "best.toml").read_text()
    assert any("test accuracy" in line for line in reproduced)


def test_a_regression_study_end_to_end(project: Path) -> None:
    diabetes = load_diabetes()
    write_csv(project / "diabetes.csv", diabetes.data, diabetes.target, target="progression")
    spec_path = write_spec(
        project,
        "diabetes",
        """\
        dataset = "diabetes.csv"
        target = "progression"
        task = "regression"
        test_fraction = 0.2
        standardize = true
        model = "models.py:residual_mlp"
        epochs = 8
        batch_size = 32
        optimizer = "adam"
        device = "cpu"
        """,
        """\
        [space.lr]
        low = 1e-5
        high = 0.03
        log = true

        [space.model_args.width]
        choices = [16, 32]
        """,
        study='metric = "dev_rmse"\n',
    )
    trained, reproduced = end_to_end(project, spec_path)
    assert any("test RMSE" in line and "test R²" in line for line in trained)
    assert any("test RMSE" in line for line in reproduced)
    study = optuna.load_study(study_name="diabetes", storage=f"sqlite:///{project / 'study.db'}")
    best = study.best_trial
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert best.user_attrs["data"]["task"] == "regression"
    assert best.user_attrs["data"]["target_variance"] == pytest.approx(1.0)  # standardised
    assert best.user_attrs["model"]["ref"] == "models.py:residual_mlp"


# Bad input: one message naming the spec and the key; no study --------------------------------

NUMBERS = np.arange(40, dtype=float).reshape(20, 2)
BAD_BASE = {
    "dataset": "'wine.csv'",
    "target": "'label'",
    "model": "'models.py:residual_mlp'",
    "epochs": "2",
    "device": "'cpu'",
}
BAD_INPUTS = [
    ("model", "'no_such_module:build'", None, "train.model: model factory 'no_such_module:build'"),
    ("model", "'models.py:not_a_module'", None, "returned a str, not a torch.nn.Module"),
    ("model", "'models.py:wrong_width'", None, "train.model"),
    ("model", "'models.py:residual_mlpp'", None, "did you mean 'residual_mlp'"),
    ("dataset", "'nan.csv'", "nan", "train.dataset"),
    ("dataset", "'words.csv'", "words", "f1"),
    ("dataset", "'empty.csv'", "empty", "empty.csv"),
    ("dataset", "'fractional.csv'", "fractional", "whole numbers"),
    ("target", "'lable'", None, "did you mean 'label'"),
]


def bad_files(folder: Path, kind: str | None) -> None:
    labels = np.arange(20) % 2
    if kind == "nan":
        x = NUMBERS.copy()
        x[3, 0] = x[7, 1] = np.nan
        write_csv(folder / "nan.csv", x, labels)
    elif kind == "words":
        write_csv(folder / "words.csv", NUMBERS, labels)
        lines = (folder / "words.csv").read_text().splitlines()
        cells = lines[2].split(",")
        cells[1] = "seven"
        lines[2] = ",".join(cells)
        (folder / "words.csv").write_text("\n".join(lines) + "\n")
    elif kind == "empty":
        (folder / "empty.csv").write_text("")
    elif kind == "fractional":
        write_csv(folder / "fractional.csv", NUMBERS, labels + 0.5)


def bad_spec(project: Path, key: str, value: str) -> Path:
    train = "\n".join(f"{k} = {value if k == key else v}" for k, v in BAD_BASE.items())
    return write_spec(project, "bad", train + "\n", "[space.lr]\nlow = 0.001\nhigh = 0.1\n")


@pytest.mark.parametrize(("key", "value", "files", "message"), BAD_INPUTS)
def test_bad_code_or_data_is_refused_before_any_study_exists(
    project: Path, key: str, value: str, files: str | None, message: str
) -> None:
    bad_files(project, files)
    spec = bad_spec(project, key, value)
    with pytest.raises(studies.SpecError) as info:
        studies.run(spec, progress=False)
    assert f"invalid study spec {spec}" in str(info.value)
    reported = "model" if key == "model" else "dataset"  # a bad target is a data problem
    assert f"  - train.{reported}: " in str(info.value)
    assert message in str(info.value)
    assert study_names(project / "study.db") == []


def test_the_command_line_prints_bad_code_as_one_message(project: Path) -> None:
    spec = bad_spec(project, "model", "'no_such_module:build'")
    result = hpstudy("run", str(spec), cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"hpstudy run: error: invalid study spec {spec}:")
    assert "put no_such_module.py beside the spec or give its path" in result.stderr
    assert study_names(project / "study.db") == []
