from __future__ import annotations

import itertools
import tomllib
from typing import Any

import optuna
import pytest

from search_space import Categorical, Fixed, Float, Int, SearchSpace, SpaceError, suggest

SPEC = """
[space.lr]
low = 1e-4
high = 1.0
log = true

[space.momentum]
low = 0.0
high = 0.99
when = { optimizer = ["sgd", "rmsprop"] }

[space.optimizer]
choices = ["sgd", "adam", "rmsprop"]

[space.hidden]
choices = [[300, 100], [500, 300]]

[space.step_size]
low = 2
high = 10
step = 2
when = { schedule = ["step"] }

[space.schedule]
choices = ["constant", "step"]

[space.batch_norm]
value = true
"""


def _space(fields: tuple[str, ...]) -> SearchSpace:
    return SearchSpace.from_dict(tomllib.loads(SPEC)["space"], fields=fields)


def test_toml_spec_reads_into_parameters(fields: tuple[str, ...]) -> None:
    space = _space(fields)
    assert space["lr"] == Float(1e-4, 1.0, log=True)
    assert space["momentum"] == Float(0.0, 0.99, when={"optimizer": ["sgd", "rmsprop"]})
    assert space["hidden"] == Categorical([[300, 100], [500, 300]])
    assert space["step_size"] == Int(2, 10, step=2, when={"schedule": ["step"]})
    assert space["batch_norm"] == Fixed(True)


def test_to_dict_round_trips(fields: tuple[str, ...]) -> None:
    space = _space(fields)
    assert SearchSpace.from_dict(space.to_dict(), fields=fields) == space


def test_names_put_conditions_after_what_they_name(fields: tuple[str, ...]) -> None:
    names = _space(fields).names
    assert names.index("optimizer") < names.index("momentum")
    assert names.index("schedule") < names.index("step_size")


def test_names_otherwise_keep_the_declared_order(fields: tuple[str, ...]) -> None:
    names = _space(fields).names
    assert names == ("lr", "optimizer", "momentum", "hidden", "schedule", "step_size", "batch_norm")


def test_is_a_mapping_of_parameters(fields: tuple[str, ...]) -> None:
    space = _space(fields)
    assert len(space) == 7
    assert list(space) == list(space.names)
    assert dict(space.items())["lr"] == Float(1e-4, 1.0, log=True)
    assert "lr" in space and "dropout" not in space


# Each case: a [space] table with one problem, and the line the error must hold.
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"lr": {"low": 1.0, "high": 0.001}}, "space.lr: low (1.0) must be below high (0.001)"),
    ({"lr": {"low": 0.0, "high": 1.0, "log": True}}, "space.lr: a log range must have low > 0"),
    ({"init": {"choices": []}}, "space.init: choices is empty"),
    (
        {"lrr": {"low": 0.1, "high": 1.0}},
        "space.lrr: 'lrr' is not a TrainConfig field (did you mean 'lr'?)",
    ),
    (
        {"momentum": {"low": 0.0, "high": 0.9, "when": {"optimiser": ["sgd"]}}},
        "space.momentum.when: condition on unknown parameter 'optimiser'"
        " (did you mean 'optimizer'?)",
    ),
    (
        {
            "optimizer": {"choices": ["sgd", "adam"]},
            "momentum": {"low": 0.0, "high": 0.9, "when": {"optimizer": ["sdg"]}},
        },
        "space.momentum.when.optimizer: 'sdg' is not a choice of 'optimizer' ('sgd', 'adam')",
    ),
    (
        {"lr": {"low": 0.1, "high": 1.0, "setp": 0.1}},
        "space.lr: unknown key 'setp' (did you mean 'step'?)",
    ),
    ({"lr": {"low": 0.1}}, "space.lr: missing key 'high'"),
    ({"lr": {"low": 0.1, "high": 1.0, "log": "yes"}}, "space.lr: log must be true or false"),
    ({"dropout": {"low": "0", "high": 0.5}}, "space.dropout: low must be a finite number, got '0'"),
    (
        {"epochs": {"type": "int", "low": 1.5, "high": 30}},
        "space.epochs: low must be a whole number, got 1.5",
    ),
    (
        {"batch_size": {"low": 16, "high": 100, "step": 32}},
        "space.batch_size: step (32) must divide high - low (84)",
    ),
    (
        {"dropout": {"low": 0.0, "high": 0.5, "step": 0.2}},
        "space.dropout: step (0.2) must divide high - low (0.5)",
    ),
    ({"lr": {"type": "flaot", "low": 0.1, "high": 1.0}}, "space.lr.type: 'flaot' is unknown"),
    ({"lr": {"choices": [0.1], "value": 0.1}}, "space.lr: cannot tell the type from both"),
    ({"lr": 0.1}, "space.lr: must be a table, got 0.1"),
    ({"init": {"choices": "he_normal"}}, "space.init: choices must be a list"),
    (
        {"momentum": {"low": 0.0, "high": 0.9, "when": {"optimizer": "sgd"}}},
        "space.momentum.when.optimizer: must be a list of values, got 'sgd'",
    ),
    (
        {
            "gamma": {"low": 0.1, "high": 0.9, "when": {"step_size": [5]}},
            "step_size": {"low": 1, "high": 9, "when": {"gamma": [0.5]}},
        },
        "space.gamma.when: conditions form a cycle: gamma -> step_size -> gamma",
    ),
]


