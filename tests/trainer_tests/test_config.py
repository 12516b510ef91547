from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from trainer import (
    ACTIVATIONS,
    INIT_SCHEMES,
    MONITORS,
    OPTIMIZERS,
    SCHEDULES,
    TASK_METRICS,
    ConfigError,
    TrainConfig,
    field_names,
    metric_direction,
    read_config_file,
)

CUSTOM = TrainConfig(
    dataset="digits",
    hidden=(64, 32),
    channels=(4,),
    activation="tanh",
    dropout=0.25,
    init="he_uniform",
    optimizer="sgd",
    lr=0.05,
    momentum=0.9,
    nesterov=True,
    schedule="piecewise",
    milestones=(3, 6),
    epochs=7,
    seed=11,
)


def problems(**changes: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(changes)
    return info.value.problems


def test_defaults_are_valid() -> None:
    assert TrainConfig().to_dict()["lr"] == 0.01


def test_dict_round_trip() -> None:
    assert TrainConfig.from_dict(CUSTOM.to_dict()) == CUSTOM


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_file_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    CUSTOM.save(path, extra={"provenance": {"study": "s1"}})
    assert TrainConfig.load(path) == CUSTOM
    assert read_config_file(path)["provenance"] == {"study": "s1"}


def test_load_reads_fields_at_top_level(tmp_path: Path) -> None:
    path = tmp_path / "flat.toml"
    path.write_text('dataset = "digits"\nlr = 1\nhidden = [8]\n')
    config = TrainConfig.load(path)
    assert (config.lr, config.hidden) == (1.0, (8,))
    assert isinstance(config.lr, float)


def test_lists_become_tuples_and_config_is_hashable() -> None:
    config = TrainConfig(hidden=[10, 5])  # type: ignore[arg-type]
    assert config.hidden == (10, 5)
    assert hash(config) == hash(TrainConfig(hidden=(10, 5)))


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        CUSTOM.lr = 1.0  # type: ignore[misc]


def test_replace_validates() -> None:
    assert CUSTOM.replace(lr=0.5).lr == 0.5
    with pytest.raises(ConfigError, match="lr must be a positive number"):
        CUSTOM.replace(lr=0.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": 0.0}, "lr must be a positive number, got 0.0"),
        ({"lr": -0.1}, "lr must be a positive number"),
        ({"lr": float("inf")}, "lr must be a positive number"),
        ({"dropout": 1.0}, "dropout must be in [0, 1), got 1.0"),
        ({"dropout": -0.1}, "dropout must be in [0, 1)"),
        ({"nesterov": True}, "nesterov needs optimizer 'sgd' with momentum > 0"),
        ({"nesterov": True, "momentum": 0.9, "optimizer": "rmsprop"}, "nesterov needs"),
        ({"momentum": 0.9, "optimizer": "adam"}, "momentum applies to sgd and rmsprop only"),
        ({"momentum": 1.0}, "momentum must be in [0, 1)"),
        ({"dev_fraction": 1.0}, "dev_fraction must be in [0, 1)"),
        ({"train_size": -1}, "train_size must be >= 0"),
        ({"hidden": [0]}, "hidden sizes must be positive"),
        ({"model": "cnn", "channels": []}, "a cnn needs at least one entry in channels"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"l1": -1.0}, "l1 must be >= 0"),
        ({"clip_norm": -1.0}, "clip_norm must be >= 0"),
        ({"l1_ratio": 1.5}, "l1_ratio must be in [0, 1]"),
        ({"gamma": 0.0}, "gamma must be in (0, 1]"),
        ({"plateau_factor": 1.0}, "plateau_factor must be in (0, 1)"),
        ({"step_size": 0}, "step_size must be >= 1"),
        ({"milestones": [5, 3]}, "milestones must be increasing epochs >= 1"),
        ({"schedule": "piecewise"}, "schedule 'piecewise' needs milestones"),
        ({"schedule": "cosine", "min_lr": 0.1}, "min_lr (0.1) must be below lr"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"patience": -1}, "patience must be >= 0"),
        ({"device": "tpu"}, "device 'tpu' is unknown"),
        ({"dataset": ""}, "dataset is empty"),
    ],
)
def test_validation_message(changes: dict[str, Any], message: str) -> None:
    assert any(message in p for p in problems(**changes)), problems(**changes)


