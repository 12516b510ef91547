"""Entries of a group field (``model_args``) as parameters: ``[space.model_args.width]``."""

from __future__ import annotations

import itertools
import tomllib
from typing import Any

import optuna
import pytest
import tomli_w
from optuna.trial import FixedTrial

from search_space import Categorical, Float, Int, SearchSpace, SpaceError, nest, suggest

SPEC = """
[space.model_args.width]
low = 16
high = 256
log = true

[space.model_args.depth]
choices = [2, 3, 4]

[space.model_args.skip]
choices = [true, false]
when = { "model_args.depth" = [3, 4] }

[space.model_args.gate]
low = 0.0
high = 1.0
when = { model_args = { depth = [4] } }

[space.model_args.momentum_like]
low = 0.1
high = 0.9
when = { optimizer = ["sgd"] }

[space.optimizer]
choices = ["sgd", "adam"]

[space.lr]
low = 1e-3
high = 0.1
log = true
when = { "model_args.kind" = ["deep"] }
"""

BASE = {"lr": 0.01, "optimizer": "sgd", "model_args": {"kind": "deep", "width": 8, "extra": 1}}


def space(fields: tuple[str, ...]) -> SearchSpace:
    return SearchSpace.from_dict(tomllib.loads(SPEC)["space"], fields=fields)


def test_entries_become_flat_parameters(fields: tuple[str, ...]) -> None:
    found = space(fields)
    assert found["model_args.width"] == Int(16, 256, log=True)
    assert found["model_args.skip"] == Categorical([True, False], when={"model_args.depth": [3, 4]})
    assert found.names.index("model_args.depth") < found.names.index("model_args.skip")


def test_a_nested_condition_is_the_flat_one(fields: tuple[str, ...]) -> None:
    assert space(fields)["model_args.gate"] == Float(0.0, 1.0, when={"model_args.depth": [4]})
    nested = Float(0.0, 1.0, when={"model_args": {"depth": [4]}})
    assert nested.when == {"model_args.depth": (4,)}


def test_to_dict_nests_the_entries_and_round_trips_through_toml(fields: tuple[str, ...]) -> None:
    written = space(fields).to_dict()
    assert set(written) == {"model_args", "optimizer", "lr"}
    assert set(written["model_args"]) == {"width", "depth", "skip", "gate", "momentum_like"}
    assert written["model_args"]["width"] == {"type": "int", "low": 16, "high": 256, "log": True}
    text = tomli_w.dumps({"space": written})
    assert "[space.model_args.width]" in text
    again = SearchSpace.from_dict(tomllib.loads(text)["space"], fields=fields)
    assert again == space(fields) and again.names == space(fields).names


def test_samples_stay_in_bounds_and_follow_conditions(fields: tuple[str, ...]) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    found = space(fields)
    seen_depths = set()
    for _ in range(60):
        trial = study.ask()
        params = suggest(trial, found, base=BASE)
        assert set(trial.params) == set(params)  # Optuna's names are the flat ones
        assert 16 <= params["model_args.width"] <= 256
        depth = params["model_args.depth"]
        seen_depths.add(depth)
        assert ("model_args.skip" in params) == (depth in (3, 4))
        assert ("model_args.gate" in params) == (depth == 4)
        assert ("model_args.momentum_like" in params) == (params["optimizer"] == "sgd")
        assert "lr" in params  # base's model_args.kind is "deep"
        study.tell(trial, 0.0)
    assert seen_depths == {2, 3, 4}


def test_conditions_read_entries_of_base(fields: tuple[str, ...]) -> None:
    values = {"model_args.width": 32, "model_args.depth": 2, "optimizer": "adam", "lr": 0.05}
    shallow = {**BASE, "model_args": {"kind": "shallow"}}
    assert "lr" not in suggest(FixedTrial(values), space(fields), base=shallow)
    assert suggest(FixedTrial(values), space(fields), base=BASE)["lr"] == 0.05


def test_a_condition_on_an_entry_base_lacks(fields: tuple[str, ...]) -> None:
    with pytest.raises(SpaceError, match=r"'lr' is conditional on 'model_args\.kind'"):
        suggest(FixedTrial({}), space(fields), base={"model_args": {}})


