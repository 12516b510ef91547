"""Whole studies of a script's own factory and arrays, through real worker processes.

A script defines its factory in `__main__` and holds digits in arrays; `studies.run` with two
workers, an export and `studies.train` run in it as a user runs them. Then a fresh process
(`hpstudy train` from another folder) finds the function in the study, and a worker that cannot
load a function says why and runs nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

import studies
from studies.kept import keep_inline, name_kept
from studies.storage import WORKER_ATTR, create_or_resume, open_storage

pytestmark = pytest.mark.slow  # worker processes

SCRIPT = """\
import json
import sys

import numpy as np
from sklearn.datasets import load_digits
from torch import nn

import studies

HIDDEN = 32  # a global the factory reads: pickled with it


def build(input_shape, num_classes, dropout=0.0):
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(int(np.prod(input_shape)), HIDDEN),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(HIDDEN, num_classes),
    )


if __name__ == "__main__":
    ray = sys.argv[1:] == ["--ray"]  # the workers as Ray tasks on a local Ray
    name = "script-ray" if ray else "script"
    digits = load_digits()
    x, y = digits.data.astype(np.float32) / 16.0, digits.target
    spec = {
        "study": {"name": name, "n_trials": 4, "seed": 0, "pruner": "none"},
        "train": {"epochs": 3, "batch_size": 64, "test_fraction": 0.2},
        "space": {
            "lr": {"low": 0.01, "high": 0.3, "log": True},
            "dropout": {"low": 0.0, "high": 0.3},
        },
    }
    study = studies.run(
        spec, model=build, data=(x, y), workers=2, storage="sqlite:///study.db", ray=ray or None
    )
    path = studies.export(name, storage="sqlite:///study.db", output=f"{name}.toml")
    result, scores = studies.train(path, test=True, echo=lambda line: None)
    print(json.dumps({"best": study.best_value, "retrained": result.best.dev_loss, **scores}))
"""


def python(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "HPSTUDY_THREADS": "1"},
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def script_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The script's folder after it ran, and what it printed last."""
    folder = tmp_path_factory.mktemp("script")
    (folder / "study_script.py").write_text(SCRIPT)
    done = python("study_script.py", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder, json.loads(done.stdout.strip().splitlines()[-1])


def test_a_main_factory_on_arrays_runs_a_two_worker_study(
    script_run: tuple[Path, dict[str, Any]],
) -> None:
    folder, _ = script_run
    study = studies.load("script", storage=f"sqlite:///{folder / 'study.db'}")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 4
    assert len({trial.system_attrs[WORKER_ATTR] for trial in complete}) == 2


def test_the_export_names_the_function_its_source_and_hash(
    script_run: tuple[Path, dict[str, Any]],
) -> None:
    folder, _ = script_run
    exported = tomllib.loads((folder / "script.toml").read_text())
    model = exported["provenance"]["model"]
    assert (model["name"], model["module"]) == ("build", "__main__")
    assert model["code"].startswith("def build(input_shape, num_classes, dropout=0.0):")
    assert exported["train"]["model"] == f"study:model@{model['sha256'][:16]}"
    assert exported["provenance"]["data"]["dataset"].startswith("study:data@")


def test_the_script_retrains_its_export_to_the_trials_numbers(
    script_run: tuple[Path, dict[str, Any]],
) -> None:
    _, printed = script_run
    assert printed["retrained"] == pytest.approx(printed["best"], abs=1e-6)
    assert 0.0 <= printed["test_accuracy"] <= 1.0


def test_hpstudy_train_elsewhere_loads_the_function_from_the_study(
    script_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    folder, printed = script_run
    env_free = {k: v for k, v in os.environ.items() if k != "HPSTUDY_STORAGE"}
    done = subprocess.run(
        [sys.executable, "-m", "studies", "train", str(folder / "script.toml")],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the study's folder: its relative sqlite URL resolves there anyway
        env={**env_free, "HPSTUDY_THREADS": "1"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"dev loss {printed['best']:.4f}" in done.stdout


def test_hpstudy_reproduce_loads_the_function_from_the_study(
    script_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    folder, _ = script_run
    url = f"sqlite:///{folder / 'study.db'}"
    done = python("-m", "studies", "reproduce", "script", "--storage", url, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": reproduced" in done.stdout


def test_ray_tasks_load_the_main_factory_from_the_study(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    (tmp_path / "study_script.py").write_text(SCRIPT)
    done = python("study_script.py", "--ray", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    study = studies.load("script-ray", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4


def test_a_worker_that_cannot_load_the_function_says_why_and_runs_no_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (here / "lab_models.py").write_text(
        textwrap.dedent(
            """\
            from torch import nn

            def build(input_shape, num_classes):
                return nn.Linear(input_shape[0], num_classes)
            """
        )
    )
    monkeypatch.syspath_prepend(str(here))
    import lab_models  # type: ignore[import-not-found]

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(60, 4)).astype(np.float32), np.arange(60) % 3)
    spec = studies.spec_of(
        name_kept(
            {
                "study": {"name": "lab", "n_trials": 2, "storage": url},
                "train": {"epochs": 1},
                "space": {"lr": {"low": 0.01, "high": 0.1}},
            },
            model=True,
            data=True,
        )
    )
    spec = keep_inline(spec, model=lab_models.build, data=data)  # pickled by reference
    create_or_resume(spec, open_storage(url))
    done = python("-m", "studies", "worker", "lab", "--storage", url, cwd=elsewhere)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "model factory 'build' (module lab_models) kept in the study cannot be loaded" in said
    assert "install module 'lab_models' here" in said
    assert "Traceback" not in said
    assert studies.load("lab", storage=url).trials == []


def test_when_no_worker_can_load_the_function_the_run_says_what_they_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (here / "lab_models_run.py").write_text(
        "from torch import nn\n\n"
        "def build(input_shape, num_classes):\n"
        "    return nn.Linear(input_shape[0], num_classes)\n"
    )
    monkeypatch.syspath_prepend(str(here))  # this process only: the workers lack the module
    monkeypatch.chdir(elsewhere)
    import lab_models_run  # type: ignore[import-not-found]

    rng = np.random.default_rng(0)
    data = (rng.normal(size=(60, 4)).astype(np.float32), np.arange(60) % 3)
    spec = {
        "study": {"name": "lab-run", "n_trials": 2, "storage": f"sqlite:///{tmp_path / 'r.db'}"},
        "train": {"epochs": 1},
        "space": {"lr": {"low": 0.01, "high": 0.1}},
    }
    with pytest.raises(studies.UserError) as caught:
        studies.run(spec, model=lab_models_run.build, data=data, workers=2, progress=False)
    said = str(caught.value)
    assert said.startswith("every worker failed")
    assert "workers 0, 1: the model factory 'build' (module lab_models_run)" in said
    assert "install module 'lab_models_run' here" in said