@pytest.mark.parametrize(
    ("field", "registry"),
    [
        ("activation", ACTIVATIONS),
        ("init", INIT_SCHEMES),
        ("optimizer", OPTIMIZERS),
        ("schedule", SCHEDULES),
        ("model", {"mlp": None, "cnn": None}),
        ("monitor", {"dev_loss": None, "dev_accuracy": None}),
    ],
)
def test_unknown_name_lists_exactly_the_registry(field: str, registry: dict[str, Any]) -> None:
    (problem,) = problems(**{field: "nonesuch"})
    assert problem.startswith(f"{field} 'nonesuch' is unknown")
    listed = re.search(r"choose one of: (.*)$", problem)
    assert listed is not None
    assert set(listed.group(1).split(", ")) == set(registry)


@pytest.mark.parametrize("name", sorted(INIT_SCHEMES))
def test_every_init_scheme_is_accepted(name: str) -> None:
    assert TrainConfig(init=name).init == name


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_is_accepted(name: str) -> None:
    assert TrainConfig(schedule=name, milestones=(2,)).schedule == name


def test_unknown_name_suggests_the_close_one() -> None:
    (problem,) = problems(optimizer="adamm")
    assert "did you mean 'adam'?" in problem


def test_unknown_key_suggests_the_close_one() -> None:
    (problem,) = problems(momentun=0.9)
    assert problem == "unknown key 'momentun' (did you mean 'momentum'?)"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": "fast"}, "lr must be a number, got 'fast'"),
        ({"lr": True}, "lr must be a number"),
        ({"epochs": 2.5}, "epochs must be a whole number, got 2.5"),
        ({"batch_norm": 1}, "batch_norm must be true or false, got 1"),
        ({"hidden": "300"}, "hidden must be a list of whole numbers"),
        ({"hidden": [1.5]}, "hidden must be a list of whole numbers"),
        ({"dataset": 3}, "dataset must be a string"),
    ],
)
def test_wrong_type_message(changes: dict[str, Any], message: str) -> None:
    assert any(message in p for p in problems(**changes)), problems(**changes)


