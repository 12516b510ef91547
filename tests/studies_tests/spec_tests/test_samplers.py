"""Every sampler and pruner of the registries builds from a spec entry and runs a study."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import optuna
import pytest

from search_space import SearchSpace, suggest
from studies import PRUNERS, SAMPLERS
from studies.spec import make_pruner, make_sampler

# Int and categorical only, so that the grid sampler can take it too.
SPACE = SearchSpace.from_dict(
    {"batch_size": {"low": 16, "high": 64, "step": 16}, "optimizer": {"choices": ["sgd", "adam"]}}
)
PRUNER_ARGUMENTS: dict[str, dict[str, Any]] = {"percentile": {"percentile": 25.0}}


def objective(trial: optuna.Trial) -> float:
    params = suggest(trial, SPACE)
    value = params["batch_size"] / 64 + (params["optimizer"] == "sgd")
    for step in range(3):
        trial.report(value + 1 / (step + 1), step)
        if trial.should_prune():
            raise optuna.TrialPruned
    return value


@pytest.fixture(autouse=True)
def quiet_optuna() -> Iterator[None]:
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.filterwarnings("ignore:.*CmaEsSampler.*:UserWarning")  # categorical fallback
@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_each_sampler_runs_a_study(name: str) -> None:
    study = optuna.create_study(sampler=make_sampler({"name": name}, seed=0, space=SPACE))
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all(16 <= t.params["batch_size"] <= 64 for t in study.trials)


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_each_pruner_runs_a_study(name: str) -> None:
    pruner = make_pruner({"name": name, **PRUNER_ARGUMENTS.get(name, {})})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), pruner=pruner)
    study.optimize(objective, n_trials=2)
    assert len(study.trials) == 2
    assert all(t.state.is_finished() for t in study.trials)


def test_spec_arguments_reach_the_pruner() -> None:
    pruner = make_pruner({"name": "median", "n_startup_trials": 7, "n_warmup_steps": 2})
    study = optuna.create_study(pruner=pruner)
    for value in (1.0, 1.0, 1.0):
        study.add_trial(optuna.trial.create_trial(value=value, intermediate_values={0: value}))
    trial = study.ask()
    trial.report(100.0, 2)
    assert not trial.should_prune()  # 3 finished trials are fewer than n_startup_trials = 7


def test_the_same_seed_samples_the_same_points() -> None:
    def points(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=make_sampler({"name": "tpe"}, seed=seed, space=SPACE))
        study.optimize(objective, n_trials=4)
        return [t.params for t in study.trials]

    assert points(5) == points(5)


def test_hpstudys_own_sampler_defaults_raise_no_experimental_warning() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_sampler({"name": "tpe"}, seed=0, space=SPACE)
    assert [str(w.message) for w in caught] == []


def test_an_experimental_sampler_the_user_picks_still_says_so() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_sampler({"name": "qmc"}, seed=0, space=SPACE)
    assert any(issubclass(w.category, optuna.exceptions.ExperimentalWarning) for w in caught)


def test_a_grid_study_is_told_every_point_with_ask_and_tell() -> None:
    # hpstudy's workers ask and tell themselves; Optuna's grid sampler would call study.stop()
    # there when the grid runs out, which raises outside study.optimize.
    study = optuna.create_study(
        sampler=make_sampler({"name": "grid"}, seed=0, space=SPACE),
        pruner=make_pruner({"name": "none"}),
    )
    for _ in range(8):  # the grid's 4 batch sizes x 2 optimizers
        trial = study.ask()
        study.tell(trial, objective(trial))
    points = {(t.params["batch_size"], t.params["optimizer"]) for t in study.trials}
    assert len(points) == 8
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


STEPS = 12  # Hyperband's most patient bracket decides first after step 9


def learning(trial: optuna.Trial) -> float:
    """A trial that learns: its dev loss falls from 1.0 towards 0.1."""
    for step in range(STEPS):
        trial.report(0.1 + 0.9 / (step + 1), step)
        if trial.should_prune():
            raise optuna.TrialPruned
    return 0.1 + 0.9 / STEPS


@pytest.mark.parametrize("name", sorted(set(PRUNERS) - {"none"}))
def test_each_pruner_stops_a_hopeless_trial(name: str) -> None:
    pruner = make_pruner({"name": name, **PRUNER_ARGUMENTS.get(name, {})})
    # Hyperband puts a trial in a bracket by a hash of the study's name: a fixed name keeps
    # the test deterministic. A bracket's first trial is never pruned (nothing to compare
    # with), so every bracket gets learning trials first; each then stops a hopeless one by
    # step 9.
    study = optuna.create_study(
        study_name="hopeless", sampler=optuna.samplers.RandomSampler(seed=0), pruner=pruner
    )
    study.optimize(learning, n_trials=12)
    hopeless = study.ask()  # its loss never moves from where the others started
    stopped_at = None
    for step in range(STEPS):
        hopeless.report(2.0, step)
        if hopeless.should_prune():
            stopped_at = step
            break
    assert stopped_at is not None, f"{name} let a hopeless trial run all {STEPS} epochs"
    assert stopped_at < STEPS - 1


def test_the_none_pruner_stops_nothing() -> None:
    study = optuna.create_study(pruner=make_pruner({"name": "none"}))
    study.optimize(learning, n_trials=3)
    hopeless = study.ask()
    for step in range(STEPS):
        hopeless.report(2.0, step)
        assert not hopeless.should_prune()


@pytest.mark.parametrize("spec", ["digits-mlp", "mnist-mlp", "mnist-cnn"])
def test_a_built_in_spec_stops_a_hopeless_second_trial_at_its_first_rung(spec: str) -> None:
    from studies import load_spec

    built_in = load_spec(spec)
    study = optuna.create_study(pruner=make_pruner(built_in.pruner))
    study.optimize(learning, n_trials=1)  # one finished trial, nothing else yet
    hopeless = study.ask()
    pruned = []
    for step in range(3):
        hopeless.report(2.0, step)
        pruned.append(hopeless.should_prune())
    assert any(pruned), f"{spec}'s pruner waited past epoch 2 with one trial to compare to"