@pytest.mark.parametrize(("data", "problem"), INVALID, ids=[p for _, p in INVALID])
def test_from_dict_reports_the_problem(
    data: dict[str, Any], problem: str, fields: tuple[str, ...]
) -> None:
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict(data, fields=fields)
    assert any(line.startswith(problem) for line in info.value.problems), info.value.problems


def test_every_problem_appears_in_one_error(fields: tuple[str, ...]) -> None:
    data = {**INVALID[0][0], **INVALID[2][0], **INVALID[3][0], **INVALID[4][0]}
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict(data, fields=fields)
    assert len(info.value.problems) == 4
    assert str(info.value).splitlines()[1:] == [f"  - {line}" for line in info.value.problems]


def test_space_error_is_a_value_error() -> None:
    assert issubclass(SpaceError, ValueError)


def test_prefix_leads_the_key_paths() -> None:
    with pytest.raises(SpaceError, match=r"study\.space\.lr: low"):
        SearchSpace.from_dict({"lr": {"low": 1.0, "high": 0.1}}, prefix="study.space")


def test_any_name_is_allowed_without_fields() -> None:
    assert SearchSpace.from_dict({"anything": {"low": 1, "high": 2}}).names == ("anything",)


def test_conditions_may_name_fields_outside_the_space(fields: tuple[str, ...]) -> None:
    data = {"momentum": {"low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}}}
    assert SearchSpace.from_dict(data, fields=fields).names == ("momentum",)


def test_conditions_outside_the_space_need_fields() -> None:
    data = {"momentum": {"low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}}}
    with pytest.raises(SpaceError, match="condition on unknown parameter 'optimizer'"):
        SearchSpace.from_dict(data)


def test_constructor_validates_conditions() -> None:
    with pytest.raises(SpaceError, match=r"space\.lr\.when: conditions form a cycle: lr -> lr"):
        SearchSpace({"lr": Float(0.1, 1.0, when={"lr": [0.5]})})


def test_grid_lists_choices_and_int_steps() -> None:
    space = SearchSpace(
        {
            "optimizer": Categorical(["sgd", "adam"]),
            "hidden": Categorical([[300, 100], [500]]),
            "batch_size": Int(32, 96, step=32),
            "batch_norm": Fixed(True),
        }
    )
    assert space.grid() == {
        "optimizer": ["sgd", "adam"],
        "hidden": ["300-100", "500"],
        "batch_size": [32, 64, 96],
    }


def test_grid_drives_a_grid_sampler_over_every_combination() -> None:
    space = SearchSpace(
        {
            "optimizer": Categorical(["sgd", "adam"]),
            "hidden": Categorical([[300, 100], [500]]),
            "batch_size": Int(32, 64, step=32),
        }
    )
    seen = []

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        seen.append((params["optimizer"], params["hidden"], params["batch_size"]))
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space.grid(), seed=0))
    study.optimize(objective, n_trials=20)  # the sampler stops the study after the grid
    expected = itertools.product(["sgd", "adam"], [(300, 100), (500,)], [32, 64])
    assert sorted(seen) == sorted(expected)


def test_grid_refuses_float_ranges() -> None:
    space = SearchSpace({"lr": Float(1e-3, 1.0, log=True)})
    with pytest.raises(
        SpaceError, match=r"space\.lr: grid search needs categorical or stepped int"
    ):
        space.grid()


def test_grid_refuses_conditions() -> None:
    space = SearchSpace(
        {
            "optimizer": Categorical(["sgd", "adam"]),
            "nesterov": Categorical([True, False], when={"optimizer": ["sgd"]}),
        }
    )
    with pytest.raises(SpaceError, match=r"space\.nesterov: grid search cannot follow conditions"):
        space.grid()
