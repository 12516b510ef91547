"""The examples run as their READMEs say: from another folder, then export, train and reproduce.

Each run is real training on a small budget set from the command line (`--n-trials`, `--set`);
the study database lives in a temporary folder, and an example that writes files (make_data.py
writes its CSV beside itself) is copied there first, so the repository stays as it is.
"""

from __future__ import annotations

import csv
import dataclasses
import inspect
import itertools
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

import studies
from trainer import has_mnist, load_factory

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SPECS = sorted(EXAMPLES.glob("*/*.toml"))
LENET5 = EXAMPLES / "lenet5" / "lenet5.toml"
MNIST_DIR = REPO / "data"  # where `make run` fetched MNIST
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
SMALL = ("--n-trials", "2", "--set", "epochs=1", "--set", "train_size=500")


def run_python(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python ARGV...` in `cwd`, on one torch thread (two crawl on a busy 2-core machine)."""
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "HPSTUDY_THREADS": "1"},
        cwd=cwd,
        timeout=300,
        check=False,
    )


def hpstudy(*argv: str, cwd: Path) -> str:
    """`hpstudy ARGV...` in `cwd`; its output, after checking that it succeeded."""
    done = run_python("-m", "studies", *argv, cwd=cwd)
    assert done.returncode == 0, f"hpstudy {' '.join(argv)} failed:\n{done.stdout}{done.stderr}"
    return done.stdout


def copy_example(name: str, into: Path) -> Path:
    """A copy of `examples/<name>` inside `into`, without what a run may have left there."""
    left = shutil.ignore_patterns("*.db*", "*.csv", "hpstudy-logs", "best.*", "__pycache__")
    return Path(shutil.copytree(EXAMPLES / name, into / name, ignore=left))


def make_data(example: Path, cwd: Path) -> Path:
    """Runs the example's make_data.py from `cwd`; the CSV it writes beside itself."""
    done = run_python(str(example / "make_data.py"), cwd=cwd)
    assert done.returncode == 0, done.stderr
    return example / "diabetes.csv"


def score(name: str, output: str) -> float:
    """The number after e.g. "test RMSE" in `train --test` or `reproduce` output."""
    found = re.search(rf"{name} (-?[\d.]+(?:e-?\d+)?)", output)
    assert found, f"no '{name}' in:\n{output}"
    return float(found.group(1))


@dataclasses.dataclass(frozen=True)
class Run:
    """A study run from `cwd` (not the example's folder) into `storage`."""

    cwd: Path
    storage: str
    name: str

    def study(self) -> optuna.Study:
        return studies.load(self.name, storage=self.storage)


# --- every example ---------------------------------------------------------------------------


def test_there_are_examples() -> None:
    assert {path.parent.name for path in SPECS} >= {"lenet5", "regression-csv"}


def ready_copy(path: Path, into: Path) -> Path:
    """The spec's path in a copy of its example, with the data its make_data.py writes."""
    example = copy_example(path.parent.name, into)
    if (example / "make_data.py").is_file():
        make_data(example, cwd=into)
    return example / path.name


@pytest.mark.parametrize("path", SPECS, ids=lambda path: path.parent.name)
def test_spec_loads_with_its_model_beside_it(path: Path, tmp_path: Path) -> None:
    copy = ready_copy(path, tmp_path)
    spec = studies.load_spec(str(copy))
    assert Path(spec.folder) == copy.parent  # relative paths resolve beside the spec
    file, _, function = spec.train.model.partition(":")
    assert (copy.parent / file).is_file() and function
    assert any(name.startswith("model_args.") for name in spec.space.names)


@pytest.mark.parametrize("path", SPECS, ids=lambda path: path.parent.name)
def test_every_searched_model_arg_is_a_factory_parameter(path: Path, tmp_path: Path) -> None:
    spec = studies.load_spec(str(ready_copy(path, tmp_path)))
    factory = load_factory(spec.train.model, search_path=spec.search_path)
    parameters = inspect.signature(factory.function).parameters
    searched = [name.partition(".")[2] for name in spec.space.names if "." in name]
    assert searched and all(name in parameters for name in searched)
    assert all(name in parameters for name in spec.train.model_args)


# --- lenet5 ----------------------------------------------------------------------------------


def choices(spec: studies.StudySpec, name: str) -> list[object]:
    return list(getattr(spec.space[name], "choices", []))


def test_lenet5_builds_every_searched_architecture_for_mnist() -> None:
    spec = studies.load_spec(str(LENET5))
    factory = load_factory(spec.train.model, search_path=spec.search_path).function
    combos = itertools.product(
        choices(spec, "model_args.channels"),
        choices(spec, "model_args.hidden"),
        choices(spec, "model_args.pool"),
        choices(spec, "activation"),
    )
    for channels, hidden, pool, activation in combos:
        for batch_norm in (False, True):
            model = factory(
                input_shape=(1, 28, 28),
                num_classes=10,
                channels=channels,
                hidden=hidden,
                pool=pool,
                activation=activation,
                dropout=0.2,
                batch_norm=batch_norm,
            )
            assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_lenet5_is_the_classic_network_at_its_defaults() -> None:
    spec = studies.load_spec(str(LENET5))
    factory = load_factory(spec.train.model, search_path=spec.search_path).function
    model = factory(input_shape=(1, 28, 28), num_classes=10, **spec.train.model_args)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(6, (5, 5)), (16, (5, 5))]
    assert [(f.in_features, f.out_features) for f in linears] == [(400, 120), (120, 84), (84, 10)]
    assert sum(p.numel() for p in model.parameters()) == 61_706


@pytest.fixture(scope="module")
def lenet5_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    if not has_mnist(MNIST_DIR):
        pytest.skip(
            f"MNIST is not in {MNIST_DIR}; `make run` or `hpstudy fetch mnist` puts it there"
        )
    cwd = tmp_path_factory.mktemp("lenet5-elsewhere")
    storage, name = f"sqlite:///{cwd / 'x.db'}", "lenet5-test"
    where = ["--storage", storage, "--name", name, "--set", f"data_dir={MNIST_DIR}"]
    hpstudy("run", str(LENET5), *SMALL, *where, cwd=cwd)
    return Run(cwd, storage, name)


@pytest.mark.slow  # worker processes training the example
def test_lenet5_study_runs_from_another_folder(lenet5_run: Run) -> None:
    trials = lenet5_run.study().trials
    assert [t.state in FINISHED for t in trials] == [True, True]
    assert all("model_args.channels" in t.params for t in trials)
    assert not list(lenet5_run.cwd.glob("*.py"))  # the model came from the example's folder


@pytest.mark.slow  # worker processes training the example
def test_lenet5_searches_the_head_only_for_wider_convs(lenet5_run: Run) -> None:
    for trial in lenet5_run.study().trials:
        wide = trial.params["model_args.channels"] != "6-16"
        assert ("model_args.hidden" in trial.params) == wide
        assert ("momentum" in trial.params) == (trial.params["optimizer"] == "sgd")


@pytest.mark.slow  # worker processes training the example
def test_lenet5_export_trains_again_and_reports_test_accuracy(lenet5_run: Run) -> None:
    run = lenet5_run
    hpstudy("export", run.name, "--storage", run.storage, "-o", "best.toml", cwd=run.cwd)
    output = hpstudy("train", "best.toml", "--test", cwd=run.cwd)
    assert 0.0 <= score("test accuracy", output) <= 100.0
    assert "(10000 examples)" in output  # MNIST's own test set


# --- regression-csv --------------------------------------------------------------------------


def test_make_data_writes_the_csv_beside_itself(tmp_path: Path) -> None:
    example = copy_example("regression-csv", tmp_path)
    path = make_data(example, cwd=tmp_path)
    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    assert len(rows[0]) == 11 and rows[0][-1] == "progression"
    assert len(rows) == 1 + 442
    ages = [float(row[0]) for row in rows[1:]]
    assert min(ages) >= 19 and max(ages) <= 79  # raw units, not scikit-learn's scaled ones


@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("diabetes")
    example = copy_example("regression-csv", root)
    cwd = root / "elsewhere"
    cwd.mkdir()
    make_data(example, cwd=cwd)
    storage, name = f"sqlite:///{cwd / 'x.db'}", "diabetes-test"
    where = ["--storage", storage, "--name", name]
    small = ["--n-trials", "2", "--set", "epochs=5"]
    hpstudy("run", str(example / "diabetes.toml"), *small, *where, cwd=cwd)
    return Run(cwd, storage, name)


@pytest.mark.slow  # worker processes training the example
def test_diabetes_study_runs_from_another_folder(diabetes_run: Run) -> None:
    trials = diabetes_run.study().trials
    assert [t.state in FINISHED for t in trials] == [True, True]
    assert all({"model_args.width", "model_args.depth"} <= t.params.keys() for t in trials)
    assert not list(diabetes_run.cwd.glob("*.csv"))  # the CSV came from beside the spec


@pytest.mark.slow  # worker processes training the example
def test_diabetes_export_trains_again_with_rmse_in_the_targets_units(diabetes_run: Run) -> None:
    run = diabetes_run
    hpstudy("export", run.name, "--storage", run.storage, "-o", "best.toml", cwd=run.cwd)
    output = hpstudy("train", "best.toml", "--test", cwd=run.cwd)
    # Standardised targets would give an RMSE near 1; progression spans 25..346.
    assert 20.0 < score("test RMSE", output) < 200.0
    assert math.isfinite(score("test R²", output))
    assert "(88 examples)" in output  # test_fraction 0.2 of 442 patients


@pytest.mark.slow  # worker processes training the example
def test_diabetes_best_trial_reproduces_exactly(diabetes_run: Run) -> None:
    run = diabetes_run
    output = hpstudy("reproduce", run.name, "--storage", run.storage, cwd=run.cwd)
    assert "max abs difference 0;" in output and "NOT reproduced" not in output
    assert math.isfinite(score("test RMSE", output))


@pytest.mark.slow  # worker processes training the example
def test_python_api_runs_the_regression_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = copy_example("regression-csv", tmp_path)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    make_data(example, cwd=cwd)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HPSTUDY_THREADS", "1")
    url = f"sqlite:///{cwd / 'api.db'}"
    study = studies.run(
        example / "diabetes.toml", n_trials=2, storage=url, name="diabetes-api", progress=False
    )
    assert [t.state in FINISHED for t in study.trials] == [True, True]
    assert study.best_value > 0  # a dev RMSE
    path = studies.export("diabetes-api", storage=url, output=cwd / "best.toml")
    _, scores = studies.train(path, test=True, echo=lambda _line: None)
    assert {"test_rmse", "test_r2"} <= scores.keys()
