from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
import pytest
from optuna.trial import FixedTrial

from search_space import Categorical, Fixed, Float, Int, SearchSpace, SpaceError, suggest


class CountingTrial(FixedTrial):
    """A `FixedTrial` that counts its suggest calls by parameter name."""

    def __init__(self, params: dict[str, Any]) -> None:
        super().__init__(params)
        self.calls: Counter[str] = Counter()

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> float:
        self.calls[name] += 1
        return super().suggest_float(name, *args, **kwargs)

    def suggest_int(self, name: str, *args: Any, **kwargs: Any) -> int:
        self.calls[name] += 1
        return super().suggest_int(name, *args, **kwargs)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        self.calls[name] += 1
        return super().suggest_categorical(name, choices)


def _space() -> SearchSpace:
    return SearchSpace(
        {
            "lr": Float(1e-4, 1.0, log=True),
            "optimizer": Categorical(["sgd", "adam", "rmsprop"]),
            "momentum": Float(0.0, 0.99, when={"optimizer": ["sgd", "rmsprop"]}),
            "nesterov": Categorical([True, False], when={"optimizer": ["sgd"]}),
            "hidden": Categorical([[300, 100], [500, 300]]),
            "batch_norm": Fixed(True),
        }
    )


def test_inactive_parameters_are_left_out() -> None:
    trial = FixedTrial({"optimizer": "adam", "lr": 0.01, "hidden": "300-100"})
    params = suggest(trial, _space())
    assert params == {"lr": 0.01, "optimizer": "adam", "hidden": (300, 100), "batch_norm": True}


def test_active_conditional_parameters_are_suggested() -> None:
    values = {"optimizer": "sgd", "lr": 0.01, "hidden": "300-100", "momentum": 0.9}
    params = suggest(FixedTrial({**values, "nesterov": True}), _space())
    assert params["momentum"] == 0.9
    assert params["nesterov"] is True


def test_each_active_parameter_is_suggested_exactly_once() -> None:
    trial = CountingTrial({"optimizer": "rmsprop", "lr": 0.01, "hidden": "500-300", "momentum": 0})
    suggest(trial, _space())
    assert trial.calls == Counter({"lr": 1, "optimizer": 1, "momentum": 1, "hidden": 1})


def test_fixed_parameters_are_included_without_a_call() -> None:
    trial = CountingTrial({})
    assert suggest(trial, SearchSpace({"milestones": Fixed([5, 8])})) == {"milestones": (5, 8)}
    assert trial.calls == Counter()


def test_list_choices_come_back_as_tuples() -> None:
    params = suggest(FixedTrial({"hidden": "500-300"}), SearchSpace({"hidden": _space()["hidden"]}))
    assert params == {"hidden": (500, 300)}


def test_trial_keeps_the_readable_string_of_a_list_choice() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = suggest(trial, SearchSpace({"hidden": _space()["hidden"]}))
    assert trial.params["hidden"] == "-".join(str(size) for size in params["hidden"])


def test_conditions_hold_in_every_sampled_trial() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(50):
        trial = study.ask()
        params = suggest(trial, _space())
        assert ("momentum" in params) == (params["optimizer"] in ("sgd", "rmsprop"))
        assert ("nesterov" in params) == (params["optimizer"] == "sgd")
        assert set(trial.params) == set(params) - {"batch_norm"}


def test_conditions_read_the_base_config() -> None:
    space = SearchSpace.from_dict(
        {"momentum": {"low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}}},
        fields=("momentum", "optimizer"),
    )
    trial = FixedTrial({"momentum": 0.5})
    assert suggest(trial, space, base={"optimizer": "sgd"}) == {"momentum": 0.5}
    assert suggest(trial, space, base={"optimizer": "adam"}) == {}


def test_conditions_compare_base_lists_as_tuples() -> None:
    space = SearchSpace.from_dict(
        {"dropout": {"low": 0.0, "high": 0.5, "when": {"hidden": [[300, 100]]}}},
        fields=("dropout", "hidden"),
    )
    trial = FixedTrial({"dropout": 0.1})
    assert suggest(trial, space, base={"hidden": [300, 100]}) == {"dropout": 0.1}


def test_an_inactive_parameter_leaves_its_conditions_to_the_base_config() -> None:
    space = SearchSpace(
        {
            "schedule": Categorical(["constant", "step"], when={"model": ["cnn"]}),
            "step_size": Int(1, 10, when={"schedule": ["step"]}),
        },
        fields=("schedule", "step_size", "model"),
    )
    trial = FixedTrial({"step_size": 3})
    assert suggest(trial, space, base={"model": "mlp", "schedule": "step"}) == {"step_size": 3}


def test_all_keys_of_a_condition_must_hold() -> None:
    space = SearchSpace(
        {
            "optimizer": Categorical(["sgd", "adam"]),
            "schedule": Categorical(["constant", "step"]),
            "gamma": Float(0.1, 0.9, when={"optimizer": ["sgd"], "schedule": ["step"]}),
        }
    )
    both = FixedTrial({"optimizer": "sgd", "schedule": "step", "gamma": 0.5})
    one = FixedTrial({"optimizer": "sgd", "schedule": "constant", "gamma": 0.5})
    assert "gamma" in suggest(both, space)
    assert "gamma" not in suggest(one, space)


def test_a_condition_without_a_value_is_an_error() -> None:
    space = SearchSpace(
        {"momentum": Float(0.0, 0.9, when={"optimizer": ["sgd"]})}, fields=("momentum", "optimizer")
    )
    with pytest.raises(SpaceError, match="'momentum' is conditional on 'optimizer'"):
        suggest(FixedTrial({"momentum": 0.5}), space)