def test_nest_merges_entries_over_base() -> None:
    params = {"lr": 0.1, "model_args.width": 64, "model_args.depth": 3}
    assert nest(params, base=BASE) == {
        "lr": 0.1,
        "model_args": {"kind": "deep", "width": 64, "extra": 1, "depth": 3},
    }
    assert nest({"model_args.width": 64}) == {"model_args": {"width": 64}}
    assert nest({"lr": 0.1}, base=BASE) == {"lr": 0.1}  # untouched groups are left out
    assert BASE["model_args"] == {"kind": "deep", "width": 8, "extra": 1}  # base is not changed


def test_grid_holds_entries_under_their_flat_names() -> None:
    found = SearchSpace.from_dict(
        {
            "model_args": {"width": {"choices": [8, 16]}, "depth": {"low": 1, "high": 3}},
            "optimizer": {"choices": ["sgd", "adam"]},
        }
    )
    assert found.grid() == {
        "model_args.width": [8, 16],
        "model_args.depth": [1, 2, 3],
        "optimizer": ["sgd", "adam"],
    }
    seen = []

    def objective(trial: optuna.Trial) -> float:
        params = nest(suggest(trial, found))
        seen.append((params["model_args"]["width"], params["model_args"]["depth"]))
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.GridSampler(found.grid(), seed=0))
    study.optimize(objective, n_trials=20)
    assert sorted(set(seen)) == sorted(itertools.product([8, 16], [1, 2, 3]))


# Each case: a [space] table with one problem, and the line the error must hold.
INVALID: list[tuple[dict[str, Any], str]] = [
    (
        {"model_args": {"low": 1, "high": 2}},
        "space.model_args.low: must be a table, got 1; model_args holds one parameter table per "
        "entry, e.g. [space.model_args.width]",
    ),
    ({"model_args": 3}, "space.model_args: must be a table of parameters, one per entry"),
    ({"model_args": {"width": {"low": 8}}}, "space.model_args.width: missing key 'high'"),
    (
        {"model_args": {"1st": {"low": 1, "high": 2}}},
        "space.model_args.1st: '1st' in 'model_args.1st' is not a parameter name",
    ),
    (
        {"model_arg.width": {"low": 1, "high": 2}},
        "space.model_arg.width: 'model_arg.width' names an entry of 'model_arg', which is not a "
        "table of entries (did you mean 'model_args'?)",
    ),
    (
        {
            "model_args": {
                "depth": {"choices": [2, 3]},
                "skip": {"value": 1, "when": {"model_args": {"depth": [5]}}},
            }
        },
        "space.model_args.skip.when.model_args.depth: 5 is not a choice of 'model_args.depth' "
        "(2, 3)",
    ),
    (
        {"lr": {"low": 0.1, "high": 1.0, "when": {"model_args": {}}}},
        "space.lr.when.model_args: is empty",
    ),
    (
        {"lr": {"low": 0.1, "high": 1.0, "when": {"modelargs.depth": [3]}}},
        "space.lr.when: condition on unknown parameter 'modelargs.depth'",
    ),
]


@pytest.mark.parametrize(("data", "problem"), INVALID, ids=[p for _, p in INVALID])
def test_group_problems_are_reported(
    data: dict[str, Any], problem: str, fields: tuple[str, ...]
) -> None:
    with pytest.raises(SpaceError) as info:
        SearchSpace.from_dict(data, fields=fields)
    assert any(line.startswith(problem) for line in info.value.problems), info.value.problems


def test_a_group_is_a_field_only_when_fields_say_so() -> None:
    with pytest.raises(SpaceError, match="'model_args' is not a TrainConfig field"):
        SearchSpace.from_dict({"model_args": {"width": {"low": 1, "high": 2}}}, fields=("lr",))


def test_other_groups_can_be_named() -> None:
    found = SearchSpace.from_dict(
        {"extra": {"gain": {"low": 0.5, "high": 2.0}}},
        fields=("lr", "extra"),
        groups=("extra",),
    )
    assert found.names == ("extra.gain",)
    assert found.to_dict() == {"extra": {"gain": {"type": "float", "low": 0.5, "high": 2.0}}}


def test_a_group_itself_is_not_a_parameter() -> None:
    with pytest.raises(SpaceError, match="'model_args' is a table: search its entries"):
        SearchSpace({"model_args": Categorical(["a"])})
