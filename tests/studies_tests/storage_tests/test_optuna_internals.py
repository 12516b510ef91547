"""The private Optuna calls of the worker storage, each checked against `RDBStorage` itself.

These fail loudly when an Optuna release changes a call `studies/storage/_optuna.py` makes:
each result is compared with what Optuna's public API stores or reads for the same thing.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError

import studies
from studies.storage import _optuna as internals
from studies.storage import open_storage

TrialState = optuna.trial.TrialState
STUDIES = Path(studies.__file__).parent


@pytest.fixture
def rdb(tmp_path: Path) -> optuna.storages.RDBStorage:
    return open_storage(f"sqlite:///{tmp_path / 'internals.db'}")


def new_trial(rdb: optuna.storages.RDBStorage, state: TrialState = TrialState.RUNNING) -> int:
    study_id = rdb.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    return rdb.create_new_trial(study_id, optuna.trial.create_trial(state=state))


def test_this_optuna_is_in_the_supported_range() -> None:
    internals.check_optuna()


def test_an_optuna_outside_the_range_is_refused_with_the_range() -> None:
    with pytest.raises(RuntimeError, match=r"Optuna >= \d+\.\d+, < 6\.0; this is Optuna 6\.1"):
        internals.check_optuna("6.1.0")
    with pytest.raises(RuntimeError, match=r"this is Optuna 3\.6"):
        internals.check_optuna("3.6.1")


def test_set_trial_state_finishes_a_trial_as_the_public_setter_does(
    rdb: optuna.storages.RDBStorage, tmp_path: Path
) -> None:
    ours = new_trial(rdb)
    changed, study_id = internals.set_trial_state(rdb, ours, TrialState.COMPLETE, [0.25])
    reference = open_storage(f"sqlite:///{tmp_path / 'reference.db'}")
    theirs = new_trial(reference)
    reference.set_trial_state_values(theirs, TrialState.COMPLETE, [0.25])
    a, b = rdb.get_trial(ours), reference.get_trial(theirs)
    assert (changed, study_id) == (True, 1)
    assert (a.state, a.values) == (b.state, b.values) == (TrialState.COMPLETE, [0.25])
    assert a.datetime_complete is not None
    assert abs((a.datetime_complete - b.datetime_complete).total_seconds()) < 60  # same clock


def test_set_trial_state_takes_a_waiting_trial_once(rdb: optuna.storages.RDBStorage) -> None:
    trial_id = new_trial(rdb, TrialState.WAITING)
    assert internals.set_trial_state(rdb, trial_id, TrialState.RUNNING)[0]
    assert not internals.set_trial_state(rdb, trial_id, TrialState.RUNNING)[0]
    started = rdb.get_trial(trial_id).datetime_start
    assert started is not None
    assert abs((started - started.now()).total_seconds()) < 60  # local time, as Optuna's


def test_set_trial_state_refuses_finished_and_unknown_trials(
    rdb: optuna.storages.RDBStorage,
) -> None:
    trial_id = new_trial(rdb, TrialState.PRUNED)
    with pytest.raises(UpdateFinishedTrialError):
        internals.set_trial_state(rdb, trial_id, TrialState.FAIL)
    with pytest.raises(KeyError):
        internals.set_trial_state(rdb, trial_id + 1, TrialState.FAIL)


def test_write_trial_batch_stores_what_the_public_setters_store(
    rdb: optuna.storages.RDBStorage,
) -> None:
    trial_id = new_trial(rdb)
    internals.write_trial_batch(
        rdb, trial_id, {0: 0.5, 1: math.inf, 2: math.nan}, {"note": {"a": [1, 2]}}
    )
    trial = rdb.get_trial(trial_id)
    assert trial.intermediate_values[0] == 0.5
    assert trial.intermediate_values[1] == math.inf
    assert math.isnan(trial.intermediate_values[2])
    assert trial.user_attrs == {"note": {"a": [1, 2]}}
    rdb.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
    with pytest.raises(UpdateFinishedTrialError):
        internals.write_trial_batch(rdb, trial_id, {3: 0.1}, {})


def test_read_trials_reads_new_and_unfinished_trials_only(
    rdb: optuna.storages.RDBStorage,
) -> None:
    study_id = rdb.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    done = rdb.create_new_trial(study_id, optuna.trial.create_trial(value=1.0))
    running = rdb.create_new_trial(study_id)
    newer = rdb.create_new_trial(study_id)
    read = internals.read_trials(rdb, study_id, unfinished={running}, after=newer - 1)
    assert [t._trial_id for t in read] == [running, newer]
    assert [t._trial_id for t in internals.read_trials(rdb, study_id, unfinished=(), after=-1)] == [
        done,
        running,
        newer,
    ]
    with pytest.raises(KeyError):
        internals.read_trials(rdb, study_id + 1, unfinished=(), after=-1)


def test_create_trial_returns_the_trial_as_stored(rdb: optuna.storages.RDBStorage) -> None:
    study_id = rdb.create_new_study([optuna.study.StudyDirection.MINIMIZE], "s")
    template = optuna.trial.create_trial(
        state=TrialState.WAITING,
        params={"x": 0.5},
        distributions={"x": optuna.distributions.FloatDistribution(0, 1)},
        user_attrs={"u": 1},
    )
    created = internals.create_trial(rdb, study_id, template)
    assert created == rdb.get_trial(created._trial_id)
    assert internals.trial_study_id(rdb, created._trial_id) == study_id
    with pytest.raises(KeyError):
        internals.trial_study_id(rdb, created._trial_id + 1)


def test_the_artifact_metadata_prefix_is_optunas() -> None:
    from optuna.artifacts import _upload

    assert internals.ARTIFACT_META_PREFIX == _upload.ARTIFACTS_ATTR_PREFIX


def test_constraint_values_read_back_as_optuna_s_constraints(
    rdb: optuna.storages.RDBStorage,
) -> None:
    study = optuna.create_study(storage=rdb, directions=["maximize", "minimize"])
    study_id = rdb.get_study_id_from_name(study.study_name)
    for values, constraint in (([0.9, 100.0], 50.0), ([0.8, 10.0], -40.0)):
        trial = study.ask()
        trial_id = rdb.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        internals.set_constraint_values(rdb, trial_id, [constraint])
        study.tell(trial, values)
    assert [t.constraints for t in study.trials] == [{"0": 50.0}, {"0": -40.0}]
    assert [t.number for t in study.best_trials] == [1]  # the infeasible trial 0 is left out


def _private_optuna_imports(path: Path) -> list[str]:
    """The private Optuna modules (`optuna.storages._rdb`, ...) that a file imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [
            f"line {node.lineno}: {name}"
            for name in names
            if name.split(".")[0] == "optuna" and any(p.startswith("_") for p in name.split("."))
        ]
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in STUDIES.rglob("*.py") if p != Path(internals.__file__)),
    ids=lambda p: str(p.relative_to(STUDIES)),
)
def test_private_optuna_is_imported_by_the_internals_module_only(path: Path) -> None:
    assert not _private_optuna_imports(path), "import it through studies/storage/_optuna.py"


def test_the_internals_module_is_seen_importing_private_optuna() -> None:
    assert "optuna.storages._rdb" in str(_private_optuna_imports(Path(internals.__file__)))
