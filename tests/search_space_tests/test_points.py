"""`project_point`: the part of a configuration from another space that is valid in this one."""

from __future__ import annotations

from search_space import SearchSpace, project_point


def space(fields: tuple[str, ...], **extra: dict) -> SearchSpace:
    return SearchSpace.from_dict(
        {
            "lr": {"low": 1e-4, "high": 0.1, "log": True},
            "optimizer": {"choices": ["sgd", "adam"]},
            "momentum": {"low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}},
            **extra,
        },
        fields=fields,
    )


def test_values_valid_here_are_kept(fields: tuple[str, ...]) -> None:
    point = project_point(space(fields), {"lr": 0.01, "optimizer": "sgd", "momentum": 0.5})
    assert point == {"lr": 0.01, "optimizer": "sgd", "momentum": 0.5}


def test_names_this_space_does_not_search_are_dropped(fields: tuple[str, ...]) -> None:
    point = project_point(space(fields), {"lr": 0.01, "dropout": 0.3, "hidden": [64]})
    assert point == {"lr": 0.01}


def test_values_outside_the_range_or_the_choices_are_dropped(fields: tuple[str, ...]) -> None:
    point = project_point(space(fields), {"lr": 0.5, "optimizer": "rmsprop", "momentum": 0.5})
    assert point == {}  # momentum's condition names a dropped optimizer: drawn with it


def test_a_value_whose_condition_does_not_hold_is_dropped(fields: tuple[str, ...]) -> None:
    point = project_point(space(fields), {"optimizer": "adam", "momentum": 0.5})
    assert point == {"optimizer": "adam"}


def test_a_condition_on_a_name_not_searched_reads_the_base(fields: tuple[str, ...]) -> None:
    searched = SearchSpace.from_dict(
        {"momentum": {"low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}}}, fields=fields
    )
    assert project_point(searched, {"momentum": 0.5}, base={"optimizer": "sgd"}) == {
        "momentum": 0.5
    }
    assert project_point(searched, {"momentum": 0.5}, base={"optimizer": "adam"}) == {}


def test_a_fixed_parameter_answers_conditions_but_is_not_enqueued(
    fields: tuple[str, ...],
) -> None:
    searched = SearchSpace.from_dict(
        {
            "batch_norm": {"value": True},
            "dropout": {"low": 0.0, "high": 0.5, "when": {"batch_norm": [True]}},
        },
        fields=fields,
    )
    assert project_point(searched, {"batch_norm": True, "dropout": 0.2}) == {"dropout": 0.2}


def test_only_the_names_given_are_taken(fields: tuple[str, ...]) -> None:
    point = project_point(space(fields), {"lr": 0.01, "optimizer": "adam"}, only={"optimizer"})
    assert point == {"optimizer": "adam"}
