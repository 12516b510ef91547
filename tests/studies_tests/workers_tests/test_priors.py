"""Priors: a new study starts from the best trials of earlier studies of the same task."""

from __future__ import annotations

import multiprocessing
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

import studies
from studies.cli import main
from studies.storage import TrialAttrs, open_storage
from studies.workers import WorkerOptions, prepare_study, run_worker
from studies.workers._priors import find_priors
from studies.workers._warm import warm_start_points

TrialState = optuna.trial.TrialState

SPACE = """
[space.lr]
low = 1e-4
high = 0.5
log = true

[space.optimizer]
choices = ["sgd", "adam"]

[space.momentum]
low = 0.0
high = 0.99
when = { optimizer = ["sgd"] }
"""


def write_spec(
    folder: Path,
    db: Path,
    *,
    name: str,
    dataset: str = "digits",
    space: str = SPACE,
    n_trials: int = 3,
    study: str = "",
) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
            [study]
            name = "{name}"
            storage = "sqlite:///{db}"
            n_trials = {n_trials}
            seed = 0
            sampler = {{ name = "random" }}
            pruner = {{ name = "none" }}
            """
        )
        + textwrap.dedent(study)
        + textwrap.dedent(
            f"""
            [train]
            dataset = "{dataset}"
            hidden = [16]
            epochs = 2
            dev_fraction = 0.2
            device = "cpu"
            """
        )
        + textwrap.dedent(space)
    )
    return path


def work(spec: studies.StudySpec) -> None:
    run_worker(spec.name, spec.storage, options=WorkerOptions(flush_interval=0))


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def earlier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding one finished digits study, "earlier", of three trials."""
    folder = tmp_path_factory.mktemp("earlier")
    spec = studies.spec_of(write_spec(folder, folder / "s.db", name="earlier"))
    prepare_study(spec, echo=quiet)
    work(spec)
    return folder


@pytest.fixture
def db(earlier: Path, tmp_path: Path) -> Path:
    """A copy of the database with the earlier study, for one test to add to."""
    for found in earlier.glob("s.db*"):
        shutil.copy(found, tmp_path / found.name)
    return tmp_path / "s.db"


def best_first(name: str, db: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    return sorted(done, key=lambda t: t.value)


def waiting(name: str, db: Path) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    return study.get_trials(states=(TrialState.WAITING,))


def test_a_new_study_starts_from_the_earlier_studys_best_trials(db: Path) -> None:
    spec = studies.spec_of(write_spec(db.parent, db, name="new", n_trials=3))
    said: list[str] = []
    prepare_study(spec, echo=said.append)
    assert any(line.startswith("priors: 3 configuration(s)") for line in said)
    work(spec)
    best = best_first("earlier", db)
    new = optuna.load_study(study_name="new", storage=spec.storage).trials
    assert [t.params for t in new] == [t.params for t in best]
    assert [TrialAttrs.of(t).prior for t in new] == [
        {"study": "earlier", "trial": t.number} for t in best
    ]


def test_only_what_is_valid_in_the_new_space_carries_over(db: Path) -> None:
    space = SPACE.replace("low = 1e-4\nhigh = 0.5", "low = 1e-4\nhigh = 0.02") + (
        "\n[space.dropout]\nlow = 0.0\nhigh = 0.5\n"
    )
    spec = studies.spec_of(write_spec(db.parent, db, name="new", space=space, n_trials=5))
    priors = find_priors(spec, open_storage(spec.storage), limit=3)
    assert priors, "the earlier study's optimizers are valid here"
    for prior in priors:
        earlier = next(t for t in best_first("earlier", db) if t.number == prior.trial)
        assert "dropout" not in prior.values  # not searched before: the sampler draws it
        assert prior.values["optimizer"] == earlier.params["optimizer"]
        assert ("lr" in prior.values) == (earlier.params["lr"] <= 0.02)


def test_priors_false_turns_them_off(db: Path) -> None:
    spec = studies.spec_of(write_spec(db.parent, db, name="new", study="priors = false\n"))
    prepare_study(spec, echo=quiet)
    assert waiting("new", db) == []
    spec = studies.spec_of(write_spec(db.parent, db, name="other"), priors=False)
    prepare_study(spec, echo=quiet)
    assert waiting("other", db) == []


def test_a_space_without_a_common_parameter_gets_none(db: Path) -> None:
    space = "[space.dropout]\nlow = 0.0\nhigh = 0.5\n"
    spec = studies.spec_of(write_spec(db.parent, db, name="new", space=space))
    prepare_study(spec, echo=quiet)
    assert waiting("new", db) == []


def test_a_study_of_another_data_set_gets_none(db: Path) -> None:
    spec = studies.spec_of(write_spec(db.parent, db, name="new", dataset="mnist"))
    prepare_study(spec, echo=quiet)
    assert waiting("new", db) == []


def test_a_data_file_counts_by_its_content_not_its_name(db: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 8)).astype(np.float32), rng.integers(0, 3, 120)
    np.savez(db.parent / "a.npz", x_train=x, y_train=y)
    old = studies.spec_of(write_spec(db.parent, db, name="on-a", dataset="a.npz"))
    prepare_study(old, echo=quiet)
    work(old)
    shutil.copy(db.parent / "a.npz", db.parent / "copy.npz")
    np.savez(db.parent / "b.npz", x_train=x + 1, y_train=y)
    same = studies.spec_of(write_spec(db.parent, db, name="on-copy", dataset="copy.npz"))
    other = studies.spec_of(write_spec(db.parent, db, name="on-b", dataset="b.npz"))
    storage = open_storage(same.storage)
    assert {p.study for p in find_priors(same, storage)} == {"on-a"}
    assert find_priors(other, storage) == []


