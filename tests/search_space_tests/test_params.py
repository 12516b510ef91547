from __future__ import annotations

import math
import tomllib
from typing import Any

import optuna
import pytest
import tomli_w

from search_space import (
    PARAM_TYPES,
    Categorical,
    Fixed,
    Float,
    Int,
    Param,
    SearchSpace,
    SpaceError,
    param_from_dict,
    suggest,
)

# Examples of every parameter type, covering each option; a new type fails the test below
# until it has examples here.
EXAMPLES: dict[str, list[Param]] = {
    "float": [
        Float(0.0, 0.5),
        Float(1e-4, 1.0, log=True),
        Float(0.1, 0.9, step=0.2),
        Float(0.0, 0.99, when={"optimizer": ["sgd", "rmsprop"]}),
    ],
    "int": [
        Int(1, 10),
        Int(16, 512, log=True),
        Int(32, 256, step=32),
        Int(1, 20, when={"schedule": ["step"], "optimizer": ["sgd"]}),
    ],
    "categorical": [
        Categorical(["sgd", "adam"]),
        Categorical([True, False]),
        Categorical([0.1, 0.5, 1]),
        Categorical([[300, 100], [500, 300], []]),
        Categorical(["relu", "tanh"], when={"hidden": [[300, 100]]}),
    ],
    "fixed": [
        Fixed("adam"),
        Fixed(0.5),
        Fixed([5, 8]),
        Fixed(True, when={"optimizer": ["sgd"]}),
    ],
}

EXAMPLE_PARAMS = [param for name in sorted(EXAMPLES) for param in EXAMPLES[name]]


def test_every_param_type_has_examples() -> None:
    assert sorted(EXAMPLES) == sorted(PARAM_TYPES)


@pytest.mark.parametrize("param", EXAMPLE_PARAMS, ids=repr)
def test_to_dict_round_trips(param: Param) -> None:
    assert type(param).from_dict(param.to_dict()) == param
    assert param_from_dict(param.to_dict()) == param


@pytest.mark.parametrize("param", EXAMPLE_PARAMS, ids=repr)
def test_to_dict_round_trips_through_toml(param: Param) -> None:
    text = tomli_w.dumps({"x": param.to_dict()})
    assert param_from_dict(tomllib.loads(text)["x"]) == param


@pytest.mark.parametrize("type_name", sorted(PARAM_TYPES))
def test_to_dict_names_the_type(type_name: str) -> None:
    for param in EXAMPLES[type_name]:
        assert param.to_dict()["type"] == type_name


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"choices": ["a", "b"]}, Categorical(["a", "b"])),
        ({"value": 3}, Fixed(3)),
        ({"low": 1, "high": 8}, Int(1, 8)),
        ({"low": 0, "high": 0.5}, Float(0.0, 0.5)),
        ({"low": 1e-4, "high": 1.0, "log": True}, Float(1e-4, 1.0, log=True)),
        ({"type": "float", "low": 0, "high": 1}, Float(0.0, 1.0)),
    ],
)
def test_type_is_inferred_from_the_keys(table: dict[str, Any], expected: Param) -> None:
    assert param_from_dict(table) == expected
    assert type(param_from_dict(table)) is type(expected)


def test_bools_are_not_int_bounds() -> None:
    with pytest.raises(SpaceError, match="low must be a whole number, got false"):
        Int(False, 3)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Float(1.0, 0.001), r"low \(1.0\) must be below high \(0.001\)"),
        (lambda: Float(0.0, 1.0, log=True), "a log range must have low > 0"),
        (lambda: Float(1e-3, 1.0, log=True, step=0.1), "step cannot be combined with log"),
        (lambda: Int(0, 8, log=True), "a log range must have low > 0"),
        (lambda: Int(1, 8, step=0), "step must be a whole number >= 1"),
        (lambda: Categorical([]), "choices is empty"),
        (lambda: Categorical([1, True]), "choices has a duplicate: true"),
        (lambda: Categorical(["300-100", [300, 100]]), r"choices has a duplicate: \[300, 100\]"),
        (lambda: Fixed({"a": 1}), "value must be a string, number, boolean or list"),  # type: ignore[arg-type]
        (lambda: Fixed(1, when={}), "when: is empty"),
    ],
)
def test_construction_validates(build: Any, message: str) -> None:
    with pytest.raises(SpaceError, match=message):
        build()


def test_from_dict_rejects_a_different_type() -> None:
    with pytest.raises(SpaceError, match="type: is 'int', expected 'float'"):
        Float.from_dict({"type": "int", "low": 1, "high": 2})


def test_list_choices_are_encoded_as_readable_strings() -> None:
    param = Categorical([[300, 100], [500], []])
    assert param.encoded_choices == ("300-100", "500", "none")


def test_encoded_list_choices_decode_to_tuples() -> None:
    param = Categorical([[300, 100], [500, 300]])
    assert param.decode("500-300") == (500, 300)


def test_list_values_are_stored_as_tuples() -> None:
    assert Fixed([5, 8]).value == (5, 8)
    assert Categorical([[1, 2]]).choices == ((1, 2),)
    assert Float(0.0, 1.0, when={"hidden": [[1, 2]]}).when == {"hidden": ((1, 2),)}


def _inside(param: Param, value: Any) -> bool:
    if isinstance(param, Float):
        ok = isinstance(value, float) and param.low <= value <= param.high
        if param.step is not None:
            steps = (value - param.low) / param.step
            ok = ok and math.isclose(steps, round(steps), abs_tol=1e-9)
        return ok
    if isinstance(param, Int):
        in_range = param.low <= value <= param.high
        return isinstance(value, int) and in_range and (value - param.low) % param.step == 0
    if isinstance(param, Categorical):
        return any(value == choice and type(value) is type(choice) for choice in param.choices)
    return value == param.value


UNCONDITIONAL = [param for param in EXAMPLE_PARAMS if param.when is None]


@pytest.mark.parametrize("param", UNCONDITIONAL, ids=repr)
def test_sampling_stays_inside_the_bounds(param: Param) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = SearchSpace({"x": param})
    for _ in range(200):
        value = suggest(study.ask(), space)["x"]
        assert _inside(param, value), value


@pytest.mark.parametrize("param", [Float(1e-4, 1.0, log=True), Int(1, 10_000, log=True)], ids=repr)
def test_log_ranges_sample_on_a_log_scale(param: Float | Int) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = SearchSpace({"x": param})
    values = [suggest(study.ask(), space)["x"] for _ in range(200)]
    # On a log scale half the draws fall below the geometric mean; uniformly, about 1%.
    below = sum(value < math.sqrt(param.low * param.high) for value in values) / len(values)
    assert 0.35 < below < 0.65