def test_wrong_type_in_code_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lr must be a number"):
        TrainConfig(lr="0.1")  # type: ignore[arg-type]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(lr=0.0, dropout=2.0, momentun=0.5, epochs="3")
    assert len(found) == 4


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nlr = -1\n")
    with pytest.raises(ConfigError, match=re.escape(f"invalid training config in {path}")):
        TrainConfig.load(path)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("broken.toml", "lr = = 1", "cannot parse"),
        ("broken.json", "{", "cannot parse"),
        ("list.json", "[1, 2]", "must hold a table of settings"),
    ],
)
def test_unreadable_file(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        TrainConfig.load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        TrainConfig.load(tmp_path / "absent.toml")


def test_field_names_are_the_dataclass_fields() -> None:
    assert field_names() == tuple(TrainConfig().to_dict())
    assert {"lr", "momentum", "dropout", "init", "schedule", "seed"} <= set(field_names())


FACTORY = TrainConfig(
    dataset="table.csv",
    target=("price", "rent"),
    task="regression",
    monitor="dev_r2",
    standardize=True,
    test_fraction=0.2,
    model="models.py:build",
    model_args={"width": 64, "kinds": ["a", "b"], "scale": 0.5, "skip": True},
)


@pytest.mark.parametrize("suffix", [".toml", ".json", ".yaml"])
def test_factory_config_file_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"run{suffix}"
    FACTORY.save(path)
    assert TrainConfig.load(path) == FACTORY


def test_model_args_are_frozen_hashable_and_plain_in_to_dict() -> None:
    assert FACTORY.model_args["kinds"] == ("a", "b")
    assert FACTORY.to_dict()["model_args"] == {
        "width": 64,
        "kinds": ["a", "b"],
        "scale": 0.5,
        "skip": True,
    }
    assert type(FACTORY.to_dict()["model_args"]) is dict
    assert hash(FACTORY) == hash(TrainConfig.from_dict(FACTORY.to_dict()))
    assert FACTORY.model_args == {"width": 64, "kinds": ("a", "b"), "scale": 0.5, "skip": True}
    with pytest.raises(TypeError):
        FACTORY.model_args["width"] = 3  # type: ignore[index]
    assert {FACTORY: 1}[FACTORY.replace(model_args=dict(FACTORY.model_args))] == 1


def test_target_takes_a_string_or_a_list() -> None:
    assert TrainConfig(dataset="t.csv", target="y").target == ("y",)  # type: ignore[arg-type]
    assert TrainConfig.from_dict({"dataset": "t.csv", "target": ["y"]}).to_dict()["target"] == ["y"]


def test_a_monitor_outside_the_task_lists_the_tasks_metrics() -> None:
    (problem,) = problems(task="regression", monitor="dev_accuracy")
    assert problem == (
        "monitor 'dev_accuracy' does not fit task 'regression'; "
        "choose one of: dev_loss, dev_rmse, dev_r2"
    )
    (problem,) = problems(monitor="dev_r2")
    assert problem.endswith("choose one of: dev_loss, dev_accuracy")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"task": "ranking"}, "task 'ranking' is unknown"),
        ({"model": "models.py:"}, "model 'models.py:' is not a factory reference"),
        ({"model": "my-models:build"}, "model 'my-models:build' is not a factory reference"),
        ({"model_args": {"width": 3}}, "model_args (width) apply to a factory model, not 'mlp'"),
        ({"model": "m.py:f", "model_args": {"num_classes": 3}}, "model_args.num_classes is set by"),
        (
            {"model": "m.py:f", "model_args": {"dropout": 0.5}},
            "model_args.dropout is set by the trainer; set dropout itself",
        ),
        ({"model": "m.py:f", "model_args": {"a-b": 1}}, "model_args key 'a-b' is not a Python"),
        ({"model_args": {"width": {"a": 1}}}, "model_args.width must be a string, number"),
        ({"model_args": [1]}, "model_args must be a table of keyword arguments"),
        ({"dataset": "t.csv"}, "dataset 't.csv' is a CSV file: set target"),
        ({"target": "y"}, "target names CSV columns, but dataset 'mnist' is not a .csv file"),
        ({"dataset": "t.csv", "target": ["y", "y"]}, "target must name distinct"),
        ({"dataset": "t.csv", "target": [1]}, "target must be a column name or a list of them"),
        ({"dataset": "t.csv", "target": ["a", "b"]}, "classification takes one target column"),
        ({"test_fraction": 1.0}, "test_fraction must be in [0, 1)"),
        ({"standardize": "yes"}, "standardize must be true or false"),
        ({"freeze": -1}, "freeze must be >= 0 (0 = train every layer), got -1"),
        ({"freeze": 1.5}, "freeze must be a whole number"),
        ({"init_from": "best.toml"}, "init_from must name a .pt or .pth state-dict file"),
        ({"init_from": 3}, "init_from must be a string"),
    ],
)
def test_new_field_validation(changes: dict[str, Any], message: str) -> None:
    assert any(message in p for p in problems(**changes)), problems(**changes)


def test_a_factory_reference_is_not_imported_while_validating() -> None:
    config = TrainConfig(model="no_such_package.anywhere:build", model_args={"width": 8})
    assert config.model == "no_such_package.anywhere:build"
    assert TrainConfig(dataset="no_such_loaders.py:load").dataset == "no_such_loaders.py:load"


def test_metric_directions() -> None:
    assert [metric_direction(m) for m in MONITORS] == [
        "minimize",
        "maximize",
        "minimize",
        "maximize",
    ]
    assert set(TASK_METRICS["regression"]) | set(TASK_METRICS["classification"]) == set(MONITORS)