def _prepare(path: str, barrier: Any) -> None:
    spec = studies.spec_of(path)
    barrier.wait()
    prepare_study(spec, echo=quiet)


@pytest.mark.slow
def test_runs_started_at_the_same_moment_enqueue_the_priors_once(db: Path) -> None:
    path = write_spec(db.parent, db, name="new", n_trials=10)
    prepare_study(studies.spec_of(path, priors=False), echo=quiet)  # it exists, without trials
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    runs = [context.Process(target=_prepare, args=(str(path), barrier)) for _ in range(4)]
    for process in runs:
        process.start()
    for process in runs:
        process.join(timeout=120)
        assert process.exitcode == 0
    assert len(waiting("new", db)) == 3


def test_a_resumed_study_gets_no_priors_again(db: Path) -> None:
    spec = studies.spec_of(write_spec(db.parent, db, name="new", n_trials=4))
    prepare_study(spec, echo=quiet)
    work(spec)
    prepare_study(spec.replace(n_trials=8), echo=quiet)  # resumed with a larger budget
    study = optuna.load_study(study_name="new", storage=spec.storage)
    assert waiting("new", db) == []
    assert sum(TrialAttrs.of(t).prior is not None for t in study.trials) == 3


def test_the_specs_own_points_go_first_and_the_budget_caps_the_priors(db: Path) -> None:
    enqueue = 'enqueue = [{ lr = 0.01, optimizer = "adam" }]\n'
    spec = studies.spec_of(write_spec(db.parent, db, name="new", n_trials=3, study=enqueue))
    prepare_study(spec, echo=quiet, points=warm_start_points(spec))
    queued = waiting("new", db)
    assert "study.enqueue[0]" in str(TrialAttrs.of(queued[0]).warm_start)
    assert len(queued) == 3  # the point, then two priors: the budget is three trials
    assert all(TrialAttrs.of(t).prior is not None for t in queued[1:])


def test_hpstudy_trials_shows_where_each_trial_came_from(db: Path, capsys: Any) -> None:
    spec = studies.spec_of(write_spec(db.parent, db, name="new", n_trials=4))
    prepare_study(spec, echo=quiet)
    work(spec)
    capsys.readouterr()
    assert main(["trials", "new", "--storage", spec.storage]) == 0
    shown = capsys.readouterr().out
    assert "from" in shown
    best = best_first("earlier", db)[0]
    assert f"study earlier #{best.number}" in shown
